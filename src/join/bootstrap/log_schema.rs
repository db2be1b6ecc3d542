//! Logging schemas as a flattened log table carries them (chronon-semantics §5.3, §5.6): the
//! table property `schema_hash_<h>` holds, for every schema hash `h` seen in the log, the
//! logging-schema JSON. A log row with hash `h` truly logged exactly the value fields of that
//! schema, so log bootstrap coverage is decided per row from them (§4.2).
//!
//! The schemas are defined in `crate::logging::schema` (one place writes their JSON, for
//! the join codec, the log flattener and log bootstrap); this module re-exports them.

pub use crate::logging::schema::{
    read_schemas, LoggingSchema, LOG_TABLE_PROPERTY, SCHEMA_HASH_PREFIX,
};
