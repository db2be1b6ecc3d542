//! Pipelines: the maintained outputs an [`Engine`](super::Engine) hosts — a join (with its
//! bootstrap and label sides), a GroupBy backfill table, a staging query, a flattened log
//! table — with one options type, one report type and one progress callback for all.

use std::fmt;

use super::{GroupByOptions, GroupByReport, GroupByRunner, JoinReport, JoinRunner};
use crate::config::{naming, Conf, GroupBy, Join, StagingQuery};
use crate::error::Result;
use crate::logging::flatten::{FlattenOptions, FlattenReport};
use crate::partition::Ds;
use crate::staging::{StagingOptions, StagingReport};

pub use crate::schedule::Progress;

/// What a step brings a pipeline up to: output partitions `[start, end]` that are missing
/// (or whose inputs changed), computed `step_days` partitions at a time.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// First partition (default: the config's own start, e.g. the left's first partition).
    pub start: Option<Ds>,
    /// Last partition.
    pub end: Ds,
    /// Partitions computed (and written) per step.
    pub step_days: usize,
    /// Also compute missing partitions before the first existing output partition.
    pub run_first_hole: bool,
    /// On a pipeline's first step, recompute every output partition that already exists, and
    /// rewrite only those whose rows differ (`--force`; pipelines without input records use
    /// it on a materializer restart). Without it a join still recomputes the existing
    /// partitions whose input records say their inputs changed.
    pub verify_existing: bool,
}

impl RunOptions {
    /// Missing partitions from the config's start up to `end`, in 30-day steps.
    pub fn through(end: Ds) -> Self {
        RunOptions {
            start: None,
            end,
            step_days: 30,
            run_first_hole: false,
            verify_existing: false,
        }
    }
}

/// A pipeline's id: its kind and config name, e.g. `joins/risk.checkout_v1`. Ids order
/// pipelines deterministically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineId(String);

impl PipelineId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a pipeline maintains, as configured.
#[derive(Debug, Clone)]
pub enum PipelineConf {
    Join(Box<Join>),
    GroupBy(Box<GroupBy>),
    StagingQuery(Box<StagingQuery>),
    /// The `<join output>_logged` table flattened from the raw log table `log_table`.
    LogFlattener {
        join: Box<Join>,
        log_table: String,
    },
}

impl From<Conf> for PipelineConf {
    fn from(c: Conf) -> Self {
        match c {
            Conf::Join(j) => PipelineConf::Join(j),
            Conf::GroupBy(g) => PipelineConf::GroupBy(g),
            Conf::StagingQuery(s) => PipelineConf::StagingQuery(s),
        }
    }
}

impl PipelineConf {
    /// Whether two configs are the same, field for field (a config file edited in place is a
    /// reconfiguration).
    pub fn same_as(&self, other: &PipelineConf) -> bool {
        fn json(c: &PipelineConf) -> String {
            let v = match c {
                PipelineConf::Join(j) => serde_json::to_string(j),
                PipelineConf::GroupBy(g) => serde_json::to_string(g),
                PipelineConf::StagingQuery(s) => serde_json::to_string(s),
                PipelineConf::LogFlattener { join, log_table } => {
                    serde_json::to_string(&(join, log_table))
                }
            };
            v.expect("config model serializes")
        }
        self.id() == other.id() && json(self) == json(other)
    }

    /// The pipeline's id.
    pub fn id(&self) -> PipelineId {
        let (kind, name) = match self {
            PipelineConf::Join(j) => ("joins", &j.meta_data.name),
            PipelineConf::GroupBy(g) => ("group_bys", &g.meta_data.name),
            PipelineConf::StagingQuery(s) => ("staging_queries", &s.meta_data.name),
            PipelineConf::LogFlattener { join, .. } => ("logged", &join.meta_data.name),
        };
        PipelineId(format!("{kind}/{name}"))
    }

    /// The table the pipeline writes.
    pub fn output(&self) -> Result<String> {
        Ok(match self {
            PipelineConf::Join(j) => naming::output_table(&j.meta_data)?,
            PipelineConf::GroupBy(g) => naming::output_table(&g.meta_data)?,
            PipelineConf::StagingQuery(s) => naming::output_table(&s.meta_data)?,
            PipelineConf::LogFlattener { join, .. } => {
                format!("{}_logged", naming::output_table(&join.meta_data)?)
            }
        })
    }

    /// The tables the pipeline reads: its left, sources, bootstrap and label tables (a
    /// staging query: the `ns.table` names its SQL mentions).
    pub fn reads(&self) -> Vec<String> {
        let sources = |gb: &GroupBy| gb.sources.iter().map(|s| s.table()).collect::<Vec<_>>();
        match self {
            PipelineConf::Join(j) => {
                let mut t = vec![j.left.table()];
                for p in &j.join_parts {
                    t.extend(sources(&p.group_by));
                }
                t.extend(j.bootstrap_parts.iter().map(|b| b.table.clone()));
                if let Some(lp) = &j.label_part {
                    for p in &lp.labels {
                        t.extend(sources(&p.group_by));
                    }
                }
                t
            }
            PipelineConf::GroupBy(g) => sources(g),
            PipelineConf::StagingQuery(s) => s
                .query
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .filter(|w| w.contains('.'))
                .map(str::to_string)
                .collect(),
            PipelineConf::LogFlattener { log_table, .. } => vec![log_table.clone()],
        }
    }

    /// Order class in a run of several pipelines: staging queries first (joins read them),
    /// then GroupBy tables, joins, and flattened logs.
    pub(super) fn rank(&self) -> u8 {
        match self {
            PipelineConf::StagingQuery(_) => 0,
            PipelineConf::GroupBy(_) => 1,
            PipelineConf::Join(_) => 2,
            PipelineConf::LogFlattener { .. } => 3,
        }
    }
}

/// A pipeline's running state.
pub(super) enum Pipeline {
    /// The join's dataflow lives in the runner between steps.
    Join(Box<JoinRunner>),
    /// Likewise the GroupBy table's.
    GroupBy(Box<GroupByRunner>),
    StagingQuery(Box<StagingQuery>),
    LogFlattener {
        join: Box<Join>,
        log_table: String,
    },
}

impl Pipeline {
    pub(super) fn new(conf: PipelineConf) -> Result<Pipeline> {
        Ok(match conf {
            PipelineConf::Join(j) => Pipeline::Join(Box::new(JoinRunner::new(&j)?)),
            PipelineConf::GroupBy(g) => Pipeline::GroupBy(Box::new(GroupByRunner::new(&g)?)),
            PipelineConf::StagingQuery(s) => Pipeline::StagingQuery(s),
            PipelineConf::LogFlattener { join, log_table } => {
                Pipeline::LogFlattener { join, log_table }
            }
        })
    }

    pub(super) fn step(
        &mut self,
        cx: &super::Context,
        opts: &RunOptions,
        progress: Progress,
    ) -> Result<Report> {
        Ok(match self {
            Pipeline::Join(runner) => Report::Join(runner.run(cx, opts, progress)?),
            Pipeline::GroupBy(runner) => {
                let o = GroupByOptions {
                    start: opts.start,
                    end: opts.end,
                    step_days: opts.step_days,
                    verify_existing: opts.verify_existing,
                };
                Report::GroupBy(runner.run(cx, &o, progress)?)
            }
            Pipeline::StagingQuery(sq) => {
                let o = StagingOptions {
                    end_ds: opts.end,
                    start_override: opts.start,
                    step_days: opts.step_days,
                    run_first_hole: opts.run_first_hole,
                };
                let r = crate::staging::run(cx.session(), sq, &o, progress)?;
                Report::StagingQuery(r)
            }
            Pipeline::LogFlattener { join, log_table } => {
                let o = FlattenOptions {
                    end: opts.end,
                    log_table: log_table.clone(),
                    step_days: opts.step_days,
                    run_first_hole: opts.run_first_hole,
                };
                let r = crate::logging::flatten::flatten_log(cx.warehouse(), join, &o, progress)?;
                Report::LogFlattener(r)
            }
        })
    }
}

/// What one step of one pipeline did: a section per kind of pipeline.
#[derive(Debug)]
pub enum Report {
    Join(JoinReport),
    GroupBy(GroupByReport),
    StagingQuery(StagingReport),
    LogFlattener(FlattenReport),
}

impl Report {
    /// The output table.
    pub fn output(&self) -> &str {
        match self {
            Report::Join(r) => &r.output,
            Report::GroupBy(r) => &r.output,
            Report::StagingQuery(r) => &r.output,
            Report::LogFlattener(r) => &r.output,
        }
    }

    /// Output partitions written for the first time.
    pub fn written(&self) -> &[Ds] {
        match self {
            Report::Join(r) => &r.written,
            Report::GroupBy(r) => &r.written,
            Report::StagingQuery(r) => &r.written,
            Report::LogFlattener(r) => &r.written,
        }
    }

    /// Existing partitions recomputed because their inputs changed since they were written.
    pub fn recomputed(&self) -> &[Ds] {
        match self {
            Report::Join(r) => &r.stale,
            _ => &[],
        }
    }

    /// Output rows whose values changed in this step (new rows included; joins only).
    pub fn rows_changed(&self) -> u64 {
        match self {
            Report::Join(r) => r.rows_changed,
            _ => 0,
        }
    }

    /// What a join's first step decided about existing partitions for a changed config.
    pub fn versioning(&self) -> Option<&str> {
        match self {
            Report::Join(r) => r.versioning.as_deref(),
            _ => None,
        }
    }

    /// Source rows that could not be used (counted, never dropped silently).
    pub fn skipped_rows(&self) -> u64 {
        match self {
            Report::Join(r) => r.events.iter().map(|(_, e)| e.skipped()).sum(),
            _ => 0,
        }
    }

    /// Output partitions rewritten because their inputs changed.
    pub fn rewritten(&self) -> &[Ds] {
        match self {
            Report::Join(r) => &r.rewritten,
            Report::GroupBy(r) => &r.rewritten,
            _ => &[],
        }
    }
}
