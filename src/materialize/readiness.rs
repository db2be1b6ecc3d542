//! When a pipeline's output partition `ds` may be computed, as Chronon's scheduler decides it:
//! once every partition its compiled `metaData.dependencies` name exists for `ds`
//! (`data.purchases/ds={{ ds }}`, within the dependency's `start`/`end`), so nothing is
//! computed from a half-landed day. A staging query without dependencies waits for partition
//! `ds` of every warehouse table its SQL reads. Bootstrap tables, logs and label sources
//! never block a day: they are deltas applied whenever they land.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::MetaData;
use crate::error::Result;
use crate::partition::Ds;
use crate::warehouse::{TableName, Warehouse};

/// One partition a pipeline waits for: `table`'s partition column `column` = the day, for
/// days in `[start, end]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub table: String,
    pub column: String,
    pub start: Option<Ds>,
    pub end: Option<Ds>,
}

impl Dependency {
    fn applies(&self, d: Ds) -> bool {
        self.start.is_none_or(|s| d >= s) && self.end.is_none_or(|e| d <= e)
    }
}

/// Reads `metaData.dependencies`: each a spec string (`ns.table/ds={{ ds }}`) or a JSON object
/// (or JSON text of one) with `spec`, `start` and `end`. Specs that do not name a day
/// partition (no `{{ ds }}`) are not day dependencies and are skipped.
pub fn dependencies(meta: &MetaData) -> Vec<Dependency> {
    let mut out = Vec::new();
    for d in &meta.dependencies {
        let obj = match d {
            serde_json::Value::String(s) => serde_json::from_str::<serde_json::Value>(s)
                .ok()
                .filter(|v| v.is_object())
                .unwrap_or_else(|| serde_json::json!({ "spec": s })),
            other => other.clone(),
        };
        let Some(spec) = obj.get("spec").and_then(|s| s.as_str()) else {
            continue;
        };
        let bound = |k: &str| {
            obj.get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| Ds::parse(s).ok())
        };
        if let Some(dep) = parse_spec(spec, bound("start"), bound("end")) {
            out.push(dep);
        }
    }
    out
}

fn parse_spec(spec: &str, start: Option<Ds>, end: Option<Ds>) -> Option<Dependency> {
    let mut pieces = spec.split('/');
    let table = pieces.next()?.trim().to_string();
    let column = pieces.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        v.contains("{{").then(|| k.trim().to_string())
    })?;
    Some(Dependency {
        table,
        column,
        start,
        end,
    })
}

/// Day dependencies on the tables of `names` that exist in the warehouse (a staging query
/// without compiled dependencies waits for partition `ds` of every table its SQL reads).
pub fn existing_tables(names: Vec<String>, wh: &Warehouse) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    for name in names {
        let exists = TableName::parse(&name).is_ok_and(|t| wh.exists(&t));
        if exists && !out.iter().any(|d| d.table == name) {
            out.push(Dependency {
                table: name,
                column: "ds".into(),
                start: None,
                end: None,
            });
        }
    }
    out
}

/// Whether a partition folder holds a data file (not hidden, not `_`-prefixed), directly or
/// in a sub-partition folder.
fn has_data_file(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with('_') {
            return false;
        }
        let p = e.path();
        if p.is_dir() {
            has_data_file(&p)
        } else {
            true
        }
    })
}

/// The partitions of each dependency table, listed once per scan.
#[derive(Default)]
pub struct Listing {
    days: BTreeMap<(String, String), BTreeSet<Ds>>,
}

impl Listing {
    fn days(&mut self, wh: &Warehouse, dep: &Dependency) -> Result<&BTreeSet<Ds>> {
        let key = (dep.table.clone(), dep.column.clone());
        if !self.days.contains_key(&key) {
            // a partition folder without a data file is a write in progress (a copy that
            // has not finished): not landed
            let days = match TableName::parse(&dep.table) {
                Ok(t) if wh.exists(&t) => wh
                    .partitions_by(&t, &dep.column)?
                    .into_iter()
                    .filter(|d| {
                        let dir = wh.partition_dir(&t, &[(dep.column.clone(), d.to_string())]);
                        has_data_file(&dir)
                    })
                    .collect(),
                _ => BTreeSet::new(),
            };
            self.days.insert(key.clone(), days);
        }
        Ok(&self.days[&key])
    }

    /// The latest day `≤ end` on which every dependency that applies has its partition
    /// (`None`: no such day yet). Without dependencies: `end`.
    pub fn ready_through(
        &mut self,
        wh: &Warehouse,
        deps: &[Dependency],
        end: Ds,
    ) -> Result<Option<Ds>> {
        let Some(first) = deps.first() else {
            return Ok(Some(end));
        };
        // candidate days: the first dependency's partitions, latest first
        let candidates: Vec<Ds> = self.days(wh, first)?.range(..=end).rev().copied().collect();
        'day: for d in candidates {
            for dep in deps.iter().filter(|dep| dep.applies(d)) {
                if !self.days(wh, dep)?.contains(&d) {
                    continue 'day;
                }
            }
            return Ok(Some(d));
        }
        Ok(None)
    }

    /// The latest day any dependency table has (a day some input already landed for).
    pub fn latest(&mut self, wh: &Warehouse, deps: &[Dependency]) -> Result<Option<Ds>> {
        let mut out = None;
        for dep in deps {
            out = out.max(self.days(wh, dep)?.last().copied());
        }
        Ok(out)
    }

    /// When the first of day `d`'s dependency partitions that already exist landed (its
    /// folder's modification time, Unix ms): what a half-landed day has been waiting since.
    pub fn landed_ms(&mut self, wh: &Warehouse, deps: &[Dependency], d: Ds) -> Result<Option<i64>> {
        let mut first: Option<i64> = None;
        for dep in deps.iter().filter(|dep| dep.applies(d)) {
            if !self.days(wh, dep)?.contains(&d) {
                continue;
            }
            let Ok(t) = TableName::parse(&dep.table) else {
                continue;
            };
            let dir = wh.partition_dir(&t, &[(dep.column.clone(), d.to_string())]);
            let ms = std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64);
            first = match (first, ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(first)
    }

    /// The dependencies missing for day `d` (for status: what a pipeline waits for).
    pub fn missing_on(
        &mut self,
        wh: &Warehouse,
        deps: &[Dependency],
        d: Ds,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for dep in deps.iter().filter(|dep| dep.applies(d)) {
            if !self.days(wh, dep)?.contains(&d) {
                out.push(format!("{}/{}={d}", dep.table, dep.column));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_specs_in_every_compiled_form() {
        let meta: MetaData = serde_json::from_value(serde_json::json!({
            "name": "t.x",
            "dependencies": [
                "data.checkouts/ds={{ ds }}",
                "{\"name\": \"wait_for_data.purchases_ds\", \"spec\": \"data.purchases/ds={{ ds }}\", \"start\": \"2026-01-01\", \"end\": null}",
                "{\"spec\": \"data.users/dt={{ ds }}/region=eu\", \"end\": \"2026-03-01\"}",
                "data.static/kind=all"
            ]
        }))
        .unwrap();
        let d = dependencies(&meta);
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].table.as_str(), d[0].column.as_str()),
            ("data.checkouts", "ds")
        );
        assert_eq!(d[1].start, Some(Ds::parse("2026-01-01").unwrap()));
        assert_eq!(
            (d[2].table.as_str(), d[2].column.as_str()),
            ("data.users", "dt")
        );
        assert_eq!(d[2].end, Some(Ds::parse("2026-03-01").unwrap()));
        assert!(!d[1].applies(Ds::parse("2025-12-31").unwrap()));
    }
}
