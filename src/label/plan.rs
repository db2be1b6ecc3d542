//! Plans a join's `labelPart` (chronon-semantics §7.1–§7.3): validates it as Chronon does
//! (§7.2), plans each label GroupBy as a join part of the same dataflow, and works out the
//! left partitions a `label_ds` run covers, the row identifier and the three label tables.

use crate::config::{naming, Join, Source, TimeUnit};
use crate::dataflow::spec::PartKind;
use crate::error::{Error, Result};
use crate::join::plan::{plan_label_part, JoinPlan, PartPlan};
use crate::partition::{Ds, PartitionRange};
use crate::warehouse::TableName;

/// A planned label part.
#[derive(Debug, Clone)]
pub struct LabelPlan {
    /// Label GroupBys as join parts; their dataflow part indices follow the feature parts'.
    pub parts: Vec<PartPlan>,
    pub start_offset: i32,
    pub end_offset: i32,
    /// `rowIds` (or the label parts' left key columns), then `ds` (§7.4).
    pub row_identifier: Vec<String>,
    /// `<output>_labels`, partitioned by `label_ds` then `ds` (§7.6).
    pub labels: TableName,
    /// `<output>_labeled`: the feature table with every label version (§7.7).
    pub labeled: TableName,
    /// `<output>_labeled_latest`: the latest label version per `ds` (§7.7).
    pub labeled_latest: TableName,
    /// The join's feature output table.
    pub features: TableName,
    /// `labelPart.metaData.offlineSchedule` (how often a scheduler runs `label-join`).
    pub schedule: String,
}

/// The partition column of label versions.
pub const LABEL_DS: &str = "label_ds";

impl LabelPlan {
    /// Plans `join.labelPart`; `None` when the join has none. Every rule of §7.2 that fails is
    /// reported, each naming its config field.
    pub fn new(join: &Join, plan: &JoinPlan) -> Result<Option<LabelPlan>> {
        let Some(lp) = &join.label_part else {
            return Ok(None);
        };
        let file = join.meta_data.name.clone();
        let err = |path: String, message: String| Error::Config {
            file: file.clone(),
            path,
            message,
        };
        let mut errors = Vec::new();
        if !matches!(join.left, Source::Events(_)) {
            errors.push(err(
                "left".into(),
                "a label join needs an events left (each left row is a prediction at its ts); this join's left is not an EventSource".into(),
            ));
        }
        if join.meta_data.team.as_deref().unwrap_or("").is_empty() {
            errors.push(err(
                "metaData.team".into(),
                "a label join needs the join's team set".into(),
            ));
        }
        if lp.labels.is_empty() {
            errors.push(err(
                "labelPart.labels".into(),
                "a label part needs at least one label JoinPart".into(),
            ));
        }
        if lp.left_start_offset < lp.left_end_offset {
            errors.push(err(
                "labelPart.leftStartOffset".into(),
                format!(
                    "leftStartOffset {} must be ≥ leftEndOffset {} (both count days back from label_ds)",
                    lp.left_start_offset, lp.left_end_offset
                ),
            ));
        }
        let aggregated = lp.labels.iter().any(|l| l.group_by.aggregations.is_some());
        if aggregated && lp.labels.len() > 1 {
            errors.push(err(
                "labelPart.labels".into(),
                "a label part with an aggregated label must have exactly one label JoinPart".into(),
            ));
        }
        let mut parts = Vec::new();
        for (i, jp) in lp.labels.iter().enumerate() {
            let at = format!("labelPart.labels[{i}]");
            let gb = &jp.group_by;
            if gb.meta_data.team.as_deref().unwrap_or("").is_empty() {
                errors.push(err(
                    format!("{at}.groupBy.metaData.team"),
                    format!("label GroupBy {} needs its team set", gb.meta_data.name),
                ));
            }
            let events = gb.sources.iter().all(Source::is_events);
            match &gb.aggregations {
                None if events => errors.push(err(
                    format!("{at}.groupBy.sources"),
                    format!(
                        "label GroupBy {} has no aggregations, so it must read entity sources (a snapshot of labels per label_ds)",
                        gb.meta_data.name
                    ),
                )),
                Some(_) if !events => errors.push(err(
                    format!("{at}.groupBy.sources"),
                    format!(
                        "label GroupBy {} has aggregations, so it must read event sources (label events aggregated over the window)",
                        gb.meta_data.name
                    ),
                )),
                Some(aggs) => {
                    let windows: Vec<_> = aggs.iter().flat_map(naming::windows_of).collect();
                    if aggs.len() != 1 || windows.len() != 1 {
                        errors.push(err(
                            format!("{at}.groupBy.aggregations"),
                            format!(
                                "label GroupBy {} has {} aggregation(s) and {} window(s); label aggregations allow exactly one aggregation with exactly one window",
                                gb.meta_data.name,
                                aggs.len(),
                                windows.len()
                            ),
                        ));
                    } else if windows[0].time_unit != TimeUnit::Days
                        || naming::is_unbounded(&windows[0])
                    {
                        errors.push(err(
                            format!("{at}.groupBy.aggregations[0].windows[0]"),
                            "a label aggregation window must be a bounded number of DAYS".into(),
                        ));
                    } else {
                        let w = windows[0].length;
                        if lp.left_start_offset != w || lp.left_end_offset != w {
                            errors.push(err(
                                "labelPart.leftStartOffset".into(),
                                format!(
                                    "with an aggregated label both offsets must equal the window ({w} days); they are {} and {}",
                                    lp.left_start_offset, lp.left_end_offset
                                ),
                            ));
                        }
                    }
                }
                None => {}
            }
            let index = (plan.parts.len() + i) as u16;
            match plan_label_part(join, jp, index, &at) {
                Ok(p) => {
                    debug_assert!(
                        p.kind == PartKind::Raw || p.kind == PartKind::Events || !errors.is_empty()
                    );
                    parts.push(p)
                }
                Err(e) => errors.push(e),
            }
        }
        Error::collect(errors)?;
        let mut row_identifier: Vec<String> = if join.row_ids.is_empty() {
            let mut keys: Vec<String> = Vec::new();
            for p in &parts {
                for k in &p.left_keys {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            keys
        } else {
            join.row_ids.clone()
        };
        row_identifier.retain(|c| c != "ds");
        row_identifier.push("ds".into());
        let features = plan.output.clone();
        let suffixed = |s: &str| {
            TableName::parse(&format!("{features}{s}")).expect("a valid table name plus a suffix")
        };
        Ok(Some(LabelPlan {
            parts,
            start_offset: lp.left_start_offset,
            end_offset: lp.left_end_offset,
            row_identifier,
            labels: suffixed("_labels"),
            labeled: suffixed("_labeled"),
            labeled_latest: suffixed("_labeled_latest"),
            features,
            schedule: lp
                .meta_data
                .as_ref()
                .and_then(|m| m.offline_schedule.clone())
                .unwrap_or_else(|| "@daily".into()),
        }))
    }

    /// The left partitions a run for `label_ds` (re)computes: offsets count days back from
    /// `label_ds` inclusively, `[label_ds − (start − 1), label_ds − (end − 1)]` — Chronon's
    /// code; its docs say `label_ds − offset` (§7.3).
    pub fn left_range(&self, label_ds: Ds) -> PartitionRange {
        PartitionRange::new(
            label_ds.shift(-(self.start_offset - 1)),
            label_ds.shift(-(self.end_offset - 1)),
        )
    }

    /// The `label_ds` runs whose left range contains `ds`.
    pub fn label_days_of(&self, ds: Ds) -> PartitionRange {
        PartitionRange::new(
            ds.shift(self.end_offset - 1),
            ds.shift(self.start_offset - 1),
        )
    }

    /// The left columns the label side reads: the row identifier (without `ds`) and every
    /// label part's left keys.
    pub fn left_columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = self
            .row_identifier
            .iter()
            .filter(|c| *c != "ds")
            .cloned()
            .collect();
        for p in &self.parts {
            for k in &p.left_keys {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(start: i32, end: i32) -> LabelPlan {
        let t = TableName::parse("ns.j").unwrap();
        #[allow(clippy::redundant_clone)]
        LabelPlan {
            parts: vec![],
            start_offset: start,
            end_offset: end,
            row_identifier: vec!["ds".into()],
            labels: t.clone(),
            labeled: t.clone(),
            labeled_latest: t.clone(),
            features: t,
            schedule: "@daily".into(),
        }
    }

    #[test]
    fn offsets_are_inclusive_day_counts_like_chronons_code() {
        let d = |s: &str| Ds::parse(s).unwrap();
        // the Python docstring example: 30/10 at 2023-04-30 → [04-01, 04-21]
        assert_eq!(
            plan(30, 10).left_range(d("2023-04-30")),
            PartitionRange::new(d("2023-04-01"), d("2023-04-21"))
        );
        // 3/3 → the single day label_ds − 2
        assert_eq!(
            plan(3, 3).left_range(d("2023-04-03")),
            PartitionRange::new(d("2023-04-01"), d("2023-04-01"))
        );
        // an aggregated label with a 5-day window at 2022-10-06 → left ds 2022-10-02
        assert_eq!(
            plan(5, 5).left_range(d("2022-10-06")),
            PartitionRange::new(d("2022-10-02"), d("2022-10-02"))
        );
        // and back: the label_ds runs that cover a left day
        assert_eq!(
            plan(30, 10).label_days_of(d("2023-04-01")),
            PartitionRange::new(d("2023-04-10"), d("2023-04-30"))
        );
    }
}
