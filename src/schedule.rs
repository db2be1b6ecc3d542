//! The one planner for "which output partitions to compute, in which steps": the candidate
//! days of a run (left or source partitions inside the requested range), minus those the
//! output already has (unless they must be redone), minus Chronon's first hole, cut into
//! `step_days`-sized steps over each contiguous run — and the one step loop that walks them
//! ([`Schedule::run`]). Every pipeline (joins, GroupBy tables, staging queries, flattened
//! logs, version rewrites) plans and walks its work here.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::partition::{Ds, PartitionRange};

/// Progress callback of every long run: `(steps done, steps total, message)`.
pub type Progress<'a> = &'a dyn Fn(usize, usize, &str);

/// The partitions a run computes, and the steps it computes them in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Partitions to compute, ascending.
    pub todo: Vec<Ds>,
    /// Steps over `todo`: each maximal contiguous run of days, split every `step_days`.
    pub steps: Vec<PartitionRange>,
    /// Candidates not computed: already present, or before the first existing partition.
    pub skipped_existing: usize,
}

impl Schedule {
    /// Plans a run over `candidates` (sorted or not; duplicates are ignored). A candidate is
    /// computed when the output lacks it (`existing`) or it is in `redo`; missing candidates
    /// before the first existing partition are skipped unless `run_first_hole` (Chronon
    /// assumes retention removed them). `table` names the output in the warning.
    pub fn plan(
        candidates: impl IntoIterator<Item = Ds>,
        existing: &[Ds],
        redo: &BTreeSet<Ds>,
        run_first_hole: bool,
        step_days: usize,
        table: &str,
    ) -> Result<Schedule> {
        if step_days == 0 {
            return Err(Error::Usage("--step-days must be at least 1".into()));
        }
        let candidates: BTreeSet<Ds> = candidates.into_iter().collect();
        let present: BTreeSet<Ds> = existing.iter().copied().collect();
        let missing: Vec<Ds> = candidates
            .iter()
            .copied()
            .filter(|d| !present.contains(d) || redo.contains(d))
            .collect();
        let todo = skip_first_hole(missing, existing, run_first_hole, table);
        Ok(Schedule {
            skipped_existing: candidates.len() - todo.len(),
            steps: steps_over(&todo, step_days),
            todo,
        })
    }

    /// The days of `step` this schedule computes.
    pub fn days_of(&self, step: PartitionRange) -> BTreeSet<Ds> {
        self.todo
            .iter()
            .copied()
            .filter(|d| step.contains(*d))
            .collect()
    }

    /// Whether there is nothing to compute.
    pub fn is_empty(&self) -> bool {
        self.todo.is_empty()
    }

    /// A schedule that computes exactly `days` (sorted) in `step_days` steps.
    pub fn of(days: Vec<Ds>, step_days: usize) -> Schedule {
        Schedule {
            steps: steps_over(&days, step_days),
            todo: days,
            skipped_existing: 0,
        }
    }

    /// The one step loop: runs `step` for each step in order with the step's days, reporting
    /// progress (`what` describes the work, e.g. the output table) and timing each step in a
    /// `step` span. Stops at the first error.
    pub fn run(
        &self,
        what: &str,
        progress: Progress,
        mut step: impl FnMut(PartitionRange, &BTreeSet<Ds>) -> Result<()>,
    ) -> Result<()> {
        let total = self.steps.len();
        for (i, &range) in self.steps.iter().enumerate() {
            progress(i, total, &format!("{what}: step {range}"));
            let span = tracing::info_span!("step", output = %what, %range);
            let _g = span.enter();
            let clock = std::time::Instant::now();
            step(range, &self.days_of(range))?;
            tracing::debug!(ms = clock.elapsed().as_millis() as u64, "step done");
        }
        progress(total, total, &format!("{what}: done"));
        Ok(())
    }
}

/// The `step_days`-sized steps covering `days` (sorted): each maximal contiguous run of days
/// split in order.
pub fn steps_over(days: &[Ds], step_days: usize) -> Vec<PartitionRange> {
    PartitionRange::contiguous(days)
        .iter()
        .flat_map(|r| r.steps(step_days))
        .collect()
}

/// Chronon's first-hole rule for unfilled partitions: when the output already has partitions,
/// missing ones before the earliest existing one are assumed removed by retention and left
/// alone (with a warning), unless `run_first_hole`.
fn skip_first_hole(
    missing: Vec<Ds>,
    existing: &[Ds],
    run_first_hole: bool,
    table: &str,
) -> Vec<Ds> {
    let Some(&first) = existing.iter().min() else {
        return missing;
    };
    if run_first_hole {
        return missing;
    }
    let (skipped, kept): (Vec<Ds>, Vec<Ds>) = missing.into_iter().partition(|d| *d < first);
    if !skipped.is_empty() {
        tracing::warn!(%table, skipped = skipped.len(), before = %first, "skipping missing partitions before the first existing output partition (pass --run-first-hole to compute them)");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(v: &[i32]) -> Vec<Ds> {
        v.iter().map(|&d| Ds(d)).collect()
    }

    #[test]
    fn missing_days_first_hole_and_steps() {
        // output has 5..=6; candidates 1..=10: 1..=4 is the first hole, 7..=10 missing
        let s = Schedule::plan(
            days(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            &days(&[5, 6]),
            &BTreeSet::new(),
            false,
            3,
            "t",
        )
        .unwrap();
        assert_eq!(s.todo, days(&[7, 8, 9, 10]));
        assert_eq!(s.skipped_existing, 6);
        assert_eq!(
            s.steps,
            vec![
                PartitionRange::new(Ds(7), Ds(9)),
                PartitionRange::new(Ds(10), Ds(10))
            ]
        );
        let s = Schedule::plan(
            days(&[1, 2, 5, 6, 7]),
            &days(&[5, 6]),
            &BTreeSet::from([Ds(6)]),
            true,
            30,
            "t",
        )
        .unwrap();
        assert_eq!(s.todo, days(&[1, 2, 6, 7]));
        assert_eq!(
            s.steps,
            vec![
                PartitionRange::new(Ds(1), Ds(2)),
                PartitionRange::new(Ds(6), Ds(7))
            ]
        );
        assert_eq!(
            s.days_of(PartitionRange::new(Ds(0), Ds(6))),
            BTreeSet::from([Ds(1), Ds(2), Ds(6)])
        );
        assert!(Schedule::plan(days(&[1]), &[], &BTreeSet::new(), false, 0, "t").is_err());
    }
}
