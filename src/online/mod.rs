//! Online serving (chronon-semantics §6): GroupBy serving data in a key-value store
//! ([`store`]), written by batch uploads and streaming, and read back by the fetcher that
//! `weft serve` exposes.

pub mod store;
