//! The fetcher: finds joins and GroupBys by name in a folder of compiled configs (Chronon's
//! metadata store), plans each once (cached), and fetches batches of requests from the online
//! store. Names are accepted as `team/join.v1` (Chronon's request names) or `team.join.v1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::external::ExternalRegistry;
use super::fetch_group_by::GroupByFetcher;
use super::fetch_join::{FetchRequest, FetchValues, Fetched, JoinFetcher};
use super::store::OnlineStore;
use super::values::{from_json, to_json};
use crate::aggregate::Value;
use crate::config::{load_conf, Conf, GroupBy};
use crate::error::{Error, Result};
use crate::sql::Session;

/// Fetches joins and GroupBys by name.
pub struct Fetcher {
    pub engine: Session,
    pub store: Arc<dyn OnlineStore>,
    conf_root: PathBuf,
    joins: Mutex<HashMap<String, Arc<JoinFetcher>>>,
    group_bys: Mutex<HashMap<String, Arc<GroupByFetcher>>>,
    pub registry: ExternalRegistry,
}

/// The config file of `name` under `root/<kind>/`: `team/x.v1` or `team.x.v1`.
pub fn conf_path(root: &Path, kind: &str, name: &str) -> PathBuf {
    let rel = match name.split_once('/') {
        Some(_) => name.to_string(),
        None => match name.split_once('.') {
            Some((team, rest)) => format!("{team}/{rest}"),
            None => name.to_string(),
        },
    };
    root.join(kind).join(rel)
}

impl Fetcher {
    pub fn new(engine: Session, store: Arc<dyn OnlineStore>, conf_root: &Path) -> Fetcher {
        Fetcher {
            engine,
            store,
            conf_root: conf_root.to_path_buf(),
            joins: Mutex::new(HashMap::new()),
            group_bys: Mutex::new(HashMap::new()),
            registry: ExternalRegistry::default(),
        }
    }

    fn not_found(&self, kind: &str, name: &str) -> Error {
        // the name only: a client learns nothing about the server's folders
        Error::NotFound {
            what: format!("{kind} `{name}`"),
            fix: "compile it into the server's --conf-root (names are team/name.version or team.name.version)".into(),
        }
    }

    /// The canonical name (`team/name.version`) and config file of `name`, which must name a
    /// file inside the conf root: `..`, absolute names and odd characters are refused, and a
    /// link may not lead outside the root.
    fn resolve(&self, kind: &str, name: &str) -> Result<(String, PathBuf)> {
        let bad = || self.not_found(kind, name);
        let valid = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            && !name.starts_with('/')
            && name
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !valid {
            return Err(bad());
        }
        let path = conf_path(&self.conf_root, &format!("{kind}s"), name);
        let root = self.conf_root.canonicalize().map_err(|_| bad())?;
        let file = path.canonicalize().map_err(|_| bad())?;
        if !file.starts_with(&root) || !file.is_file() {
            return Err(bad());
        }
        let rel = path
            .strip_prefix(self.conf_root.join(format!("{kind}s")))
            .map(|p| p.to_string_lossy().to_string())
            .map_err(|_| bad())?;
        Ok((rel, file))
    }

    /// The GroupBy fetcher for a GroupBy config (planned once).
    pub fn group_by_fetcher(&self, gb: &GroupBy) -> Result<Arc<GroupByFetcher>> {
        let name = gb.meta_data.name.clone();
        if let Some(f) = self.group_bys.lock().expect("cache lock").get(&name) {
            return Ok(f.clone());
        }
        let f = Arc::new(GroupByFetcher::new(&self.engine, gb)?);
        self.group_bys
            .lock()
            .expect("cache lock")
            .insert(name, f.clone());
        Ok(f)
    }

    /// The join fetcher of `name` (planned once).
    pub fn join_fetcher(&self, name: &str) -> Result<Arc<JoinFetcher>> {
        let (name, path) = self.resolve("join", name)?;
        if let Some(f) = self.joins.lock().expect("cache lock").get(&name) {
            return Ok(f.clone());
        }
        let join = match load_conf(&path)? {
            Conf::Join(j) => *j,
            _ => return Err(self.not_found("join", &name)),
        };
        let f = Arc::new(JoinFetcher::new(&self.engine, &join, &|gb| {
            self.group_by_fetcher(gb)
        })?);
        self.joins
            .lock()
            .expect("cache lock")
            .insert(name, f.clone());
        Ok(f)
    }

    /// Fetches a join for a batch of requests at `now` (the default query time).
    pub fn fetch_join(
        &self,
        name: &str,
        requests: &[FetchRequest],
        now: i64,
    ) -> Result<Vec<FetchValues>> {
        Ok(self
            .fetch_join_detailed(name, requests, now)?
            .1
            .iter()
            .map(Fetched::response)
            .collect())
    }

    /// As [`Fetcher::fetch_join`], with the join's fetcher and each request's base and
    /// derived values (what logging records).
    pub fn fetch_join_detailed(
        &self,
        name: &str,
        requests: &[FetchRequest],
        now: i64,
    ) -> Result<(Arc<JoinFetcher>, Vec<Fetched>)> {
        let f = self.join_fetcher(name)?;
        let out = f.fetch(
            &self.engine,
            self.store.as_ref(),
            &self.registry,
            requests,
            now,
        );
        Ok((f, out))
    }

    /// Fetches a GroupBy for a batch of requests (keys named as the GroupBy's keys).
    pub fn fetch_group_by(
        &self,
        name: &str,
        requests: &[FetchRequest],
        now: i64,
    ) -> Result<Vec<FetchValues>> {
        let (_, path) = self.resolve("group_by", name)?;
        let gb = match Some(load_conf(&path)?) {
            Some(Conf::GroupBy(g)) => *g,
            _ => return Err(self.not_found("group_by", name)),
        };
        let f = self.group_by_fetcher(&gb)?;
        let part = &f.serving.part;
        let mut out: Vec<FetchValues> = vec![FetchValues::new(); requests.len()];
        let mut sent = Vec::new();
        let mut queries = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let keys: std::result::Result<Vec<Value>, String> = part
                .right_keys
                .iter()
                .zip(&f.key_types)
                .map(|(k, t)| match r.keys.get(k) {
                    None => Err(format!(
                        "Missing key `{k}` required by GroupBy {}",
                        gb.meta_data.name
                    )),
                    Some(j) => from_json(j, t).ok_or_else(|| format!("key `{k}` is not a {t}")),
                })
                .collect();
            match keys {
                Ok(k) => {
                    sent.push(i);
                    queries.push((k, r.at_millis.unwrap_or(now)));
                }
                Err(e) => {
                    out[i].insert(format!("{}_exception", gb.meta_data.name), e.into());
                }
            }
        }
        for (i, res) in sent
            .into_iter()
            .zip(f.fetch(&self.engine, self.store.as_ref(), &queries))
        {
            match res {
                Ok(vals) => {
                    for (j, field) in f.fields.iter().enumerate() {
                        let v = vals
                            .as_ref()
                            .and_then(|v| v.get(j).cloned())
                            .unwrap_or(Value::Null);
                        out[i].insert(field.name().clone(), to_json(&v));
                    }
                }
                Err(e) => {
                    out[i].insert(format!("{}_exception", gb.meta_data.name), e.into());
                }
            }
        }
        Ok(out)
    }
}
