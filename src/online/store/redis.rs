//! The Redis online store (`--online-store redis://host:port[/db]`), for serving from several
//! processes or machines.
//!
//! Layout: one sorted set per (dataset, key), named `weft:<len(dataset)>:<dataset>:<key bytes>`
//! (the length makes the name unambiguous for any dataset and binary key). Each version is a
//! member `ts (8 bytes, big-endian) ++ value` with score `ts`, so equal values at different
//! versions stay distinct and a range by score returns the versions oldest first. A set
//! `weft-index:<len(dataset)>:<dataset>` lists a dataset's sorted sets, for `drop_before`.
//!
//! - `multi_put`: per put `ZREMRANGEBYSCORE k ts ts` (so a same-version put replaces), `ZADD`,
//!   and `SADD` to the index, in `MULTI`/`EXEC` transactions of up to [`PUT_CHUNK`] puts (a call
//!   is atomic per chunk).
//! - `multi_get`: one pipeline of `ZRANGEBYSCORE k after_ts +inf` for every request: one round trip;
//!   a server error on one key fails only that request.
//! - `drop_before`: `SSCAN`s the index and runs a Lua script per batch that trims each set and
//!   unlists the emptied ones, atomically (a concurrent put cannot be unlisted).
//!
//! Scores are doubles: versions must lie within ±2^53 ms (about ±285,000 years).
//!
//! Connections: a small pool (idle connections in a `Mutex<Vec<_>>`, at most [`MAX_IDLE`] kept),
//! rather than one `Mutex<Connection>`, so the HTTP server's threads do not queue behind each
//! other's round trips; a request that needs a connection when none is idle opens one. A request
//! that fails on a broken connection (server restart, idle timeout) is retried once on a fresh
//! connection; every command is idempotent, so a retry is safe.

use std::sync::Mutex;
use std::time::Duration;

use ::redis::{Client, Connection, RedisError, RedisResult};

use super::{check_dataset, store_error, GetRequest, OnlineStore, PutRequest, TimedValue};
use crate::error::{Error, Result};

/// Puts per `MULTI`/`EXEC` transaction.
pub const PUT_CHUNK: usize = 4096;
/// Idle connections kept for reuse.
pub const MAX_IDLE: usize = 16;
/// Index entries trimmed per `drop_before` script call.
const DROP_BATCH: usize = 512;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest |ts| a double score holds exactly.
const MAX_ABS_TS: i64 = 1 << 53;

/// KEYS[1] = the dataset's index, KEYS[2..] = sorted sets, ARGV[1] = the exclusive upper score.
const DROP_SCRIPT: &str = "\
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1])
  if redis.call('ZCARD', KEYS[i]) == 0 then redis.call('SREM', KEYS[1], KEYS[i]) end
end
return 0";

const FIX_CONNECT: &str = "start redis-server or pass another --online-store";

/// A Redis-backed store.
pub struct RedisStore {
    client: Client,
    /// The URL without a password, for messages.
    url: String,
    idle: Mutex<Vec<Connection>>,
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact(url: &str) -> String {
    let Some(rest) = url.strip_prefix("redis://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("redis://{masked}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

fn push_len_prefixed(out: &mut Vec<u8>, prefix: &str, dataset: &str) {
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(dataset.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(dataset.as_bytes());
}

/// The sorted set holding a key's versions.
fn versions_key(dataset: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + dataset.len() + key.len());
    push_len_prefixed(&mut out, "weft:", dataset);
    out.push(b':');
    out.extend_from_slice(key);
    out
}

/// The set listing a dataset's sorted sets.
fn index_key(dataset: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + dataset.len());
    push_len_prefixed(&mut out, "weft-index:", dataset);
    out
}

fn member(ts: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_member(member: Vec<u8>) -> Option<TimedValue> {
    let ts = i64::from_be_bytes(member.get(..8)?.try_into().ok()?);
    Some(TimedValue {
        value: member[8..].to_vec(),
        ts,
    })
}

/// Whether the connection is unusable after `e` (and a fresh one may succeed).
fn connection_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

impl RedisStore {
    /// Connects to `url` and checks the server answers `PING`.
    pub fn open(url: &str) -> Result<RedisStore> {
        let shown = redact(url);
        let client = Client::open(url).map_err(|e| {
            Error::Usage(format!(
                "--online-store `{shown}` is not a valid Redis URL ({e}); accepted forms: {}",
                super::ACCEPTED_SPECS
            ))
        })?;
        let store = RedisStore {
            client,
            url: shown,
            idle: Mutex::new(Vec::new()),
        };
        store
            .run(|con| ::redis::cmd("PING").query::<String>(con))
            .map_err(|e| store.error(None, "connecting (PING)", e, FIX_CONNECT))?;
        Ok(store)
    }

    fn name(&self) -> String {
        format!("`{}`", self.url)
    }

    fn error(
        &self,
        dataset: Option<&str>,
        action: &str,
        cause: impl std::fmt::Display,
        fix: &str,
    ) -> Error {
        store_error(&self.name(), dataset, action, cause, fix)
    }

    fn connect(&self) -> RedisResult<Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    fn checkin(&self, con: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }

    /// Runs `f` on a pooled connection, retrying once on a fresh connection if the first one
    /// turns out broken (a timeout is not retried: the server is slow, not gone).
    fn run<T>(&self, f: impl Fn(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut con = match pooled {
            Some(con) => con,
            None => self.connect()?,
        };
        match f(&mut con) {
            Ok(v) => {
                self.checkin(con);
                Ok(v)
            }
            Err(e) if connection_broken(&e) && !e.is_timeout() => {
                drop(con);
                let mut con = self.connect()?;
                let result = f(&mut con);
                if !matches!(&result, Err(e) if connection_broken(e)) {
                    self.checkin(con);
                }
                result
            }
            Err(e) => {
                if !connection_broken(&e) {
                    self.checkin(con);
                }
                Err(e)
            }
        }
    }

    fn check_ts(&self, dataset: &str, ts: i64) -> Result<()> {
        if !(-MAX_ABS_TS..=MAX_ABS_TS).contains(&ts) {
            return Err(Error::Usage(format!(
                "online store {}, dataset `{dataset}`: version {ts} is outside the range Redis \
                 scores hold exactly (±2^53 ms); versions are epoch milliseconds",
                self.name()
            )));
        }
        Ok(())
    }
}

impl OnlineStore for RedisStore {
    fn multi_put(&self, puts: Vec<PutRequest>) -> Result<()> {
        for put in &puts {
            check_dataset(&self.name(), &put.dataset)?;
            self.check_ts(&put.dataset, put.ts)?;
        }
        for chunk in puts.chunks(PUT_CHUNK) {
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            for put in chunk {
                let key = versions_key(&put.dataset, &put.key);
                pipe.cmd("ZREMRANGEBYSCORE")
                    .arg(&key)
                    .arg(put.ts)
                    .arg(put.ts)
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg(put.ts)
                    .arg(member(put.ts, &put.value))
                    .ignore();
                pipe.cmd("SADD")
                    .arg(index_key(&put.dataset))
                    .arg(&key)
                    .ignore();
            }
            self.run(|con| pipe.exec(con)).map_err(|e| {
                let dataset = &chunk[0].dataset;
                let others = if chunk.iter().any(|p| &p.dataset != dataset) {
                    " (and other datasets)"
                } else {
                    ""
                };
                self.error(
                    Some(dataset),
                    &format!("writing {} values{others}", chunk.len()),
                    e,
                    "check that redis-server is running and has memory left (maxmemory)",
                )
            })?;
        }
        Ok(())
    }

    fn multi_get(&self, gets: &[GetRequest]) -> Vec<Result<Vec<TimedValue>>> {
        if gets.is_empty() {
            return Vec::new();
        }
        let name = self.name();
        // Invalid requests fail alone; the rest go in one pipeline.
        let mut results: Vec<Option<Result<Vec<TimedValue>>>> = gets
            .iter()
            .map(|g| check_dataset(&name, &g.dataset).err().map(Err))
            .collect();
        let pending: Vec<usize> = (0..gets.len()).filter(|&i| results[i].is_none()).collect();
        if !pending.is_empty() {
            let mut pipe = ::redis::pipe();
            pipe.ignore_errors();
            for &i in &pending {
                let get = &gets[i];
                let min = match get.after_ts {
                    Some(ts) => ts.to_string(),
                    None => "-inf".to_string(),
                };
                pipe.cmd("ZRANGEBYSCORE")
                    .arg(versions_key(&get.dataset, &get.key))
                    .arg(min)
                    .arg("+inf");
            }
            match self.run(|con| pipe.query::<Vec<RedisResult<Vec<Vec<u8>>>>>(con)) {
                Ok(replies) => {
                    for (&i, reply) in pending.iter().zip(replies) {
                        let dataset = &gets[i].dataset;
                        results[i] = Some(match reply {
                            Ok(members) => members
                                .into_iter()
                                .map(|m| {
                                    decode_member(m).ok_or_else(|| {
                                        self.error(
                                            Some(dataset),
                                            "reading",
                                            "a stored version is shorter than its 8-byte \
                                             version prefix",
                                            "the key was not written by weft; delete it from Redis",
                                        )
                                    })
                                })
                                .collect(),
                            Err(e) => Err(self.error(
                                Some(dataset),
                                "reading",
                                e,
                                "the key holds data weft did not write (e.g. WRONGTYPE); use a \
                                 Redis database of its own for weft (redis://host:port/<db>)",
                            )),
                        });
                    }
                }
                Err(e) => {
                    let cause = e.to_string();
                    for &i in &pending {
                        results[i] = Some(Err(self.error(
                            Some(&gets[i].dataset),
                            &format!("reading {} keys", pending.len()),
                            &cause,
                            FIX_CONNECT,
                        )));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::external(
                        format!("online store {name}"),
                        "Redis returned fewer replies than requests",
                    ))
                })
            })
            .collect()
    }

    fn drop_before(&self, dataset: &str, before: i64) -> Result<()> {
        check_dataset(&self.name(), dataset)?;
        let index = index_key(dataset);
        let bound = format!("({before}");
        let fail = |action: &str, e: RedisError| {
            self.error(
                Some(dataset),
                action,
                e,
                "check that redis-server is running",
            )
        };
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run(|con| {
                    ::redis::cmd("SSCAN")
                        .arg(&index)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(DROP_BATCH)
                        .query(con)
                })
                .map_err(|e| fail("listing the dataset's keys", e))?;
            for batch in keys.chunks(DROP_BATCH) {
                self.run(|con| {
                    ::redis::cmd("EVAL")
                        .arg(DROP_SCRIPT)
                        .arg(batch.len() + 1)
                        .arg(&index)
                        .arg(batch)
                        .arg(&bound)
                        .exec(con)
                })
                .map_err(|e| fail("dropping old versions", e))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn describe(&self) -> String {
        format!("redis: {}", self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unambiguous_and_passwords_hidden() {
        // A dataset that is a prefix of another cannot alias its keys.
        assert_ne!(versions_key("a", b":b:x"), versions_key("a:b", b"x"));
        assert_eq!(versions_key("ds", b"\0k"), b"weft:2:ds:\0k".to_vec());
        assert_eq!(index_key("ds"), b"weft-index:2:ds".to_vec());
        assert_ne!(index_key("ds"), versions_key("ds", b""));
        let m = member(-5, b"\0v");
        assert_eq!(
            decode_member(m),
            Some(TimedValue {
                value: b"\0v".to_vec(),
                ts: -5
            })
        );
        assert_eq!(decode_member(vec![1, 2, 3]), None);
        assert_eq!(redact("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
    }
}
