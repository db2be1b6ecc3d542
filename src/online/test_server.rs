//! For unit tests: a router served on a free loopback port by its own runtime, and a
//! blocking HTTP client that reports every status instead of failing on errors.

use std::net::SocketAddr;

use axum::Router;

/// A router served on `127.0.0.1:<free port>`; it stops when this is dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

/// Serves `app` on a free loopback port.
pub fn serve(app: Router) -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a test runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a free loopback port");
    let addr = listener.local_addr().expect("the bound address");
    rt.spawn(async move { axum::serve(listener, app).await });
    TestServer { addr, _rt: rt }
}

/// An HTTP client that returns 4xx and 5xx answers instead of failing on them.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}
