//! The label table's layout: partitions `label_ds=…/ds=…/` (chronon-semantics §7.6), listed
//! with fingerprints, and the latest label version of each day (§7.7).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::partition::Ds;
use crate::warehouse::{TableName, Warehouse};

use super::LABEL_DS;

/// Every label partition by left day: `ds → [(label_ds, fingerprint)]`, label versions
/// ascending.
pub fn partitions(wh: &Warehouse, labels: &TableName) -> Result<BTreeMap<Ds, Vec<(Ds, u64)>>> {
    let mut out: BTreeMap<Ds, Vec<(Ds, u64)>> = BTreeMap::new();
    for label_ds in wh.partitions_by(labels, LABEL_DS)? {
        for (ds, fp) in wh.sub_partition_fingerprints(labels, &[(LABEL_DS, label_ds)], "ds")? {
            out.entry(ds).or_default().push((label_ds, fp));
        }
    }
    Ok(out)
}

/// The latest label version of each left day that has labels: `max(label_ds)` (Chronon's
/// `getLatestLabelMapping`).
pub fn latest(parts: &BTreeMap<Ds, Vec<(Ds, u64)>>) -> BTreeMap<Ds, Ds> {
    parts
        .iter()
        .filter_map(|(ds, v)| v.iter().map(|(l, _)| *l).max().map(|l| (*ds, l)))
        .collect()
}
