//! Derivations: Spark SQL expressions over a join's or a GroupBy's output columns
//! (chronon-semantics §2.7, §4.10, §9), evaluated with the crate's SQL engine on an
//! in-memory batch.
//!
//! The expanded projection of a derivation list over base columns ([`derivation_projection`]):
//! derivations in list order, where `{name: "*"}` expands in place to every base column that is
//! not used verbatim as the expression of a derivation (so a renamed column disappears).
//!
//! Join output columns ([`join_output_plan`]):
//! 1. every column of the joined frame that is not a base value column, in order; a column that
//!    a derivation also produces is kept here as `coalesce(column, expression)` if it is a left
//!    column, and otherwise (a bootstrapped derived value) moved to step 2;
//! 2. the expanded derivations in order; a name that already is a column (and not a left
//!    column) becomes `coalesce(column, expression)`, so a bootstrapped value wins.
//!
//! Base value columns not selected by a derivation or `*` are dropped. Without derivations the
//! batch is returned unchanged.
//!
//! GroupBy output columns ([`group_by_output_plan`]): the keys and the partition columns
//! (`ds`, and `ts` when present) first, then the expanded derivations over the value columns.
//!
//! Output types come from the expressions: plan a schema by deriving an empty batch of the
//! base schema.

use arrow::record_batch::RecordBatch;
use regex::Regex;

use crate::config::Derivation;
use crate::error::{Error, Result};
use crate::sql::batch::BatchTable;
use crate::sql::scan::ident;
use crate::sql::Session;

/// One output column of a derivation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub kind: ColumnKind,
}

/// How an output column is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// An input column passed through unchanged.
    Pass,
    /// `expression AS name`.
    Derived { expression: String },
    /// `coalesce(name, expression) AS name`: the existing column (a left column or a
    /// bootstrapped derived value) wins where it is not null.
    Coalesce { expression: String },
}

impl OutputColumn {
    fn sql(&self) -> String {
        let name = ident(&self.name);
        match &self.kind {
            ColumnKind::Pass => name,
            ColumnKind::Derived { expression } if *expression == self.name => name,
            ColumnKind::Derived { expression } => format!("({expression}) AS {name}"),
            ColumnKind::Coalesce { expression } if *expression == self.name => name,
            ColumnKind::Coalesce { expression } => {
                format!("coalesce({name}, ({expression})) AS {name}")
            }
        }
    }

    fn expression(&self) -> Option<&str> {
        match &self.kind {
            ColumnKind::Pass => None,
            ColumnKind::Derived { expression } | ColumnKind::Coalesce { expression } => {
                Some(expression)
            }
        }
    }
}

/// The derivation list expanded over `base_columns`: `(name, expression)` in list order, with
/// `*` replaced by the base columns that no derivation uses verbatim as its expression.
pub fn derivation_projection(
    base_columns: &[String],
    derivations: &[Derivation],
) -> Vec<(String, String)> {
    let used: Vec<&str> = derivations.iter().map(|d| d.expression.as_str()).collect();
    let mut out = Vec::new();
    for d in derivations {
        if d.name == "*" {
            out.extend(
                base_columns
                    .iter()
                    .filter(|c| !used.contains(&c.as_str()))
                    .map(|c| (c.clone(), c.clone())),
            );
        } else {
            out.push((d.name.clone(), d.expression.clone()));
        }
    }
    out
}

/// Every column kept as it is (no derivations).
fn pass_through(columns: &[String]) -> Vec<OutputColumn> {
    columns
        .iter()
        .map(|c| OutputColumn {
            name: c.clone(),
            kind: ColumnKind::Pass,
        })
        .collect()
}

/// The output columns of join derivations over a frame with `columns`. `left_columns` are the
/// columns of the left side (`None`: every column that is not a base value column).
pub fn join_output_plan(
    columns: &[String],
    left_columns: Option<&[String]>,
    base_value_columns: &[String],
    derivations: &[Derivation],
) -> Vec<OutputColumn> {
    if derivations.is_empty() {
        return pass_through(columns);
    }
    let is_base = |c: &str| base_value_columns.iter().any(|b| b == c);
    let is_left = |c: &str| match left_columns {
        Some(l) => l.iter().any(|x| x == c),
        None => !is_base(c),
    };
    let projections = derivation_projection(base_value_columns, derivations);
    let expr_of = |c: &str| {
        projections
            .iter()
            .rev()
            .find(|(n, _)| n == c)
            .map(|(_, e)| e.clone())
    };
    let mut out = Vec::new();
    for c in columns {
        if is_base(c) {
            continue;
        }
        match expr_of(c) {
            Some(expression) if is_left(c) => out.push(OutputColumn {
                name: c.clone(),
                kind: ColumnKind::Coalesce { expression },
            }),
            Some(_) => {} // a bootstrapped derived value: placed with the derivations
            None => out.push(OutputColumn {
                name: c.clone(),
                kind: ColumnKind::Pass,
            }),
        }
    }
    for (name, expression) in projections {
        let exists = columns.contains(&name);
        if exists && is_left(&name) {
            continue;
        }
        let kind = if exists {
            ColumnKind::Coalesce { expression }
        } else {
            ColumnKind::Derived { expression }
        };
        out.push(OutputColumn { name, kind });
    }
    out
}

/// The output columns of GroupBy derivations over a frame with `columns`: keys and partition
/// columns first (a derivation named like one of them computes it in place), then the
/// derivations over `value_columns`.
pub fn group_by_output_plan(
    columns: &[String],
    key_columns: &[String],
    value_columns: &[String],
    derivations: &[Derivation],
) -> Vec<OutputColumn> {
    if derivations.is_empty() {
        return pass_through(columns);
    }
    let mut kept: Vec<String> = Vec::new();
    for c in key_columns.iter().map(String::as_str).chain(
        ["ds", "ts"]
            .into_iter()
            .filter(|p| columns.iter().any(|c| c == p)),
    ) {
        if !kept.iter().any(|k| k == c) {
            kept.push(c.to_string());
        }
    }
    let projections = derivation_projection(value_columns, derivations);
    let mut out: Vec<OutputColumn> = kept
        .iter()
        .map(|k| match projections.iter().rev().find(|(n, _)| n == k) {
            Some((_, e)) => OutputColumn {
                name: k.clone(),
                kind: ColumnKind::Derived {
                    expression: e.clone(),
                },
            },
            None => OutputColumn {
                name: k.clone(),
                kind: ColumnKind::Pass,
            },
        })
        .collect();
    for (name, expression) in projections {
        if kept.contains(&name) {
            continue;
        }
        out.push(OutputColumn {
            name,
            kind: ColumnKind::Derived { expression },
        });
    }
    out
}

/// Output column names of join derivations (see [`join_output_plan`]), for schema planning.
pub fn join_derived_names(
    columns: &[String],
    left_columns: Option<&[String]>,
    base_value_columns: &[String],
    derivations: &[Derivation],
) -> Vec<String> {
    join_output_plan(columns, left_columns, base_value_columns, derivations)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// Output column names of GroupBy derivations (see [`group_by_output_plan`]).
pub fn group_by_derived_names(
    columns: &[String],
    key_columns: &[String],
    value_columns: &[String],
    derivations: &[Derivation],
) -> Vec<String> {
    group_by_output_plan(columns, key_columns, value_columns, derivations)
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// Applies join derivations to a joined batch, treating every column that is not a base value
/// column as a left column (a bootstrapped derived value then keeps its position and is
/// coalesced there). Use [`derive_join_with_left`] to place such values as Chronon does.
pub fn derive_join(
    engine: &Session,
    batch: &RecordBatch,
    base_value_columns: &[String],
    derivations: &[Derivation],
    context: &str,
) -> Result<RecordBatch> {
    derive_join_impl(
        engine,
        batch,
        None,
        base_value_columns,
        derivations,
        context,
    )
}

/// Applies join derivations to a joined batch whose left columns are `left_columns`.
pub fn derive_join_with_left(
    engine: &Session,
    batch: &RecordBatch,
    left_columns: &[String],
    base_value_columns: &[String],
    derivations: &[Derivation],
    context: &str,
) -> Result<RecordBatch> {
    derive_join_impl(
        engine,
        batch,
        Some(left_columns),
        base_value_columns,
        derivations,
        context,
    )
}

fn derive_join_impl(
    engine: &Session,
    batch: &RecordBatch,
    left_columns: Option<&[String]>,
    base_value_columns: &[String],
    derivations: &[Derivation],
    context: &str,
) -> Result<RecordBatch> {
    if derivations.is_empty() {
        return Ok(batch.clone());
    }
    let columns = column_names(batch);
    let plan = join_output_plan(&columns, left_columns, base_value_columns, derivations);
    run_plan(engine, batch, &columns, &plan, derivations, context)
}

/// Applies GroupBy derivations to a GroupBy output batch (keys, values, `ds`, maybe `ts`).
pub fn derive_group_by(
    engine: &Session,
    batch: &RecordBatch,
    key_columns: &[String],
    value_columns: &[String],
    derivations: &[Derivation],
    context: &str,
) -> Result<RecordBatch> {
    if derivations.is_empty() {
        return Ok(batch.clone());
    }
    let columns = column_names(batch);
    for k in key_columns {
        if !columns.contains(k) {
            return Err(Error::Sql {
                context: context.to_string(),
                message: format!("key column `{k}` is not among the GroupBy output columns"),
                fix: Some(format!("the columns are: {}", columns.join(", "))),
            });
        }
    }
    let plan = group_by_output_plan(&columns, key_columns, value_columns, derivations);
    run_plan(engine, batch, &columns, &plan, derivations, context)
}

fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// A bare identifier (Chronon's rename-only expression), excluding SQL literals.
fn is_identifier(expr: &str) -> bool {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex"));
    re.is_match(expr)
        && !matches!(
            expr.to_ascii_lowercase().as_str(),
            "null" | "true" | "false"
        )
}

/// Checks names and renames, then runs the projection; on failure, names the derivation.
fn run_plan(
    engine: &Session,
    batch: &RecordBatch,
    columns: &[String],
    plan: &[OutputColumn],
    derivations: &[Derivation],
    context: &str,
) -> Result<RecordBatch> {
    let available = columns.join(", ");
    let mut errors = Vec::new();
    for d in derivations {
        if d.name == "*" {
            continue;
        }
        if d.name.trim().is_empty() {
            errors.push(Error::Sql {
                context: format!("{context}: derivation with expression `{}`", d.expression),
                message: "has an empty name".into(),
                fix: Some("give the derivation an output column name".into()),
            });
        } else if is_identifier(&d.expression) && !columns.contains(&d.expression) {
            errors.push(Error::Sql {
                context: format!("{context}: derivation `{}` = `{}`", d.name, d.expression),
                message: format!("renames column `{}`, which does not exist", d.expression),
                fix: Some(format!("use one of the available columns: {available}")),
            });
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in plan {
        if seen.contains(&c.name.as_str()) {
            errors.push(Error::Sql {
                context: context.to_string(),
                message: format!("two derivations (or a derivation and a `*` column) produce the output column `{}`", c.name),
                fix: Some("rename one of the derivations, or use the column's name as the expression of a rename so `*` skips it".into()),
            });
        }
        seen.push(&c.name);
    }
    Error::collect(errors)?;

    let select = plan
        .iter()
        .map(OutputColumn::sql)
        .collect::<Vec<_>>()
        .join(", ");
    engine.with_batch(batch, |t| {
        let sql = format!("SELECT {select} FROM {}", t.name());
        match t.query(&sql, context) {
            Ok((schema, batches)) => arrow::compute::concat_batches(&schema, &batches)
                .map_err(|e| Error::arrow(context.to_string(), e)),
            Err(e) => Err(diagnose(t, plan, &available, context).unwrap_or(e)),
        }
    })
}

/// Finds the first derived column that fails on its own: planning first, then running.
fn diagnose(
    t: &BatchTable<'_>,
    plan: &[OutputColumn],
    available: &str,
    context: &str,
) -> Option<Error> {
    let from = t.name();
    for suffix in [" LIMIT 0", ""] {
        for c in plan {
            let Some(expression) = c.expression() else {
                continue;
            };
            let sql = format!("SELECT {} FROM {from}{suffix}", c.sql());
            if let Err(Error::Sql { message, .. }) = t.query(&sql, context) {
                let coalesced = matches!(c.kind, ColumnKind::Coalesce { .. });
                let fix = if coalesced {
                    format!(
                        "`{}` is already a column (a left column or a bootstrapped value), so the output is coalesce({}, expression): make the expression valid Spark SQL of a compatible type; the available columns are: {available}",
                        c.name, c.name
                    )
                } else {
                    format!(
                        "correct the Spark SQL expression in the config's derivations; the available columns are: {available}"
                    )
                };
                return Some(Error::Sql {
                    context: format!("{context}: derivation `{}` = `{expression}`", c.name),
                    message,
                    fix: Some(fix),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn engine() -> (tempfile::TempDir, Session) {
        let dir = tempfile::tempdir().unwrap();
        let wh = crate::warehouse::Warehouse::open(dir.path()).unwrap();
        let e = Session::new(&wh).unwrap();
        (dir, e)
    }

    fn d(name: &str, expression: &str) -> Derivation {
        Derivation {
            name: name.into(),
            expression: expression.into(),
            meta_data: None,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn names(b: &RecordBatch) -> Vec<String> {
        column_names(b)
    }

    fn ints(b: &RecordBatch, c: &str) -> Vec<Option<i64>> {
        let a = b.column_by_name(c).unwrap();
        let a = a.as_any().downcast_ref::<Int64Array>().unwrap();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect()
    }

    fn strs(b: &RecordBatch, c: &str) -> Vec<Option<String>> {
        let a = b.column_by_name(c).unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    /// user_id, amount, ts, ds (left) + p_sum, p_count (base values).
    fn joined() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
            Field::new("ts", DataType::Int64, true),
            Field::new("ds", DataType::Utf8, true),
            Field::new("p_sum", DataType::Int64, true),
            Field::new("p_count", DataType::Int64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("u1"), Some("u2"), None])),
            Arc::new(Int64Array::from(vec![Some(10), None, Some(30)])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["2026-01-01"; 3])),
            Arc::new(Int64Array::from(vec![Some(100), Some(50), None])),
            Arc::new(Int64Array::from(vec![Some(4), Some(0), None])),
        ];
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn base() -> Vec<String> {
        s(&["p_sum", "p_count"])
    }

    #[test]
    fn no_derivations_is_identity() {
        let (_d, e) = engine();
        let b = joined();
        let out = derive_join(&e, &b, &base(), &[], "t").unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn star_plus_rename_drops_the_renamed_column() {
        let (_d, e) = engine();
        let ds = [d("*", "*"), d("purchases", "p_count")];
        let out = derive_join(&e, &joined(), &base(), &ds, "t").unwrap();
        assert_eq!(
            names(&out),
            s(&["user_id", "amount", "ts", "ds", "p_sum", "purchases"])
        );
        assert_eq!(ints(&out, "purchases"), vec![Some(4), Some(0), None]);
        assert_eq!(
            strs(&out, "user_id"),
            vec![Some("u1".into()), Some("u2".into()), None]
        );
        // The names helper agrees, and `*` expands in place.
        let ds = [d("purchases", "p_count"), d("*", "*")];
        assert_eq!(
            join_derived_names(&names(&joined()), None, &base(), &ds),
            s(&["user_id", "amount", "ts", "ds", "purchases", "p_sum"])
        );
    }

    #[test]
    fn expression_over_two_base_columns_drops_unselected_base_columns() {
        let (_d, e) = engine();
        let ds = [d(
            "avg",
            "CASE WHEN p_count > 0 THEN CAST(p_sum AS DOUBLE) / p_count ELSE NULL END",
        )];
        let out = derive_join(&e, &joined(), &base(), &ds, "t").unwrap();
        assert_eq!(names(&out), s(&["user_id", "amount", "ts", "ds", "avg"]));
        assert_eq!(out.schema().field(4).data_type(), &DataType::Float64);
        let a = out
            .column(4)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(a.value(0), 25.0);
        assert!(a.is_null(1) && a.is_null(2));
        // An empty batch gives the output schema.
        let empty = RecordBatch::new_empty(joined().schema());
        let out = derive_join(&e, &empty, &base(), &ds, "t").unwrap();
        assert_eq!(out.num_rows(), 0);
        assert_eq!(out.schema().field(4).data_type(), &DataType::Float64);
    }

    #[test]
    fn derivation_named_like_a_left_column_coalesces_in_place() {
        let (_d, e) = engine();
        let ds = [d("*", "*"), d("amount", "p_sum * 2")];
        let out = derive_join(&e, &joined(), &base(), &ds, "t").unwrap();
        assert_eq!(
            names(&out),
            s(&["user_id", "amount", "ts", "ds", "p_sum", "p_count"])
        );
        // Left values win; the expression fills the null.
        assert_eq!(ints(&out, "amount"), vec![Some(10), Some(100), Some(30)]);
        let out = derive_join_with_left(
            &e,
            &joined(),
            &s(&["user_id", "amount", "ts", "ds"]),
            &base(),
            &ds,
            "t",
        )
        .unwrap();
        assert_eq!(ints(&out, "amount"), vec![Some(10), Some(100), Some(30)]);
        assert_eq!(names(&out)[1], "amount");
    }

    #[test]
    fn bootstrapped_derived_value_is_kept_by_coalesce() {
        let (_d, e) = engine();
        // `doubled` came from a bootstrap table: set on row 0 only.
        let b = joined();
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.insert(4, Field::new("doubled", DataType::Int64, true));
        let mut cols = b.columns().to_vec();
        cols.insert(
            4,
            Arc::new(Int64Array::from(vec![Some(-1), None, None])) as ArrayRef,
        );
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let ds = [d("doubled", "p_sum * 2"), d("*", "*")];
        let left = s(&["user_id", "amount", "ts", "ds"]);
        let out = derive_join_with_left(&e, &b, &left, &base(), &ds, "t").unwrap();
        assert_eq!(
            names(&out),
            s(&["user_id", "amount", "ts", "ds", "doubled", "p_sum", "p_count"])
        );
        assert_eq!(ints(&out, "doubled"), vec![Some(-1), Some(100), None]);
        // Without left columns the bootstrapped value stays where it was, also coalesced.
        let out = derive_join(&e, &b, &base(), &ds, "t").unwrap();
        assert_eq!(ints(&out, "doubled"), vec![Some(-1), Some(100), None]);
        assert_eq!(names(&out).iter().filter(|n| *n == "doubled").count(), 1);
    }

    #[test]
    fn group_by_derivations_keep_keys_and_ds() {
        let (_d, e) = engine();
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("amount_sum_30d", DataType::Int64, true),
            Field::new("amount_count_30d", DataType::Int64, true),
            Field::new("ds", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["u1", "u2"])) as ArrayRef,
                Arc::new(Int64Array::from(vec![Some(30), Some(7)])),
                Arc::new(Int64Array::from(vec![Some(3), Some(0)])),
                Arc::new(StringArray::from(vec!["2026-01-01"; 2])),
            ],
        )
        .unwrap();
        let keys = s(&["user_id"]);
        let values = s(&["amount_sum_30d", "amount_count_30d"]);
        // No `*`: only the derivation, but keys and ds are kept.
        let ds = [d(
            "avg_30d",
            "CASE WHEN amount_count_30d > 0 THEN amount_sum_30d - amount_count_30d ELSE NULL END",
        )];
        let out = derive_group_by(&e, &b, &keys, &values, &ds, "t").unwrap();
        assert_eq!(names(&out), s(&["user_id", "ds", "avg_30d"]));
        assert_eq!(ints(&out, "avg_30d"), vec![Some(27), None]);
        // `*` then a rename: the renamed value disappears.
        let ds = [d("*", "*"), d("total", "amount_sum_30d")];
        let out = derive_group_by(&e, &b, &keys, &values, &ds, "t").unwrap();
        assert_eq!(
            names(&out),
            s(&["user_id", "ds", "amount_count_30d", "total"])
        );
        assert_eq!(
            group_by_derived_names(&names(&b), &keys, &values, &ds),
            names(&out)
        );
        assert_eq!(
            strs(&out, "user_id"),
            vec![Some("u1".into()), Some("u2".into())]
        );
    }

    #[test]
    fn bad_expression_names_the_derivation() {
        let (_d, e) = engine();
        let ds = [
            d("*", "*"),
            d("ok", "p_sum + 1"),
            d("broken", "p_sum +* no_such_fn("),
        ];
        let err = derive_join(&e, &joined(), &base(), &ds, "join risk.x").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Sql { .. }));
        assert!(
            msg.contains("join risk.x: derivation `broken` = `p_sum +* no_such_fn(`"),
            "{msg}"
        );
        assert!(msg.contains("fix:") && msg.contains("p_count"), "{msg}");

        let ds = [d("x", "unknown_column + 1")];
        let msg = derive_join(&e, &joined(), &base(), &ds, "j")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("derivation `x` = `unknown_column + 1`"),
            "{msg}"
        );
    }

    #[test]
    fn rename_of_a_missing_column_lists_the_columns() {
        let (_d, e) = engine();
        let ds = [d("*", "*"), d("renamed", "p_summ")];
        let err = derive_join(&e, &joined(), &base(), &ds, "j").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Sql { .. }));
        assert!(msg.contains("derivation `renamed` = `p_summ`"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(
            msg.contains("user_id, amount, ts, ds, p_sum, p_count"),
            "{msg}"
        );
        // Literals are not renames.
        let ds = [d("flag", "true"), d("nothing", "NULL")];
        let out = derive_join(&e, &joined(), &base(), &ds, "j").unwrap();
        assert_eq!(
            names(&out),
            s(&["user_id", "amount", "ts", "ds", "flag", "nothing"])
        );
    }

    #[test]
    fn duplicate_outputs_are_reported() {
        let (_d, e) = engine();
        let ds = [
            d("*", "*"),
            d("p_sum", "p_sum + 1"),
            d("p_sum", "p_sum + 2"),
        ];
        let msg = derive_join(&e, &joined(), &base(), &ds, "j")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`p_sum`"), "{msg}");
    }
}
