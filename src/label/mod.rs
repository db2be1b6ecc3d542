//! Label joins (chronon-semantics §7): the label part's plan and validation ([`plan`]), the
//! label table's partitions ([`table`]) and the two labeled tables built from the feature
//! table and the label table ([`labeled`]). The label values themselves are computed by the
//! join's dataflow (`JoinRunner::label`).

pub mod labeled;
pub mod plan;
pub mod table;

pub use plan::{LabelPlan, LABEL_DS};

use crate::partition::Ds;

/// What a label run did.
#[derive(Debug, Default, Clone)]
pub struct LabelReport {
    /// The run's `label_ds` (`None` for a refresh of the maintained runs).
    pub label_ds: Option<Ds>,
    /// Left days of the run's range that exist, and those that do not.
    pub left_days: Vec<Ds>,
    pub missing_left: Vec<Ds>,
    /// Label partitions `(label_ds, ds)` written, and dropped because their left day is gone.
    pub written: Vec<(Ds, Ds)>,
    pub dropped: Vec<(Ds, Ds)>,
    /// Label source partitions the run's labels need that do not exist yet (immature
    /// windows or snapshots not landed): their labels are NULL or partial until they land.
    pub missing_sources: Vec<(String, Vec<Ds>)>,
    /// Label source rows read.
    pub source_rows: u64,
    /// Label keys that are NULL (their label is NULL), counted per left row and label part.
    pub null_key_rows: u64,
    /// Days of `_labeled` and `_labeled_latest` rewritten.
    pub labeled_written: Vec<Ds>,
    /// Left days labelled whose feature partition does not exist (run the join backfill).
    pub missing_features: Vec<Ds>,
}
