//! `weft materialize`: the continuous materializer. It installs every staging query, join
//! (feature, bootstrap and label sides), GroupBy backfill table and flattened log table of a
//! config folder into ONE [`Engine`] and keeps them up to date, epoch after epoch: scan the
//! warehouse → step every pipeline whose inputs are ready, producers first (the engine feeds
//! new, re-landed and removed partitions as deltas to the running dataflows and rewrites only
//! the partitions that change) → run the label dates that matured → commit the epoch's
//! manifest in the state folder. Readiness follows Chronon's scheduler ([`readiness`]);
//! bootstrap tables, logs and label sources never block a day.

pub mod http;
pub mod readiness;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::config::{conf_files, load_conf, Conf, Join};
use crate::dataflow::Topology;
use crate::engine::{Context, Engine, PipelineConf, PipelineId, Report, RunOptions};
use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::warehouse::{TableName, Warehouse};
use readiness::{dependencies, existing_tables, Dependency, Listing};
use state::{Manifest, PipelineEpoch, StateDir};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Config files or folders (a compiled `production` folder).
    pub confs: Vec<PathBuf>,
    /// The state folder (lock and epoch manifests).
    pub state_dir: PathBuf,
    /// Never compute past this day.
    pub end_ds: Option<Ds>,
    /// Where the dataflow workers run (this process, or process 0 of a cluster).
    pub topology: Topology,
    /// The raw log table that served responses are logged to.
    pub log_table: String,
}

/// A pipeline as the materializer watches it.
struct Watched {
    /// The config file it comes from.
    file: PathBuf,
    conf: PipelineConf,
    /// The day partitions the output waits for.
    deps: Vec<Dependency>,
    /// The config's bootstrap parts whose tables do not exist yet: installed without them,
    /// added (as a delta to the running join) when they land.
    deferred: Vec<String>,
    /// The label dates to run after the feature step: the label part's dependencies.
    labels: Option<Vec<Dependency>>,
    /// The last label date run.
    label_through: Option<Ds>,
}

/// What `/v1/status` and `weft materialize status` show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Where the dataflows run: "1 worker(s) in one process", or the cluster's processes.
    pub topology: String,
    /// The last committed epoch (`None` before the first commit).
    pub epoch: Option<u64>,
    pub committed_ms: Option<i64>,
    /// How long the last epoch took, from its scan to its commit.
    pub last_epoch_ms: Option<u64>,
    /// Queries answered, and their total time.
    pub queries: u64,
    pub query_ms_total: u64,
    pub pipelines: Vec<PipelineStatus>,
}

/// One pipeline's state after the last epoch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineStatus {
    pub name: String,
    pub output: String,
    /// The latest day written.
    pub latest_ds: Option<String>,
    /// What it waits for (dependency partitions of the next day), if anything.
    pub pending: Vec<String>,
    /// Seconds since the first input of the day it waits for landed (0 when nothing waits).
    pub lag_seconds: u64,
    pub written_total: u64,
    pub rewritten_total: u64,
    /// Existing partitions recomputed (their inputs changed) whose rows came out the same.
    pub unchanged_total: u64,
    /// Input rows that could not be used, counted (all keys NULL, NULL or out-of-range ts).
    pub skipped_rows_total: u64,
    /// Output rows whose values changed (new rows included).
    pub rows_changed_total: u64,
    /// `kind: message` of the last error, until the pipeline steps cleanly again.
    pub error: Option<String>,
    pub error_kind: Option<String>,
}

/// What the HTTP side shares with the epoch loop: the status, and the commit lock that
/// queries hold for reading so they never see half of an epoch.
#[derive(Default)]
pub struct Shared {
    pub status: Mutex<Status>,
    pub commit: RwLock<()>,
}

/// The running materializer.
pub struct Materializer {
    engine: Engine,
    watched: BTreeMap<PipelineId, Watched>,
    /// Configs that did not load: `(file, error)`; reported in status, retried each epoch.
    broken: Vec<(PathBuf, Error)>,
    opts: Options,
    state: StateDir,
    next_epoch: u64,
    pub shared: Arc<Shared>,
}

/// Unix milliseconds now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Materializer {
    /// Takes the state folder's lock, loads the configs and installs their pipelines.
    pub fn open(wh: &Warehouse, opts: Options) -> Result<Materializer> {
        let state = StateDir::open(&opts.state_dir)?;
        let last = state.last()?;
        let mut m = Materializer {
            engine: Engine::new(Context::with_topology(wh, opts.topology.clone())?),
            watched: BTreeMap::new(),
            broken: Vec::new(),
            next_epoch: last.as_ref().map_or(0, |l| l.epoch + 1),
            opts,
            state,
            shared: Arc::new(Shared::default()),
        };
        m.load()?;
        if let Some(last) = last {
            // label dates already run stay run
            for p in &last.pipelines {
                if let Some(w) = m
                    .watched
                    .iter_mut()
                    .find(|(id, _)| id.as_str() == p.name)
                    .map(|(_, w)| w)
                {
                    w.label_through = p.label_through.as_deref().and_then(|d| Ds::parse(d).ok());
                }
            }
            let mut st = m.shared.status.lock().expect("status lock");
            st.epoch = Some(last.epoch);
            st.committed_ms = Some(last.committed_ms);
        }
        m.shared.status.lock().expect("status lock").topology = m.opts.topology.describe();
        Ok(m)
    }

    /// The engine (for tests and queries).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to act on its pipelines between epochs (e.g. to store their aggregates
    /// before stopping).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn wh(&self) -> Warehouse {
        self.engine.context().warehouse().clone()
    }

    /// Loads every config under the configured paths (at open and before every epoch):
    /// installs what is new, reconfigures what changed (the engine keeps a join whose only
    /// change is its bootstrap parts in place; other changes follow the versioning rules on
    /// the next step) and stops maintaining the pipelines whose config file is gone or no
    /// longer yields them (`@never`, say). Their tables stay as they are. A config that no
    /// longer parses keeps its pipelines as they were and is reported.
    fn load(&mut self) -> Result<()> {
        let wh = self.wh();
        self.broken.clear();
        let mut files = Vec::new();
        for p in &self.opts.confs {
            files.extend(conf_files(p)?);
        }
        files.sort();
        let mut seen = std::collections::BTreeSet::new();
        let mut unreadable = std::collections::BTreeSet::new();
        for f in files {
            let conf = match load_conf(&f) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(file = %f.display(), error = %e, "config not loaded");
                    unreadable.insert(f.clone());
                    self.broken.push((f, e));
                    continue;
                }
            };
            for mut w in watch(conf, &wh, &self.opts.log_table) {
                w.file = f.clone();
                let id = w.conf.id();
                seen.insert(id.clone());
                if let Some(old) = self.watched.get_mut(&id) {
                    if old.conf.same_as(&w.conf) {
                        continue;
                    }
                    match self.engine.reconfigure(installed_conf(&w)) {
                        Ok(_) => {
                            tracing::info!(pipeline = %id, file = %f.display(), "config changed: pipeline reconfigured");
                            w.label_through = old.label_through;
                            *old = w;
                        }
                        Err(e) => {
                            tracing::warn!(pipeline = %id, error = %e, "changed config not applied");
                            self.broken.push((f.clone(), e));
                        }
                    }
                    continue;
                }
                match self.engine.install(installed_conf(&w)) {
                    Ok(_) => {
                        self.watched.insert(id, w);
                    }
                    Err(e) => {
                        tracing::warn!(pipeline = %id, error = %e, "pipeline not installed");
                        self.broken.push((f.clone(), e));
                    }
                }
            }
        }
        let gone: Vec<PipelineId> = self
            .watched
            .iter()
            .filter(|(id, w)| !seen.contains(*id) && !unreadable.contains(&w.file))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            tracing::info!(pipeline = %id, "config removed: the pipeline is no longer maintained (its tables stay)");
            self.engine.remove(&id);
            self.watched.remove(&id);
        }
        Ok(())
    }

    /// Runs one epoch and commits it; returns its manifest.
    pub fn epoch(&mut self) -> Result<Manifest> {
        self.epoch_then(|| Ok(()))
    }

    /// [`Materializer::epoch`], calling `committed` before readers may see the epoch (e.g. to
    /// re-register the query session's tables).
    pub fn epoch_then(&mut self, committed: impl FnOnce() -> Result<()>) -> Result<Manifest> {
        let started_ms = now_ms();
        let shared = self.shared.clone();
        // queries wait while an epoch writes (they see the last committed epoch, whole)
        let _commit = shared.commit.write().expect("commit lock");
        let wh = self.wh();
        self.load()?;
        self.engine.context().refresh()?;
        let mut listing = Listing::default();
        let end = self.opts.end_ds.unwrap_or(Ds(i32::MAX / 4));
        let mut manifest = Manifest {
            epoch: self.next_epoch,
            started_ms,
            ..Default::default()
        };
        let mut statuses = Vec::new();
        for id in self.engine.order() {
            let Some(w) = self.watched.get_mut(&id) else {
                continue;
            };
            let mut pe = PipelineEpoch {
                name: id.to_string(),
                output: w.conf.output().unwrap_or_default(),
                ..Default::default()
            };
            let mut ps = PipelineStatus {
                name: pe.name.clone(),
                output: pe.output.clone(),
                ..Default::default()
            };
            let r = step_one(&mut self.engine, &id, w, &wh, &mut listing, end, &mut pe);
            if let Err(e) = r {
                tracing::warn!(pipeline = %id, kind = %e.kind(), error = %e, "pipeline step failed");
                pe.error = Some((e.kind().to_string(), e.to_string()));
            }
            pe.label_through = w.label_through.map(|d| d.to_string());
            // a day some inputs landed for but not all: what it waits for
            let ready = pe.ready_through.as_deref().and_then(|d| Ds::parse(d).ok());
            let latest = listing.latest(&wh, &w.deps).ok().flatten();
            if let (Some(latest), None) = (latest, &pe.error) {
                let next = ready.map_or(latest, |r| r.shift(1));
                if next <= latest.min(end) {
                    ps.pending = listing.missing_on(&wh, &w.deps, next).unwrap_or_default();
                    if let Ok(Some(landed)) = listing.landed_ms(&wh, &w.deps, next) {
                        ps.lag_seconds = (now_ms() - landed).max(0) as u64 / 1000;
                    }
                }
            }
            if let (true, Some(w)) = (ps.pending.is_empty(), &pe.waiting) {
                ps.pending.push(w.clone());
            }
            ps.error = pe.error.as_ref().map(|(_, m)| m.clone());
            ps.error_kind = pe.error.as_ref().map(|(k, _)| k.clone());
            ps.written_total = pe.written.len() as u64;
            ps.rewritten_total = pe.rewritten.len() as u64;
            ps.unchanged_total = pe
                .recomputed
                .iter()
                .filter(|d| !pe.rewritten.contains(d))
                .count() as u64;
            ps.skipped_rows_total = pe.skipped_rows;
            ps.rows_changed_total = pe.rows_changed;
            ps.latest_ds = latest_partition(&wh, &pe.output);
            manifest.pipelines.push(pe);
            statuses.push(ps);
        }
        for (f, e) in &self.broken {
            manifest.pipelines.push(PipelineEpoch {
                name: f.display().to_string(),
                error: Some((e.kind().to_string(), e.to_string())),
                ..Default::default()
            });
        }
        manifest.committed_ms = now_ms();
        crate::failpoint::hit("epoch-before-manifest");
        self.state.commit(&manifest)?;
        crate::failpoint::hit("epoch-after-manifest");
        self.next_epoch += 1;
        committed()?;
        {
            let mut st = self.shared.status.lock().expect("status lock");
            for s in &mut statuses {
                if let Some(old) = st.pipelines.iter().find(|o| o.name == s.name) {
                    s.written_total += old.written_total;
                    s.rewritten_total += old.rewritten_total;
                    s.unchanged_total += old.unchanged_total;
                    s.skipped_rows_total += old.skipped_rows_total;
                    s.rows_changed_total += old.rows_changed_total;
                }
            }
            for (f, e) in &self.broken {
                statuses.push(PipelineStatus {
                    name: f.display().to_string(),
                    error: Some(e.to_string()),
                    error_kind: Some(e.kind().to_string()),
                    ..Default::default()
                });
            }
            st.epoch = Some(manifest.epoch);
            st.committed_ms = Some(manifest.committed_ms);
            st.last_epoch_ms = Some((manifest.committed_ms - started_ms).max(0) as u64);
            st.pipelines = statuses;
        }
        let written: usize = manifest
            .pipelines
            .iter()
            .map(|p| p.written.len() + p.rewritten.len())
            .sum();
        tracing::info!(
            epoch = manifest.epoch,
            partitions = written,
            "epoch committed"
        );
        Ok(manifest)
    }

    /// Runs epochs until one changes nothing; returns the manifests (the last one quiet).
    pub fn run_until_idle(&mut self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        loop {
            let m = self.epoch()?;
            let busy = m.pipelines.iter().any(|p| {
                !p.written.is_empty() || !p.rewritten.is_empty() || !p.label_runs.is_empty()
            });
            out.push(m);
            if !busy || out.len() >= 20 {
                return Ok(out);
            }
        }
    }
}

/// The latest partition of a table, if it has any.
fn latest_partition(wh: &Warehouse, table: &str) -> Option<String> {
    let t = TableName::parse(table).ok()?;
    if !wh.exists(&t) {
        return None;
    }
    wh.partitions(&t).ok()?.last().map(|d| d.to_string())
}

/// The pipelines a config makes: skipped when its `offlineSchedule` is `@never` (GroupBys
/// also without `backfillStartDate`); a join with `samplePercent` also gets its flattened
/// log table.
fn watch(conf: Conf, wh: &Warehouse, log_table: &str) -> Vec<Watched> {
    let never = conf.meta().offline_schedule.as_deref() == Some("@never");
    if never {
        return Vec::new();
    }
    let mut out = Vec::new();
    match conf {
        Conf::StagingQuery(sq) => {
            let mut deps = dependencies(&sq.meta_data);
            let conf = PipelineConf::StagingQuery(sq);
            if deps.is_empty() {
                deps = existing_tables(conf.reads(), wh);
            }
            out.push(plain(conf, deps));
        }
        Conf::GroupBy(gb) => {
            if gb.backfill_start_date.is_none() {
                return out;
            }
            let mut deps = dependencies(&gb.meta_data);
            if deps.is_empty() {
                deps = gb
                    .sources
                    .iter()
                    .map(|s| day_dependency(&s.table()))
                    .collect();
            }
            out.push(plain(PipelineConf::GroupBy(gb), deps));
        }
        Conf::Join(join) => {
            let mut deps = dependencies(&join.meta_data);
            // bootstrap tables (its `_logged` table too) never block a day: they are deltas
            let boot: Vec<&str> = join
                .bootstrap_parts
                .iter()
                .map(|b| b.table.as_str())
                .collect();
            deps.retain(|d| !boot.contains(&d.table.as_str()));
            if deps.is_empty() {
                deps = vec![day_dependency(&join.left.table())];
            }
            let labels = join.label_part.as_ref().and_then(|lp| {
                let meta = lp.meta_data.as_ref();
                if meta.and_then(|m| m.offline_schedule.as_deref()) == Some("@never") {
                    return None;
                }
                Some(meta.map(dependencies).unwrap_or_default())
            });
            if join.meta_data.sample_percent.is_some_and(|p| p > 0.0) {
                out.push(plain(
                    PipelineConf::LogFlattener {
                        join: join.clone(),
                        log_table: log_table.to_string(),
                    },
                    Vec::new(),
                ));
            }
            let deferred = join
                .bootstrap_parts
                .iter()
                .map(|b| b.table.clone())
                .filter(|t| TableName::parse(t).is_ok_and(|n| !wh.exists(&n)))
                .collect();
            out.push(Watched {
                file: PathBuf::new(),
                conf: PipelineConf::Join(join),
                deps,
                deferred,
                labels,
                label_through: None,
            });
        }
    }
    out
}

fn plain(conf: PipelineConf, deps: Vec<Dependency>) -> Watched {
    Watched {
        file: PathBuf::new(),
        conf,
        deps,
        deferred: Vec::new(),
        labels: None,
        label_through: None,
    }
}

fn day_dependency(table: &str) -> Dependency {
    Dependency {
        table: table.to_string(),
        column: "ds".into(),
        start: None,
        end: None,
    }
}

/// The config as installed: without the bootstrap parts whose tables do not exist yet.
fn installed_conf(w: &Watched) -> PipelineConf {
    match &w.conf {
        PipelineConf::Join(j) if !w.deferred.is_empty() => {
            let mut j: Join = (**j).clone();
            j.bootstrap_parts.retain(|b| !w.deferred.contains(&b.table));
            PipelineConf::Join(Box::new(j))
        }
        c => c.clone(),
    }
}

/// Steps one pipeline in an epoch: adds bootstrap tables that landed, computes what its
/// ready inputs allow, runs the label dates that matured.
fn step_one(
    engine: &mut Engine,
    id: &PipelineId,
    w: &mut Watched,
    wh: &Warehouse,
    listing: &mut Listing,
    end: Ds,
    pe: &mut PipelineEpoch,
) -> Result<()> {
    // bootstrap tables that landed since: a delta to the running join
    if !w.deferred.is_empty() {
        let before = w.deferred.len();
        w.deferred
            .retain(|t| TableName::parse(t).is_ok_and(|n| !wh.exists(&n)));
        if w.deferred.len() != before {
            tracing::info!(pipeline = %id, "bootstrap table landed: adding it to the running join");
            engine.reconfigure(installed_conf(w))?;
        }
    }
    if let PipelineConf::LogFlattener { join, log_table } = &w.conf {
        // nothing is logged yet: nothing to flatten (not an error here)
        if !TableName::parse(log_table).is_ok_and(|t| wh.exists(&t)) {
            pe.waiting = Some(format!(
                "no responses of {} logged in {log_table} yet",
                join.meta_data.name
            ));
            return Ok(());
        }
    }
    let ready = if matches!(w.conf, PipelineConf::LogFlattener { .. }) {
        Some(end.min(Ds::today()))
    } else {
        listing.ready_through(wh, &w.deps, end)?
    };
    let Some(ready) = ready else {
        pe.waiting = Some("no day has all its input partitions yet".into());
        return Ok(());
    };
    pe.ready_through = Some(ready.to_string());
    let opts = RunOptions {
        start: None,
        end: ready,
        step_days: 30,
        run_first_hole: false,
        // After a (re)start, a join trusts the partitions whose input records match their
        // inputs (the others are recomputed, rewritten only if they differ). Pipelines
        // without input records recompute what is on disk, rewriting only what differs.
        verify_existing: !matches!(w.conf, PipelineConf::Join(_)),
    };
    let report = match engine.step(id, &opts, &|_, _, _| {}) {
        Err(e) if is_not_logged(&e) => {
            pe.waiting = Some(e.to_string());
            return Ok(());
        }
        r => r?,
    };
    pe.written = report.written().iter().map(|d| d.to_string()).collect();
    pe.rewritten = report.rewritten().iter().map(|d| d.to_string()).collect();
    pe.recomputed = report.recomputed().iter().map(|d| d.to_string()).collect();
    pe.skipped_rows = report.skipped_rows();
    pe.rows_changed = report.rows_changed();
    pe.versioning = report.versioning().map(str::to_string);
    if let Some(v) = &pe.versioning {
        tracing::info!(pipeline = %id, decision = %v, "versioning");
    }
    if let (Report::Join(_), Some(label_deps)) = (&report, &w.labels) {
        run_labels(
            engine,
            id,
            w.label_through,
            label_deps,
            wh,
            listing,
            end,
            pe,
        )?;
        if let Some(last) = pe.label_runs.last() {
            w.label_through = Ds::parse(last).ok();
        }
    }
    Ok(())
}

/// The flattener's "nothing logged under this name yet".
fn is_not_logged(e: &Error) -> bool {
    matches!(e, Error::Data { message, .. } if message.contains("does not have available logged data yet"))
}

/// Runs every label date after the last one run whose label inputs are ready: from the first
/// date whose left window reaches the first written feature day.
#[allow(clippy::too_many_arguments)]
fn run_labels(
    engine: &mut Engine,
    id: &PipelineId,
    through: Option<Ds>,
    deps: &[Dependency],
    wh: &Warehouse,
    listing: &mut Listing,
    end: Ds,
    pe: &mut PipelineEpoch,
) -> Result<()> {
    let Some(lp) = engine.label_plan(id).cloned() else {
        return Ok(());
    };
    let Some(label_end) = listing.ready_through(wh, deps, end)? else {
        return Ok(());
    };
    let features = wh.partitions(&TableName::parse(&pe.output)?)?;
    let Some(&first_day) = features.first() else {
        return Ok(());
    };
    let first = through
        .map(|d| d.shift(1))
        .unwrap_or_else(|| first_day.shift(lp.end_offset - 1));
    let mut d = first;
    while d <= label_end {
        engine.label(id, d)?;
        pe.label_runs.push(d.to_string());
        d = d.shift(1);
    }
    Ok(())
}

/// The default state folder of a warehouse.
pub fn default_state_dir(warehouse: &Path) -> PathBuf {
    warehouse.join(".weft-materialize")
}
