//! Logging served join responses (chronon-semantics §5.1–§5.3): for joins with `samplePercent`
//! set, every response whose key record samples in — deterministically: `|md5Long(key bytes)|`,
//! logged iff positive and `hash % 100000 ≤ samplePercent × 1000` — is handed to the
//! [`Logger`] as an Avro key record (the request's key fields) and value record (base and
//! derived values: full values, as Chronon logs them), with the schema hash. The join's codec
//! is built on first use, which also logs a schema-publish control event. Logging never fails
//! or slows a fetch: errors are counted and the logger drops what its buffer cannot hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};

use super::fetch_join::{FetchRequest, Fetched, JoinFetcher};
use super::values::from_json;
use crate::aggregate::Value;
use crate::error::Result;
use crate::logging::codec::JoinCodec;
use crate::logging::logger::Logger;
use crate::logging::request_name;

/// Logs join responses through a [`Logger`].
pub struct ResponseLogger {
    pub logger: Arc<Logger>,
    codecs: Mutex<HashMap<String, Arc<JoinCodec>>>,
    /// Responses that could not be encoded (a value not fitting its logged type).
    pub encode_errors: AtomicU64,
    /// Responses handed to the logger.
    pub logged: AtomicU64,
}

/// A join's schema is published again after this many logged responses, so a control event
/// lost to a full log buffer is eventually replaced (the flattener cannot decode rows whose
/// schema was never published).
pub const REPUBLISH_EVERY: u64 = 10_000;

/// Whether a response with these key bytes is logged at `percent` (0–100).
pub fn sampled(key_bytes: &[u8], percent: f64) -> bool {
    let d = Md5::digest(key_bytes);
    let long = i64::from_be_bytes(d[..8].try_into().expect("md5 has 16 bytes"));
    let hash = long.unsigned_abs();
    hash > 0 && (hash % 100_000) as f64 <= percent * 1000.0
}

impl ResponseLogger {
    pub fn new(logger: Arc<Logger>) -> ResponseLogger {
        ResponseLogger {
            logger,
            codecs: Mutex::new(HashMap::new()),
            encode_errors: AtomicU64::new(0),
            logged: AtomicU64::new(0),
        }
    }

    /// The join's codec, built (and its schema published) on first use.
    pub fn codec(&self, f: &JoinFetcher, now: i64) -> Result<Arc<JoinCodec>> {
        let name = &f.join.meta_data.name;
        if let Some(c) = self.codecs.lock().expect("codec lock").get(name) {
            return Ok(c.clone());
        }
        let keys = f
            .key_fields()
            .into_iter()
            .map(|k| (k.name().clone(), k.data_type().clone()))
            .collect();
        let mut values: Vec<(String, arrow::datatypes::DataType)> = f
            .base_fields()
            .into_iter()
            .map(|v| (v.name().clone(), v.data_type().clone()))
            .collect();
        for d in &f.derived_fields {
            if !values.iter().any(|(n, _)| n == d.name()) {
                values.push((d.name().clone(), d.data_type().clone()));
            }
        }
        let codec = Arc::new(JoinCodec::new(name, keys, values)?);
        self.logger.log(codec.control_event(now));
        self.codecs
            .lock()
            .expect("codec lock")
            .insert(name.clone(), codec.clone());
        Ok(codec)
    }

    /// Logs the sampled responses of one fetch call.
    pub fn log(&self, f: &JoinFetcher, requests: &[FetchRequest], fetched: &[Fetched], now: i64) {
        let Some(percent) = f.join.meta_data.sample_percent.filter(|p| *p > 0.0) else {
            return;
        };
        let codec = match self.codec(f, now) {
            Ok(c) => c,
            Err(e) => {
                self.encode_errors
                    .fetch_add(requests.len() as u64, Ordering::Relaxed);
                tracing::warn!(join = %f.join.meta_data.name, error = %e, "cannot log this join's responses");
                return;
            }
        };
        let name = request_name(&f.join.meta_data.name);
        let key_fields = f.key_fields();
        let value_names: Vec<String> = codec
            .value_codec()
            .fields()
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        for (r, out) in requests.iter().zip(fetched) {
            let keys: Vec<Value> = key_fields
                .iter()
                .map(|k| {
                    r.keys
                        .get(k.name())
                        .and_then(|j| from_json(j, k.data_type()))
                        .unwrap_or(Value::Null)
                })
                .collect();
            let key_bytes = match codec.encode_key(&keys) {
                Ok(b) => b,
                Err(_) => {
                    self.encode_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if !sampled(&key_bytes, percent) {
                continue;
            }
            let values: Vec<Value> = value_names
                .iter()
                .map(|n| {
                    out.derived
                        .as_ref()
                        .and_then(|d| d.get(n))
                        .or_else(|| out.values.get(n))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect();
            match codec.data_event(&name, r.at_millis.unwrap_or(now), &keys, &values) {
                Ok(e) => {
                    self.logger.log(e);
                    let n = self.logged.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_multiple_of(REPUBLISH_EVERY) {
                        self.logger.log(codec.control_event(now));
                    }
                }
                Err(_) => {
                    self.encode_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_and_proportional() {
        let keys: Vec<Vec<u8>> = (0..20_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let at = |p: f64| keys.iter().filter(|k| sampled(k, p)).count();
        assert_eq!(at(100.0), keys.len());
        let ten = at(10.0) as f64 / keys.len() as f64;
        assert!((0.08..0.12).contains(&ten), "{ten}");
        assert_eq!(at(10.0), at(10.0));
        assert!(at(0.0) < 10);
    }
}
