//! [`generate`]: writes the demo warehouse tables for a [`DemoSpec`], one Parquet partition
//! per table and day.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::tables::{
    self, CHECKOUTS, CHECKOUT_OUTCOMES, EXTERNAL, LEGACY, MERCHANTS, PAGE_VIEWS, PURCHASES,
    REFUNDS, USERS,
};
use super::world::{DayEvents, World};
use super::DemoSpec;
use crate::error::Result;
use crate::partition::{Ds, PartitionRange};
use crate::warehouse::{TableName, Warehouse, DS};

/// The table property marking a table as written by [`generate`].
pub const SOURCE_PROPERTY: (&str, &str) = ("source", "weft demo");
/// Scenario G: the legacy pipeline covers partitions up to this day.
pub const LEGACY_END: &str = "2026-01-31";
/// Scenario F: the external-feature backfill covers these partitions.
pub const EXTERNAL_RANGE: (&str, &str) = ("2026-01-01", "2026-01-31");

/// One table written by [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub table: String,
    pub partitions: usize,
    pub rows: u64,
}

/// Writes the demo tables (the TABLES section of `dataflows/README.md`) into `wh`: one
/// partition per day in `[spec.start, spec.end]` (the legacy and external-backfill tables
/// only for their January ranges), each marked with the table property `source = weft demo`.
/// Partitions of an earlier demo run outside the range are removed. `progress` is called once
/// per table, after it is written.
pub fn generate(
    wh: &Warehouse,
    spec: &DemoSpec,
    progress: &dyn Fn(&str),
) -> Result<Vec<TableSummary>> {
    write_days(wh, spec, None, progress)
}

/// Appends days to a demo warehouse: simulates `spec` in full (the same spec gives the same
/// data, so earlier days are what they were) and writes only the partitions of `days`,
/// leaving every other partition as it is: a new day landing, for the materializer.
pub fn append_days(
    wh: &Warehouse,
    spec: &DemoSpec,
    days: PartitionRange,
    progress: &dyn Fn(&str),
) -> Result<Vec<TableSummary>> {
    write_days(wh, spec, Some(days), progress)
}

fn write_days(
    wh: &Warehouse,
    spec: &DemoSpec,
    only: Option<PartitionRange>,
    progress: &dyn Fn(&str),
) -> Result<Vec<TableSummary>> {
    spec.validate()?;
    let world = World::new(spec);
    let days: Vec<Ds> = PartitionRange::new(spec.start, spec.end).days().collect();
    let sim: Vec<DayEvents> = days.iter().map(|&ds| world.day(ds)).collect();
    let on = |ds: Ds| &sim[world.offset(ds) as usize];
    let mut out = Out {
        wh,
        progress,
        only,
        summaries: Vec::new(),
    };

    out.table(CHECKOUTS, &days, |ds| {
        tables::checkouts(&world, &on(ds).checkouts)
    })?;
    out.table(PURCHASES, &days, |ds| {
        tables::purchases(&world, &on(ds).purchases)
    })?;
    out.table(PAGE_VIEWS, &days, |ds| {
        tables::page_views(&world, &world.page_views(ds))
    })?;
    out.table(USERS, &days, |ds| tables::users(&world, world.offset(ds)))?;
    out.table(MERCHANTS, &days, |ds| {
        tables::merchants(&world, &world.ratings(ds))
    })?;
    out.table(REFUNDS, &days, |ds| {
        tables::refunds(&world, &on(ds).refunds)
    })?;

    let (mut seen, mut disputes) = (vec![false; spec.users], vec![0i64; spec.users]);
    out.table(CHECKOUT_OUTCOMES, &days, |ds| {
        let day = on(ds);
        day.checkouts
            .iter()
            .filter_map(|c| c.user)
            .for_each(|u| seen[u] = true);
        day.refunds.iter().for_each(|r| disputes[r.user] += 1);
        tables::checkout_outcomes(&world, &seen, &disputes)
    })?;

    let mut history: Vec<Vec<(i64, Option<i64>)>> = vec![Vec::new(); spec.users];
    for p in sim.iter().flat_map(|d| &d.purchases) {
        history[p.user].push((p.ts, p.amount_cents));
    }
    let legacy_end = Ds::parse(LEGACY_END)?;
    let legacy_days: Vec<Ds> = days.iter().copied().filter(|&d| d <= legacy_end).collect();
    out.table(LEGACY, &legacy_days, |ds| {
        tables::legacy(&on(ds).checkouts, &history)
    })?;

    let ext = PartitionRange::new(Ds::parse(EXTERNAL_RANGE.0)?, Ds::parse(EXTERNAL_RANGE.1)?);
    let ext_days: Vec<Ds> = days.iter().copied().filter(|&d| ext.contains(d)).collect();
    out.table(EXTERNAL, &ext_days, |ds| {
        let cks = &on(ds).checkouts;
        tables::external(&world, cks, &world.external(ds, cks))
    })?;
    Ok(out.summaries)
}

struct Out<'a> {
    wh: &'a Warehouse,
    progress: &'a dyn Fn(&str),
    /// Write only these days (every day is still simulated, in order), keeping the others.
    only: Option<PartitionRange>,
    summaries: Vec<TableSummary>,
}

impl Out<'_> {
    /// Writes one partition per day from `batch(ds)`, then the table properties.
    fn table(
        &mut self,
        name: &str,
        days: &[Ds],
        mut batch: impl FnMut(Ds) -> Result<RecordBatch>,
    ) -> Result<()> {
        let t = TableName::parse(name)?;
        let schema: SchemaRef = tables::schema(name);
        let ours = self
            .wh
            .properties(&t)?
            .get(SOURCE_PROPERTY.0)
            .is_some_and(|v| v == SOURCE_PROPERTY.1);
        let mut rows = 0u64;
        let mut written = 0;
        for &ds in days {
            let b = batch(ds)?;
            if self.only.is_some_and(|r| !r.contains(ds)) {
                continue;
            }
            written += 1;
            rows += b.num_rows() as u64;
            self.wh.write_partition(
                &t,
                &[(DS.to_string(), ds.to_string())],
                schema.clone(),
                &[b],
            )?;
        }
        if ours && self.only.is_none() {
            for old in self.wh.partitions(&t)? {
                if !days.contains(&old) {
                    self.wh
                        .drop_partition(&t, &[(DS.to_string(), old.to_string())])?;
                }
            }
        }
        let message = if written == 0 {
            format!("{name}: no partitions in range, skipped")
        } else {
            let props =
                BTreeMap::from([(SOURCE_PROPERTY.0.to_string(), SOURCE_PROPERTY.1.to_string())]);
            self.wh.set_properties(&t, &props)?;
            format!("{name}: {written} partitions, {rows} rows")
        };
        (self.progress)(&message);
        self.summaries.push(TableSummary {
            table: name.to_string(),
            partitions: written,
            rows,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::partition::DAY_MS;

    fn tiny() -> DemoSpec {
        DemoSpec {
            start: Ds::parse("2026-01-30").unwrap(),
            end: Ds::parse("2026-02-01").unwrap(),
            users: 50,
            merchants: 10,
            checkouts_per_day: 20,
            seed: 7,
        }
    }

    fn read(wh: &Warehouse, table: &str, ds: Ds) -> Vec<RecordBatch> {
        wh.read_partition(&TableName::parse(table).unwrap(), ds)
            .unwrap()
    }

    fn strings(batches: &[RecordBatch], col: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in batches {
            let a = b.column_by_name(col).unwrap().as_string::<i32>();
            out.extend((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())));
        }
        out
    }

    fn longs(batches: &[RecordBatch], col: &str) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for b in batches {
            out.extend(
                b.column_by_name(col)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .iter(),
            );
        }
        out
    }

    #[test]
    fn writes_every_table_with_its_partitions_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let spec = tiny();
        let calls = std::cell::RefCell::new(Vec::new());
        let summaries = generate(&wh, &spec, &|m| calls.borrow_mut().push(m.to_string())).unwrap();
        assert_eq!(summaries.len(), tables::TABLES.len());
        assert_eq!(calls.borrow().len(), tables::TABLES.len());
        let all: Vec<Ds> = PartitionRange::new(spec.start, spec.end).days().collect();
        for (name, cols) in tables::TABLES {
            let t = TableName::parse(name).unwrap();
            let expected = match *name {
                LEGACY | EXTERNAL => all[..2].to_vec(), // January only
                _ => all.clone(),
            };
            assert_eq!(wh.partitions(&t).unwrap(), expected, "{name}");
            let schema = wh.table_schema(&t).unwrap();
            let got: Vec<(&str, &arrow::datatypes::DataType)> = schema
                .fields()
                .iter()
                .map(|f| (f.name().as_str(), f.data_type()))
                .collect();
            let want: Vec<(&str, &arrow::datatypes::DataType)> =
                cols.iter().map(|(n, t)| (*n, t)).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(
                wh.properties(&t).unwrap().get("source").map(String::as_str),
                Some("weft demo")
            );
            let s = summaries.iter().find(|s| s.table == *name).unwrap();
            assert_eq!(s.partitions, expected.len());
            assert!(s.rows > 0, "{name}");
        }
        let day = all[0];
        assert_eq!(strings(&read(&wh, CHECKOUTS, day), "event_id").len(), 20);
        assert_eq!(strings(&read(&wh, USERS, day), "user_id").len(), 50);
        assert_eq!(
            strings(&read(&wh, USERS, day), "user_id")[41].as_deref(),
            Some("u00042")
        );
        assert_eq!(
            strings(&read(&wh, MERCHANTS, day), "merchant_id")[6].as_deref(),
            Some("m0007")
        );
        let age = |ds| longs(&read(&wh, USERS, ds), "account_age_days");
        let (a0, a1) = (age(all[0]), age(all[1]));
        assert!(a0
            .iter()
            .zip(&a1)
            .all(|(x, y)| x.unwrap() + 1 == y.unwrap()));
    }

    #[test]
    fn joins_line_up_and_timestamps_stay_in_their_day() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let spec = tiny();
        generate(&wh, &spec, &|_| {}).unwrap();
        let mut all_ids = HashSet::new();
        for ds in PartitionRange::new(spec.start, spec.end).days() {
            let ids: Vec<String> = strings(&read(&wh, CHECKOUTS, ds), "event_id")
                .into_iter()
                .flatten()
                .collect();
            let unique: HashSet<String> = ids.iter().cloned().collect();
            assert_eq!(unique.len(), ids.len());
            all_ids.extend(unique.iter().cloned());
            for t in [LEGACY, EXTERNAL] {
                if wh
                    .partitions(&TableName::parse(t).unwrap())
                    .unwrap()
                    .contains(&ds)
                {
                    let other: HashSet<String> = strings(&read(&wh, t, ds), "event_id")
                        .into_iter()
                        .flatten()
                        .collect();
                    assert_eq!(other, unique, "{t} {ds}: one row per checkout of the day");
                }
            }
            for t in [CHECKOUTS, PURCHASES, PAGE_VIEWS, REFUNDS] {
                let ts: Vec<i64> = longs(&read(&wh, t, ds), "ts")
                    .into_iter()
                    .map(Option::unwrap)
                    .collect();
                let (lo, hi) = (ds.start_millis(), ds.start_millis() + DAY_MS);
                assert!(ts.iter().all(|&x| lo <= x && x < hi), "{t} {ds}");
                assert!(
                    ts.windows(2).all(|w| w[0] <= w[1]),
                    "{t} {ds}: sorted by ts"
                );
            }
            // Point-in-time edge cases in purchases.
            let p = read(&wh, PURCHASES, ds);
            let (users, ts) = (strings(&p, "user_id"), longs(&p, "ts"));
            assert!(
                ts.contains(&Some(ds.start_millis())),
                "a purchase at midnight"
            );
            let pairs: Vec<_> = users.iter().zip(&ts).collect();
            assert!(
                pairs.len() > pairs.iter().collect::<HashSet<_>>().len(),
                "a duplicated (user, ts)"
            );
            let c = read(&wh, CHECKOUTS, ds);
            let ck: HashSet<_> = strings(&c, "user_id")
                .into_iter()
                .zip(longs(&c, "ts"))
                .collect();
            assert!(
                users.into_iter().zip(ts).any(|k| ck.contains(&k)),
                "a purchase at a checkout's millisecond"
            );
        }
        assert_eq!(all_ids.len(), 60);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed: u64| {
            let dir = tempfile::tempdir().unwrap();
            let wh = Warehouse::open(dir.path()).unwrap();
            let spec = DemoSpec { seed, ..tiny() };
            generate(&wh, &spec, &|_| {}).unwrap();
            let mut out = Vec::new();
            for (name, _) in tables::TABLES {
                for ds in wh.partitions(&TableName::parse(name).unwrap()).unwrap() {
                    out.push((name.to_string(), ds, read(&wh, name, ds)));
                }
            }
            out
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn regenerating_a_shorter_range_drops_stale_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        generate(&wh, &tiny(), &|_| {}).unwrap();
        let spec = DemoSpec {
            end: tiny().start,
            ..tiny()
        };
        generate(&wh, &spec, &|_| {}).unwrap();
        let t = TableName::parse(CHECKOUTS).unwrap();
        assert_eq!(wh.partitions(&t).unwrap(), vec![spec.start]);
        assert!(generate(&wh, &DemoSpec { users: 0, ..tiny() }, &|_| {}).is_err());
    }
}
