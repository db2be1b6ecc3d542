//! The join runner's label side (chronon-semantics §7): label GroupBys are parts of the join's
//! own dataflow. For every `label_ds` run the runner maintains, each distinct label key of the
//! left rows in the run's left range asks its label part for values as of the end of
//! `label_ds` — entity labels read snapshot `label_ds`, aggregated labels the W days up to
//! its end — once per (part, key, `label_ds`), however many left rows share the key.
//!
//! Left partitions and label source partitions are synced like the feature side's, so a new
//! run, a new entity snapshot, label events arriving late (a maturing window), a re-landed
//! left day or source day are all deltas: only the label partitions `(label_ds, ds)` whose
//! values change are rewritten, then the labeled tables of those days.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::{InputId, Live};
use crate::aggregate::codec;
use crate::aggregate::value::to_array;
use crate::dataflow::records::{row_ds, row_id, row_index, Item, Key, PartValues, Value};
use crate::dataflow::spec::PartKind;
use crate::dataflow::Update;
use crate::error::{Error, Result};
use crate::join::inputs::{self, EventStats};
use crate::join::output;
use crate::join::part::{needed_days, part_input_types, part_spec};
use crate::label::plan::{LabelPlan, LABEL_DS};
use crate::label::LabelReport;
use crate::partition::Ds;
use crate::sql::Session;

/// What a running join keeps for its labels.
pub(super) struct LabelLive {
    /// Label fields per label part, in label-part order.
    fields: Vec<Vec<Field>>,
    /// Schema of a label table file: the row identifier without `ds`, then label columns.
    schema: SchemaRef,
    /// The `label_ds` runs maintained.
    runs: BTreeSet<Ds>,
    /// Label keys, interned: a key's id is its index.
    ids: HashMap<Key, u32>,
    keys: Vec<Key>,
    /// Left rows of each fed left day: per row, its key id per label part (`None`: a NULL key).
    row_keys: BTreeMap<Ds, Vec<Vec<Option<u32>>>>,
    /// Left rows asking for `(part, key id, label_ds)`, per left day.
    refs: HashMap<(u16, u32, Ds), BTreeMap<Ds, u32>>,
    /// Computed label values per `(label_ds, part, key id)` (several for an entity label
    /// with several snapshot rows per key).
    values: HashMap<(Ds, u16, u32), Vec<Vec<Value>>>,
    /// `(label_ds, left ds)` pairs whose queries were fed.
    fed: BTreeSet<(Ds, Ds)>,
    /// Label partitions whose values changed in an epoch sealed by the feature side.
    pending: BTreeSet<(Ds, Ds)>,
}

/// The label side of a newly started dataflow: label part specs to append after the feature
/// parts, and the label state. Types come from the label sources' schemas.
pub(super) fn start(
    engine: &Session,
    lp: &LabelPlan,
    left_schema: &SchemaRef,
    left_table: &str,
) -> Result<(Vec<crate::dataflow::spec::PartSpec>, LabelLive)> {
    let mut specs = Vec::new();
    let mut fields = Vec::new();
    for p in &lp.parts {
        let types = part_input_types(engine, p, &|s, schema| {
            inputs::check_key_types(
                left_schema,
                &p.left_keys,
                schema,
                &p.right_keys,
                left_table,
                &s.scan.table,
            )
        })?;
        fields.push(output::part_fields(p, &types)?);
        specs.push(part_spec(p, &types));
    }
    let mut cols: Vec<Field> = Vec::new();
    for c in lp.row_identifier.iter().filter(|c| *c != "ds") {
        let f = left_schema.field_with_name(c).map_err(|_| {
            Error::data(
                left_table,
                None,
                format!("row identifier column `{c}` is not in the join's left"),
            )
            .with_fix("select it in the left query, or fix the join's rowIds")
        })?;
        cols.push(f.clone().with_nullable(true));
    }
    cols.extend(fields.iter().flatten().cloned());
    let schema = Arc::new(Schema::new(cols));
    Ok((
        specs,
        LabelLive {
            fields,
            schema,
            runs: BTreeSet::new(),
            ids: HashMap::new(),
            keys: Vec::new(),
            row_keys: BTreeMap::new(),
            refs: HashMap::new(),
            values: HashMap::new(),
            fed: BTreeSet::new(),
            pending: BTreeSet::new(),
        },
    ))
}

/// Splits an epoch's part outputs: feature parts stay in `parts`, label parts update the label
/// values. Returns the label partitions `(label_ds, ds)` whose values changed.
pub(super) fn take_label_outputs(
    live: &mut Live,
    first_label: u16,
    parts: &mut Vec<PartValues>,
) -> BTreeSet<(Ds, Ds)> {
    let mut touched = BTreeSet::new();
    let Some(ll) = live.labels.as_mut() else {
        return touched;
    };
    let (labels, features): (Vec<PartValues>, Vec<PartValues>) =
        parts.drain(..).partition(|(_, p, _)| *p >= first_label);
    *parts = features;
    for (row, part, encoded) in labels {
        let label_ds = row_ds(row);
        let id = row_index(row);
        let mut vals: Vec<Vec<Value>> = encoded.iter().map(|b| codec::decode(b)).collect();
        vals.sort();
        if vals.is_empty() {
            ll.values.remove(&(label_ds, part, id));
        } else {
            ll.values.insert((label_ds, part, id), vals);
        }
        if let Some(days) = ll.refs.get(&(part, id, label_ds)) {
            touched.extend(days.keys().map(|&ds| (label_ds, ds)));
        }
    }
    touched
}

/// As [`take_label_outputs`] for an epoch the feature side sealed: the label partitions it
/// changed are written by the next label run.
pub(super) fn keep_pending(live: &mut Live, first_label: u16, parts: &mut Vec<PartValues>) {
    let touched = take_label_outputs(live, first_label, parts);
    if let Some(ll) = live.labels.as_mut() {
        ll.pending.extend(touched);
    }
}

/// The columns the label side reads from a left batch.
fn project_left(lp: &LabelPlan, b: &RecordBatch) -> Result<RecordBatch> {
    let cols = lp.left_columns();
    let idx: Vec<usize> = cols
        .iter()
        .map(|c| {
            b.schema().index_of(c).map_err(|_| {
                Error::Usage(format!(
                    "left of join: column `{c}` (a label key or row identifier) is not selected"
                ))
            })
        })
        .collect::<Result<_>>()?;
    b.project(&idx)
        .map_err(|e| Error::arrow("projecting the left for labels", e))
}

impl LabelLive {
    fn intern(&mut self, k: Key) -> u32 {
        if let Some(&id) = self.ids.get(&k) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.ids.insert(k.clone(), id);
        self.keys.push(k);
        id
    }

    /// Key ids per row and label part of a left batch.
    fn key_ids(
        &mut self,
        lp: &LabelPlan,
        b: &RecordBatch,
        ds: Ds,
        table: &str,
        null_keys: &mut u64,
    ) -> Result<Vec<Vec<Option<u32>>>> {
        let what = format!("left {table} partition ds={ds}");
        let arrays: Vec<Vec<ArrayRef>> = lp
            .parts
            .iter()
            .map(|p| inputs::key_arrays(b, &p.left_keys, &what))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(b.num_rows());
        for i in 0..b.num_rows() {
            let row: Vec<Option<u32>> = arrays
                .iter()
                .map(|a| inputs::encode_key(a, i).map(|k| self.intern(k)))
                .collect();
            *null_keys += row.iter().filter(|k| k.is_none()).count() as u64;
            out.push(row);
        }
        Ok(out)
    }

    /// Adds (`sign` 1) or removes (−1) the left rows of day `ds` as askers of run `label_ds`;
    /// a (part, key, run) gets its query when its first asker arrives and loses it with the last.
    fn ask(&mut self, lp: &LabelPlan, label_ds: Ds, ds: Ds, sign: i32, updates: &mut Vec<Update>) {
        let Some(rows) = self.row_keys.get(&ds) else {
            return;
        };
        let mut counts: HashMap<(u16, u32), i32> = HashMap::new();
        for row in rows {
            for (j, k) in row.iter().enumerate() {
                if let Some(id) = k {
                    *counts.entry((lp.parts[j].index, *id)).or_default() += sign;
                }
            }
        }
        let q = label_ds.shift(1).start_millis();
        for ((part, id), n) in counts {
            let entry = self.refs.entry((part, id, label_ds)).or_default();
            let before = entry.values().sum::<u32>();
            let c = entry.entry(ds).or_default();
            *c = (*c as i32 + n).max(0) as u32;
            if *c == 0 {
                entry.remove(&ds);
            }
            let after = entry.values().sum::<u32>();
            if after == 0 {
                self.refs.remove(&(part, id, label_ds));
            }
            let r = match (before, after) {
                (0, a) if a > 0 => 1,
                (b, 0) if b > 0 => -1,
                _ => continue,
            };
            updates.push((
                (
                    (part, self.keys[id as usize].clone()),
                    Item::Query {
                        row: row_id(label_ds, id),
                        q,
                        ds: label_ds.0,
                    },
                ),
                r,
            ));
        }
    }

    /// One label partition `(label_ds, ds)` from the left rows of `ds`: the row identifier
    /// and every label part's values, one row per distinct row identifier (§7.4 step 4: of
    /// rows sharing an identifier, weft keeps the one with the smallest label values, so the
    /// choice does not depend on read order).
    fn partition(
        &self,
        lp: &LabelPlan,
        label_ds: Ds,
        ds: Ds,
        left: &RecordBatch,
    ) -> Result<RecordBatch> {
        let ctx = || {
            format!(
                "assembling {} partition label_ds={label_ds}/ds={ds}",
                lp.labels
            )
        };
        let rows = &self.row_keys[&ds];
        let n_ids = lp.row_identifier.len() - 1;
        let conv = RowConverter::new(
            left.columns()[..n_ids]
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )
        .map_err(|e| Error::arrow(ctx(), e))?;
        let ids = conv
            .convert_columns(&left.columns()[..n_ids])
            .map_err(|e| Error::arrow(ctx(), e))?;
        let label_row = |i: usize| -> Vec<Value> {
            let mut v = Vec::new();
            for (j, p) in lp.parts.iter().enumerate() {
                let width = self.fields[j].len();
                let found = rows[i][j].and_then(|id| self.values.get(&(label_ds, p.index, id)));
                match found.and_then(|vals| vals.first()) {
                    Some(vals) => v.extend(vals.iter().cloned()),
                    None => v.extend(std::iter::repeat_n(Value::Null, width)),
                }
            }
            v
        };
        // the survivor per row identifier, in order of first appearance
        let mut chosen: HashMap<arrow::row::Row<'_>, (usize, Vec<Value>)> = HashMap::new();
        let mut order = Vec::new();
        for i in 0..left.num_rows() {
            let labels = label_row(i);
            match chosen.get_mut(&ids.row(i)) {
                Some(best) if labels < best.1 => *best = (i, labels),
                Some(_) => {}
                None => {
                    order.push(ids.row(i));
                    chosen.insert(ids.row(i), (i, labels));
                }
            }
        }
        let picked: Vec<&(usize, Vec<Value>)> = order.iter().map(|r| &chosen[r]).collect();
        let take = UInt32Array::from(picked.iter().map(|(i, _)| *i as u32).collect::<Vec<_>>());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for c in &left.columns()[..n_ids] {
            let c = arrow::compute::take(c, &take, None).map_err(|e| Error::arrow(ctx(), e))?;
            columns.push(c);
        }
        for (k, f) in self.schema.fields()[n_ids..].iter().enumerate() {
            let vals: Vec<Value> = picked.iter().map(|(_, v)| v[k].clone()).collect();
            columns
                .push(to_array(f.data_type(), &vals).map_err(|e| {
                    Error::internal(format!("{}: column {}: {e}", ctx(), f.name()))
                })?);
        }
        // the identifier columns keep the left's types; the schema says nullable
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::arrow(ctx(), e))
    }
}

/// Runs (or refreshes) label run `label_ds` on a live join: adds the run if new, syncs the left
/// days every maintained run reads and the label source partitions they need, seals, and
/// writes the label partitions whose values changed.
pub(super) fn run(
    engine: &Session,
    lp: &LabelPlan,
    live: &mut Live,
    left_scan: &crate::sql::scan::Scan,
    label_ds: Option<Ds>,
    report: &mut LabelReport,
) -> Result<BTreeSet<(Ds, Ds)>> {
    let left_table = left_scan.table.as_str();
    // label parts follow the feature parts in the dataflow
    let first_label = lp.parts.first().map_or(u16::MAX, |p| p.index);
    let wh = engine.warehouse().clone();
    // A label table with no partitions (never written, or every partition removed) fails the
    // run before anything changes, so the runner stays as it was and a later run, once the
    // table has partitions again, picks up from there.
    let mut source_fps = lp
        .parts
        .iter()
        .flat_map(|p| &p.sources)
        .map(|s| s.scan.fingerprints(&wh))
        .collect::<Result<Vec<_>>>()?
        .into_iter();
    let mut dirty: BTreeSet<(Ds, Ds)> = BTreeSet::new();
    let mut updates: Vec<Update> = Vec::new();
    {
        let ll = live.labels.as_mut().expect("label side started");
        dirty.extend(std::mem::take(&mut ll.pending));
        if let Some(d) = label_ds {
            ll.runs.insert(d);
        }
    }
    let runs: BTreeSet<Ds> = live.labels.as_ref().expect("started").runs.clone();
    // 1. Left days every run reads.
    let left_fps =
        wh.partition_fingerprints(&left_scan.table_name()?, &left_scan.partition_column())?;
    let available: BTreeSet<Ds> = left_fps.iter().map(|(d, _)| *d).collect();
    let wanted: BTreeSet<Ds> = runs
        .iter()
        .flat_map(|&d| lp.left_range(d).days().collect::<Vec<_>>())
        .collect();
    if let Some(d) = label_ds {
        report.left_days = lp
            .left_range(d)
            .days()
            .filter(|x| available.contains(x))
            .collect();
        report.missing_left = lp
            .left_range(d)
            .days()
            .filter(|x| !available.contains(x))
            .collect();
    }
    let read = |batches: Vec<RecordBatch>| -> Result<Vec<RecordBatch>> {
        let projected: Vec<RecordBatch> = batches
            .iter()
            .map(|b| project_left(lp, b))
            .collect::<Result<_>>()?;
        let Some(first) = projected.first() else {
            return Ok(vec![]);
        };
        let b = arrow::compute::concat_batches(&first.schema(), &projected)
            .map_err(|e| Error::arrow("combining left batches", e))?;
        Ok(vec![b])
    };
    let changes = live.feeds.sync(
        engine,
        left_scan,
        InputId::LabelLeft,
        &left_fps,
        &|d| wanted.contains(&d),
        &read,
    )?;
    let ll = live.labels.as_mut().expect("started");
    for c in changes {
        let pairs: Vec<Ds> = ll
            .fed
            .iter()
            .filter(|(_, ds)| *ds == c.ds)
            .map(|(d, _)| *d)
            .collect();
        if !c.old.is_empty() || ll.row_keys.contains_key(&c.ds) {
            for &d in &pairs {
                ll.ask(lp, d, c.ds, -1, &mut updates);
                dirty.insert((d, c.ds));
            }
            ll.row_keys.remove(&c.ds);
        }
        match c.new.first() {
            Some(b) => {
                let mut nulls = 0;
                let keys = ll.key_ids(lp, b, c.ds, left_table, &mut nulls)?;
                report.null_key_rows += nulls;
                ll.row_keys.insert(c.ds, keys);
                for &d in &pairs {
                    ll.ask(lp, d, c.ds, 1, &mut updates);
                }
            }
            None => {
                // the left day is gone: so are its label partitions
                for &d in &pairs {
                    ll.fed.remove(&(d, c.ds));
                    dirty.remove(&(d, c.ds));
                    wh.drop_partition(&lp.labels, &spec(d, c.ds))?;
                    report.dropped.push((d, c.ds));
                }
            }
        }
    }
    // new (run, left day) pairs
    for &d in &runs {
        for ds in lp.left_range(d).days() {
            if ll.row_keys.contains_key(&ds) && ll.fed.insert((d, ds)) {
                ll.ask(lp, d, ds, 1, &mut updates);
                dirty.insert((d, ds));
            }
        }
    }
    // 2. Label source partitions the runs need.
    for p in &lp.parts {
        let mut needed: BTreeSet<Ds> = BTreeSet::new();
        for &d in &runs {
            match p.kind {
                PartKind::Events => {
                    let q = d.shift(1).start_millis();
                    let (from, to) = needed_days(p, q, q);
                    needed.extend(crate::partition::PartitionRange::new(from, to).days());
                }
                _ => {
                    needed.insert(d);
                }
            }
        }
        for (si, s) in p.sources.iter().enumerate() {
            let fps = source_fps.next().expect("listed above, in the same order");
            let q = &s.scan.query;
            let lo = q.start_partition.as_deref().map(Ds::parse).transpose()?;
            let hi = q.end_partition.as_deref().map(Ds::parse).transpose()?;
            let in_bounds = |d: Ds| lo.is_none_or(|l| d >= l) && hi.is_none_or(|h| d <= h);
            let have: BTreeSet<Ds> = fps.iter().map(|(d, _)| *d).collect();
            if let Some(d) = label_ds {
                let own: Vec<Ds> = match p.kind {
                    // the window's own days: the W days up to label_ds (what is read beyond
                    // them for hop alignment holds no event of the window)
                    PartKind::Events => window_days(p)
                        .map(|w| crate::partition::PartitionRange::new(d.shift(-(w - 1)), d))
                        .map(|r| r.days().collect())
                        .unwrap_or_default(),
                    _ => vec![d],
                };
                let missing: Vec<Ds> = own
                    .into_iter()
                    .filter(|x| in_bounds(*x) && !have.contains(x))
                    .collect();
                if !missing.is_empty() {
                    report.missing_sources.push((s.scan.table.clone(), missing));
                }
            }
            let want = |d: Ds| needed.contains(&d) && in_bounds(d);
            let keep = |b: Vec<RecordBatch>| Ok(b);
            let id = InputId::Source {
                part: p.index,
                source: si as u16,
                mutations: false,
            };
            let changes = live.feeds.sync(engine, &s.scan, id, &fps, &want, &keep)?;
            for c in changes {
                for (batches, sign) in [(&c.old, -1isize), (&c.new, 1)] {
                    for b in batches {
                        let mut stats = EventStats::default();
                        let mut ups = inputs::source_rows(b, p, false, &s.scan.table, &mut stats)?;
                        if sign > 0 {
                            report.source_rows += stats.rows;
                        }
                        ups.iter_mut().for_each(|(_, r)| *r *= sign);
                        updates.extend(ups);
                    }
                }
            }
        }
    }
    // 3. Compute.
    live.dataflow.update(updates);
    let mut out = live.dataflow.seal_all()?;
    dirty.extend(take_label_outputs(live, first_label, &mut out.parts));
    if !out.parts.is_empty() || !out.boot.is_empty() {
        return Err(Error::internal(
            "a label epoch produced feature outputs; run the feature backfill and label runs one at a time",
        ));
    }
    // 4. Write the label partitions that changed.
    let ll = live.labels.as_ref().expect("started");
    let dirty: BTreeSet<(Ds, Ds)> = dirty.into_iter().filter(|p| ll.fed.contains(p)).collect();
    for &(d, ds) in &dirty {
        let left = live.feeds.batches(InputId::LabelLeft, ds);
        let Some(left) = left.first() else { continue };
        let batch = ll.partition(lp, d, ds, left)?;
        wh.write_partition(&lp.labels, &spec(d, ds), batch.schema(), &[batch])?;
        report.written.push((d, ds));
    }
    Ok(dirty)
}

/// The window of an aggregated label part in days (validated: one aggregation with one
/// bounded window of whole days, §7.2).
fn window_days(p: &crate::join::plan::PartPlan) -> Option<i32> {
    let aggs = p.group_by.aggregations.as_ref()?;
    let w = aggs
        .iter()
        .flat_map(crate::config::naming::windows_of)
        .next()?;
    (!crate::config::naming::is_unbounded(&w)).then_some(w.length)
}

/// The partition spec of label partition `(label_ds, ds)`.
pub(crate) fn spec(label_ds: Ds, ds: Ds) -> Vec<(String, String)> {
    vec![
        (LABEL_DS.to_string(), label_ds.to_string()),
        ("ds".to_string(), ds.to_string()),
    ]
}
