//! A join as data: its plan ([`plan`]: parts, windows, output columns, bootstrap and label
//! parts, semantic hash in [`semantic_hash`]), its inputs as dataflow updates ([`inputs`],
//! [`part`] for a part's types, spec and source range, [`feed`] for what was fed per
//! partition, [`shard`] for source partitions the dataflow's workers read), its output rows ([`output`], derivations in [`mod@derive`]) and its bootstrap
//! tables ([`bootstrap`]). The engine's join pipeline (`crate::engine::JoinRunner`) drives
//! these through the dataflow.

pub mod bootstrap;
pub mod derive;
pub mod feed;
pub mod inputs;
pub mod output;
pub mod part;
pub mod plan;
pub mod semantic_hash;
pub mod shard;
mod values;
