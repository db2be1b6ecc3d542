//! [`Aggregator`] and its partial aggregate [`Ir`]: one operation over one input column,
//! with Chronon's row rules (§2.3) on top of the per-operation states of `leaf`:
//!
//! - NULL inputs are ignored; an IR is created by the first non-null input (for a list input of
//!   a simple operation: its first non-null element; a non-null map input creates an IR even
//!   when empty, as Chronon's map aggregator does).
//! - List inputs of simple operations are exploded (NULL elements skipped); map<string, X>
//!   inputs of simple operations aggregate per key.
//! - Bucketed aggregators keep one IR per bucket value (its string form); rows with a NULL
//!   bucket are ignored.
//! - `weight` is a row multiplicity: `w > 0` adds w copies; `w < 0` deletes for COUNT, SUM,
//!   AVERAGE and HISTOGRAM (a deletion can create the IR, as Chronon's `inversePrepare`) and is
//!   ignored by every other operation.
//! - Finalised NaN/±Inf doubles become NULL (also inside maps). Bucketed outputs drop NULL
//!   buckets; map-input outputs keep every key (a NULL value where the aggregate is NULL).
//!
//! Everything is deterministic: the same inputs updated and merged in the same order give
//! bit-identical IRs and outputs.

use std::collections::BTreeMap;

use super::leaf::Leaf;
use super::op::{AggSpec, InputShape};
use super::value::Value;

/// A partial aggregate (mergeable).
#[derive(Debug, Clone)]
pub struct Ir(pub(super) Node);

#[derive(Debug, Clone)]
pub(super) enum Node {
    Leaf(Leaf),
    /// Bucket value → IR, or map key → IR.
    Keyed(BTreeMap<Box<str>, Node>),
}

/// Aggregates one input column with one operation; `bucketed` wraps IRs in a bucket-value → IR
/// map.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Aggregator {
    pub(super) spec: AggSpec,
    pub(super) shape: InputShape,
    pub(super) bucketed: bool,
}

impl Aggregator {
    /// `shape` only matters to simple operations (FIRST, LAST, FIRST_K, LAST_K take lists and
    /// maps as whole values).
    pub fn new(spec: AggSpec, shape: InputShape, bucketed: bool) -> Aggregator {
        let shape = if spec.is_simple() {
            shape
        } else {
            InputShape::Scalar
        };
        Aggregator {
            spec,
            shape,
            bucketed,
        }
    }

    pub fn spec(&self) -> &AggSpec {
        &self.spec
    }

    /// Whether inputs are whole scalar values, not bucketed (what running sums need).
    pub fn is_scalar_unbucketed(&self) -> bool {
        !self.bucketed && self.shape == InputShape::Scalar
    }

    /// A finalized value as [`Aggregator::finalize`] returns it (NaN and ±∞ become NULL).
    pub fn sanitized(&self, v: Value) -> Value {
        sanitize(v)
    }

    /// Adds one input row (`weight` copies; see the module doc for deletions). `ts` is the
    /// event time used by FIRST/LAST/FIRST_K/LAST_K.
    pub fn update(
        &self,
        ir: &mut Option<Ir>,
        ts: i64,
        input: &Value,
        bucket: Option<&Value>,
        weight: i64,
    ) {
        if weight == 0 || input.is_null() || (weight < 0 && !self.spec.deletable()) {
            return;
        }
        if !self.bucketed {
            let mut node = ir.take().map(|Ir(n)| n);
            self.update_node(&mut node, ts, input, weight);
            *ir = node.map(Ir);
            return;
        }
        let Some(bucket) = bucket.filter(|b| !b.is_null()) else {
            return;
        };
        let mut buckets = match ir.take() {
            Some(Ir(Node::Keyed(m))) => m,
            _ => BTreeMap::new(),
        };
        let key = bucket.key_string();
        let mut node = buckets.remove(&key);
        self.update_node(&mut node, ts, input, weight);
        if let Some(n) = node {
            buckets.insert(key, n);
        }
        if !buckets.is_empty() {
            *ir = Some(Ir(Node::Keyed(buckets)));
        }
    }

    fn update_node(&self, node: &mut Option<Node>, ts: i64, input: &Value, w: i64) {
        match (self.shape, input) {
            (InputShape::Map, Value::Map(entries)) => {
                let mut keyed = match node.take() {
                    Some(Node::Keyed(m)) => m,
                    _ => BTreeMap::new(),
                };
                for (k, v) in entries.iter().filter(|(_, v)| !v.is_null()) {
                    let key = k.key_string();
                    let mut slot = keyed.remove(&key);
                    self.update_leaf(&mut slot, ts, v, w);
                    if let Some(n) = slot {
                        keyed.insert(key, n);
                    }
                }
                *node = Some(Node::Keyed(keyed));
            }
            (InputShape::List, Value::List(items)) => {
                for item in items.iter().filter(|v| !v.is_null()) {
                    self.update_leaf(node, ts, item, w);
                }
            }
            _ => self.update_leaf(node, ts, input, w),
        }
    }

    fn update_leaf(&self, node: &mut Option<Node>, ts: i64, v: &Value, w: i64) {
        match node {
            Some(Node::Leaf(leaf)) => leaf.add(&self.spec, ts, v, w),
            None => {
                let mut leaf = Leaf::zero(&self.spec, ts, v);
                leaf.add(&self.spec, ts, v, w);
                *node = Some(Node::Leaf(leaf));
            }
            Some(Node::Keyed(_)) => debug_assert!(false, "a plain value reached a keyed IR"),
        }
    }

    /// Merges `other` (a later or disjoint-time partial) into `into`.
    pub fn merge(&self, into: &mut Option<Ir>, other: &Option<Ir>) {
        match (into.as_mut(), other) {
            (_, None) => {}
            (None, Some(o)) => *into = Some(o.clone()),
            (Some(Ir(a)), Some(Ir(b))) => self.merge_node(a, b),
        }
    }

    fn merge_node(&self, a: &mut Node, b: &Node) {
        match (a, b) {
            (Node::Leaf(x), Node::Leaf(y)) => x.merge(&self.spec, y),
            (Node::Keyed(x), Node::Keyed(y)) => {
                for (key, node) in y {
                    match x.get_mut(key) {
                        Some(existing) => self.merge_node(existing, node),
                        None => {
                            x.insert(key.clone(), node.clone());
                        }
                    }
                }
            }
            _ => debug_assert!(false, "merging IRs of different shapes"),
        }
    }

    /// The output value: NULL when no non-null input reached the IR; see the module doc.
    pub fn finalize(&self, ir: &Option<Ir>) -> Value {
        match ir {
            None => Value::Null,
            Some(Ir(node)) => self.finalize_node(node, self.bucketed),
        }
    }

    fn finalize_node(&self, node: &Node, bucket_level: bool) -> Value {
        match node {
            Node::Leaf(leaf) => sanitize(leaf.finalize(&self.spec)),
            Node::Keyed(m) => Value::Map(
                m.iter()
                    .map(|(k, n)| (Value::Str(k.clone()), self.finalize_node(n, false)))
                    .filter(|(_, v)| !(bucket_level && v.is_null()))
                    .collect(),
            ),
        }
    }
}

/// NaN and ±Infinity doubles become NULL (Chronon's `numberSanityCheck`).
fn sanitize(v: Value) -> Value {
    match v {
        Value::Double(b) if !f64::from_bits(b).is_finite() => Value::Null,
        Value::Map(entries) => {
            Value::Map(entries.into_iter().map(|(k, v)| (k, sanitize(v))).collect())
        }
        other => other,
    }
}
