//! The demo tables' schemas and their Arrow batches, one function per table. Column order and
//! types follow the TABLES section of `dataflows/README.md`; every column is nullable.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::world::{Checkout, PageView, Purchase, Refund, World};
use crate::error::{Error, Result};
use crate::partition::DAY_MS;

const S: DataType = DataType::Utf8;
const L: DataType = DataType::Int64;
const D: DataType = DataType::Float64;

pub(crate) const CHECKOUTS: &str = "data.checkouts";
pub(crate) const PURCHASES: &str = "data.purchases";
pub(crate) const PAGE_VIEWS: &str = "data.page_views";
pub(crate) const USERS: &str = "data.users";
pub(crate) const MERCHANTS: &str = "data.merchants";
pub(crate) const REFUNDS: &str = "data.refunds";
pub(crate) const CHECKOUT_OUTCOMES: &str = "data.checkout_outcomes";
pub(crate) const LEGACY: &str = "data.legacy_checkout_features";
pub(crate) const EXTERNAL: &str = "data.external_user_backfill";

/// Every demo table with its columns, in the order they are written.
pub(crate) const TABLES: &[(&str, &[(&str, DataType)])] = &[
    (
        CHECKOUTS,
        &[
            ("event_id", S),
            ("user_id", S),
            ("merchant_id", S),
            ("amount", D),
            ("ts", L),
        ],
    ),
    (
        PURCHASES,
        &[
            ("user_id", S),
            ("merchant_id", S),
            ("amount_cents", L),
            ("category", S),
            ("ts", L),
        ],
    ),
    (
        PAGE_VIEWS,
        &[("user_id", S), ("page", S), ("dwell_ms", L), ("ts", L)],
    ),
    (
        USERS,
        &[
            ("user_id", S),
            ("country", S),
            ("account_age_days", L),
            ("is_verified", L),
        ],
    ),
    (
        MERCHANTS,
        &[("merchant_id", S), ("merchant_category", S), ("rating", D)],
    ),
    (REFUNDS, &[("user_id", S), ("refund_cents", L), ("ts", L)]),
    (
        CHECKOUT_OUTCOMES,
        &[("user_id", S), ("is_fraud", L), ("dispute_count", L)],
    ),
    (
        LEGACY,
        &[
            ("event_id", S),
            ("legacy_purchase_sum_7d", L),
            ("legacy_purchase_count_7d", L),
        ],
    ),
    (
        EXTERNAL,
        &[
            ("event_id", S),
            ("request_context", S),
            ("ext_service_user_country", S),
            ("ext_service_user_phone_country", S),
        ],
    ),
];

/// The Arrow schema of a demo table.
pub(crate) fn schema(table: &str) -> SchemaRef {
    let (_, cols) = TABLES.iter().find(|t| t.0 == table).expect("a demo table");
    Arc::new(Schema::new(
        cols.iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

fn batch(table: &str, cols: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema(table), cols)
        .map_err(|e| Error::arrow(format!("building demo table {table}"), e))
}

fn strs<'a>(it: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(it))
}
fn longs(it: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(it))
}
fn doubles(it: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(it))
}

impl World {
    fn user_id(&self, u: usize) -> &str {
        &self.users[u].id
    }
    fn merchant_id(&self, m: usize) -> &str {
        &self.merchants[m].id
    }
}

pub(crate) fn checkouts(w: &World, rows: &[Checkout]) -> Result<RecordBatch> {
    batch(
        CHECKOUTS,
        vec![
            strs(rows.iter().map(|c| Some(c.event_id.as_str()))),
            strs(rows.iter().map(|c| c.user.map(|u| w.user_id(u)))),
            strs(rows.iter().map(|c| Some(w.merchant_id(c.merchant)))),
            doubles(rows.iter().map(|c| Some(c.amount))),
            longs(rows.iter().map(|c| Some(c.ts))),
        ],
    )
}

pub(crate) fn purchases(w: &World, rows: &[Purchase]) -> Result<RecordBatch> {
    batch(
        PURCHASES,
        vec![
            strs(rows.iter().map(|p| Some(w.user_id(p.user)))),
            strs(rows.iter().map(|p| Some(w.merchant_id(p.merchant)))),
            longs(rows.iter().map(|p| p.amount_cents)),
            strs(rows.iter().map(|p| Some(p.category))),
            longs(rows.iter().map(|p| Some(p.ts))),
        ],
    )
}

pub(crate) fn page_views(w: &World, rows: &[PageView]) -> Result<RecordBatch> {
    batch(
        PAGE_VIEWS,
        vec![
            strs(rows.iter().map(|p| Some(w.user_id(p.user)))),
            strs(rows.iter().map(|p| p.page)),
            longs(rows.iter().map(|p| Some(p.dwell_ms))),
            longs(rows.iter().map(|p| Some(p.ts))),
        ],
    )
}

/// The full user snapshot at the end of the day `offset` days after the spec's start.
pub(crate) fn users(w: &World, offset: i32) -> Result<RecordBatch> {
    let us = &w.users;
    batch(
        USERS,
        vec![
            strs(us.iter().map(|u| Some(u.id.as_str()))),
            strs(us.iter().map(|u| Some(u.country))),
            longs(us.iter().map(|u| Some(u.base_age_days + offset as i64))),
            longs(
                us.iter()
                    .map(|u| Some(u.verified_from.is_some_and(|v| offset >= v) as i64)),
            ),
        ],
    )
}

pub(crate) fn merchants(w: &World, ratings: &[Option<f64>]) -> Result<RecordBatch> {
    let ms = &w.merchants;
    batch(
        MERCHANTS,
        vec![
            strs(ms.iter().map(|m| Some(m.id.as_str()))),
            strs(ms.iter().map(|m| Some(m.category))),
            doubles(ratings.iter().copied()),
        ],
    )
}

pub(crate) fn refunds(w: &World, rows: &[Refund]) -> Result<RecordBatch> {
    batch(
        REFUNDS,
        vec![
            strs(rows.iter().map(|r| Some(w.user_id(r.user)))),
            longs(rows.iter().map(|r| Some(r.refund_cents))),
            longs(rows.iter().map(|r| Some(r.ts))),
        ],
    )
}

/// Outcomes of the users that have checked out so far: `seen[u]` and `disputes[u]` (refunds
/// so far) are cumulative up to the end of the day.
pub(crate) fn checkout_outcomes(w: &World, seen: &[bool], disputes: &[i64]) -> Result<RecordBatch> {
    let ids: Vec<usize> = (0..w.users.len()).filter(|&u| seen[u]).collect();
    batch(
        CHECKOUT_OUTCOMES,
        vec![
            strs(ids.iter().map(|&u| Some(w.user_id(u)))),
            longs(ids.iter().map(|&u| Some(w.users[u].fraud as i64))),
            longs(ids.iter().map(|&u| Some(disputes[u]))),
        ],
    )
}

/// The legacy pipeline's 7-day purchase SUM/COUNT of `amount_cents` for each checkout: an exact
/// sliding window `[ts - 7d, ts)` over the user's purchases with a non-null amount (no hop
/// rounding, so values can differ slightly from Chronon's). Both are null for a checkout
/// without a user or without such purchases. `history[u]` is user `u`'s purchases sorted by ts.
pub(crate) fn legacy(
    rows: &[Checkout],
    history: &[Vec<(i64, Option<i64>)>],
) -> Result<RecordBatch> {
    let feats: Vec<Option<(i64, i64)>> = rows
        .iter()
        .map(|c| {
            let h = &history[c.user?];
            let lo = h.partition_point(|p| p.0 < c.ts - 7 * DAY_MS);
            let hi = h.partition_point(|p| p.0 < c.ts);
            let amounts = h[lo..hi].iter().filter_map(|p| p.1);
            let (sum, count) = amounts.fold((0, 0), |(s, n), a| (s + a, n + 1));
            (count > 0).then_some((sum, count))
        })
        .collect();
    batch(
        LEGACY,
        vec![
            strs(rows.iter().map(|c| Some(c.event_id.as_str()))),
            longs(feats.iter().map(|f| f.map(|f| f.0))),
            longs(feats.iter().map(|f| f.map(|f| f.1))),
        ],
    )
}

/// The custom backfill of the external `service_user` features: the user's country and phone
/// country as the service would have answered (null without a user or when it did not answer).
pub(crate) fn external(
    w: &World,
    rows: &[Checkout],
    ext: &[(String, bool)],
) -> Result<RecordBatch> {
    let user = |i: usize| rows[i].user.filter(|_| ext[i].1).map(|u| &w.users[u]);
    batch(
        EXTERNAL,
        vec![
            strs(rows.iter().map(|c| Some(c.event_id.as_str()))),
            strs(ext.iter().map(|e| Some(e.0.as_str()))),
            strs((0..rows.len()).map(|i| user(i).map(|u| u.country))),
            strs((0..rows.len()).map(|i| user(i).map(|u| u.phone_country))),
        ],
    )
}
