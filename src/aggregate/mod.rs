//! Chronon's aggregation operations as pure Rust partial aggregates (chronon-semantics §2.3).
//!
//! An [`AggSpec`] is one operation with its parsed `argMap`; [`AggSpec::output_type`] gives the
//! Arrow type it produces for an input column. An [`Aggregator`] (spec + [`InputShape`] +
//! bucketing) updates, merges and finalizes [`Ir`]s, the mergeable partial aggregates the
//! dataflow keeps per key and time tile. Inputs and outputs are [`Value`]s, converted from and to
//! Arrow arrays by [`value::column_values`] and [`value::to_array`].
//!
//! The approximate operations use the `datasketches` crate (CPC for APPROX_UNIQUE_COUNT,
//! frequent items for APPROX_HISTOGRAM_K) and a deterministic KLL sketch of our own for
//! APPROX_PERCENTILE (see `sketch.rs` for why). Every result is deterministic: the same inputs
//! updated and merged in the same order give bit-identical outputs.
//!
//! APPROX_UNIQUE_COUNT is exact for small cardinalities: while an IR has seen at most 64
//! distinct values (`sketch::EXACT_UNIQUE_MAX`) it keeps them as a set and finalizes to their
//! exact count; the 65th switches it to the CPC sketch, fed the kept values in first-arrival
//! order and then every later input, so it equals a sketch fed the whole stream. Chronon always
//! uses CPC, so at small counts its result may differ from weft's by the CPC estimate error;
//! above the threshold both have CPC's error (`lgK` from the argMap). Merging a later exact IR
//! into another equals updating with its values in order, also across the switch; a later
//! sketch is unioned (or, into an exact IR, updated with its values).
//!
//! IRs serialize exactly, for the online store and checkpoints: [`Ir::encode`], [`Ir::decode`]
//! and [`Aggregator::decode_ir`], which also checks that the IR fits the aggregator (see
//! `ir_codec` for the format, `sketch_codec` for the sketches).

pub mod codec;
pub mod ir;
mod ir_check;
mod ir_codec;
mod leaf;
pub mod op;
pub mod sink;
mod sketch;
mod sketch_codec;
pub mod value;
mod wire;

#[cfg(test)]
mod sketch_codec_tests;
#[cfg(test)]
mod tests;

pub use ir::{Aggregator, Ir};
pub use op::{AggSpec, InputShape};
pub use value::Value;
