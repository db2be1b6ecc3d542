//! The point-in-time windows operator: a timely operator inside the differential dataflow
//! that keeps, per (join part, key), the group's rows, queries and tile cache
//! ([`super::group::KeyState`]) and turns each epoch's input changes into output changes.
//!
//! Differential's `reduce` would recompute a whole group on every change, which is quadratic
//! for hot keys; this operator instead recomputes only the queries a change reaches, each in
//! O(log window + head) through [`super::tiles`]. Updates are exchanged by group key, so each
//! group lives on one worker and its values do not depend on the number of workers.
//! An epoch is processed once the input frontier has passed it, in epoch order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::FastMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::CapabilitySet;

use super::group::KeyState;
use super::records::{GroupKey, Item, PartValues};
use super::spec::PartSpec;
use super::tiles::Layout;

type In = ((GroupKey, Item), u64, isize);
type Out = (PartValues, u64, isize);
/// Input updates waiting for their epoch to complete, by epoch, grouped by key as they
/// arrive (one copy of each update, never a flat buffer of the whole epoch regrouped later).
type Pending = BTreeMap<u64, FastMap<GroupKey, Vec<(Item, isize)>>>;

/// A hash of the group key that is the same in every process.
fn route(k: &GroupKey) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    k.hash(&mut h);
    h.finish()
}

/// The groups of one worker's operator, shared with the worker, which reads them between
/// epochs (to store aggregates, [`super::base`]).
pub type Groups = Rc<RefCell<FastMap<GroupKey, KeyState>>>;

/// Builds the operator over the collection of `(group, item)` updates; its groups live in
/// `groups`.
pub fn windows<'scope>(
    items: VecCollection<'scope, u64, (GroupKey, Item), isize>,
    specs: Arc<Vec<PartSpec>>,
    groups: Groups,
) -> VecCollection<'scope, u64, PartValues, isize> {
    let layouts: Vec<Layout> = specs.iter().map(Layout::new).collect();
    items
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<Out>>, _, _, _>(
            Exchange::new(|u: &In| route(&(u.0).0)),
            "PointInTimeWindows",
            move |_cap, _info| {
                let mut pending: Pending = BTreeMap::new();
                let mut caps: CapabilitySet<u64> = CapabilitySet::new();
                move |(input, frontier), output| {
                    let mut groups = groups.borrow_mut();
                    input.for_each(|cap, data| {
                        if let Some(c) = cap.retain_least(0) {
                            caps.insert(c);
                        }
                        for ((k, item), t, r) in data.drain(..) {
                            pending
                                .entry(t)
                                .or_default()
                                .entry(k)
                                .or_default()
                                .push((item, r));
                        }
                    });
                    while let Some((&t, _)) = pending.first_key_value() {
                        if frontier.less_equal(&t) {
                            break;
                        }
                        let by_key = pending.remove(&t).unwrap_or_default();
                        let mut out: Vec<Out> = Vec::new();
                        let mut changes = Vec::new();
                        for (k, ups) in by_key {
                            let part = k.0;
                            // the key is cloned only for a group seen the first time
                            let state = match groups.get_mut(&k) {
                                Some(state) => state,
                                None => groups.entry(k.clone()).or_default(),
                            };
                            state.apply(
                                &specs[part as usize],
                                &layouts[part as usize],
                                ups,
                                &mut changes,
                            );
                            if state.is_empty() {
                                groups.remove(&k);
                            }
                            out.extend(
                                changes
                                    .drain(..)
                                    .map(|(row, values)| ((row, part, values), t, 1)),
                            );
                        }
                        if !out.is_empty() {
                            let cap = caps.delayed(&t);
                            output.session(&cap).give_iterator(out.into_iter());
                        }
                    }
                    // hold capabilities only for the epochs still pending
                    match pending.first_key_value() {
                        Some((&t, _)) => caps.downgrade([t]),
                        None => caps = CapabilitySet::new(),
                    }
                }
            },
        )
        .as_collection()
}
