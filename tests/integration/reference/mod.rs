//! A naive, independent reference for Chronon join outputs (chronon-semantics §2.3–§2.6,
//! §3.2–§3.4), used by the join tests to check weft's engine.
//!
//! Everything here is written from the spec, not from weft's engine code, and favours being
//! obviously correct over being fast: for every left row and every output column it loops over
//! every source row, applies the inclusion rule of the matrix cell, and aggregates the included
//! values from scratch. The reference reads the *compiled Join JSON* (the same text weft parses)
//! and in-memory tables ([`Db`]); [`data`] writes those tables to a warehouse and reads weft's
//! output back, [`conf`] builds compiled JSON, [`harness`] runs and compares.
//!
//! Where the spec leaves a result open (ties in FIRST/LAST/LAST_K, sketch-based operations, the
//! value of COUNT/SUM after every input was deleted by a mutation), the expectation is an [`E`]
//! that accepts exactly the allowed results.

#![allow(dead_code)]

pub mod conf;
pub mod data;
pub mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value as J;

/// A tiny deterministic generator for hand-built test data (the same seed, the same data).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number in `0..n`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

// ------------------------------------------------------------------------------------------
// Values, types, tables
// ------------------------------------------------------------------------------------------

/// A cell value.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<V>),
    Map(BTreeMap<String, V>),
}

impl V {
    pub fn s(x: &str) -> V {
        V::Str(x.to_string())
    }
    pub fn is_null(&self) -> bool {
        matches!(self, V::Null)
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            V::Int(i) => Some(*i),
            V::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            V::Int(i) => Some(*i as f64),
            V::Float(f) => Some(*f),
            V::Bool(b) => Some(*b as i64 as f64),
            _ => None,
        }
    }
    /// The string a value becomes as a map key (bucket values, histogram keys): Chronon
    /// uses the value's `toString`.
    pub fn key_string(&self) -> String {
        match self {
            V::Str(s) => s.clone(),
            V::Int(i) => i.to_string(),
            V::Bool(b) => b.to_string(),
            V::Float(f) => format!("{f:?}"),
            other => panic!("reference: {other} cannot be a map key"),
        }
    }
    fn key_string_lenient(&self) -> String {
        match self {
            V::Str(_) | V::Int(_) | V::Bool(_) | V::Float(_) => self.key_string(),
            other => other.identity(),
        }
    }
    /// A total, exact identity used for distinct counting (floats by bits).
    pub fn identity(&self) -> String {
        match self {
            V::Float(f) => format!("f{}", f.to_bits()),
            V::Int(i) => format!("i{i}"),
            V::Str(s) => format!("s{s}"),
            V::Bool(b) => format!("b{b}"),
            V::Null => "null".into(),
            V::List(l) => format!(
                "[{}]",
                l.iter().map(V::identity).collect::<Vec<_>>().join(",")
            ),
            V::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k}:{}", v.identity()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::Null => write!(f, "NULL"),
            V::Bool(b) => write!(f, "{b}"),
            V::Int(i) => write!(f, "{i}"),
            V::Float(x) => write!(f, "{x:?}"),
            V::Str(s) => write!(f, "{s:?}"),
            V::List(l) => {
                write!(f, "[")?;
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{x}")?;
                }
                write!(f, "]")
            }
            V::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k:?}: {x}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// A column type of a test table.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Bool,
    I32,
    I64,
    F64,
    Str,
    List(Box<Ty>),
    /// `map<string, T>`
    Map(Box<Ty>),
}

/// An in-memory table: columns and rows per `ds` partition (rows do not hold `ds`).
#[derive(Clone, Debug)]
pub struct Table {
    pub cols: Vec<(String, Ty)>,
    pub parts: BTreeMap<String, Vec<Vec<V>>>,
}

impl Table {
    pub fn new(cols: &[(&str, Ty)]) -> Table {
        Table {
            cols: cols
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
            parts: BTreeMap::new(),
        }
    }
    pub fn col(&self, name: &str) -> Option<usize> {
        self.cols.iter().position(|(n, _)| n == name)
    }
    /// Adds a row to partition `ds`, creating the partition if needed.
    pub fn push(&mut self, ds: &str, row: Vec<V>) {
        assert_eq!(row.len(), self.cols.len(), "row width");
        self.parts.entry(ds.to_string()).or_default().push(row);
    }
    /// Makes sure partition `ds` exists (possibly empty).
    pub fn touch(&mut self, ds: &str) {
        self.parts.entry(ds.to_string()).or_default();
    }
}

/// The tables of a test warehouse, by `ns.name`.
#[derive(Clone, Debug, Default)]
pub struct Db {
    pub tables: BTreeMap<String, Table>,
}

impl Db {
    pub fn table(&self, name: &str) -> &Table {
        self.tables
            .get(name)
            .unwrap_or_else(|| panic!("reference: no table {name} in the test data"))
    }
    pub fn table_mut(&mut self, name: &str) -> &mut Table {
        self.tables.get_mut(name).expect("table")
    }
    pub fn add(&mut self, name: &str, t: Table) {
        self.tables.insert(name.to_string(), t);
    }
}

// ------------------------------------------------------------------------------------------
// Dates
// ------------------------------------------------------------------------------------------

/// `yyyy-MM-dd` (UTC) of an epoch millisecond.
pub fn ds_of(ms: i64) -> String {
    let days = ms.div_euclid(DAY);
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days);
    d.format("%Y-%m-%d").to_string()
}

/// Midnight (UTC) starting partition `ds`, in epoch milliseconds.
pub fn ds_start(ds: &str) -> i64 {
    let d = chrono::NaiveDate::parse_from_str(ds, "%Y-%m-%d").expect("ds");
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (d - epoch).num_days() * DAY
}

/// `ds` shifted by `n` days.
pub fn ds_shift(ds: &str, n: i64) -> String {
    ds_of(ds_start(ds) + n * DAY)
}

// ------------------------------------------------------------------------------------------
// Expectations
// ------------------------------------------------------------------------------------------

/// What a result cell may be.
#[derive(Clone, Debug)]
pub enum E {
    /// This value (floats within 1e-9 relative, recursively).
    Is(V),
    /// Any one of these.
    AnyOf(Vec<E>),
    /// A double within the given tolerances.
    Near { v: f64, rel: f64, abs: f64 },
    /// An integer estimate of `exact` within `tol`.
    Approx { exact: i64, tol: i64 },
    /// APPROX_PERCENTILE: a list with one value per percentile, each an element of the sorted
    /// data whose rank is within one position of `p·n` (KLL is exact below k items, only its
    /// interpolation rule is left open).
    Percentiles { sorted: Vec<f64>, ps: Vec<f64> },
    /// LAST_K/FIRST_K: a list of `min(k, n)` values taken from `groups` in order (values with
    /// equal timestamps form a group and may come in any order; the last group may be cut).
    ByTs { groups: Vec<Vec<V>>, k: usize },
    /// HISTOGRAM: `full` counts; with `k > 0` and more than `k` distinct values, the entries
    /// whose count reaches the k-th largest count, at most `k`; keys in `zeros` may appear
    /// with count 0 (values deleted by mutations).
    Hist {
        full: BTreeMap<String, i64>,
        k: usize,
        zeros: BTreeSet<String>,
    },
    /// APPROX_HISTOGRAM_K beyond `k` distinct values: at most `k` entries, keys from the data,
    /// each count within the sketch's error bound above the true count, and every value
    /// frequent enough that the sketch must report it present.
    ApproxHist {
        full: BTreeMap<String, i64>,
        k: usize,
    },
    /// A map with exactly these keys, each value matching its expectation.
    MapOf(BTreeMap<String, E>),
}

pub const NULL: E = E::Is(V::Null);

pub fn floats_close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let d = (a - b).abs();
    d <= abs || d <= rel * a.abs().max(b.abs())
}

/// Value equality with doubles within 1e-9 relative (1e-12 absolute).
pub fn values_match(e: &V, a: &V) -> bool {
    match (e, a) {
        (V::Float(x), V::Float(y)) => floats_close(*x, *y, 1e-9, 1e-12),
        (V::List(x), V::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_match(p, q))
        }
        (V::Map(x), V::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && values_match(v1, v2))
        }
        _ => e == a,
    }
}

impl E {
    pub fn matches(&self, a: &V) -> bool {
        match self {
            E::Is(v) => values_match(v, a),
            E::AnyOf(es) => es.iter().any(|e| e.matches(a)),
            E::Near { v, rel, abs } => match a {
                V::Float(x) => floats_close(*v, *x, *rel, *abs),
                _ => false,
            },
            E::Approx { exact, tol } => match a {
                V::Int(x) => (x - exact).abs() <= *tol,
                _ => false,
            },
            E::Percentiles { sorted, ps } => {
                let V::List(items) = a else { return false };
                if items.len() != ps.len() || sorted.is_empty() {
                    return false;
                }
                let n = sorted.len() as f64;
                items.iter().zip(ps).all(|(x, p)| {
                    let Some(x) = x.as_f64() else { return false };
                    let lo = ((p * n).floor() - 1.0).max(0.0) as usize;
                    let hi = ((p * n).ceil() as usize).min(sorted.len() - 1);
                    let (a, b) = (sorted[lo.min(hi)], sorted[hi]);
                    (x >= a || floats_close(x, a, 1e-6, 1e-6))
                        && (x <= b || floats_close(x, b, 1e-6, 1e-6))
                })
            }
            E::ByTs { groups, k } => {
                let V::List(items) = a else { return false };
                let total: usize = groups.iter().map(Vec::len).sum();
                if items.len() != total.min(*k) {
                    return false;
                }
                let mut gi = 0;
                let mut left: Vec<V> = groups.first().cloned().unwrap_or_default();
                for x in items {
                    while left.is_empty() {
                        gi += 1;
                        if gi >= groups.len() {
                            return false;
                        }
                        left = groups[gi].clone();
                    }
                    match left.iter().position(|y| values_match(y, x)) {
                        Some(p) => {
                            left.remove(p);
                        }
                        None => return false,
                    }
                }
                true
            }
            E::Hist { full, k, zeros } => {
                let V::Map(m) = a else { return false };
                for (key, c) in m {
                    let ok = match (full.get(key), c) {
                        (Some(n), V::Int(c)) => n == c,
                        (None, V::Int(0)) => zeros.contains(key),
                        _ => false,
                    };
                    if !ok {
                        return false;
                    }
                }
                let present: Vec<&String> = m
                    .iter()
                    .filter(|(_, c)| **c != V::Int(0))
                    .map(|(k, _)| k)
                    .collect();
                if *k == 0 || full.len() <= *k {
                    return present.len() == full.len();
                }
                let mut counts: Vec<i64> = full.values().copied().collect();
                counts.sort_unstable_by(|a, b| b.cmp(a));
                let kth = counts[*k - 1];
                // "entries whose count reaches the k-th largest count, at most k": exactly k
                present.len() == *k
                    && present.iter().all(|key| full[*key] >= kth)
                    && full
                        .iter()
                        .filter(|(_, c)| **c > kth)
                        .all(|(key, _)| m.contains_key(key))
            }
            E::ApproxHist { full, k } => {
                // A frequent-items sketch (weft: map size M = max(8, next power of two ≥ 4k))
                // over n values estimates each tracked value within [true, true + ε·n],
                // ε = 3.5 / M, and with NO_FALSE_POSITIVES returns every value whose count
                // exceeds 2·ε·n (flat data may return nothing at all).
                let V::Map(m) = a else { return false };
                let n: i64 = full.values().sum();
                let size = (k.max(&1) * 4).next_power_of_two().clamp(8, 1 << 30);
                let err = 3.5 * n as f64 / size as f64;
                let counts = m.iter().all(|(key, c)| match (full.get(key), c) {
                    (Some(f), V::Int(x)) => *x >= (*f).max(1) && (*x as f64) <= *f as f64 + err,
                    _ => false,
                });
                let heavy: Vec<&String> = full
                    .iter()
                    .filter(|(_, f)| **f as f64 > 2.0 * err)
                    .map(|(key, _)| key)
                    .collect();
                let heavy_kept = if heavy.len() <= *k {
                    heavy.iter().all(|h| m.contains_key(*h))
                } else {
                    m.len() == *k
                };
                m.len() <= *k && counts && heavy_kept
            }
            E::MapOf(want) => {
                // an entry whose expectation allows NULL may also be absent
                let optional = |e: &E| e.matches(&V::Null);
                match a {
                    V::Null => want.values().all(optional),
                    V::Map(m) => {
                        m.iter()
                            .all(|(k, v)| want.get(k).is_some_and(|e| e.matches(v)))
                            && want.iter().all(|(k, e)| m.contains_key(k) || optional(e))
                    }
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for E {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            E::Is(v) => write!(f, "{v}"),
            E::AnyOf(es) => {
                write!(f, "any of (")?;
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        write!(f, " | ")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, ")")
            }
            E::Near { v, rel, abs } => write!(f, "{v:?} (±{rel} rel, ±{abs} abs)"),
            E::Approx { exact, tol } => write!(f, "≈{exact} (±{tol})"),
            E::Percentiles { sorted, ps } => write!(f, "percentiles {ps:?} of {sorted:?}"),
            E::ByTs { groups, k } => {
                write!(f, "first {k} of groups [")?;
                for g in groups {
                    write!(f, "{{")?;
                    for (i, v) in g.iter().enumerate() {
                        if i > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{v}")?;
                    }
                    write!(f, "}}")?;
                }
                write!(f, "]")
            }
            E::Hist { full, k, zeros } => {
                write!(f, "histogram {full:?} (k={k}, may be 0: {zeros:?})")
            }
            E::ApproxHist { full, k } => write!(f, "approx histogram ≤{k} entries of {full:?}"),
            E::MapOf(m) => {
                write!(f, "{{")?;
                for (i, (k, e)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k:?}: {e}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The expected output
// ------------------------------------------------------------------------------------------

/// One expected output row: the left columns' values, then one expectation per feature.
#[derive(Clone, Debug)]
pub struct ExpRow {
    pub left: Vec<V>,
    pub feats: Vec<E>,
}

/// The expected output table.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Left columns (without `ds`), in left select order.
    pub left_cols: Vec<String>,
    /// Feature columns, part by part, in Chronon's unpack order.
    pub feat_cols: Vec<String>,
    /// Rows per output partition.
    pub parts: BTreeMap<String, Vec<ExpRow>>,
}

/// The range a backfill is asked for (`--start-ds`, `--end-ds`).
#[derive(Clone, Debug)]
pub struct Run {
    pub start: Option<String>,
    pub end: String,
}

impl Run {
    pub fn through(end: &str) -> Run {
        Run {
            start: None,
            end: end.to_string(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Reading the compiled JSON
// ------------------------------------------------------------------------------------------

fn js<'a>(v: &'a J, k: &str) -> Option<&'a str> {
    v.get(k).and_then(J::as_str)
}

fn jbool(v: &J, k: &str) -> Option<bool> {
    match v.get(k) {
        Some(J::Bool(b)) => Some(*b),
        Some(J::Number(n)) => Some(n.as_i64() != Some(0)),
        _ => None,
    }
}

/// `sanitize`: every character outside `[A-Za-z0-9_]` becomes `_`.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The output table of a join: `<outputNamespace>.<sanitized name>`.
pub fn output_table(join: &J) -> String {
    let md = &join["metaData"];
    format!(
        "{}.{}",
        js(md, "outputNamespace").expect("outputNamespace"),
        sanitize(js(md, "name").expect("name"))
    )
}

/// A source query: selects, time column, partition bounds.
#[derive(Clone, Debug)]
struct Q {
    selects: Option<Vec<(String, String)>>,
    time_col: Option<String>,
    start: Option<String>,
    end: Option<String>,
    mutation_time_col: Option<String>,
    reversal_col: Option<String>,
}

fn query(v: Option<&J>) -> Q {
    let empty = J::Object(Default::default());
    let v = v.unwrap_or(&empty);
    if let Some(w) = v.get("wheres").and_then(J::as_array) {
        assert!(w.is_empty(), "reference: wheres are not modelled");
    }
    if let Some(pc) = js(v, "partitionColumn") {
        assert_eq!(
            pc, "ds",
            "reference: only ds partition columns are modelled"
        );
    }
    Q {
        selects: v.get("selects").and_then(J::as_object).map(|m| {
            m.iter()
                .map(|(k, e)| (k.clone(), e.as_str().unwrap_or(k).to_string()))
                .collect()
        }),
        time_col: js(v, "timeColumn").map(str::to_string),
        start: js(v, "startPartition").map(str::to_string),
        end: js(v, "endPartition").map(str::to_string),
        mutation_time_col: js(v, "mutationTimeColumn").map(str::to_string),
        reversal_col: js(v, "reversalColumn").map(str::to_string),
    }
}

impl Q {
    fn allows(&self, ds: &str) -> bool {
        self.start.as_deref().is_none_or(|s| ds >= s) && self.end.as_deref().is_none_or(|e| ds <= e)
    }
}

/// Evaluates a select expression on a row; only column references and literals are modelled.
fn eval(expr: &str, t: &Table, row: &[V]) -> V {
    let e = expr.trim().trim_matches('`');
    if let Some(i) = t.col(e) {
        return row[i].clone();
    }
    if let Ok(i) = e.parse::<i64>() {
        return V::Int(i);
    }
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        return V::s(&e[1..e.len() - 1]);
    }
    if e.eq_ignore_ascii_case("null") {
        return V::Null;
    }
    panic!("reference: select expression `{expr}` is not a column of the table or a literal")
}

/// The columns a query projects from a row: `(name, value)`; `extra` are raw columns added
/// when not selected (keys and aggregation inputs are always available).
fn project(q: &Q, t: &Table, row: &[V], extra: &[String]) -> BTreeMap<String, V> {
    let mut out = BTreeMap::new();
    match &q.selects {
        Some(s) => {
            for (name, expr) in s {
                out.insert(name.clone(), eval(expr, t, row));
            }
        }
        None => {
            for (i, (name, _)) in t.cols.iter().enumerate() {
                out.insert(name.clone(), row[i].clone());
            }
        }
    }
    for x in extra {
        if !out.contains_key(x) {
            if let Some(i) = t.col(x) {
                out.insert(x.clone(), row[i].clone());
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Events,
    Entities,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accuracy {
    Temporal,
    Snapshot,
}

/// One row of a GroupBy source after its query.
#[derive(Clone, Debug)]
struct SrcRow {
    ds: String,
    ts: Option<i64>,
    cols: BTreeMap<String, V>,
    /// `(mutation_ts, is_before)` for rows of a mutation table.
    mutation: Option<(i64, bool)>,
}

/// Thrift Operation codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Min,
    Max,
    First,
    Last,
    UniqueCount,
    ApproxUniqueCount,
    Count,
    Sum,
    Average,
    Variance,
    Skew,
    Kurtosis,
    ApproxPercentile,
    LastK,
    FirstK,
    TopK,
    BottomK,
    Histogram,
    ApproxHistogramK,
    BoundedUniqueCount,
}

pub const ALL_OPS: [Op; 20] = [
    Op::Min,
    Op::Max,
    Op::First,
    Op::Last,
    Op::UniqueCount,
    Op::ApproxUniqueCount,
    Op::Count,
    Op::Sum,
    Op::Average,
    Op::Variance,
    Op::Skew,
    Op::Kurtosis,
    Op::ApproxPercentile,
    Op::LastK,
    Op::FirstK,
    Op::TopK,
    Op::BottomK,
    Op::Histogram,
    Op::ApproxHistogramK,
    Op::BoundedUniqueCount,
];

impl Op {
    pub fn code(self) -> i64 {
        ALL_OPS.iter().position(|o| *o == self).unwrap() as i64
    }
    pub fn from_code(c: i64) -> Op {
        ALL_OPS[c as usize]
    }
    fn suffix(self, k: Option<&str>) -> String {
        let k = || {
            k.expect("reference: this operation needs argMap.k")
                .to_string()
        };
        match self {
            Op::Min => "min".into(),
            Op::Max => "max".into(),
            Op::First => "first".into(),
            Op::Last => "last".into(),
            Op::UniqueCount => "unique_count".into(),
            Op::ApproxUniqueCount => "approx_unique_count".into(),
            Op::Count => "count".into(),
            Op::Sum => "sum".into(),
            Op::Average => "average".into(),
            Op::Variance => "variance".into(),
            Op::Skew => "skew".into(),
            Op::Kurtosis => "kurtosis".into(),
            Op::ApproxPercentile => "approx_percentile".into(),
            Op::LastK => format!("last{}", k()),
            Op::FirstK => format!("first{}", k()),
            Op::TopK => format!("top{}", k()),
            Op::BottomK => format!("bottom{}", k()),
            Op::Histogram => "histogram".into(),
            Op::ApproxHistogramK => "approx_histogram_k".into(),
            Op::BoundedUniqueCount => "bounded_unique_count".into(),
        }
    }
    /// FIRST, LAST, FIRST_K, LAST_K look at whole values ordered by time; every other
    /// operation is "simple" (explodes lists, aggregates maps per key).
    fn timed(self) -> bool {
        matches!(self, Op::First | Op::Last | Op::FirstK | Op::LastK)
    }
    /// Operations whose IR supports deleting an input (mutations' `is_before` rows).
    fn deletable(self) -> bool {
        matches!(self, Op::Count | Op::Sum | Op::Average | Op::Histogram)
    }
}

/// One unpacked output column of an aggregation.
#[derive(Clone, Debug)]
struct OutCol {
    name: String,
    input: String,
    op: Op,
    args: BTreeMap<String, String>,
    window: Option<i64>,
    bucket: Option<String>,
}

/// Parses a window: `(millis or None when unbounded, name suffix)`.
fn window(w: &J) -> (Option<i64>, String) {
    let len = w["length"].as_i64().expect("window length");
    if len <= 0 || len == i32::MAX as i64 {
        return (None, String::new());
    }
    match w["timeUnit"].as_i64().expect("timeUnit") {
        0 => (Some(len * HOUR), format!("_{len}h")),
        1 => (Some(len * DAY), format!("_{len}d")),
        u => panic!("reference: timeUnit {u}"),
    }
}

/// A join part, ready to evaluate.
struct Part {
    full_prefix: String,
    /// `(left column, GroupBy key)`, in GroupBy key order.
    keys: Vec<(String, String)>,
    model: Model,
    accuracy: Accuracy,
    rows: Vec<SrcRow>,
    /// `None` for a GroupBy without aggregations.
    cols: Option<Vec<OutCol>>,
    /// For no-agg GroupBys: the value columns.
    raw_cols: Vec<String>,
}

fn part(jp: &J, db: &Db) -> Part {
    let gb = &jp["groupBy"];
    let name = js(&gb["metaData"], "name").expect("groupBy name");
    let full_prefix = match js(jp, "prefix") {
        Some(p) if !p.is_empty() => format!("{p}_{}", sanitize(name)),
        _ => sanitize(name),
    };
    let gb_keys: Vec<String> = gb["keyColumns"]
        .as_array()
        .expect("keyColumns")
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    // keyMapping: left column -> GroupBy key
    let mapping: Vec<(String, String)> = jp
        .get("keyMapping")
        .and_then(J::as_object)
        .map(|m| {
            m.iter()
                .map(|(l, r)| (l.clone(), r.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let keys = gb_keys
        .iter()
        .map(|rk| {
            let left = mapping
                .iter()
                .find(|(_, r)| r == rk)
                .map(|(l, _)| l.clone())
                .unwrap_or_else(|| rk.clone());
            (left, rk.clone())
        })
        .collect();
    let sources = gb["sources"].as_array().expect("sources");
    let model = if sources.iter().all(|s| s.get("events").is_some()) {
        Model::Events
    } else if sources.iter().all(|s| s.get("entities").is_some()) {
        Model::Entities
    } else {
        panic!("reference: mixed or JoinSource GroupBy sources are not modelled")
    };
    let accuracy = match gb.get("accuracy").and_then(J::as_i64) {
        Some(0) => Accuracy::Temporal,
        Some(1) => Accuracy::Snapshot,
        Some(x) => panic!("accuracy {x}"),
        None => {
            let topic = sources.iter().any(|s| {
                s.get("events").and_then(|e| js(e, "topic")).is_some()
                    || s.get("entities")
                        .and_then(|e| js(e, "mutationTopic"))
                        .is_some()
            });
            if topic {
                Accuracy::Temporal
            } else {
                Accuracy::Snapshot
            }
        }
    };
    let aggs: Option<Vec<&J>> = gb
        .get("aggregations")
        .and_then(J::as_array)
        .map(|a| a.iter().collect());
    let cols = aggs.as_ref().map(|aggs| {
        let mut out = Vec::new();
        for a in aggs {
            let input = js(a, "inputColumn").expect("inputColumn").to_string();
            let op = Op::from_code(a["operation"].as_i64().expect("operation"));
            let args: BTreeMap<String, String> = a
                .get("argMap")
                .and_then(J::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let suffix = op.suffix(args.get("k").map(String::as_str));
            let windows: Vec<(Option<i64>, String)> = match a.get("windows").and_then(J::as_array) {
                Some(ws) if !ws.is_empty() => ws.iter().map(window).collect(),
                _ => vec![(None, String::new())],
            };
            let buckets: Vec<Option<String>> = match a.get("buckets").and_then(J::as_array) {
                Some(bs) if !bs.is_empty() => bs
                    .iter()
                    .map(|b| Some(b.as_str().unwrap().to_string()))
                    .collect(),
                _ => vec![None],
            };
            for b in &buckets {
                for (w, wsuf) in &windows {
                    let by = b.as_ref().map(|b| format!("_by_{b}")).unwrap_or_default();
                    out.push(OutCol {
                        name: format!("{full_prefix}_{input}_{suffix}{wsuf}{by}"),
                        input: input.clone(),
                        op,
                        args: args.clone(),
                        window: *w,
                        bucket: b.clone(),
                    });
                }
            }
        }
        out
    });
    // columns every source row must carry even if not selected
    let mut extra: Vec<String> = gb_keys.clone();
    for c in cols.iter().flatten() {
        extra.push(c.input.clone());
        extra.extend(c.bucket.clone());
    }
    let mut rows = Vec::new();
    let mut raw_cols = Vec::new();
    for (si, s) in sources.iter().enumerate() {
        let (table, q, mutation_table) = match model {
            Model::Events => {
                let e = &s["events"];
                assert!(
                    jbool(e, "isCumulative") != Some(true),
                    "reference: cumulative sources are not modelled"
                );
                (js(e, "table").unwrap(), query(e.get("query")), None)
            }
            Model::Entities => {
                let e = &s["entities"];
                (
                    js(e, "snapshotTable").unwrap(),
                    query(e.get("query")),
                    js(e, "mutationTable"),
                )
            }
        };
        if si == 0 && cols.is_none() {
            let sel = q
                .selects
                .as_ref()
                .expect("reference: a no-agg GroupBy needs selects");
            raw_cols = sel
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| !gb_keys.contains(n))
                .collect();
        }
        let t = db.table(table);
        for (ds, prows) in &t.parts {
            if !q.allows(ds) {
                continue;
            }
            for r in prows {
                let ts = match (&q.time_col, model, accuracy) {
                    (Some(tc), _, _) => eval(tc, t, r).as_i64(),
                    (None, Model::Events, Accuracy::Snapshot) => Some(ds_start(ds) + DAY - 1),
                    (None, Model::Events, Accuracy::Temporal) => {
                        panic!("reference: a TEMPORAL event source needs a timeColumn")
                    }
                    (None, Model::Entities, _) => None,
                };
                rows.push(SrcRow {
                    ds: ds.clone(),
                    ts,
                    cols: project(&q, t, r, &extra),
                    mutation: None,
                });
            }
        }
        if let (Some(mt), Accuracy::Temporal) = (mutation_table, accuracy) {
            let t = db.table(mt);
            let mtc = q
                .mutation_time_col
                .clone()
                .unwrap_or_else(|| "mutation_ts".into());
            let rc = q.reversal_col.clone().unwrap_or_else(|| "is_before".into());
            for (ds, prows) in &t.parts {
                if !q.allows(ds) {
                    continue;
                }
                for r in prows {
                    let mts = eval(&mtc, t, r).as_i64().expect("mutation_ts");
                    let before = match eval(&rc, t, r) {
                        V::Bool(b) => b,
                        V::Int(i) => i != 0,
                        other => panic!("is_before {other}"),
                    };
                    rows.push(SrcRow {
                        ds: ds.clone(),
                        ts: q.time_col.as_ref().and_then(|tc| eval(tc, t, r).as_i64()),
                        cols: project(&q, t, r, &extra),
                        mutation: Some((mts, before)),
                    });
                }
            }
        }
    }
    // rows whose keys are all NULL are dropped
    rows.retain(|r| {
        gb_keys
            .iter()
            .any(|k| !r.cols.get(k).unwrap_or(&V::Null).is_null())
    });
    Part {
        full_prefix,
        keys,
        model,
        accuracy,
        rows,
        cols,
        raw_cols,
    }
}

/// FiveMinuteResolution's tail hop for a window (§2.6).
pub fn hop(w: i64) -> i64 {
    if w >= 12 * DAY {
        DAY
    } else if w >= 12 * HOUR {
        HOUR
    } else {
        5 * MINUTE
    }
}

/// Integer `floor(x, h)` as Chronon's `TsUtils.round`.
pub fn floor(x: i64, h: i64) -> i64 {
    x.div_euclid(h) * h
}

/// The left row as a part sees it.
struct Query<'a> {
    model: Model,
    ds: &'a str,
    q: Option<i64>,
    keys: Vec<V>,
}

/// A source row that reaches a query, and whether it deletes (mutation `is_before` rows).
struct Hit<'a> {
    row: &'a SrcRow,
    delete: bool,
}

fn keys_match(p: &Part, r: &SrcRow, keys: &[V]) -> bool {
    p.keys
        .iter()
        .zip(keys)
        .all(|((_, rk), lv)| same_key(r.cols.get(rk).unwrap_or(&V::Null), lv))
}

fn same_key(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Null, _) | (_, V::Null) => false,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Float(x), V::Float(y)) => x == y,
        _ => panic!("reference: join key types differ ({a} vs {b})"),
    }
}

/// The source rows a query sees for one window — the point-in-time matrix of §3.4.
fn hits<'a>(p: &'a Part, q: &Query, w: Option<i64>) -> Vec<Hit<'a>> {
    let ts = |r: &SrcRow| -> i64 {
        r.ts.unwrap_or_else(|| panic!("reference: a windowed aggregation needs the source's ts"))
    };
    let mut out = Vec::new();
    for r in &p.rows {
        if !keys_match(p, r, &q.keys) {
            continue;
        }
        let take = match (q.model, p.model, p.accuracy) {
            (Model::Events, Model::Events, Accuracy::Temporal) => {
                let q = q.q.unwrap();
                let t = ts(r);
                t < q && w.is_none_or(|w| floor(q - w, hop(w)) <= t)
            }
            (Model::Events, Model::Events, Accuracy::Snapshot) => {
                let end = floor(q.q.unwrap(), DAY);
                let t = ts(r);
                t < end && w.is_none_or(|w| end - w <= t)
            }
            (Model::Events, Model::Entities, Accuracy::Snapshot) => {
                let end = floor(q.q.unwrap(), DAY);
                r.mutation.is_none()
                    && r.ds == ds_of(end - DAY)
                    && w.is_none_or(|w| end - w <= ts(r) && ts(r) < end)
            }
            (Model::Events, Model::Entities, Accuracy::Temporal) => {
                let q = q.q.unwrap();
                let batch_end = floor(q, DAY);
                match r.mutation {
                    None => {
                        r.ds == ds_of(batch_end - DAY)
                            && w.is_none_or(|w| floor(q - w, hop(w)) <= ts(r) && ts(r) < batch_end)
                    }
                    Some((mts, _)) => {
                        r.ds == ds_of(batch_end)
                            && batch_end <= mts
                            && mts < q
                            && w.is_none_or(|w| floor(q - w, hop(w)) <= ts(r) && ts(r) < q)
                    }
                }
            }
            (Model::Entities, Model::Entities, _) => {
                let end = ds_start(q.ds) + DAY;
                r.mutation.is_none()
                    && r.ds == q.ds
                    && w.is_none_or(|w| end - w <= ts(r) && ts(r) < end)
            }
            (Model::Entities, Model::Events, _) => {
                let end = ds_start(q.ds) + DAY;
                let t = ts(r);
                t < end && w.is_none_or(|w| end - w <= t)
            }
        };
        if take {
            out.push(Hit {
                row: r,
                delete: matches!(r.mutation, Some((_, true))),
            });
        }
    }
    out
}

/// The rows a no-aggregation GroupBy offers a query: the snapshot the matrix picks.
fn raw_hits<'a>(p: &'a Part, q: &Query) -> Vec<&'a SrcRow> {
    assert_eq!(
        p.model,
        Model::Entities,
        "reference: no-agg GroupBys need entity sources"
    );
    let snapshot = match q.model {
        Model::Events => ds_of(floor(q.q.unwrap(), DAY) - DAY),
        Model::Entities => q.ds.to_string(),
    };
    p.rows
        .iter()
        .filter(|r| r.mutation.is_none() && r.ds == snapshot && keys_match(p, r, &q.keys))
        .collect()
}

// ------------------------------------------------------------------------------------------
// Aggregation (§2.3)
// ------------------------------------------------------------------------------------------

/// One input of an aggregation: time, value, and whether it deletes.
#[derive(Clone, Debug)]
pub struct Input {
    pub ts: i64,
    pub v: V,
    pub delete: bool,
}

fn arg_usize(args: &BTreeMap<String, String>, k: &str) -> Option<usize> {
    args.get(k)
        .map(|s| s.trim().parse().expect("integer argMap value"))
}

fn sane(x: f64) -> E {
    if x.is_finite() {
        E::Is(V::Float(x))
    } else {
        NULL
    }
}

fn near(x: f64) -> E {
    if x.is_finite() {
        E::Near {
            v: x,
            rel: 1e-9,
            abs: 1e-9,
        }
    } else {
        NULL
    }
}

/// The value of one aggregation over its inputs (NULL inputs are skipped here).
pub fn aggregate(op: Op, args: &BTreeMap<String, String>, inputs: &[Input]) -> E {
    let inputs: Vec<&Input> = inputs.iter().filter(|i| !i.v.is_null()).collect();
    if op.timed() {
        // whole values (lists are not exploded); deletions are ignored (not deletable)
        let items: Vec<(i64, V)> = inputs
            .iter()
            .filter(|i| !i.delete)
            .map(|i| (i.ts, i.v.clone()))
            .collect();
        return timed(op, args, &items);
    }
    // map inputs: aggregate per map key
    if inputs.iter().any(|i| matches!(i.v, V::Map(_))) {
        let mut per_key: BTreeMap<String, Vec<Input>> = BTreeMap::new();
        for i in &inputs {
            let V::Map(m) = &i.v else {
                panic!("mixed map and non-map inputs")
            };
            for (k, v) in m {
                per_key.entry(k.clone()).or_default().push(Input {
                    ts: i.ts,
                    v: v.clone(),
                    delete: i.delete,
                });
            }
        }
        let out: BTreeMap<String, E> = per_key
            .into_iter()
            .map(|(k, is)| (k, aggregate(op, args, &is)))
            .filter(|(_, e)| !matches!(e, E::Is(V::Null)))
            .collect();
        return if out.is_empty() { NULL } else { E::MapOf(out) };
    }
    // list inputs are exploded (NULL elements skipped)
    let mut adds: Vec<V> = Vec::new();
    let mut dels: Vec<V> = Vec::new();
    for i in &inputs {
        let elems: Vec<V> = match &i.v {
            V::List(l) => l.iter().filter(|x| !x.is_null()).cloned().collect(),
            v => vec![v.clone()],
        };
        if i.delete {
            dels.extend(elems);
        } else {
            adds.extend(elems);
        }
    }
    if !op.deletable() {
        return simple(op, args, &adds);
    }
    // deletable: aggregate the net multiset
    let had_deletes = !dels.is_empty();
    let deleted_keys: BTreeSet<String> = dels.iter().map(V::key_string_lenient).collect();
    for d in dels {
        let p = adds
            .iter()
            .position(|a| a.identity() == d.identity())
            .unwrap_or_else(|| panic!("reference: test data deletes {d}, which is not there"));
        adds.remove(p);
    }
    if op == Op::Histogram && had_deletes {
        // Chronon's histogram keeps a deleted value's entry with count 0
        let mut full: BTreeMap<String, i64> = BTreeMap::new();
        for v in &adds {
            *full.entry(v.key_string()).or_default() += 1;
        }
        let zeros = deleted_keys
            .into_iter()
            .filter(|k| !full.contains_key(k))
            .collect();
        let empty = full.is_empty();
        let h = E::Hist {
            full,
            k: arg_usize(args, "k").unwrap_or(0),
            zeros,
        };
        return if empty { E::AnyOf(vec![NULL, h]) } else { h };
    }
    let e = simple(op, args, &adds);
    if adds.is_empty() && had_deletes {
        // Every input was deleted: Chronon keeps the (now empty) IR and finalises it to 0 / an
        // empty map; an engine that retracts inputs gives NULL. The spec leaves it open.
        let zero = match op {
            Op::Count => E::Is(V::Int(0)),
            Op::Sum => E::AnyOf(vec![E::Is(V::Int(0)), E::Is(V::Float(0.0))]),
            Op::Histogram => E::Is(V::Map(BTreeMap::new())),
            _ => NULL,
        };
        return E::AnyOf(vec![NULL, zero]);
    }
    e
}

fn timed(op: Op, args: &BTreeMap<String, String>, items: &[(i64, V)]) -> E {
    if items.is_empty() {
        return NULL;
    }
    let newest_first = matches!(op, Op::Last | Op::LastK);
    // groups of equal timestamps, in the order the operation takes them
    let mut times: Vec<i64> = items.iter().map(|(t, _)| *t).collect();
    times.sort_unstable();
    times.dedup();
    if newest_first {
        times.reverse();
    }
    let groups: Vec<Vec<V>> = times
        .iter()
        .map(|t| {
            items
                .iter()
                .filter(|(u, _)| u == t)
                .map(|(_, v)| v.clone())
                .collect()
        })
        .collect();
    match op {
        Op::First | Op::Last => {
            // ties keep the first value seen, which depends on the input order
            let mut vals: Vec<V> = Vec::new();
            for v in &groups[0] {
                if !vals.iter().any(|x| x.identity() == v.identity()) {
                    vals.push(v.clone());
                }
            }
            if vals.len() == 1 {
                E::Is(vals.pop().unwrap())
            } else {
                E::AnyOf(vals.into_iter().map(E::Is).collect())
            }
        }
        _ => E::ByTs {
            groups,
            k: arg_usize(args, "k").expect("argMap.k"),
        },
    }
}

fn cmp_values(a: &V, b: &V) -> std::cmp::Ordering {
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Str(x), V::Str(y)) => x.cmp(y),
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        _ => a
            .as_f64()
            .unwrap()
            .partial_cmp(&b.as_f64().unwrap())
            .unwrap(),
    }
}

fn distinct(vals: &[V]) -> usize {
    vals.iter().map(V::identity).collect::<BTreeSet<_>>().len()
}

fn simple(op: Op, args: &BTreeMap<String, String>, vals: &[V]) -> E {
    if vals.is_empty() {
        return NULL;
    }
    let floats = || -> Vec<f64> {
        vals.iter()
            .map(|v| v.as_f64().expect("numeric input"))
            .collect()
    };
    let is_float = vals.iter().any(|v| matches!(v, V::Float(_)));
    let n = vals.len() as f64;
    match op {
        Op::Min | Op::Max => {
            let mut best = vals[0].clone();
            for v in &vals[1..] {
                let c = cmp_values(v, &best);
                if (op == Op::Min && c.is_lt()) || (op == Op::Max && c.is_gt()) {
                    best = v.clone();
                }
            }
            match best {
                V::Float(x) => sane(x),
                v => E::Is(v),
            }
        }
        Op::UniqueCount => E::Is(V::Int(distinct(vals) as i64)),
        Op::ApproxUniqueCount => {
            // weft's sketch is exact below 64 distinct values; beyond, within 10%
            let d = distinct(vals) as i64;
            E::Approx {
                exact: d,
                tol: if d < 64 { 0 } else { (d / 10).max(1) },
            }
        }
        Op::BoundedUniqueCount => {
            let k = arg_usize(args, "k").unwrap_or(8);
            E::Is(V::Int(distinct(vals).min(k) as i64))
        }
        Op::Count => E::Is(V::Int(vals.len() as i64)),
        Op::Sum => {
            if is_float {
                sane(floats().iter().sum())
            } else {
                E::Is(V::Int(
                    vals.iter()
                        .map(|v| v.as_i64().expect("integer input"))
                        .sum(),
                ))
            }
        }
        Op::Average => sane(floats().iter().sum::<f64>() / n),
        Op::Variance | Op::Skew | Op::Kurtosis => {
            let xs = floats();
            if xs.iter().any(|x| !x.is_finite()) {
                return NULL;
            }
            let mean = xs.iter().sum::<f64>() / n;
            let m = |p: i32| xs.iter().map(|x| (x - mean).powi(p)).sum::<f64>();
            let (m2, m3, m4) = (m(2), m(3), m(4));
            match op {
                Op::Variance => near(m2 / n),
                Op::Skew if xs.len() < 3 || m2 == 0.0 => NULL,
                Op::Skew => near(n.sqrt() * m3 / m2.powf(1.5)),
                Op::Kurtosis if xs.len() < 4 || m2 == 0.0 => NULL,
                _ => near(n * m4 / (m2 * m2) - 3.0),
            }
        }
        Op::ApproxPercentile => {
            let mut sorted = floats();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let ps: Vec<f64> = match args.get("percentiles") {
                Some(s) => serde_json::from_str(s).expect("percentiles JSON list"),
                None => vec![0.5],
            };
            E::Percentiles { sorted, ps }
        }
        Op::TopK | Op::BottomK => {
            let k = arg_usize(args, "k").expect("argMap.k");
            let mut v = vals.to_vec();
            v.sort_by(cmp_values);
            if op == Op::TopK {
                v.reverse();
            }
            v.truncate(k);
            E::Is(V::List(v))
        }
        Op::Histogram | Op::ApproxHistogramK => {
            let mut full: BTreeMap<String, i64> = BTreeMap::new();
            for v in vals {
                *full.entry(v.key_string()).or_default() += 1;
            }
            let k = arg_usize(args, "k").unwrap_or(if op == Op::Histogram { 0 } else { 8 });
            if op == Op::ApproxHistogramK && full.len() > k {
                return E::ApproxHist { full, k };
            }
            if op == Op::Histogram && k > 0 && full.len() > k {
                return E::Hist {
                    full,
                    k,
                    zeros: BTreeSet::new(),
                };
            }
            E::Is(V::Map(
                full.into_iter().map(|(k, c)| (k, V::Int(c))).collect(),
            ))
        }
        Op::First | Op::Last | Op::FirstK | Op::LastK => unreachable!(),
    }
}

// ------------------------------------------------------------------------------------------
// The join
// ------------------------------------------------------------------------------------------

/// Parses one skew-key literal of the compiled JSON (`'k0'`, `"k0"`, `42`, `null`).
fn skew_literal(s: &str) -> V {
    let s = s.trim();
    if s.eq_ignore_ascii_case("null") {
        return V::Null;
    }
    if s.len() >= 2
        && (s.starts_with('\'') && s.ends_with('\'') || s.starts_with('"') && s.ends_with('"'))
    {
        return V::s(&s[1..s.len() - 1]);
    }
    V::Int(
        s.parse()
            .unwrap_or_else(|_| panic!("reference: skew key literal {s}")),
    )
}

/// Chronon's skew filter with SQL three-valued logic: per key `k NOT IN (values)` (and
/// `k IS NOT NULL` when the list names null), OR-ed over keys; a row stays only when the
/// filter is TRUE.
fn passes_skew(skew: &[(String, Vec<V>)], get: &dyn Fn(&str) -> V) -> bool {
    if skew.is_empty() {
        return true;
    }
    let mut any: Option<bool> = Some(false);
    for (col, vals) in skew {
        let v = get(col);
        let non_null: Vec<&V> = vals.iter().filter(|x| !x.is_null()).collect();
        let not_in: Option<bool> = if v.is_null() {
            None
        } else if non_null.iter().any(|x| same_key(x, &v)) {
            Some(false)
        } else {
            Some(true)
        };
        let clause = if vals.iter().any(V::is_null) {
            // AND with `k IS NOT NULL`
            match (not_in, !v.is_null()) {
                (Some(false), _) | (_, false) => Some(false),
                (Some(true), true) => Some(true),
                (None, true) => None,
            }
        } else {
            not_in
        };
        any = match (any, clause) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (None, _) | (_, None) => None,
            _ => Some(false),
        };
    }
    any == Some(true)
}

/// The expected output of `join` over `db` for a backfill of `run`.
pub fn expected(join: &J, db: &Db, run: &Run) -> Expected {
    for unsupported in [
        "bootstrapParts",
        "derivations",
        "onlineExternalParts",
        "labelPart",
    ] {
        if let Some(v) = join.get(unsupported) {
            assert!(
                v.is_null() || v.as_array().is_some_and(Vec::is_empty),
                "reference: {unsupported} is not modelled"
            );
        }
    }
    let (model, left_table, lq) = if let Some(e) = join["left"].get("events") {
        (
            Model::Events,
            js(e, "table").unwrap(),
            query(e.get("query")),
        )
    } else if let Some(e) = join["left"].get("entities") {
        (
            Model::Entities,
            js(e, "snapshotTable").unwrap(),
            query(e.get("query")),
        )
    } else {
        panic!("reference: only events and entities lefts are modelled")
    };
    let t = db.table(left_table);
    // left columns: the selects (compiled event lefts select ts), then ts if not selected
    let mut left_cols: Vec<String> = match &lq.selects {
        Some(s) => s.iter().map(|(n, _)| n.clone()).collect(),
        None => t.cols.iter().map(|(n, _)| n.clone()).collect(),
    };
    left_cols.retain(|c| c != "ds");
    if model == Model::Events && !left_cols.iter().any(|c| c == "ts") {
        left_cols.push("ts".into());
    }
    // range to fill (§3.5)
    let first_left = t.parts.keys().next().cloned();
    let mut start = run
        .start
        .clone()
        .or(lq.start.clone())
        .or(first_left)
        .unwrap_or_default();
    let mut end = run.end.clone();
    if let Some(e) = &lq.end {
        end = end.min(e.clone());
    }
    if jbool(&join["metaData"], "historicalBackfill") == Some(false) {
        start = end.clone();
    }
    let skew: Vec<(String, Vec<V>)> = join
        .get("skewKeys")
        .and_then(J::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, vs)| {
                    (
                        k.clone(),
                        vs.as_array()
                            .unwrap()
                            .iter()
                            .map(|v| skew_literal(v.as_str().unwrap()))
                            .collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let parts: Vec<Part> = join
        .get("joinParts")
        .and_then(J::as_array)
        .map(|a| a.iter().map(|jp| part(jp, db)).collect())
        .unwrap_or_default();
    let mut feat_cols = Vec::new();
    for p in &parts {
        match &p.cols {
            Some(cols) => feat_cols.extend(cols.iter().map(|c| c.name.clone())),
            None => feat_cols.extend(p.raw_cols.iter().map(|c| format!("{}_{c}", p.full_prefix))),
        }
    }
    let mut out = Expected {
        left_cols: left_cols.clone(),
        feat_cols,
        parts: BTreeMap::new(),
    };
    for (ds, rows) in &t.parts {
        if *ds < start || *ds > end {
            continue;
        }
        let mut exp_rows = Vec::new();
        for r in rows {
            let mut vals: BTreeMap<String, V> = BTreeMap::new();
            if let Some(s) = &lq.selects {
                for (name, e) in s {
                    vals.insert(name.clone(), eval(e, t, r));
                }
            } else {
                for (i, (name, _)) in t.cols.iter().enumerate() {
                    vals.insert(name.clone(), r[i].clone());
                }
            }
            if model == Model::Events {
                let tc = lq
                    .time_col
                    .as_deref()
                    .expect("an event left needs a timeColumn");
                vals.insert("ts".into(), eval(tc, t, r));
            }
            let get = |c: &str| -> V {
                vals.get(c)
                    .cloned()
                    .or_else(|| t.col(c).map(|i| r[i].clone()))
                    .unwrap_or_else(|| panic!("reference: left column {c} is not selected"))
            };
            if !passes_skew(&skew, &get) {
                continue;
            }
            let left: Vec<V> = left_cols.iter().map(|c| get(c)).collect();
            let q_ts = match model {
                Model::Events => Some(
                    get("ts")
                        .as_i64()
                        .expect("an event left row needs a non-NULL ts"),
                ),
                Model::Entities => None,
            };
            let mut rows_out = vec![ExpRow {
                left,
                feats: Vec::new(),
            }];
            for p in &parts {
                let keys: Vec<V> = p.keys.iter().map(|(l, _)| get(l)).collect();
                let null_key = keys.iter().any(V::is_null);
                let query = Query {
                    model,
                    ds,
                    q: q_ts,
                    keys,
                };
                match &p.cols {
                    Some(cols) => {
                        let feats: Vec<E> = cols
                            .iter()
                            .map(|c| if null_key { NULL } else { column(p, &query, c) })
                            .collect();
                        for ro in &mut rows_out {
                            ro.feats.extend(feats.iter().cloned());
                        }
                    }
                    None => {
                        let matches: Vec<&SrcRow> = if null_key {
                            Vec::new()
                        } else {
                            raw_hits(p, &query)
                        };
                        let variants: Vec<Vec<E>> = if matches.is_empty() {
                            vec![vec![NULL; p.raw_cols.len()]]
                        } else {
                            matches
                                .iter()
                                .map(|m| {
                                    p.raw_cols
                                        .iter()
                                        .map(|c| E::Is(m.cols.get(c).cloned().unwrap_or(V::Null)))
                                        .collect()
                                })
                                .collect()
                        };
                        let mut next = Vec::new();
                        for ro in &rows_out {
                            for v in &variants {
                                let mut x = ro.clone();
                                x.feats.extend(v.iter().cloned());
                                next.push(x);
                            }
                        }
                        rows_out = next;
                    }
                }
            }
            exp_rows.extend(rows_out);
        }
        out.parts.insert(ds.clone(), exp_rows);
    }
    out
}

/// One output column for one query.
fn column(p: &Part, q: &Query, c: &OutCol) -> E {
    let hs = hits(p, q, c.window);
    let value = |h: &Hit| -> V {
        match h.row.cols.get(&c.input) {
            Some(v) => v.clone(),
            None if c.input == "ts" => h.row.ts.map_or(V::Null, V::Int),
            None => panic!("reference: input column {} is not selected", c.input),
        }
    };
    let ts = |h: &Hit| h.row.ts.unwrap_or(i64::MIN);
    match &c.bucket {
        None => {
            let inputs: Vec<Input> = hs
                .iter()
                .map(|h| Input {
                    ts: ts(h),
                    v: value(h),
                    delete: h.delete,
                })
                .collect();
            aggregate(c.op, &c.args, &inputs)
        }
        Some(b) => {
            let mut per: BTreeMap<String, Vec<Input>> = BTreeMap::new();
            for h in &hs {
                let bv = h.row.cols.get(b).cloned().unwrap_or(V::Null);
                if bv.is_null() {
                    continue;
                }
                per.entry(bv.key_string()).or_default().push(Input {
                    ts: ts(h),
                    v: value(h),
                    delete: h.delete,
                });
            }
            let m: BTreeMap<String, E> = per
                .into_iter()
                .map(|(k, is)| (k, aggregate(c.op, &c.args, &is)))
                .filter(|(_, e)| !matches!(e, E::Is(V::Null)))
                .collect();
            if m.is_empty() {
                NULL
            } else {
                E::MapOf(m)
            }
        }
    }
}
