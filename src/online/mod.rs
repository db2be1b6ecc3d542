//! Online serving (chronon-semantics §6): GroupBy serving data in a key-value store
//! ([`store`]), written by batch uploads and streaming, and read back by the fetcher that
//! `weft serve` exposes.

pub mod external;
pub(crate) mod fetch_group_by;
pub mod fetch_join;
pub mod fetcher;
pub mod http_errors;
pub mod log_responses;
pub mod metrics;
pub mod server;
pub(crate) mod serving;
pub mod store;
pub mod stream;
#[cfg(test)]
pub(crate) mod test_server;
pub mod upload;
pub(crate) mod values;
