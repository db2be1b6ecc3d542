//! Spark's `/`: Chronon expressions are Spark SQL, where `/` on integral or floating operands
//! casts both to DOUBLE (`7 / 2` = 3.5, `sum_col / 30` is a double) and, outside ANSI mode, a
//! zero divisor gives NULL instead of an error (`x / 0`, `x / 0.0`, `0.0 / 0.0` are all NULL).
//! DataFusion divides integers as integers (and fails on a zero divisor), so
//! [`SparkDivisionPlanner`] plans `a / b` as `spark_divide(a, b)` when neither operand is a
//! decimal: the arguments are coerced to Float64, the result is `(double)a / (double)b`, NULL
//! when the divisor is 0 (either sign) or either operand is NULL. The column name stays
//! DataFusion's `a / b`. Decimal operands keep DataFusion's division, and so does integer
//! division (`//`).
//!
//! This is an [`ExprPlanner`] (registered on the session, and so inherited by every session
//! built from it: [`Session::with_batch`](super::Session::with_batch)) rather than an analyzer
//! rule: the rewrite happens while SQL is planned, so every schema derived from the expression
//! (projections, unions, the schema of a `CREATE VIEW`, which DataFusion does not analyze) has
//! the double type from the start.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{plan_err, DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

/// Plans `/` with Spark's semantics when neither operand is a decimal (see the module docs).
#[derive(Debug, Default)]
pub struct SparkDivisionPlanner;

impl ExprPlanner for SparkDivisionPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::Divide {
            return Ok(PlannerResult::Original(expr));
        }
        // An operand whose type cannot be found is left to DataFusion, which reports it.
        let spark = match (expr.left.get_type(schema), expr.right.get_type(schema)) {
            (Ok(l), Ok(r)) => divides_as_double(&l) && divides_as_double(&r),
            _ => false,
        };
        if !spark {
            return Ok(PlannerResult::Original(expr));
        }
        Ok(PlannerResult::Planned(
            SPARK_DIVIDE.call(vec![expr.left, expr.right]),
        ))
    }
}

/// Integers, floats and NULL: the operand types Spark casts to DOUBLE for `/` (decimals keep a
/// decimal division).
fn divides_as_double(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || *t == DataType::Null
}

static SPARK_DIVIDE: LazyLock<ScalarUDF> = LazyLock::new(|| {
    ScalarUDF::from(SparkDivide {
        signature: Signature::user_defined(Volatility::Immutable),
    })
});

/// `spark_divide(a, b)`: `a / b` in Float64, NULL for a zero divisor. Not registered under its
/// name: only [`SparkDivisionPlanner`] creates it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SparkDivide {
    signature: Signature,
}

impl ScalarUDFImpl for SparkDivide {
    fn name(&self) -> &str {
        "spark_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The name DataFusion gives `a / b`, so that planning `/` this way renames nothing.
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        match args {
            [a, b] => Ok(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(a.clone()),
                Operator::Divide,
                Box::new(b.clone()),
            ))
            .schema_name()
            .to_string()),
            _ => plan_err!("spark_divide takes 2 arguments, got {}", args.len()),
        }
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 2 || !arg_types.iter().all(divides_as_double) {
            return plan_err!(
                "spark_divide takes two integer or floating point arguments, got {arg_types:?}"
            );
        }
        Ok(vec![DataType::Float64, DataType::Float64])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return plan_err!("spark_divide takes 2 arguments, got {}", arrays.len());
        };
        let out: ArrayRef = Arc::new(divide(
            a.as_primitive::<Float64Type>(),
            b.as_primitive::<Float64Type>(),
        ));
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// `a / b` per row; NULL where either is NULL or `b` is ±0.0.
fn divide(a: &Float64Array, b: &Float64Array) -> Float64Array {
    let values: ScalarBuffer<f64> = a
        .values()
        .iter()
        .zip(b.values().iter())
        .map(|(x, y)| x / y)
        .collect();
    let nonzero = NullBuffer::new(BooleanBuffer::collect_bool(b.len(), |i| b.value(i) != 0.0));
    let nulls = NullBuffer::union(
        NullBuffer::union(a.nulls(), b.nulls()).as_ref(),
        Some(&nonzero),
    );
    Float64Array::new(values, nulls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Session;
    use crate::warehouse::{TableName, Warehouse};
    use arrow::array::{Decimal128Array, Float32Array, Int32Array, Int64Array, RecordBatch};
    use arrow::datatypes::{Field, Schema, SchemaRef};

    /// An engine over an empty warehouse.
    fn engine() -> (tempfile::TempDir, Session) {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let engine = Session::new(&wh).unwrap();
        (dir, engine)
    }

    /// Runs a one-column query and returns the column's type and its values as `Option<f64>`
    /// (NULL → None).
    fn one_column(engine: &Session, sql: &str) -> (DataType, Vec<Option<f64>>) {
        let (schema, batches) = engine.query_with_schema(sql, "test").unwrap();
        assert_eq!(schema.fields().len(), 1, "{sql}");
        let t = schema.field(0).data_type().clone();
        let mut vals = Vec::new();
        for b in &batches {
            let c = arrow::compute::cast(b.column(0), &DataType::Float64).unwrap();
            vals.extend(c.as_primitive::<Float64Type>().iter());
        }
        (t, vals)
    }

    /// `SELECT {expr}`: its type and value.
    fn scalar(engine: &Session, expr: &str) -> (DataType, Option<f64>) {
        let (t, v) = one_column(engine, &format!("SELECT {expr} AS \"x\""));
        assert_eq!(v.len(), 1, "{expr}");
        (t, v[0])
    }

    fn batch() -> RecordBatch {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("j", DataType::Int32, true),
            Field::new("f", DataType::Float32, true),
            Field::new("d", DataType::Float64, true),
            Field::new("m", DataType::Decimal128(10, 2), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(7),
                    Some(-7),
                    Some(5),
                    None,
                    Some(0),
                ])),
                Arc::new(Int32Array::from(vec![
                    Some(2),
                    Some(2),
                    Some(0),
                    Some(3),
                    Some(0),
                ])),
                Arc::new(Float32Array::from(vec![1.5, 0.0, -0.0, 2.0, 4.0])),
                Arc::new(Float64Array::from(vec![2.0, 0.5, 0.0, 3.0, f64::NAN])),
                Arc::new(
                    Decimal128Array::from(vec![Some(750), Some(-125), Some(0), None, Some(100)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap()
    }

    /// `SELECT {list}` over [`batch`]: the result batch.
    fn over_batch(engine: &Session, list: &str) -> RecordBatch {
        engine.query_batch(&batch(), list, "test").unwrap()
    }

    fn f64s(b: &RecordBatch, i: usize) -> Vec<Option<f64>> {
        assert_eq!(b.schema().field(i).data_type(), &DataType::Float64);
        b.column(i).as_primitive::<Float64Type>().iter().collect()
    }

    #[test]
    fn integer_over_integer_is_a_double() {
        let (_d, e) = engine();
        assert_eq!(scalar(&e, "7 / 2"), (DataType::Float64, Some(3.5)));
        assert_eq!(scalar(&e, "-7 / 2"), (DataType::Float64, Some(-3.5)));
        assert_eq!(scalar(&e, "1 / 3"), (DataType::Float64, Some(1.0 / 3.0)));
        assert_eq!(
            scalar(&e, "CAST(7 AS TINYINT) / CAST(2 AS SMALLINT)"),
            (DataType::Float64, Some(3.5))
        );
        assert_eq!(
            scalar(&e, "CAST(7 AS INT UNSIGNED) / CAST(2 AS BIGINT UNSIGNED)"),
            (DataType::Float64, Some(3.5))
        );
        let b = over_batch(&e, "i / j AS \"q\", i / 2 AS \"h\", 30 / j AS \"r\"");
        assert_eq!(f64s(&b, 0), vec![Some(3.5), Some(-3.5), None, None, None]);
        assert_eq!(
            f64s(&b, 1),
            vec![Some(3.5), Some(-3.5), Some(2.5), None, Some(0.0)]
        );
        assert_eq!(
            f64s(&b, 2),
            vec![Some(15.0), Some(15.0), None, Some(10.0), None]
        );
    }

    #[test]
    fn integer_and_float_operands_divide_as_doubles() {
        let (_d, e) = engine();
        assert_eq!(scalar(&e, "7 / 2.0"), (DataType::Float64, Some(3.5)));
        assert_eq!(
            scalar(&e, "CAST(7 AS DOUBLE) / 2"),
            (DataType::Float64, Some(3.5))
        );
        // Spark casts FLOAT to DOUBLE too.
        assert_eq!(
            scalar(&e, "CAST(1 AS FLOAT) / CAST(3 AS FLOAT)"),
            (DataType::Float64, Some(1.0 / 3.0))
        );
        let b = over_batch(&e, "i / d AS \"a\", d / j AS \"b\", f / j AS \"c\"");
        assert_eq!(f64s(&b, 0)[..3], [Some(3.5), Some(-14.0), None]);
        assert!(f64s(&b, 0)[4].unwrap().is_nan(), "0 / NaN is NaN");
        assert_eq!(f64s(&b, 1)[..4], [Some(1.0), Some(0.25), None, Some(1.0)]);
        assert_eq!(
            f64s(&b, 2)[..4],
            [Some(0.75), Some(0.0), None, Some(2.0 / 3.0)]
        );
        assert_eq!(f64s(&b, 2)[4], None);
    }

    #[test]
    fn division_by_zero_is_null() {
        let (_d, e) = engine();
        for expr in [
            "1 / 0",
            "0 / 0",
            "1.5 / 0",
            "1 / 0.0",
            "1 / -0.0",
            "0.0 / 0.0",
            "CAST(1 AS DOUBLE) / CAST(0 AS DOUBLE)",
            "CAST(NULL AS BIGINT) / 2",
            "NULL / 2",
            "2 / NULL",
        ] {
            assert_eq!(scalar(&e, expr), (DataType::Float64, None), "{expr}");
        }
        // Over columns: integer, float and negative-zero divisors.
        let b = over_batch(&e, "i / j AS \"a\", d / f AS \"b\", i / (j - j) AS \"c\"");
        assert_eq!(f64s(&b, 0)[2], None);
        assert_eq!(f64s(&b, 1)[..4], [Some(2.0 / 1.5), None, None, Some(1.5)]);
        assert!(f64s(&b, 1)[4].unwrap().is_nan(), "NaN / 4 is NaN");
        assert!(f64s(&b, 2).iter().all(Option::is_none));
        // A zero divisor in a WHERE does not fail the query either.
        let (_, v) = one_column(&e, "SELECT 1 AS \"x\" WHERE 1 / 0 IS NULL");
        assert_eq!(v, vec![Some(1.0)]);
        // NaN and infinities are not zero.
        assert!(scalar(&e, "CAST('NaN' AS DOUBLE) / 1").1.unwrap().is_nan());
        assert!(scalar(&e, "1 / CAST('NaN' AS DOUBLE)").1.unwrap().is_nan());
        assert_eq!(
            scalar(&e, "1 / CAST('Infinity' AS DOUBLE)"),
            (DataType::Float64, Some(0.0))
        );
    }

    #[test]
    fn decimal_division_is_datafusions() {
        let (_d, e) = engine();
        let b = over_batch(
            &e,
            "m / 2 AS \"a\", m / CAST(0.5 AS DECIMAL(3, 1)) AS \"b\", \
             i / CAST(2 AS DECIMAL(3, 1)) AS \"c\"",
        );
        for i in 0..3 {
            assert!(
                matches!(b.schema().field(i).data_type(), DataType::Decimal128(_, _)),
                "column {i}: {}",
                b.schema().field(i).data_type()
            );
        }
        let as_f64 = |i: usize| -> Vec<Option<f64>> {
            let c = arrow::compute::cast(b.column(i), &DataType::Float64).unwrap();
            c.as_primitive::<Float64Type>().iter().collect()
        };
        assert_eq!(
            as_f64(0),
            vec![Some(3.75), Some(-0.625), Some(0.0), None, Some(0.5)]
        );
        assert_eq!(
            as_f64(1),
            vec![Some(15.0), Some(-2.5), Some(0.0), None, Some(2.0)]
        );
        assert_eq!(
            as_f64(2),
            vec![Some(3.5), Some(-3.5), Some(2.5), None, Some(0.0)]
        );
        // DataFusion's decimal division still fails on a zero divisor.
        assert!(e
            .query_batch(&batch(), "i / (m - m) AS \"z\"", "test")
            .is_err());
        assert_eq!(scalar(&e, "1.5 / 0.5").0, DataType::Float64);
        assert!(matches!(
            scalar(&e, "CAST(1.5 AS DECIMAL(4, 2)) / 2").0,
            DataType::Decimal128(_, _)
        ));
    }

    #[test]
    fn nested_expressions_and_names() {
        let (_d, e) = engine();
        assert_eq!(scalar(&e, "7 / 2 / 2"), (DataType::Float64, Some(1.75)));
        assert_eq!(scalar(&e, "1 + 7 / 2"), (DataType::Float64, Some(4.5)));
        assert_eq!(scalar(&e, "(7 / 2) * 2"), (DataType::Float64, Some(7.0)));
        assert_eq!(
            scalar(&e, "CAST(7 / 2 AS BIGINT)"),
            (DataType::Int64, Some(3.0))
        );
        assert_eq!(
            scalar(&e, "coalesce(1 / 0, -1)"),
            (DataType::Float64, Some(-1.0))
        );
        assert_eq!(
            one_column(
                &e,
                "SELECT sum(x) / count(x) FROM (VALUES (1), (2)) AS t(x)"
            ),
            (DataType::Float64, vec![Some(1.5)])
        );
        let b = over_batch(
            &e,
            "i / j + i / 4 AS \"a\", CASE WHEN j > 0 THEN i / j END AS \"b\", i / j, i / 2 / j, \
             i * j, i * 2 * j",
        );
        assert_eq!(f64s(&b, 0)[..2], [Some(5.25), Some(-5.25)]);
        assert_eq!(f64s(&b, 1)[..3], [Some(3.5), Some(-3.5), None]);
        // Unaliased columns keep DataFusion's names.
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names[2], names[4].replace(" * ", " / "), "{names:?}");
        assert_eq!(names[3], names[5].replace(" * ", " / "), "{names:?}");
        assert!(
            !names.iter().any(|n| n.contains("spark_divide")),
            "{names:?}"
        );
        assert_eq!(f64s(&b, 3)[..3], [Some(1.75), Some(-1.75), None]);
        // GROUP BY / ORDER BY on a division.
        let (t, v) = one_column(
            &e,
            "SELECT x / 2 AS \"h\" FROM (VALUES (1), (2), (3), (3)) AS t(x) GROUP BY x / 2 ORDER BY x / 2",
        );
        assert_eq!(t, DataType::Float64);
        assert_eq!(v, vec![Some(0.5), Some(1.0), Some(1.5)]);
    }

    #[test]
    fn other_operators_are_unaffected() {
        let (_d, e) = engine();
        assert_eq!(scalar(&e, "7 % 2"), (DataType::Int64, Some(1.0)));
        assert_eq!(scalar(&e, "7 * 2"), (DataType::Int64, Some(14.0)));
        assert_eq!(scalar(&e, "7 - 2"), (DataType::Int64, Some(5.0)));
        let b = over_batch(&e, "i % 2 AS \"a\", i * j AS \"b\"");
        assert_eq!(b.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(b.schema().field(1).data_type(), &DataType::Int64);
        // Spark's integer division `a div b` is not parsed by the generic SQL dialect, and
        // DataFusion cannot execute `//`: both are refused, never read as a double division.
        for sql in ["SELECT 7 DIV 2", "SELECT 7 // 2"] {
            assert!(e.query(sql, "test").is_err(), "{sql}");
        }
    }

    #[test]
    fn views_and_tables_see_the_double_type() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let b = batch();
        let t = TableName::parse("ns.t").unwrap();
        wh.write_partition(&t, &[("ds".into(), "2026-01-01".into())], b.schema(), &[b])
            .unwrap();
        let e = Session::new(&wh).unwrap();
        e.create_view(
            &TableName::parse("ns.v").unwrap(),
            "SELECT i / j AS q FROM ns.t",
        )
        .unwrap();
        let (t, v) = one_column(&e, "SELECT q FROM ns.v");
        assert_eq!(t, DataType::Float64);
        assert_eq!(v, vec![Some(3.5), Some(-3.5), None, None, None]);
        let (t, v) = one_column(&e, "SELECT sum(i) / 2 FROM ns.t WHERE i / j > 0");
        assert_eq!(t, DataType::Float64);
        assert_eq!(v, vec![Some(3.5)]);
    }

    #[test]
    fn kernel_nulls_zero_divisors_of_either_sign() {
        let a = Float64Array::from(vec![Some(1.0), Some(1.0), Some(1.0), None, Some(-3.0)]);
        let b = Float64Array::from(vec![Some(0.0), Some(-0.0), Some(4.0), Some(1.0), None]);
        let q = divide(&a, &b);
        assert_eq!(
            q.iter().collect::<Vec<_>>(),
            vec![None, None, Some(0.25), None, None]
        );
    }
}
