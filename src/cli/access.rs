//! Who may call weft's HTTP servers (`weft serve`, `weft materialize`): loopback by default;
//! listening on any other address needs a bearer token (`--auth-token` or `WEFT_AUTH_TOKEN`,
//! then every request but `GET /health` must send `Authorization: Bearer <token>`) or an
//! explicit `--insecure`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Args;

use crate::error::{Error, Result};

#[derive(Debug, Args, Clone)]
pub struct AccessArgs {
    /// Require `Authorization: Bearer <TOKEN>` on every request but GET /health. Needed to
    /// listen on a non-loopback address (or pass --insecure).
    #[arg(
        long = "auth-token",
        env = "WEFT_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,
    /// Listen on a non-loopback address without a token (anyone who can reach the port can
    /// query every table).
    #[arg(long)]
    pub insecure: bool,
}

/// Refuses a non-loopback address without a token or `--insecure`.
pub fn check(listen: &SocketAddr, a: &AccessArgs) -> Result<()> {
    if listen.ip().is_loopback()
        || a.insecure
        || a.auth_token.as_deref().is_some_and(|t| !t.is_empty())
    {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--listen {listen} is not a loopback address: anyone who can reach it could query every table. Pass --auth-token TOKEN (or set WEFT_AUTH_TOKEN) so requests must send `Authorization: Bearer TOKEN`, or --insecure to accept that"
    )))
}

/// `router` with the token check in front (nothing changes without a token).
pub fn guard(router: Router, a: &AccessArgs) -> Router {
    let Some(token) = a.auth_token.clone().filter(|t| !t.is_empty()) else {
        return router;
    };
    let expected = Arc::new(format!("Bearer {token}"));
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let expected = expected.clone();
            async move {
                if req.uri().path() == "/health" {
                    return next.run(req).await;
                }
                let sent = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if same(sent.as_bytes(), expected.as_bytes()) {
                    next.run(req).await
                } else {
                    unauthorized()
                }
            }
        },
    ))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({
            "error": "missing or wrong bearer token",
            "fix": "send `Authorization: Bearer <token>` with the token the server was started with (--auth-token / WEFT_AUTH_TOKEN)"
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(token: Option<&str>, insecure: bool) -> AccessArgs {
        AccessArgs {
            auth_token: token.map(str::to_string),
            insecure,
        }
    }

    #[test]
    fn non_loopback_needs_a_token_or_insecure() {
        let lo: SocketAddr = "127.0.0.1:9100".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9100".parse().unwrap();
        assert!(check(&lo, &args(None, false)).is_ok());
        let e = check(&any, &args(None, false)).unwrap_err().to_string();
        assert!(
            e.contains("--auth-token") && e.contains("--insecure"),
            "{e}"
        );
        assert!(check(&any, &args(Some(""), false)).is_err());
        assert!(check(&any, &args(Some("s3cret"), false)).is_ok());
        assert!(check(&any, &args(None, true)).is_ok());
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }

    #[test]
    fn a_token_guards_every_route_but_health() {
        let app = Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .route("/v1/status", axum::routing::get(|| async { "status" }));
        let server = crate::online::test_server::serve(guard(app, &args(Some("s3cret"), false)));
        let addr = server.addr;
        let status = |path: &str, auth: Option<&str>| {
            let url = format!("http://{addr}{path}");
            let mut req = crate::online::test_server::client().get(&url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.call().unwrap().status().as_u16()
        };
        let codes = std::thread::scope(|s| {
            s.spawn(|| {
                [
                    status("/health", None),
                    status("/v1/status", None),
                    status("/v1/status", Some("Bearer wrong")),
                    status("/v1/status", Some("Bearer s3cret")),
                ]
            })
            .join()
            .unwrap()
        });
        drop(server);
        assert_eq!(codes, [200, 401, 401, 200]);
    }
}
