//! `weft serve`: the HTTP JSON API over the [`Fetcher`].
//!
//! - `POST /v1/fetch/join/<team>/<join>` with `{"requests": [{"keys": {…}, "atMillis": …}, …]}`
//!   (or just the array) → `{"results": [{"<feature>": value, …, "<part>_exception": "…"}, …]}`
//! - `POST /v1/fetch/groupby/<team>/<group_by>`, the same shape with GroupBy key names
//! - `GET /health` → `{"status": "ok"}`; `GET /metrics` → Prometheus text
//! - every error answer is JSON, `{"error": "…"}` (see [`super::http_errors`])
//!
//! Fetches run on blocking threads (the SQL engine has its own runtime). Failures inside a
//! request are `_exception` entries; only an unknown name or a malformed body fails a call.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value as JsonValue};

use super::fetch_join::{FetchRequest, FetchValues, Fetched, JoinFetcher};
use super::fetcher::Fetcher;
use super::metrics::Metrics;

/// Called after each join fetch with the fetcher, the requests, their results and the time.
pub type JoinHook = Arc<dyn Fn(&JoinFetcher, &[FetchRequest], &[Fetched], i64) + Send + Sync>;
/// Extra `/metrics` counters: `(name, help, value)`.
pub type ExtraMetrics = Arc<dyn Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub fetcher: Arc<Fetcher>,
    pub metrics: Arc<Metrics>,
    /// Called after each join fetch (logging), off the request's critical path only for
    /// its own buffering: it must not block.
    pub on_join: Option<JoinHook>,
    /// Extra counters for `/metrics` (e.g. the logger's).
    pub extra_metrics: Option<ExtraMetrics>,
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    super::http_errors::layer(
        Router::new()
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/metrics", get(metrics))
            .route("/v1/fetch/join/{*name}", post(fetch_join))
            .route("/v1/fetch/groupby/{*name}", post(fetch_group_by))
            .with_state(state),
    )
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let extra = s.extra_metrics.as_ref().map(|f| f()).unwrap_or_default();
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(&extra),
    )
}

fn requests(body: JsonValue) -> Result<Vec<FetchRequest>, String> {
    let list = match body {
        JsonValue::Array(a) => JsonValue::Array(a),
        JsonValue::Object(mut o) => o
            .remove("requests")
            .ok_or("expected {\"requests\": [{\"keys\": {…}, \"atMillis\": …}, …]}")?,
        _ => return Err("expected a JSON object with `requests`, or an array of requests".into()),
    };
    let reqs: Vec<FetchRequest> =
        serde_json::from_value(list).map_err(|e| format!("bad request list: {e}"))?;
    // a time in the wrong unit is the caller's mistake: refuse the call before anything is
    // fetched or logged
    if let Some((i, t)) = reqs.iter().enumerate().find_map(|(i, r)| {
        r.at_millis
            .filter(|t| !crate::partition::ts_in_range(*t))
            .map(|t| (i, t))
    }) {
        return Err(format!(
            "requests[{i}].atMillis = {t} is outside years 0001–9999: atMillis is epoch milliseconds (seconds × 1000, nanoseconds / 1000000)"
        ));
    }
    Ok(reqs)
}

fn fail(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Which fetch a call makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    GroupBy,
}

async fn fetch_join(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<JsonValue>,
) -> Response {
    fetch(s, name, body, Kind::Join).await
}

async fn fetch_group_by(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<JsonValue>,
) -> Response {
    fetch(s, name, body, Kind::GroupBy).await
}

/// Parses the requests, fetches them on a blocking thread (logging join responses), and
/// answers with the results or the call's failure.
async fn fetch(s: AppState, name: String, body: JsonValue, kind: Kind) -> Response {
    let started = Instant::now();
    let reqs = match requests(body) {
        Ok(r) => r,
        Err(e) => {
            s.metrics.failed_calls.fetch_add(1, Ordering::Relaxed);
            return fail(StatusCode::BAD_REQUEST, e);
        }
    };
    let state = s.clone();
    let result = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let out = match kind {
            Kind::GroupBy => state.fetcher.fetch_group_by(&name, &reqs, now),
            Kind::Join => {
                let out = state.fetcher.fetch_join_detailed(&name, &reqs, now);
                if let (Ok((f, fetched)), Some(log)) = (&out, &state.on_join) {
                    log(f, &reqs, fetched, now);
                }
                out.map(|(_, fetched)| fetched.iter().map(Fetched::response).collect())
            }
        };
        (out, reqs.len())
    })
    .await;
    respond(&s, result, started, kind == Kind::Join)
}

type Outcome = (crate::error::Result<Vec<FetchValues>>, usize);

fn respond(
    s: &AppState,
    result: Result<Outcome, tokio::task::JoinError>,
    started: Instant,
    join: bool,
) -> Response {
    let m = &s.metrics;
    let us = started.elapsed().as_micros() as u64;
    if join {
        m.join_latency.observe(us);
    } else {
        m.group_by_latency.observe(us);
    }
    match result {
        Err(e) => {
            m.failed_calls.fetch_add(1, Ordering::Relaxed);
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the fetch failed: {e}"),
            )
        }
        Ok((Err(e), _)) => {
            m.failed_calls.fetch_add(1, Ordering::Relaxed);
            let status = match e {
                crate::error::Error::NotFound { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            fail(status, e.to_string())
        }
        Ok((Ok(values), n)) => {
            let counter = if join {
                &m.join_requests
            } else {
                &m.group_by_requests
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            let with_exceptions = values
                .iter()
                .filter(|v| v.keys().any(|k| k.ends_with("_exception")))
                .count();
            m.responses_with_exceptions
                .fetch_add(with_exceptions as u64, Ordering::Relaxed);
            Json(json!({ "results": values })).into_response()
        }
    }
}
