//! The engine: the one incremental path that every command drives.
//!
//! A [`Context`] holds the SQL session over the warehouse and the process's one dataflow
//! [`Runtime`](crate::dataflow::Runtime). An [`Engine`] hosts pipelines on it — joins (with
//! their bootstrap and label sides), GroupBy tables, staging queries, flattened log tables —
//! installed, reconfigured and removed by id, and brings them up to date with
//! [`Engine::step`]: scan what changed, plan the missing partitions ([`Schedule`]), feed the
//! deltas, seal, write the partitions that changed. `weft backfill` installs one pipeline and
//! steps it once; a long-running process keeps the engine and steps again when inputs land,
//! so every later step is a delta to the same dataflows.

mod context;
mod group_by;
mod join;
mod pipeline;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
pub use crate::schedule::{steps_over, Schedule};
pub use context::Context;
pub use group_by::{backfill_group_by, GroupByOptions, GroupByReport, GroupByRunner};
pub use join::{
    backfill_join, explain, Explain, ExplainBootstrap, ExplainPart, JoinOptions, JoinReport,
    JoinRunner, PartitionReuse, StoredReport,
};
use pipeline::Pipeline;
pub use pipeline::{PipelineConf, PipelineId, Progress, Report, RunOptions};

/// Hosts pipelines on one [`Context`] and brings them up to date.
pub struct Engine {
    cx: Context,
    /// Installed pipelines, with the config each was installed with (BTreeMap: every
    /// iteration is in id order).
    pipelines: BTreeMap<PipelineId, (PipelineConf, Pipeline)>,
    /// Each pipeline's output-table lock, held while it is installed (one writer per table).
    locks: BTreeMap<PipelineId, crate::warehouse::TableLock>,
}

impl Engine {
    /// An engine with no pipelines.
    pub fn new(cx: Context) -> Engine {
        Engine {
            cx,
            pipelines: BTreeMap::new(),
            locks: BTreeMap::new(),
        }
    }

    /// The session and runtime the pipelines run on.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Installs a pipeline (its plan is validated now; its dataflow starts at its first
    /// step) and takes its output table's writer lock: a table another process (or engine)
    /// is writing is refused, naming the holder. Installing an id that is already there is
    /// an error: use [`Engine::reconfigure`].
    pub fn install(&mut self, conf: impl Into<PipelineConf>) -> Result<PipelineId> {
        let conf = conf.into();
        let id = conf.id();
        if self.pipelines.contains_key(&id) {
            return Err(Error::Usage(format!(
                "pipeline {id} is already installed; reconfigure it instead"
            )));
        }
        let p = Pipeline::new(conf.clone())?;
        let table = crate::warehouse::TableName::parse(&conf.output()?)?;
        let lock = self
            .cx
            .warehouse()
            .lock_table(&table, &format!("weft pipeline {id}"))?;
        self.locks.insert(id.clone(), lock);
        tracing::info!(pipeline = %id, "pipeline installed");
        self.pipelines.insert(id.clone(), (conf, p));
        Ok(id)
    }

    /// Gives a pipeline a new config. A join whose only change is its bootstrap parts keeps
    /// its dataflow (the next step feeds what changed as a delta); any other change starts
    /// the pipeline anew, and its next step applies Chronon's versioning rules to the
    /// partitions already written.
    pub fn reconfigure(&mut self, conf: impl Into<PipelineConf>) -> Result<PipelineId> {
        let conf = conf.into();
        let id = conf.id();
        let Some((old, p)) = self.pipelines.get_mut(&id) else {
            return Err(Error::Usage(format!(
                "pipeline {id} is not installed; install it first"
            )));
        };
        if let (PipelineConf::Join(b), Pipeline::Join(runner)) = (&conf, &mut *p) {
            if runner.only_bootstrap_differs(b) {
                runner.reconfigure(&self.cx, b)?;
                *old = conf;
                tracing::info!(pipeline = %id, "bootstrap parts reconfigured in place");
                return Ok(id);
            }
        }
        let fresh = Pipeline::new(conf.clone())?;
        *p = fresh;
        *old = conf;
        tracing::info!(pipeline = %id, "pipeline restarted with a new config");
        Ok(id)
    }

    /// Removes a pipeline; its dataflow leaves the runtime. Its tables stay as they are.
    pub fn remove(&mut self, id: &PipelineId) -> bool {
        let removed = self.pipelines.remove(id).is_some();
        self.locks.remove(id);
        if removed {
            tracing::info!(pipeline = %id, "pipeline removed");
        }
        removed
    }

    /// The installed pipelines, in id order.
    pub fn pipelines(&self) -> impl Iterator<Item = (&PipelineId, &PipelineConf)> {
        self.pipelines.iter().map(|(id, (c, _))| (id, c))
    }

    /// Brings one pipeline up to date: feeds what changed since its last step (new,
    /// re-landed and removed input partitions) and computes the missing output partitions
    /// of `opts`' range.
    pub fn step(
        &mut self,
        id: &PipelineId,
        opts: &RunOptions,
        progress: Progress,
    ) -> Result<Report> {
        let (conf, p) = self
            .pipelines
            .get_mut(id)
            .ok_or_else(|| Error::Usage(format!("pipeline {id} is not installed")))?;
        let span = tracing::info_span!("step", pipeline = %id);
        let _g = span.enter();
        let r = match p.step(&self.cx, opts, progress) {
            Ok(r) => r,
            Err(e) => {
                // the step may have fed part of its inputs: the next one starts the
                // pipeline afresh from the warehouse rather than trust a half-fed dataflow
                if let Ok(fresh) = Pipeline::new(conf.clone()) {
                    *p = fresh;
                }
                return Err(e);
            }
        };
        // later pipelines (and queries) see what this one wrote
        self.cx.refresh()?;
        Ok(r)
    }

    /// Runs label run `label_ds` of a join pipeline (chronon-semantics §7.3) on the join's
    /// own dataflow: a later run is a delta of the earlier ones.
    pub fn label(
        &mut self,
        id: &PipelineId,
        label_ds: crate::partition::Ds,
    ) -> Result<crate::label::LabelReport> {
        let runner = match self.pipelines.get_mut(id) {
            Some((_, Pipeline::Join(r))) => r,
            Some(_) => return Err(Error::Usage(format!("pipeline {id} is not a join"))),
            None => return Err(Error::Usage(format!("pipeline {id} is not installed"))),
        };
        let span = tracing::info_span!("label", pipeline = %id, %label_ds);
        let _g = span.enter();
        let r = runner.label(&self.cx, label_ds)?;
        self.cx.refresh()?;
        Ok(r)
    }

    /// Stores the aggregates of every join pipeline's parts with unbounded windows for its
    /// next day ([`JoinRunner::store_aggregates`]), so that the next process starts from
    /// them; a process calls this on its way out. Each pipeline gets its own result.
    pub fn store_aggregates(&mut self) -> Vec<(PipelineId, Result<Vec<StoredReport>>)> {
        self.pipelines
            .iter_mut()
            .filter_map(|(id, (_, p))| match p {
                Pipeline::Join(r) => Some((id.clone(), r.store_aggregates())),
                _ => None,
            })
            .collect()
    }

    /// The label plan of a join pipeline, when it has a valid label part.
    pub fn label_plan(&self, id: &PipelineId) -> Option<&crate::label::LabelPlan> {
        match self.pipelines.get(id) {
            Some((_, Pipeline::Join(r))) => r.label_plan(),
            _ => None,
        }
    }

    /// Steps every pipeline, producers before consumers (staging queries, whose tables
    /// joins read, first; a staging query before another that reads its table). A
    /// pipeline's error does not stop the others: each gets its own result.
    pub fn step_all(
        &mut self,
        opts: &RunOptions,
        progress: Progress,
    ) -> Vec<(PipelineId, Result<Report>)> {
        let order = self.order();
        order
            .into_iter()
            .map(|id| {
                let r = self.step(&id, opts, progress);
                (id, r)
            })
            .collect()
    }

    /// The pipelines in the order [`Engine::step_all`] runs them: a pipeline after every
    /// pipeline whose output table it reads (a staging query before the join whose left it
    /// is, a join before another bootstrapped from it); otherwise staging queries, GroupBy
    /// tables, joins, flattened logs, each by id. A cycle keeps that default order.
    pub fn order(&self) -> Vec<PipelineId> {
        let outputs: BTreeMap<PipelineId, String> = self
            .pipelines
            .iter()
            .filter_map(|(id, (c, _))| c.output().ok().map(|o| (id.clone(), o)))
            .collect();
        let mut pending: Vec<PipelineId> = self.pipelines.keys().cloned().collect();
        pending.sort_by_key(|id| (self.pipelines[id].0.rank(), id.clone()));
        let reads: BTreeMap<PipelineId, Vec<PipelineId>> = pending
            .iter()
            .map(|id| {
                let tables = self.pipelines[id].0.reads();
                let producers = outputs
                    .iter()
                    .filter(|(other, t)| *other != id && tables.contains(t))
                    .map(|(other, _)| other.clone())
                    .collect();
                (id.clone(), producers)
            })
            .collect();
        let mut out: Vec<PipelineId> = Vec::new();
        while !pending.is_empty() {
            let ready = pending
                .iter()
                .position(|id| !reads[id].iter().any(|p| pending.contains(p)))
                .unwrap_or(0);
            out.push(pending.remove(ready));
        }
        out
    }
}
