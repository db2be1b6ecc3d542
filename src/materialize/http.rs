//! The materializer's HTTP side (same stack as `weft serve`; loopback by default):
//!
//! - `GET /` — a small status page (no scripts): each pipeline's freshness, what it waits for,
//!   its errors;
//! - `GET /health` → `{"status": "ok"}`;
//! - `GET /v1/status[?wait_for_epoch=E&timeout_secs=S]` → `{"epoch": E, "pipelines": [...]}`,
//!   answered once epoch `E` is committed (or at the timeout);
//! - `GET /metrics` — Prometheus text: epoch, per-pipeline partitions written, rewritten and
//!   recomputed-but-unchanged, rows changed, skipped input rows, errors by kind, lag, epoch
//!   and query durations;
//! - `POST /v1/refresh` → `{"epoch": E}`: scan now; `E` is the epoch that will include
//!   everything landed before the call;
//! - `POST /v1/query {"sql": "..."}` → `{"epoch": E, "columns": [...], "rows": [{...}]}`:
//!   read-only DataFusion SQL over the warehouse as of the last committed epoch `E` (a query
//!   never sees half of an epoch: commits wait for running queries and queries for commits).
//!
//! Every error answer is JSON (see [`crate::online::http_errors`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crossbeam_channel::Sender;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Shared, Status};
use crate::error::{Error, Result};
use crate::sql::Session;

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub shared: Arc<Shared>,
    /// The SQL session queries run on (re-registered after each commit).
    pub session: Arc<Session>,
    /// Asks the epoch loop to scan now.
    pub refresh: Sender<()>,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    crate::online::http_errors::layer(
        Router::new()
            .route("/", get(page))
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/metrics", get(metrics))
            .route("/v1/status", get(status))
            .route("/v1/refresh", post(refresh))
            .route("/v1/query", post(query))
            .with_state(state),
    )
}

fn error(code: StatusCode, e: &Error) -> Response {
    (
        code,
        Json(json!({"error": e.to_string(), "kind": e.kind().as_str()})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct StatusParams {
    wait_for_epoch: Option<u64>,
    timeout_secs: Option<u64>,
}

fn snapshot(s: &Shared) -> Status {
    s.status.lock().expect("status lock").clone()
}

async fn status(State(s): State<HttpState>, Query(p): Query<StatusParams>) -> Response {
    if let Some(want) = p.wait_for_epoch {
        let deadline = Instant::now() + Duration::from_secs(p.timeout_secs.unwrap_or(30).min(600));
        while snapshot(&s.shared).epoch.is_none_or(|e| e < want) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Json(snapshot(&s.shared)).into_response()
}

async fn refresh(State(s): State<HttpState>) -> Response {
    // the next epoch starts after this call, so it sees everything landed before it
    let next = snapshot(&s.shared).epoch.map_or(0, |e| e + 1);
    let running = s.shared.commit.try_write().is_err();
    let _ = s.refresh.send(());
    Json(json!({"epoch": if running { next + 1 } else { next }})).into_response()
}

#[derive(Deserialize)]
struct QueryBody {
    sql: String,
}

async fn query(State(s): State<HttpState>, body: Option<Json<QueryBody>>) -> Response {
    let Some(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            &Error::Usage(r#"the body must be JSON: {"sql": "SELECT …"}"#.into()),
        );
    };
    let shared = s.shared.clone();
    let session = s.session.clone();
    let r = tokio::task::spawn_blocking(move || run_query(&shared, &session, &body.sql)).await;
    match r {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, &e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Error::internal(format!("query task: {e}")),
        ),
    }
}

/// Runs a read-only query as of the last committed epoch: `{"epoch", "columns", "rows"}`.
pub fn run_query(shared: &Shared, session: &Session, sql: &str) -> Result<Value> {
    let started = std::time::Instant::now();
    let _read = shared.commit.read().expect("commit lock");
    let epoch = snapshot(shared).epoch;
    let (schema, batches) = session.query_with_schema(sql, "query")?;
    {
        let mut st = shared.status.lock().expect("status lock");
        st.queries += 1;
        st.query_ms_total += started.elapsed().as_millis() as u64;
    }
    Ok(json!({
        "epoch": epoch,
        "columns": schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>(),
        "rows": rows_json(&schema, &batches)?,
    }))
}

/// Result rows as JSON objects, NULLs included.
pub fn rows_json(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            w.write(b)
                .map_err(|e| Error::arrow("writing query rows as JSON", e))?;
        }
        w.finish()
            .map_err(|e| Error::arrow("writing query rows as JSON", e))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&buf)
        .map_err(|e| Error::internal(format!("query rows as JSON: {e}")))?;
    // in the schema's column order
    Ok(rows
        .into_iter()
        .map(|mut r| {
            let mut m = serde_json::Map::new();
            for f in schema.fields() {
                m.insert(f.name().clone(), r.remove(f.name()).unwrap_or(Value::Null));
            }
            Value::Object(m)
        })
        .collect())
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    let st = snapshot(&s.shared);
    let mut out = String::new();
    let mut line = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    line(
        "weft_materialize_epoch",
        "The last committed epoch.",
        "gauge",
        vec![(String::new(), st.epoch.map_or(-1.0, |e| e as f64))],
    );
    let label =
        |p: &super::PipelineStatus| format!("{{pipeline=\"{}\"}}", p.name.replace('"', "'"));
    line(
        "weft_materialize_partitions_written_total",
        "Output partitions written for the first time.",
        "counter",
        st.pipelines
            .iter()
            .map(|p| (label(p), p.written_total as f64))
            .collect(),
    );
    line(
        "weft_materialize_partitions_rewritten_total",
        "Output partitions rewritten because their inputs changed.",
        "counter",
        st.pipelines
            .iter()
            .map(|p| (label(p), p.rewritten_total as f64))
            .collect(),
    );
    line(
        "weft_materialize_partitions_unchanged_total",
        "Existing partitions recomputed because their inputs changed, whose rows came out the same (not rewritten).",
        "counter",
        st.pipelines
            .iter()
            .map(|p| (label(p), p.unchanged_total as f64))
            .collect(),
    );
    line(
        "weft_materialize_skipped_rows_total",
        "Input rows that could not be used (all keys NULL, NULL or out-of-range ts): counted, never dropped silently.",
        "counter",
        st.pipelines
            .iter()
            .map(|p| (label(p), p.skipped_rows_total as f64))
            .collect(),
    );
    line(
        "weft_materialize_rows_changed_total",
        "Output rows whose values changed (new rows included).",
        "counter",
        st.pipelines
            .iter()
            .map(|p| (label(p), p.rows_changed_total as f64))
            .collect(),
    );
    line(
        "weft_materialize_epoch_duration_seconds",
        "How long the last epoch took, from its scan to its commit.",
        "gauge",
        vec![(
            String::new(),
            st.last_epoch_ms.map_or(0.0, |m| m as f64 / 1000.0),
        )],
    );
    line(
        "weft_materialize_query_duration_seconds_sum",
        "Total time spent answering queries.",
        "counter",
        vec![(String::new(), st.query_ms_total as f64 / 1000.0)],
    );
    line(
        "weft_panics_total",
        "Panics anywhere in the process (each is logged).",
        "counter",
        vec![(String::new(), crate::panics::count() as f64)],
    );
    line(
        "weft_materialize_queries_total",
        "Queries answered.",
        "counter",
        vec![(String::new(), st.queries as f64)],
    );
    line(
        "weft_materialize_lag_seconds",
        "Seconds since the oldest input not yet reflected landed.",
        "gauge",
        st.pipelines
            .iter()
            .map(|p| (label(p), p.lag_seconds as f64))
            .collect(),
    );
    let mut kinds = std::collections::BTreeMap::new();
    for p in &st.pipelines {
        if let Some(k) = &p.error_kind {
            *kinds.entry(k.clone()).or_insert(0.0) += 1.0;
        }
    }
    line(
        "weft_materialize_pipelines_in_error",
        "Pipelines whose last step failed, by error kind.",
        "gauge",
        kinds
            .into_iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v))
            .collect(),
    );
    ([("content-type", "text/plain; version=0.0.4")], out)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn page(State(s): State<HttpState>) -> Html<String> {
    let st = snapshot(&s.shared);
    let mut rows = String::new();
    for p in &st.pipelines {
        let state = match (&p.error, p.pending.is_empty()) {
            (Some(_), _) => "<td class=err>error</td>",
            (None, false) => "<td class=wait>waiting</td>",
            (None, true) => "<td class=ok>up to date</td>",
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>{state}<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.output),
            escape(p.latest_ds.as_deref().unwrap_or("—")),
            p.written_total,
            p.rewritten_total,
            escape(&p.error.clone().unwrap_or_else(|| p.pending.join(", "))),
        ));
    }
    let committed = st
        .committed_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "not yet".into());
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>weft materialize</title>\
<meta http-equiv=refresh content=5><style>body{{font-family:sans-serif;margin:2em}}\
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;\
white-space:nowrap}}td:last-child{{white-space:normal}}\
.ok{{color:#070}}.wait{{color:#a60}}.err{{color:#b00;font-weight:bold}}</style></head><body>\
<h1>weft materialize</h1><p>Epoch <b>{}</b>, committed {committed}. \
<a href=/v1/status>status JSON</a> · <a href=/metrics>metrics</a></p>\
<table><tr><th>pipeline</th><th>output</th><th>state</th><th>latest ds</th><th>written</th>\
<th>rewritten</th><th>waiting for / error</th></tr>{rows}</table></body></html>",
        st.epoch.map_or("—".to_string(), |e| e.to_string()),
    ))
}
