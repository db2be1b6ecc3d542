//! Every error answer of weft's HTTP servers (`weft serve`, `weft materialize`) is JSON,
//! `{"error": "…", "status": N}` — including the ones the HTTP stack writes itself as plain
//! text (a body that is not JSON, a missing `content-type`, a body over the size limit, an
//! unknown route or method), so clients parse one error shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The longest plain-text error body carried into the JSON answer.
const MAX_TEXT: usize = 4096;

/// `router` with plain-text error answers turned into JSON.
pub fn layer(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(json_errors))
}

async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string()
    } else {
        text
    };
    let body = serde_json::json!({"error": message, "status": status.as_u16()}).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    (parts, Body::from(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    #[test]
    fn the_stack_s_own_rejections_answer_json() {
        let server = crate::online::test_server::serve(layer(
            Router::new()
                .route(
                    "/x",
                    post(
                        |axum::Json(v): axum::Json<serde_json::Value>| async move { axum::Json(v) },
                    ),
                )
                .layer(axum::extract::DefaultBodyLimit::max(64)),
        ));
        let addr = server.addr;
        let agent = crate::online::test_server::client();
        let call = |ctype: &str, body: &str, path: &str| {
            let mut r = agent
                .post(&format!("http://{addr}{path}"))
                .header("content-type", ctype)
                .send(body)
                .unwrap();
            let code = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let text = r.body_mut().read_to_string().unwrap();
            (code, ct, text)
        };
        let results = std::thread::scope(|s| {
            s.spawn(|| {
                [
                    call("text/plain", "{}", "/x"),
                    call("application/json", "{not json", "/x"),
                    call(
                        "application/json",
                        &format!("\"{}\"", "a".repeat(200)),
                        "/x",
                    ),
                    call("application/json", "{}", "/nowhere"),
                    call("application/json", "{\"ok\":1}", "/x"),
                ]
            })
            .join()
            .unwrap()
        });
        drop(server);
        let codes: Vec<u16> = results.iter().map(|r| r.0).collect();
        assert_eq!(codes, [415, 400, 413, 404, 200], "{results:?}");
        for (code, ct, text) in &results[..4] {
            assert!(ct.starts_with("application/json"), "{code}: {ct}");
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["status"], *code, "{text}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        }
        assert_eq!(results[4].2, "{\"ok\":1}");
    }
}
