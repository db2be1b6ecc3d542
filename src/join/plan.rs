//! Plans a join from its config: the left scan, and for each join part its key mapping,
//! source scans, accuracy, windows and output columns (chronon-semantics §3.1–§3.4).
//! Everything the engine cannot compute yet is rejected here, naming the config field.

use crate::config::{naming, Accuracy, Join, Operation, Query, Source};
use crate::dataflow::windows::{AggOp, ColumnSpec, PartSpec};
use crate::error::{Error, Result};
use crate::partition::DAY_MS;
use crate::sql::scan::Scan;
use crate::warehouse::TableName;

/// One output column of a join part.
#[derive(Debug, Clone)]
pub struct OutColumn {
    /// Full output name: `<fullPrefix>_<groupBy column>`.
    pub name: String,
    pub agg_index: usize,
    pub op: AggOp,
    pub window_ms: Option<i64>,
}

/// A join part as the engine computes it.
#[derive(Debug, Clone)]
pub struct PartPlan {
    pub index: u16,
    pub full_prefix: String,
    pub group_by_name: String,
    /// Left columns holding the GroupBy keys, in GroupBy key order.
    pub left_keys: Vec<String>,
    pub right_keys: Vec<String>,
    /// Input column of each aggregation.
    pub inputs: Vec<String>,
    pub columns: Vec<OutColumn>,
    pub snapshot: bool,
    /// Largest window in ms (`None` if any window is unbounded).
    pub max_window_ms: Option<i64>,
    /// One scan per GroupBy source (without partition range; set per step).
    pub sources: Vec<Scan>,
}

/// A planned join.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    pub name: String,
    pub output: TableName,
    pub left: Scan,
    pub parts: Vec<PartPlan>,
}

fn unsupported(join: &Join, path: &str, what: &str) -> Error {
    Error::Config {
        file: join.meta_data.name.clone(),
        path: path.into(),
        message: format!("{what} is not supported by this version of weft's join engine yet"),
    }
}

impl JoinPlan {
    pub fn new(join: &Join) -> Result<JoinPlan> {
        let mut errors = Vec::new();
        let name = join.meta_data.name.clone();
        let output = TableName::parse(&naming::output_table(&join.meta_data)?)?;
        let left = match &join.left {
            Source::Events(e) => {
                let mut fill = vec![("ds".to_string(), None)];
                match &e.query.time_column {
                    Some(tc) => fill.push(("ts".to_string(), Some(tc.clone()))),
                    None => errors.push(Error::Config {
                        file: name.clone(),
                        path: "left.events.query.timeColumn".into(),
                        message: "an event left needs a timeColumn (epoch milliseconds)".into(),
                    }),
                }
                Scan {
                    table: e.table.clone(),
                    query: e.query.clone(),
                    fill_ins: fill,
                    range: None,
                    purpose: format!("left of join {name}"),
                }
            }
            Source::Entities(_) => {
                return Err(unsupported(join, "left.entities", "an entity left"))
            }
            Source::JoinSource(_) => {
                return Err(unsupported(join, "left.joinSource", "a JoinSource left"))
            }
        };
        for (field, set) in [
            ("bootstrapParts", !join.bootstrap_parts.is_empty()),
            ("derivations", !join.derivations.is_empty()),
            ("labelPart", false),
        ] {
            if set {
                errors.push(unsupported(join, field, field));
            }
        }
        let mut parts = Vec::new();
        for (i, jp) in join.join_parts.iter().enumerate() {
            let gb = &jp.group_by;
            let path = format!("joinParts[{i}].groupBy");
            let full_prefix = naming::part_full_prefix(jp);
            let snapshot = gb.inferred_accuracy() == Accuracy::Snapshot;
            // left column for each GroupBy key: identity unless keyMapping maps a left column to it
            let left_keys: Vec<String> = gb
                .key_columns
                .iter()
                .map(|rk| {
                    jp.key_mapping
                        .iter()
                        .find(|(_, r)| *r == rk)
                        .map(|(l, _)| l.clone())
                        .unwrap_or_else(|| rk.clone())
                })
                .collect();
            let aggs = match &gb.aggregations {
                Some(a) if !a.is_empty() => a,
                _ => {
                    errors.push(unsupported(
                        join,
                        &format!("{path}.aggregations"),
                        "a GroupBy without aggregations",
                    ));
                    continue;
                }
            };
            let mut columns = Vec::new();
            let mut max_window_ms = Some(0i64);
            for part in naming::aggregation_parts(gb) {
                let agg = &aggs[part.agg_index];
                let op = match agg.operation {
                    Operation::Sum => AggOp::Sum,
                    Operation::Count => AggOp::Count,
                    other => {
                        errors.push(unsupported(
                            join,
                            &format!("{path}.aggregations[{}].operation", part.agg_index),
                            &format!("operation {other:?}"),
                        ));
                        continue;
                    }
                };
                if part.bucket.is_some() {
                    errors.push(unsupported(
                        join,
                        &format!("{path}.aggregations[{}].buckets", part.agg_index),
                        "bucketed aggregation",
                    ));
                    continue;
                }
                let w = naming::window_millis(&part.window);
                if snapshot && w.is_some_and(|w| w % DAY_MS != 0) {
                    errors.push(Error::Config {
                        file: name.clone(),
                        path: format!("{path}.aggregations[{}].windows", part.agg_index),
                        message: "Window can only be multiples of 1d for SNAPSHOT accuracy; use a day window or TEMPORAL accuracy".into(),
                    });
                }
                max_window_ms = match (max_window_ms, w) {
                    (Some(m), Some(w)) => Some(m.max(w)),
                    _ => None,
                };
                columns.push(OutColumn {
                    name: format!("{full_prefix}_{}", part.column),
                    agg_index: part.agg_index,
                    op,
                    window_ms: w,
                });
            }
            let mut sources = Vec::new();
            for (s, src) in gb.sources.iter().enumerate() {
                let Source::Events(e) = src else {
                    errors.push(unsupported(
                        join,
                        &format!("{path}.sources[{s}]"),
                        "an entity or JoinSource GroupBy source",
                    ));
                    continue;
                };
                let mut fill: Vec<(String, Option<String>)> = vec![("ds".into(), None)];
                fill.extend(gb.key_columns.iter().map(|k| (k.clone(), None)));
                let ts = match (&e.query.time_column, snapshot) {
                    (Some(tc), _) => tc.clone(),
                    (None, true) => {
                        "((unix_timestamp(\"ds\", 'yyyy-MM-dd') + 86400) * 1000) - 1".into()
                    }
                    (None, false) => {
                        errors.push(Error::Config {
                            file: name.clone(),
                            path: format!("{path}.sources[{s}].events.query.timeColumn"),
                            message: "a TEMPORAL event source needs a timeColumn".into(),
                        });
                        continue;
                    }
                };
                fill.push(("ts".into(), Some(ts)));
                for a in aggs {
                    if !fill.iter().any(|(n, _)| n == &a.input_column) {
                        fill.push((a.input_column.clone(), None));
                    }
                }
                let query = Query {
                    selects: e.query.selects.clone().or_else(|| Some(Default::default())),
                    ..e.query.clone()
                };
                sources.push(Scan {
                    table: e.table.clone(),
                    query,
                    fill_ins: fill,
                    range: None,
                    purpose: format!("{path} ({}) of join {name}", gb.meta_data.name),
                });
            }
            parts.push(PartPlan {
                index: i as u16,
                full_prefix,
                group_by_name: gb.meta_data.name.clone(),
                left_keys,
                right_keys: gb.key_columns.clone(),
                inputs: aggs.iter().map(|a| a.input_column.clone()).collect(),
                columns,
                snapshot,
                max_window_ms,
                sources,
            });
        }
        Error::collect(errors)?;
        Ok(JoinPlan {
            name,
            output,
            left,
            parts,
        })
    }

    /// The dataflow's description of each part; `double_sums[p][a]` tells whether aggregation
    /// `a` of part `p` sums doubles.
    pub fn part_specs(&self, double_sums: &[Vec<bool>]) -> Vec<PartSpec> {
        self.parts
            .iter()
            .map(|p| PartSpec {
                snapshot: p.snapshot,
                columns: p
                    .columns
                    .iter()
                    .map(|c| ColumnSpec {
                        input: c.agg_index,
                        op: c.op,
                        window: c.window_ms,
                        double: double_sums[p.index as usize][c.agg_index],
                    })
                    .collect(),
            })
            .collect()
    }
}
