//! External sources at fetch time (chronon-semantics §6.5 step 2): handlers registered in code
//! by source name ([`ExternalHandler`]), or the built-in HTTP handler configured through the
//! source's `factoryConfig` (`factoryName: "http"`, `factoryParams: {url, timeout_ms}`), so a
//! service can be plugged in without recompiling. Every call runs under a deadline: a slow or
//! failing handler yields an error for its requests, never a failed fetch. The contextual
//! source needs no handler: its values are the request's own fields.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::config::ExternalSource;

/// One request's values by field name, or why it failed.
pub type ExternalResult = std::result::Result<Map<String, Json>, String>;

/// Fetches an external source's values for a batch of key sets.
pub trait ExternalHandler: Send + Sync + 'static {
    fn fetch(&self, requests: &[Map<String, Json>]) -> Vec<ExternalResult>;
}

/// Handlers by source name, plus the HTTP handlers built from `factoryConfig`.
pub struct ExternalRegistry {
    handlers: RwLock<HashMap<String, Arc<dyn ExternalHandler>>>,
    /// How long a handler may take for one batch.
    pub deadline: Duration,
}

impl Default for ExternalRegistry {
    fn default() -> Self {
        ExternalRegistry {
            handlers: RwLock::new(HashMap::new()),
            deadline: Duration::from_millis(200),
        }
    }
}

impl ExternalRegistry {
    /// Registers a handler for the external source named `name`.
    pub fn register(&self, name: &str, handler: Arc<dyn ExternalHandler>) {
        self.handlers
            .write()
            .expect("registry lock")
            .insert(name.to_string(), handler);
    }

    /// Fetches `requests` from `source`'s handler within the deadline. Without a handler, or
    /// when it fails or is late, every request gets an error.
    pub fn fetch(
        &self,
        source: &ExternalSource,
        requests: Vec<Map<String, Json>>,
    ) -> Vec<ExternalResult> {
        let name = &source.metadata.name;
        let handler = self
            .handlers
            .read()
            .expect("registry lock")
            .get(name)
            .cloned();
        let handler: Arc<dyn ExternalHandler> = match handler {
            Some(h) => h,
            None => match http_handler(source) {
                Some(h) => {
                    let h: Arc<dyn ExternalHandler> = Arc::new(h);
                    self.register(name, h.clone());
                    h
                }
                None => {
                    let msg = format!(
                        "no handler registered for external source `{name}`: register one in code or set factoryConfig {{factoryName: \"http\", factoryParams: {{url: …}}}}"
                    );
                    return requests.iter().map(|_| Err(msg.clone())).collect();
                }
            },
        };
        let n = requests.len();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send(handler.fetch(&requests));
        });
        match rx.recv_timeout(self.deadline) {
            Ok(mut r) if r.len() == n => {
                r.truncate(n);
                r
            }
            Ok(r) => (0..n)
                .map(|_| {
                    Err(format!(
                        "external source `{name}` returned {} results for {n} requests",
                        r.len()
                    ))
                })
                .collect(),
            Err(_) => (0..n)
                .map(|_| {
                    Err(format!(
                        "external source `{name}` did not answer within {} ms",
                        self.deadline.as_millis()
                    ))
                })
                .collect(),
        }
    }
}

/// The built-in handler: POSTs `[{key: value…}, …]` as JSON to `url` and expects an array of
/// value objects (or `{"error": "…"}` entries) in the same order.
pub struct HttpHandler {
    url: String,
    timeout: Duration,
}

fn http_handler(source: &ExternalSource) -> Option<HttpHandler> {
    let fc = source.factory_config.as_ref()?;
    if fc.factory_name.as_deref() != Some("http") {
        return None;
    }
    let url = fc.factory_params.get("url")?.clone();
    let timeout = fc
        .factory_params
        .get("timeout_ms")
        .and_then(|t| t.parse().ok())
        .unwrap_or(150);
    Some(HttpHandler {
        url,
        timeout: Duration::from_millis(timeout),
    })
}

impl ExternalHandler for HttpHandler {
    fn fetch(&self, requests: &[Map<String, Json>]) -> Vec<ExternalResult> {
        let n = requests.len();
        let fail = |m: String| (0..n).map(|_| Err(m.clone())).collect();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .build()
            .into();
        let body = Json::Array(requests.iter().cloned().map(Json::Object).collect());
        let resp = match agent.post(&self.url).send_json(&body) {
            Ok(r) => r,
            Err(e) => return fail(format!("POST {}: {e}", self.url)),
        };
        let parsed: Json = match resp.into_body().read_json() {
            Ok(j) => j,
            Err(e) => return fail(format!("POST {}: the answer is not JSON: {e}", self.url)),
        };
        match parsed {
            Json::Array(items) if items.len() == n => items
                .into_iter()
                .map(|item| match item {
                    Json::Object(mut m) => match m.remove("error") {
                        Some(e) => Err(e
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string())),
                        None => Ok(m),
                    },
                    other => Err(format!("expected an object, got {other}")),
                })
                .collect(),
            _ => fail(format!(
                "POST {}: expected an array of {n} objects",
                self.url
            )),
        }
    }
}
