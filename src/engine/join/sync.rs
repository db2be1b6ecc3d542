//! Bringing what a join's dataflow was fed in line with the warehouse: left partitions and
//! GroupBy source partitions that are new, re-landed (the rows fed before retracted) or
//! removed, turned into dataflow updates.

use std::collections::{BTreeMap, HashMap};

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;

use super::{aggregates, boot_feed, data_columns, JoinReport, Live, Reach};
use crate::dataflow::records::Item;
use crate::dataflow::shard::{ReadReport, ReadTask};
use crate::error::{Error, Result};
use crate::join::feed::InputId;
use crate::join::inputs::{self, EventStats};
use crate::join::part::{needed_days, source_range};
use crate::join::plan::{JoinPlan, PartPlan};
use crate::join::shard::{ReadPayload, SourceRead};
use crate::partition::{Ds, PartitionRange};
use crate::sql::scan::Scan;
use crate::sql::Session;

/// Feeds left partitions: re-landed or removed ones already fed, and new ones `want`
/// accepts. Returns the query-time span of the new queries per part (`None` if nothing
/// was fed).
pub(super) fn sync_left(
    engine: &Session,
    plan: &JoinPlan,
    live: &mut Live,
    fps: &[(Ds, u64)],
    want: &dyn Fn(Ds) -> bool,
    report: &mut JoinReport,
) -> Result<Option<Reach>> {
    let data_cols = data_columns(&live.left_schema);
    let left_schema = live.left_schema.clone();
    let read = |batches: Vec<RecordBatch>| -> Result<Vec<RecordBatch>> {
        let b = concat_batches(&left_schema, &batches)
            .map_err(|e| Error::arrow("combining left batches", e))?;
        Ok(vec![b
            .project(&data_cols)
            .map_err(|e| Error::arrow("projecting left", e))?])
    };
    let changes = live
        .feeds
        .sync(engine, &plan.left.scan, InputId::Left, fps, want, &read)?;
    if changes.is_empty() {
        return Ok(None);
    }
    let mut reach: Reach = vec![None; plan.parts.len()];
    for c in &changes {
        for (batches, sign) in [(&c.old, -1isize), (&c.new, 1)] {
            for b in batches {
                if sign > 0 {
                    report.left_rows += b.num_rows() as u64;
                }
                let mut all = Vec::new();
                for p in &plan.parts {
                    let (mut updates, nulls) =
                        inputs::left_queries(b, c.ds, p, plan.left.events, &plan.left.scan.table)?;
                    if sign > 0 {
                        report.null_key_rows[p.index as usize].1 += nulls as u64;
                    }
                    for ((_, item), r) in updates.iter_mut() {
                        if let Item::Query { q, .. } = item {
                            let span = reach[p.index as usize].get_or_insert((*q, *q));
                            span.0 = span.0.min(*q);
                            span.1 = span.1.max(*q);
                        }
                        *r *= sign;
                    }
                    if live.boot_active() {
                        all.extend(updates);
                    } else {
                        live.dataflow.update(updates);
                    }
                }
                if live.boot_active() {
                    boot_feed::feed_left(live, &plan.left.scan.table, b, c.ds, sign, all)?;
                }
            }
        }
        if !c.old.is_empty() && !c.new.is_empty() {
            // a re-landed left day: its left columns changed even where no feature value
            // did, so the day is rewritten whether or not the dataflow reports changes
            live.stale.insert(c.ds);
        }
        if c.new.is_empty() {
            live.on_disk.remove(&c.ds);
            // the left partition is gone: so is its output
            live.owned.remove(&c.ds);
            live.state.forget(c.ds);
            live.boot.state.remove(&c.ds);
            engine
                .warehouse()
                .drop_partition(&plan.output, &[("ds".into(), c.ds.to_string())])?;
        }
    }
    Ok(Some(reach))
}

/// Partitions and fingerprints of every source (and mutation table) of every part.
pub(super) fn source_fingerprints(
    engine: &Session,
    plan: &JoinPlan,
) -> Result<HashMap<InputId, Vec<(Ds, u64)>>> {
    let mut out = HashMap::new();
    for (id, scan) in plan.parts.iter().flat_map(|p| p.source_inputs()) {
        out.insert(id, scan.fingerprints(engine.warehouse())?);
    }
    Ok(out)
}

/// Feeds source partitions: re-landed or removed ones already fed, and (with `reach`) the
/// partitions the new queries need. The dataflow's workers read them (a share each, see
/// [`crate::join::shard`]); what they read is counted into `report` when the epoch is
/// sealed ([`absorb_reads`]). Returns whether anything was fed.
pub(super) fn sync_sources(
    plan: &JoinPlan,
    live: &mut Live,
    fps: &HashMap<InputId, Vec<(Ds, u64)>>,
    reach: Option<&Reach>,
) -> Result<bool> {
    let mut tasks = Vec::new();
    for p in &plan.parts {
        let span = reach.and_then(|r| r[p.index as usize]);
        // stored aggregates in use hold the events before their boundary
        let based = aggregates::settle(plan, p, live, fps, span, &mut tasks);
        let needed = span.map(|(lo, hi)| {
            let (from, to) = needed_days(p, lo, hi);
            match based {
                Some((g, _)) => (from.max(g.shift(-1)), to),
                None => (from, to),
            }
        });
        for (id, scan) in p.source_inputs() {
            let InputId::Source { mutations, .. } = id else {
                unreachable!("source inputs are sources")
            };
            let listed = &fps[&id];
            let range = match needed {
                Some((from, to)) => source_range(scan, listed, from, to)?,
                None => None,
            };
            let want = |d: Ds| range.is_some_and(|r: PartitionRange| r.contains(d));
            let planned = based.map(|(g, at)| aggregates::planned(listed, g, at));
            let share = Share {
                scan,
                part: p,
                id,
                mutations,
                current: planned.as_deref().unwrap_or(listed),
                listing: listing_stamp(listed),
                floor: based,
            };
            tasks.extend(share.tasks(live, &want)?);
        }
    }
    let any = !tasks.is_empty();
    live.dataflow.read(tasks)?;
    Ok(any)
}

/// One source input of a part, as its partitions are handed to the workers.
struct Share<'a> {
    scan: &'a Scan,
    part: &'a PartPlan,
    id: InputId,
    mutations: bool,
    /// The partitions and fingerprints to sync against.
    current: &'a [(Ds, u64)],
    /// Identifies the source's listing for the readers.
    listing: u64,
    /// Stored aggregates in use: rows of partitions up to day `g` before `at` are not fed.
    floor: Option<(Ds, i64)>,
}

impl Share<'_> {
    /// The read tasks that bring what was fed of this input in line with the warehouse
    /// for the days `want` accepts: retractions of re-landed and removed partitions (by
    /// the worker that read them), and the partitions to read, split into contiguous runs,
    /// one per worker.
    fn tasks(&self, live: &mut Live, want: &dyn Fn(Ds) -> bool) -> Result<Vec<ReadTask>> {
        let plan = live.feeds.plan_sync(self.id, self.current, want);
        let mut retract: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        let mut tasks = Vec::new();
        for (ds, fed) in &plan.gone {
            let Some((worker, key)) = fed.owner() else {
                return Err(Error::internal(format!(
                    "source partition {ds} of {} was fed without a worker keeping its rows",
                    self.scan.table
                )));
            };
            retract.entry(worker).or_default().push(key);
        }
        tasks.extend(
            retract
                .into_iter()
                .map(|(worker, keys)| ReadTask::Retract { worker, keys }),
        );
        if plan.read.is_empty() {
            return Ok(tasks);
        }
        let peers = live.dataflow.peers();
        let n = plan.read.len();
        let shares = peers.min(n);
        for i in 0..shares {
            let run = &plan.read[i * n / shares..(i + 1) * n / shares];
            let worker = live.feeds.next_worker(peers);
            // partitions the stored aggregates cover are read apart, their early rows left out
            let split = self
                .floor
                .map_or(0, |(g, _)| run.partition_point(|(d, _)| *d <= g));
            for (sub, floor) in [
                (&run[..split], self.floor.map(|(_, at)| at)),
                (&run[split..], None),
            ] {
                if sub.is_empty() {
                    continue;
                }
                let days = sub
                    .iter()
                    .map(|&(ds, fp)| (ds, live.feeds.record_owned(self.id, ds, fp, worker)))
                    .collect();
                let mut read =
                    SourceRead::new(self.scan, self.part, self.mutations, self.listing, days);
                read.floor = floor;
                tasks.push(ReadTask::Read {
                    worker,
                    tag: self.part.index as u64,
                    payload: ReadPayload::Source(Box::new(read)).encode(),
                });
            }
        }
        Ok(tasks)
    }
}

/// Identifies a source's partition listing (its partitions and their fingerprints).
fn listing_stamp(current: &[(Ds, u64)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    current.hash(&mut h);
    h.finish()
}

/// Counts what the workers read in a sealed epoch into the report of their parts.
pub(super) fn absorb_reads(reads: &[ReadReport], report: &mut JoinReport) {
    for r in reads.iter().filter(|r| r.tag < aggregates::LOAD_TAG) {
        if let Some((_, st)) = report.events.get_mut(r.tag as usize) {
            st.add(&EventStats::from_counts(&r.counts));
        }
    }
}
