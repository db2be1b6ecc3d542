//! Plans a GroupBy backfill (chronon-semantics §2.8). The GroupBy is planned by the join
//! planner as the single part of an entity-left join — the left row for day `D` asks at
//! `(D+1) 00:00` and reads snapshot `D` — so its inputs, windows, hops, sources and output
//! columns are exactly those a join would use. Also: the output table and the range of
//! partitions to compute.

use indexmap::IndexMap;

use crate::config::{naming, EntitySource, GroupBy, Join, JoinPart, Query, Source};
use crate::error::{Error, Result};
use crate::join::plan::{plan_part, PartPlan};
use crate::partition::{Ds, PartitionRange};
use crate::warehouse::TableName;

/// A planned GroupBy backfill.
#[derive(Debug, Clone)]
pub struct GroupByPlan {
    pub name: String,
    pub output: TableName,
    /// The GroupBy as a join part (index 0, no key mapping, no prefix).
    pub part: PartPlan,
    /// The GroupBy's value columns, unprefixed, in output order (aggregated columns, or the
    /// selected columns of a GroupBy without aggregations).
    pub values: Vec<String>,
}

impl GroupByPlan {
    /// Plans `gb`; configuration problems are reported with the GroupBy's own JSON paths.
    pub fn new(gb: &GroupBy) -> Result<GroupByPlan> {
        let name = gb.meta_data.name.clone();
        let output = TableName::parse(&naming::output_table(&gb.meta_data)?)?;
        let join = as_join(gb);
        let mut part = plan_part(&join, 0, false).map_err(|e| own_paths(e, &name))?;
        for (i, s) in part.sources.iter_mut().enumerate() {
            s.scan.purpose = format!("sources[{i}] of GroupBy {name}");
        }
        let values = if part.columns.is_empty() {
            part.inputs.clone()
        } else {
            part.columns.iter().map(|c| c.gb_column.clone()).collect()
        };
        Ok(GroupByPlan {
            name,
            output,
            part,
            values,
        })
    }
}

/// The range a backfill covers: `[backfillStartDate (or start), end]`, or only `end` when
/// `metaData.historicalBackfill` is false.
pub fn backfill_range(gb: &GroupBy, start: Option<Ds>, end: Ds) -> Result<PartitionRange> {
    let config = |message: String| Error::Config {
        file: gb.meta_data.name.clone(),
        path: "backfillStartDate".into(),
        message,
    };
    if gb.meta_data.historical_backfill == Some(false) {
        return Ok(PartitionRange::new(end, end));
    }
    let start = match (start, &gb.backfill_start_date) {
        (Some(s), _) => s,
        (None, Some(s)) => Ds::parse(s).map_err(|e| config(e.to_string()))?,
        (None, None) => {
            return Err(config(
                "is not set, and a GroupBy backfill needs its first partition; fix: set \
                 `backfill_start_date` on the GroupBy and recompile, or pass --start-ds"
                    .into(),
            ))
        }
    };
    Ok(PartitionRange::new(start, end))
}

/// The GroupBy as the one part of a join (the left itself is never read; the planner is told
/// whether the left is of events or entities).
pub(crate) fn as_join(gb: &GroupBy) -> Join {
    Join {
        meta_data: gb.meta_data.clone(),
        left: Source::Entities(EntitySource {
            snapshot_table: String::new(),
            mutation_table: None,
            mutation_topic: None,
            query: Query::default(),
        }),
        join_parts: vec![JoinPart {
            group_by: gb.clone(),
            key_mapping: IndexMap::new(),
            prefix: None,
        }],
        skew_keys: IndexMap::new(),
        online_external_parts: Vec::new(),
        label_part: None,
        bootstrap_parts: Vec::new(),
        row_ids: Vec::new(),
        derivations: Vec::new(),
        model_transforms: None,
    }
}

/// Rewrites the join planner's paths (`joinParts[0].groupBy.x`) to the GroupBy's (`x`).
pub(crate) fn own_paths(e: Error, name: &str) -> Error {
    const PREFIX: &str = "joinParts[0].groupBy";
    match e {
        Error::Config { path, message, .. } => Error::Config {
            file: name.to_string(),
            path: match path.strip_prefix(PREFIX) {
                Some("") => ".".into(),
                Some(rest) => rest.trim_start_matches('.').to_string(),
                None => path,
            },
            message,
        },
        Error::Many(es) => Error::Many(es.into_iter().map(|e| own_paths(e, name)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planner_paths_become_group_by_paths() {
        let e = own_paths(
            Error::Many(vec![Error::Config {
                file: "x".into(),
                path: "joinParts[0].groupBy.aggregations[1].windows".into(),
                message: "m".into(),
            }]),
            "team.gb.v1",
        );
        let text = e.to_string();
        assert!(
            text.contains("config team.gb.v1: at `aggregations[1].windows`"),
            "{text}"
        );
    }
}
