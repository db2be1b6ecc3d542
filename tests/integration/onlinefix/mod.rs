//! Fixtures for the online tests: a folder of compiled configs (Chronon's metadata store) next
//! to the test warehouse, and uploads of GroupBys into the embedded store.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as J;
use weft::config::{load_conf, Conf};
use weft::engine::Context;
use weft::online::store::OnlineStore;
use weft::online::upload::upload;
use weft::partition::Ds;
use weft::warehouse::Warehouse;

/// Writes a compiled config `team.rest` under `root/<kind>/team/rest`.
pub fn write_conf(root: &Path, kind: &str, name: &str, j: &J) -> PathBuf {
    let (team, rest) = name.split_once('.').expect("team.name");
    let dir = root.join(kind).join(team);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(rest);
    std::fs::write(&p, serde_json::to_string_pretty(j).unwrap()).unwrap();
    p
}

/// Uploads the GroupBy config at `path` as of the end of `ds`.
pub fn upload_conf(wh: &Warehouse, store: &dyn OnlineStore, path: &Path, ds: Ds) -> u64 {
    let engine = Context::new(wh).unwrap();
    let Conf::GroupBy(gb) = load_conf(path).unwrap() else {
        panic!("{} is not a GroupBy", path.display())
    };
    upload(&engine, store, &gb, ds, &|_, _, _| {})
        .unwrap_or_else(|e| panic!("upload: {e}"))
        .keys
}

/// The embedded store of a warehouse.
pub fn embedded(wh: &Warehouse) -> Arc<dyn OnlineStore> {
    weft::online::store::open(None, wh.root()).unwrap()
}

/// A `redis-server` on a free loopback port, killed when dropped.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "redis-server is not installed, and the Redis online-store tests need it: \
                     install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew \
                     install redis`); .ci/run installs it on CI"
                ),
                Err(e) => panic!("starting redis-server: {e}"),
            };
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => last_error = e, // most likely the port was taken meanwhile: try another
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "redis-server on port {} exited: {status}",
                    self.port
                ));
            }
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            if pong.as_deref() == Ok("PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG on port {} after 10s: {pong:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
