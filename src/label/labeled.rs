//! The labeled tables of chronon-semantics §7.7, materialized per left day (the warehouse
//! has no views):
//!
//! - `<join>_labeled`: the feature table left-outer-joined with every label version of the
//!   label table on the row identifier; label columns get the `label_` prefix (columns that
//!   already start with `label`, such as `label_ds`, keep their name).
//! - `<join>_labeled_latest`: per left day with labels, only the rows of its latest
//!   `label_ds`; days without labels keep all their rows. As in Chronon, a feature row on a
//!   day that has labels but has no label row of the latest version is left out.
//!
//! Each partition records a fingerprint of its inputs (the feature partition and the label
//! partitions of its day) in its Parquet footer, so a refresh rewrites exactly the days whose
//! feature or label partitions changed since — whichever job changed them, and also after a
//! crash between the two writes.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;

use super::{table, LabelPlan, LABEL_DS};
use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::sql::scan::{ident, literal};
use crate::sql::Session;
use crate::warehouse::TableName;

/// Footer key of the inputs fingerprint.
pub const INPUTS_KEY: &str = "weft.labeled.inputs";

/// Brings both labeled tables up to date: rewrites the days whose inputs changed and drops
/// those whose feature partition is gone. Does nothing before the first label run. Returns the
/// days rewritten.
pub fn refresh(engine: &Session, lp: &LabelPlan) -> Result<Vec<Ds>> {
    let wh = engine.warehouse();
    let labels = table::partitions(wh, &lp.labels)?;
    if labels.is_empty() && !wh.exists(&lp.labeled) {
        return Ok(vec![]);
    }
    let features: BTreeMap<Ds, u64> = wh
        .partition_fingerprints(&lp.features, "ds")?
        .into_iter()
        .collect();
    let existing: BTreeSet<Ds> = wh.partitions(&lp.labeled)?.into_iter().collect();
    let existing_latest: BTreeSet<Ds> = wh.partitions(&lp.labeled_latest)?.into_iter().collect();
    let mut days: BTreeSet<Ds> = features.keys().copied().collect();
    days.extend(labels.keys().copied());
    days.extend(existing.iter().copied());
    days.extend(existing_latest.iter().copied());
    let latest = table::latest(&labels);
    // the days whose inputs changed, with their new fingerprints
    let mut stale: Vec<(Ds, String)> = Vec::new();
    for ds in days {
        let spec = [("ds".to_string(), ds.to_string())];
        let Some(feature_fp) = features.get(&ds) else {
            wh.drop_partition(&lp.labeled, &spec)?;
            wh.drop_partition(&lp.labeled_latest, &spec)?;
            continue;
        };
        let mut h = std::hash::DefaultHasher::new();
        (feature_fp, labels.get(&ds)).hash(&mut h);
        let fp = h.finish().to_string();
        let stored = |t: &TableName, has: bool| -> Result<Option<String>> {
            if !has {
                return Ok(None);
            }
            Ok(wh.partition_metadata(t, ds)?.get(INPUTS_KEY).cloned())
        };
        if stored(&lp.labeled, existing.contains(&ds))?.as_ref() != Some(&fp)
            || stored(&lp.labeled_latest, existing_latest.contains(&ds))?.as_ref() != Some(&fp)
        {
            stale.push((ds, fp));
        }
    }
    let mut written = Vec::new();
    if stale.is_empty() {
        return Ok(written);
    }
    engine.register_table(&lp.features)?;
    engine.register_table(&lp.labels)?;
    let select = select_list(engine, lp)?;
    // one query per chunk of days (a query per day would list the tables' files each time)
    for chunk in stale.chunks(DAYS_PER_QUERY) {
        let days: Vec<Ds> = chunk.iter().map(|(d, _)| *d).collect();
        let mut by_day = labeled_days(engine, lp, &select, &days)?;
        for (ds, fp) in chunk {
            let all = by_day.remove(ds).expect("every queried day has a batch");
            let kept = latest_rows(&all, latest.get(ds).copied())?;
            let spec = [("ds".to_string(), ds.to_string())];
            let meta = [(INPUTS_KEY.to_string(), fp.clone())];
            for (t, b) in [(&lp.labeled, all), (&lp.labeled_latest, kept)] {
                wh.write_partition_with(t, &spec, b.schema(), &[b], &meta)?;
            }
            written.push(*ds);
        }
    }
    if !written.is_empty() {
        let mut props = BTreeMap::new();
        props.insert("label_table".to_string(), lp.labels.to_string());
        props.insert("feature_table".to_string(), lp.features.to_string());
        wh.set_properties(&lp.labeled, &props)?;
        wh.set_properties(&lp.labeled_latest, &props)?;
    }
    Ok(written)
}

/// The columns of `_labeled` in Chronon's order — row identifier, the other feature columns,
/// then the label table's columns (prefixed) and `label_ds` — as a SQL select list over
/// `l` (features) and `r` (labels), without the `ds` partition column.
fn select_list(engine: &Session, lp: &LabelPlan) -> Result<Vec<String>> {
    let wh = engine.warehouse();
    let feature_cols: Vec<String> = wh
        .table_schema(&lp.features)?
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let label_cols: Vec<String> = wh
        .table_schema_under(&lp.labels, &[LABEL_DS.to_string(), "ds".to_string()])?
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let ids: Vec<&String> = lp.row_identifier.iter().filter(|c| *c != "ds").collect();
    let mut select = Vec::new();
    for c in &ids {
        if !feature_cols.contains(c) {
            return Err(Error::data(
                &lp.features.to_string(),
                None,
                format!("row identifier column `{c}` is not in the feature table"),
            )
            .with_fix("rerun the join backfill so the feature table has the join's rowIds"));
        }
        select.push(format!("l.{}", ident(c)));
    }
    for c in feature_cols.iter().filter(|c| !ids.contains(c)) {
        select.push(format!("l.{}", ident(c)));
    }
    for c in label_cols.iter().filter(|c| !ids.contains(c)) {
        if c.starts_with("label") {
            select.push(format!("r.{}", ident(c)));
        } else {
            select.push(format!(
                "r.{} AS {}",
                ident(c),
                ident(&format!("label_{c}"))
            ));
        }
    }
    select.push(format!("r.{}", ident(LABEL_DS)));
    Ok(select)
}

/// How many days one `_labeled` query covers.
const DAYS_PER_QUERY: usize = 31;

/// Every `_labeled` row of the given days (feature rows ⟕ label rows of every version), by day.
fn labeled_days(
    engine: &Session,
    lp: &LabelPlan,
    select: &[String],
    days: &[Ds],
) -> Result<BTreeMap<Ds, RecordBatch>> {
    let on: Vec<String> = lp
        .row_identifier
        .iter()
        .map(|c| format!("l.{0} = r.{0}", ident(c)))
        .collect();
    let order: Vec<String> = [format!("l.{}", ident("ds"))]
        .into_iter()
        .chain(
            lp.row_identifier
                .iter()
                .filter(|c| *c != "ds")
                .map(|c| format!("l.{}", ident(c))),
        )
        .chain([format!("r.{}", ident(LABEL_DS))])
        .collect();
    let list: Vec<String> = days.iter().map(|d| literal(&d.to_string())).collect();
    let list = list.join(", ");
    let sql = format!(
        "SELECT {}, l.ds AS {DAY_COLUMN} FROM {} l LEFT JOIN (SELECT * FROM {} WHERE ds IN ({list})) r ON {} WHERE l.ds IN ({list}) ORDER BY {}",
        select.join(", "),
        lp.features,
        lp.labels,
        on.join(" AND "),
        order.join(", ")
    );
    let context = format!(
        "building {} partitions ds={}…{}",
        lp.labeled,
        days[0],
        days[days.len() - 1]
    );
    let (schema, batches) = engine.query_with_schema(&sql, &context)?;
    let all =
        arrow::compute::concat_batches(&schema, &batches).map_err(|e| Error::arrow(&context, e))?;
    let day_col = schema.fields().len() - 1;
    let keep: Vec<usize> = (0..day_col).collect();
    let day_of = arrow::compute::cast(all.column(day_col), &arrow::datatypes::DataType::Utf8)
        .map_err(|e| Error::arrow(&context, e))?;
    let day_of = day_of.as_string::<i32>();
    let mut out = BTreeMap::new();
    // rows come sorted by day: each day is one slice
    let mut start = 0;
    for i in 1..=all.num_rows() {
        if i == all.num_rows() || day_of.value(i) != day_of.value(start) {
            let ds = Ds::parse(day_of.value(start))?;
            let slice = all
                .slice(start, i - start)
                .project(&keep)
                .map_err(|e| Error::arrow(&context, e))?;
            out.insert(ds, slice);
            start = i;
        }
    }
    let empty = all
        .project(&keep)
        .map_err(|e| Error::arrow(&context, e))?
        .slice(0, 0);
    for d in days {
        out.entry(*d).or_insert_with(|| empty.clone());
    }
    Ok(out)
}

/// The helper column that carries each row's day out of the `_labeled` query.
const DAY_COLUMN: &str = "__weft_labeled_day";

/// The rows `_labeled_latest` keeps of a day: those of the latest label version when the day
/// has labels (rows without a label of that version drop out, as in Chronon), else all.
fn latest_rows(all: &RecordBatch, latest: Option<Ds>) -> Result<RecordBatch> {
    let Some(latest) = latest else {
        return Ok(all.clone());
    };
    let want = latest.to_string();
    let col = all
        .column_by_name(LABEL_DS)
        .expect("the select list ends with label_ds");
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)
        .map_err(|e| Error::arrow("reading label_ds", e))?;
    let col = col.as_string::<i32>();
    let mask: arrow::array::BooleanArray = (0..col.len())
        .map(|i| Some(col.is_valid(i) && col.value(i) == want))
        .collect();
    filter_record_batch(all, &mask).map_err(|e| Error::arrow("selecting the latest labels", e))
}
