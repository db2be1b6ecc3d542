//! What an output partition was computed from: a digest of the fingerprints of the input
//! partitions its rows read — its left partition, the source partitions its parts' windows
//! reach, and its bootstrap tables' partition of the same day. Written beside the output
//! (`Warehouse::update_input_records`) from what was fed, compared with the warehouse as it is
//! now: a partition whose inputs did not change is trusted on restart and by a second
//! backfill; one whose inputs changed is recomputed. Config changes are the semantic hash's
//! business (`versioning`), not this digest's.

use std::collections::HashMap;
use std::hash::Hasher;

use crate::error::Result;
use crate::join::feed::{Feeds, InputId};
use crate::join::part::needed_days;
use crate::join::plan::JoinPlan;
use crate::partition::Ds;
use crate::sql::scan::Scan;
use crate::sql::Session;

/// Every input's partition fingerprints, from the warehouse or from what was fed.
pub(super) struct Fingerprints(HashMap<InputId, Vec<(Ds, u64)>>);

impl Fingerprints {
    /// The inputs as they are in the warehouse now (`sources` as listed for the run).
    pub(super) fn current(
        engine: &Session,
        plan: &JoinPlan,
        left: &[(Ds, u64)],
        sources: &HashMap<InputId, Vec<(Ds, u64)>>,
    ) -> Result<Self> {
        let mut all = sources.clone();
        all.insert(InputId::Left, left.to_vec());
        let wh = engine.warehouse();
        for b in &plan.bootstrap {
            let t = crate::warehouse::TableName::parse(&b.table)?;
            // a bootstrap table that does not exist yet is an empty input
            let fps = if wh.exists(&t) {
                wh.partition_fingerprints(&t, &b.scan.partition_column())?
            } else {
                Vec::new()
            };
            all.insert(InputId::Bootstrap { part: b.index }, fps);
        }
        Ok(Self(all))
    }

    /// The inputs as the running dataflow was fed them.
    /// Partitions that stored aggregates cover count as fed as they were when the
    /// aggregates were computed.
    pub(super) fn fed(
        plan: &JoinPlan,
        feeds: &Feeds,
        aggs: &super::aggregates::Aggregates,
    ) -> Self {
        let mut all = HashMap::new();
        all.insert(InputId::Left, feeds.fingerprints(InputId::Left));
        for (id, _) in plan.parts.iter().flat_map(|p| p.source_inputs()) {
            let mut fed = feeds.fingerprints(id);
            aggs.fed_as(id, &mut fed);
            all.insert(id, fed);
        }
        for b in &plan.bootstrap {
            let id = InputId::Bootstrap { part: b.index };
            all.insert(id, feeds.fingerprints(id));
        }
        Self(all)
    }

    /// The partitions of each input that output partition `ds` may read, in a fixed order.
    fn reached(&self, plan: &JoinPlan, ds: Ds) -> Vec<Vec<(Ds, u64)>> {
        let empty = Vec::new();
        let within = |id: InputId, scan: &Scan, from: Ds, to: Ds| -> Vec<(Ds, u64)> {
            let (lo, hi) = bounds(scan);
            self.0
                .get(&id)
                .unwrap_or(&empty)
                .iter()
                .copied()
                .filter(|(d, _)| *d >= from && *d <= to)
                .filter(|(d, _)| lo.is_none_or(|l| *d >= l) && hi.is_none_or(|h| *d <= h))
                .collect()
        };
        let mut out = vec![within(InputId::Left, &plan.left.scan, ds, ds)];
        let (start, end) = (ds.start_millis(), ds.shift(1).start_millis());
        for p in &plan.parts {
            let (from, to) = needed_days(p, start, end);
            for (id, scan) in p.source_inputs() {
                out.push(within(id, scan, from, to));
            }
        }
        for b in &plan.bootstrap {
            out.push(within(
                InputId::Bootstrap { part: b.index },
                &b.scan,
                ds,
                ds,
            ));
        }
        out
    }

    /// The digest of output partition `ds`'s inputs.
    pub(super) fn digest(&self, plan: &JoinPlan, ds: Ds) -> String {
        let mut h = std::hash::DefaultHasher::new();
        for input in self.reached(plan, ds) {
            for (d, fp) in input {
                h.write_i32(d.0);
                h.write_u64(fp);
            }
            h.write_u8(0xff);
        }
        format!("{:016x}", h.finish())
    }

    /// Whether every partition fed (`self`) that output partition `ds` may read is, with the
    /// same fingerprint, in `current`: then `ds` was computed from `current`'s inputs (the
    /// partitions in range that were not fed are ones its queries do not read).
    pub(super) fn agrees(&self, current: &Self, plan: &JoinPlan, ds: Ds) -> bool {
        let now = current.reached(plan, ds);
        let fed = self.reached(plan, ds);
        fed.iter()
            .zip(&now)
            .all(|(fed, now)| fed.iter().all(|p| now.binary_search(p).is_ok()))
            // the left partition itself must have been fed
            && !fed[0].is_empty()
    }
}

/// A scan's partition bounds (`startPartition`, `endPartition`), when they parse.
pub(super) fn bounds(scan: &Scan) -> (Option<Ds>, Option<Ds>) {
    let q = &scan.query;
    let p = |v: &Option<String>| v.as_deref().and_then(|s| Ds::parse(s).ok());
    (p(&q.start_partition), p(&q.end_partition))
}
