//! Whether an [`Ir`] fits an [`Aggregator`]: [`Aggregator::decode_ir`] decodes stored bytes
//! (`ir_codec`) and [`Aggregator::check_ir`] checks the IR's shape (buckets, map keys) and that
//! every aggregate is the state of the aggregator's operation with its `k`, so that an IR
//! stored for another aggregator (or another argMap) is refused instead of misbehaving.

use std::cmp::Ordering;

use super::ir::{Aggregator, Ir, Node};
use super::ir_codec::decode_with;
use super::leaf::Leaf;
use super::op::{op_name, InputShape};
use super::sketch::{sketch_size, ApproxHist, ApproxUnique};
use super::value::cmp_values;
use super::wire::Expect;
use crate::config::Operation;

impl Aggregator {
    /// Decodes an IR written by [`Ir::encode`] for this aggregator and checks that it fits
    /// ([`Aggregator::check_ir`]). Never panics; errors name what is wrong.
    pub fn decode_ir(&self, bytes: &[u8]) -> Result<Ir, String> {
        let ir = decode_with(bytes, self.expect())?;
        self.check_ir(&ir)?;
        Ok(ir)
    }

    /// Checks that `ir` has this aggregator's shape (bucket → IR when bucketed; map key →
    /// aggregate for a map input of a simple operation) and that each aggregate is a state of
    /// its operation within its `k` (and, for the sketches, of its size).
    pub fn check_ir(&self, ir: &Ir) -> Result<(), String> {
        let what = || format!("{} IR", op_name(self.spec.op));
        let result = if self.bucketed {
            match &ir.0 {
                Node::Keyed(buckets) if !buckets.is_empty() => {
                    buckets.iter().try_for_each(|(b, n)| {
                        self.check_value(n)
                            .map_err(|e| format!("bucket {b:?}: {e}"))
                    })
                }
                Node::Keyed(_) => Err("a bucketed IR without buckets".to_string()),
                Node::Leaf(_) => Err(
                    "a bucketed aggregator's IR maps buckets to IRs; this is one aggregate".into(),
                ),
            }
        } else {
            self.check_value(&ir.0)
        };
        result.map_err(|e| format!("{} does not fit the aggregator: {e}", what()))
    }

    fn expect(&self) -> Expect {
        let k = self.spec.k;
        Expect {
            cpc_lg_k: (self.spec.op == Operation::ApproxUniqueCount)
                .then(|| k.unwrap_or(8).clamp(4, 26) as u8),
            freq_lg_max: (self.spec.op == Operation::ApproxHistogramK)
                .then(|| sketch_size(k.unwrap_or(8)).trailing_zeros() as u8),
        }
    }

    /// The IR of one bucket (or of an unbucketed aggregator).
    fn check_value(&self, node: &Node) -> Result<(), String> {
        match (self.shape, node) {
            (InputShape::Map, Node::Keyed(keys)) => keys.iter().try_for_each(|(key, n)| match n {
                Node::Leaf(leaf) => self
                    .check_leaf(leaf)
                    .map_err(|e| format!("map key {key:?}: {e}")),
                Node::Keyed(_) => Err(format!("map key {key:?} holds keyed IRs")),
            }),
            (InputShape::Map, Node::Leaf(_)) => {
                Err("a map input's IR maps keys to aggregates; this is one aggregate".into())
            }
            (_, Node::Leaf(leaf)) => self.check_leaf(leaf),
            (_, Node::Keyed(_)) => Err(
                "expected one aggregate, found keyed IRs (of a bucketed or map-input aggregator?)"
                    .into(),
            ),
        }
    }

    fn check_leaf(&self, leaf: &Leaf) -> Result<(), String> {
        use Operation::*;
        let op = self.spec.op;
        let k = self.spec.k.unwrap_or(1);
        let within = |len: usize, what: &str| {
            if len <= k {
                Ok(())
            } else {
                Err(format!("{len} {what}, more than k = {k}"))
            }
        };
        match (op, leaf) {
            (Count, Leaf::Count(_))
            | (Sum, Leaf::SumLong(_) | Leaf::SumDouble(_))
            | (Average, Leaf::Average { .. })
            | (Variance, Leaf::Variance(_))
            | (Skew | Kurtosis, Leaf::Moments(_))
            | (Min, Leaf::Min(_))
            | (Max, Leaf::Max(_))
            | (First, Leaf::First { .. })
            | (Last, Leaf::Last { .. })
            | (UniqueCount, Leaf::Unique(_))
            | (Histogram, Leaf::Histogram(_))
            | (ApproxUniqueCount, Leaf::Cpc(ApproxUnique::Exact(_))) => Ok(()),
            (FirstK | LastK, Leaf::Timed(list)) => {
                within(list.len(), "values")?;
                let in_order = |a: &i64, b: &i64| if op == FirstK { a <= b } else { a >= b };
                if list.windows(2).all(|w| in_order(&w[0].0, &w[1].0)) {
                    Ok(())
                } else {
                    Err("values out of time order".into())
                }
            }
            (TopK | BottomK, Leaf::Sorted(list)) => {
                within(list.len(), "values")?;
                let wrong = if op == TopK {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if list.windows(2).all(|w| cmp_values(&w[0], &w[1]) != wrong) {
                    Ok(())
                } else {
                    Err("values out of order".into())
                }
            }
            (BoundedUniqueCount, Leaf::Bounded(set)) => within(set.len(), "values"),
            (ApproxHistogramK, Leaf::ApproxHist(ApproxHist::Exact(m))) => {
                within(m.len(), "exact counts (a sketch past k)")
            }
            (ApproxHistogramK, Leaf::ApproxHist(ApproxHist::Sketch(s))) => same(
                s.lg_max_map_size().into(),
                self.expect().freq_lg_max.unwrap_or(0).into(),
                "frequent-items lg map size",
            ),
            (ApproxUniqueCount, Leaf::Cpc(ApproxUnique::Sketch(s))) => same(
                s.lg_k().into(),
                self.expect().cpc_lg_k.unwrap_or(0).into(),
                "CPC lgK",
            ),
            (ApproxPercentile, Leaf::Kll(s)) => same(
                s.k.into(),
                self.spec.k.unwrap_or(128).clamp(8, 65535),
                "KLL k",
            ),
            _ => Err(format!("holds a {} state", state_name(leaf))),
        }
    }
}

/// A sketch parameter that must be the aggregator's.
fn same(got: usize, want: usize, what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} {got}, the aggregator's is {want}"))
    }
}

fn state_name(leaf: &Leaf) -> &'static str {
    match leaf {
        Leaf::Count(_) => "COUNT",
        Leaf::SumLong(_) | Leaf::SumDouble(_) => "SUM",
        Leaf::Average { .. } => "AVERAGE",
        Leaf::Variance(_) => "VARIANCE",
        Leaf::Moments(_) => "SKEW/KURTOSIS",
        Leaf::Min(_) => "MIN",
        Leaf::Max(_) => "MAX",
        Leaf::First { .. } => "FIRST",
        Leaf::Last { .. } => "LAST",
        Leaf::Timed(_) => "FIRST_K/LAST_K",
        Leaf::Sorted(_) => "TOP_K/BOTTOM_K",
        Leaf::Unique(_) => "UNIQUE_COUNT",
        Leaf::Bounded(_) => "BOUNDED_UNIQUE_COUNT",
        Leaf::Histogram(_) => "HISTOGRAM",
        Leaf::ApproxHist(_) => "APPROX_HISTOGRAM_K",
        Leaf::Cpc(_) => "APPROX_UNIQUE_COUNT",
        Leaf::Kll(_) => "APPROX_PERCENTILE",
    }
}
