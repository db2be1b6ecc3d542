//! [`AggSpec`]: one Chronon aggregation operation with its parsed `argMap`, the output type it
//! produces for an input column type (chronon-semantics §2.3), and [`InputShape`], how an input
//! column is unpacked (list explode, per-key map aggregation).

use arrow::datatypes::DataType;

use super::value::{list_type, map_type};
use crate::config::{Aggregation, Operation};

/// How the input column is shaped (from its Arrow type, see [`InputShape::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputShape {
    /// Anything else, including lists of lists and maps with non-string keys.
    Scalar,
    /// A list of scalars: "simple" operations aggregate its elements.
    List,
    /// A map with string keys: "simple" operations aggregate per key.
    Map,
}

impl InputShape {
    /// The shape of a column of type `dt`: `List` for a list of scalars, `Map` for a map with
    /// string keys, `Scalar` otherwise (as Chronon's `ColumnAggregator.construct`).
    pub fn of(dt: &DataType) -> InputShape {
        match unwrap_dict(dt) {
            DataType::List(f) | DataType::LargeList(f) if is_scalar(f.data_type()) => {
                InputShape::List
            }
            DataType::Map(..) if map_parts(dt).is_some_and(|(k, _)| is_string(k)) => {
                InputShape::Map
            }
            _ => InputShape::Scalar,
        }
    }
}

/// One aggregation operation with its parsed argMap.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AggSpec {
    /// Crosses processes as its thrift code (the config's lenient reader needs a
    /// self-describing format, which bincode is not).
    #[serde(with = "op_code")]
    pub op: Operation,
    /// The resolved `k` (defaults applied): the limit of LAST_K/FIRST_K/TOP_K/BOTTOM_K, the
    /// truncation of HISTOGRAM (0 = none), the map size of APPROX_HISTOGRAM_K, the bound of
    /// BOUNDED_UNIQUE_COUNT, lgK of APPROX_UNIQUE_COUNT, KLL's k of APPROX_PERCENTILE.
    /// `None` for operations without a `k`.
    pub k: Option<usize>,
    /// APPROX_PERCENTILE's ranks in [0, 1], in output order; empty for other operations.
    pub percentiles: Vec<f64>,
}

/// An [`Operation`] on the wire: its thrift code.
mod op_code {
    use super::Operation;

    pub fn serialize<S: serde::Serializer>(op: &Operation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(op.code())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Operation, D::Error> {
        let code = <i64 as serde::Deserialize>::deserialize(d)?;
        Operation::ALL
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(op, _)| *op)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown operation code {code}")))
    }
}

/// Chronon's upper-case name of an operation (as in the Python API).
pub fn op_name(op: Operation) -> &'static str {
    use Operation::*;
    match op {
        Min => "MIN",
        Max => "MAX",
        First => "FIRST",
        Last => "LAST",
        UniqueCount => "UNIQUE_COUNT",
        ApproxUniqueCount => "APPROX_UNIQUE_COUNT",
        Count => "COUNT",
        Sum => "SUM",
        Average => "AVERAGE",
        Variance => "VARIANCE",
        Skew => "SKEW",
        Kurtosis => "KURTOSIS",
        ApproxPercentile => "APPROX_PERCENTILE",
        LastK => "LAST_K",
        FirstK => "FIRST_K",
        TopK => "TOP_K",
        BottomK => "BOTTOM_K",
        Histogram => "HISTOGRAM",
        ApproxHistogramK => "APPROX_HISTOGRAM_K",
        BoundedUniqueCount => "BOUNDED_UNIQUE_COUNT",
    }
}

/// Kind of a scalar input type, as the operation tables of §2.3 distinguish them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Str,
    Bin,
    Other,
}

fn unwrap_dict(dt: &DataType) -> &DataType {
    match dt {
        DataType::Dictionary(_, v) => unwrap_dict(v),
        other => other,
    }
}

fn kind(dt: &DataType) -> Kind {
    use DataType::*;
    match unwrap_dict(dt) {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Kind::Int,
        Float16 | Float32 | Float64 | Decimal128(..) | Decimal256(..) => Kind::Float,
        Boolean => Kind::Bool,
        Utf8 | LargeUtf8 | Utf8View => Kind::Str,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Kind::Bin,
        _ => Kind::Other,
    }
}

fn is_string(dt: &DataType) -> bool {
    kind(dt) == Kind::Str
}

fn is_temporal(dt: &DataType) -> bool {
    matches!(
        unwrap_dict(dt),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

fn is_scalar(dt: &DataType) -> bool {
    kind(dt) != Kind::Other || is_temporal(dt) || matches!(unwrap_dict(dt), DataType::Null)
}

fn map_parts(dt: &DataType) -> Option<(&DataType, &DataType)> {
    let DataType::Map(entries, _) = unwrap_dict(dt) else {
        return None;
    };
    let DataType::Struct(fields) = entries.data_type() else {
        return None;
    };
    (fields.len() == 2).then(|| (fields[0].data_type(), fields[1].data_type()))
}

/// The canonical type weft outputs for values of `dt` (ints → Int64, floats → Float64, strings →
/// Utf8, binary → Binary, lists and string-keyed maps recursively).
fn canonical(dt: &DataType) -> Result<DataType, String> {
    use DataType::*;
    match kind(dt) {
        Kind::Int => return Ok(Int64),
        Kind::Float => return Ok(Float64),
        Kind::Bool => return Ok(Boolean),
        Kind::Str => return Ok(Utf8),
        Kind::Bin => return Ok(Binary),
        Kind::Other => {}
    }
    match unwrap_dict(dt) {
        List(f) | LargeList(f) => Ok(list_type(canonical(f.data_type())?)),
        Map(..) => match map_parts(dt) {
            Some((k, v)) if is_string(k) => Ok(map_type(canonical(v)?)),
            _ => Err(format!("maps with non-string keys ({dt}) are not supported; Chronon aggregates map<string, _> only")),
        },
        t if is_temporal(t) => Err(temporal_message(dt)),
        other => Err(format!("input type {other} is not supported by weft's aggregations")),
    }
}

fn temporal_message(dt: &DataType) -> String {
    format!(
        "input type {dt}: date and timestamp columns should not be aggregated over; \
         convert them to a long in the source's selects (e.g. UNIX_TIMESTAMP(col) * 1000)"
    )
}

fn parse_int(agg: &Aggregation, key: &str) -> Result<Option<i64>, String> {
    let op = op_name(agg.operation);
    match agg.arg_map.get(key) {
        None => Ok(None),
        Some(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            format!("{op} on `{}`: argMap `{key}` = {s:?} is not an integer; set it to a whole number such as \"8\"", agg.input_column)
        }),
    }
}

impl AggSpec {
    /// Parses argMap (`k`, `percentiles`; `lgK` is accepted as an alias of APPROX_UNIQUE_COUNT's
    /// `k`) with Chronon's defaults. The error names the argMap key and the fix.
    pub fn new(agg: &Aggregation) -> Result<AggSpec, String> {
        use Operation::*;
        let op = agg.operation;
        let name = op_name(op);
        let col = &agg.input_column;
        let k_in = |lo: i64,
                    hi: i64,
                    default: Option<i64>,
                    what: &str|
         -> Result<Option<usize>, String> {
            let k = match parse_int(agg, "k")? {
                Some(k) => k,
                None => match default {
                    Some(d) => d,
                    None => {
                        return Err(format!(
                            "{name} on `{col}` needs argMap `k` ({what}); add e.g. argMap={{\"k\": \"10\"}}"
                        ));
                    }
                },
            };
            if k < lo || k > hi {
                return Err(format!(
                    "{name} on `{col}`: argMap `k` = {k} must be in [{lo}, {hi}] ({what})"
                ));
            }
            Ok(Some(k as usize))
        };
        let mut percentiles = Vec::new();
        let k = match op {
            LastK | FirstK | TopK | BottomK => {
                k_in(1, i32::MAX as i64, None, "the number of values to keep")?
            }
            Histogram => k_in(
                0,
                i32::MAX as i64,
                Some(0),
                "the number of most frequent values to keep, 0 for all",
            )?,
            ApproxHistogramK => k_in(
                1,
                1 << 29,
                Some(8),
                "the number of most frequent values to keep",
            )?,
            BoundedUniqueCount => k_in(
                1,
                i32::MAX as i64,
                Some(8),
                "the bound of the distinct count",
            )?,
            ApproxUniqueCount => {
                let k = match parse_int(agg, "k")? {
                    Some(k) => Some(k),
                    None => parse_int(agg, "lgK")?,
                }
                .unwrap_or(8);
                if !(4..=26).contains(&k) {
                    return Err(format!(
                        "{name} on `{col}`: argMap `k` (the CPC sketch's lgK) = {k} must be in [4, 26]; the default is 8"
                    ));
                }
                Some(k as usize)
            }
            ApproxPercentile => {
                percentiles = match agg.arg_map.get("percentiles") {
                    None => vec![0.5],
                    Some(s) => parse_percentiles(s).map_err(|why| {
                        format!(
                            "{name} on `{col}`: argMap `percentiles` = {s:?} {why}; set it to a JSON list of \
                             numbers in [0, 1], e.g. \"[0.5, 0.9, 0.99]\""
                        )
                    })?,
                };
                k_in(8, 65535, Some(128), "the KLL sketch's accuracy parameter")?
            }
            _ => None,
        };
        Ok(AggSpec { op, k, percentiles })
    }

    /// FIRST, LAST, FIRST_K and LAST_K are not "simple": they never explode lists or aggregate
    /// maps per key.
    pub fn is_simple(&self) -> bool {
        !matches!(
            self.op,
            Operation::First | Operation::Last | Operation::FirstK | Operation::LastK
        )
    }

    /// COUNT, SUM, AVERAGE, HISTOGRAM (Chronon's deletable operations).
    pub fn deletable(&self) -> bool {
        matches!(
            self.op,
            Operation::Count | Operation::Sum | Operation::Average | Operation::Histogram
        )
    }

    /// The output Arrow type for an input column of type `input` (§2.3): list inputs of simple
    /// operations aggregate their elements; map<string, X> inputs of simple operations output
    /// `Map(Utf8, <output for X>)`. Numbers are canonical (Int64 / Float64) except
    /// APPROX_PERCENTILE → `List(Float32)` and HISTOGRAM → `Map(Utf8, Int32)` (Chronon's
    /// `map<string,int>`); APPROX_HISTOGRAM_K → `Map(Utf8, Int64)`. Lists are
    /// `List(Field "item", nullable)`, maps use the standard `entries`/`keys`/`values` layout.
    pub fn output_type(&self, input: &DataType) -> Result<DataType, String> {
        if is_temporal(input) {
            return Err(temporal_message(input));
        }
        let name = op_name(self.op);
        if self.is_simple() {
            match (InputShape::of(input), unwrap_dict(input)) {
                (InputShape::List, DataType::List(f) | DataType::LargeList(f)) => {
                    return self.element_output(f.data_type());
                }
                (InputShape::Map, _) => {
                    let (_, v) = map_parts(input).expect("map shape has entries");
                    return Ok(map_type(self.element_output(v)?));
                }
                _ => {}
            }
            return self.element_output(input);
        }
        // FIRST, LAST, FIRST_K, LAST_K: any type, output as the (canonical) input.
        let t = canonical(input).map_err(|e| format!("{name}: {e}"))?;
        Ok(match self.op {
            Operation::First | Operation::Last => t,
            _ => list_type(t),
        })
    }

    /// Output of a simple operation for one (already unpacked) input element type.
    fn element_output(&self, t: &DataType) -> Result<DataType, String> {
        use Operation::*;
        let name = op_name(self.op);
        if is_temporal(t) && self.op != Count {
            return Err(temporal_message(t));
        }
        let kd = kind(t);
        let num = matches!(kd, Kind::Int | Kind::Float);
        let ordered = num || kd == Kind::Str;
        let mismatch = |accepted: &str| {
            Err(format!(
                "{name} does not accept input type {t}; it accepts {accepted}"
            ))
        };
        match self.op {
            Count => {
                canonical(t).or_else(|e| {
                    if is_temporal(t) {
                        Ok(DataType::Int64)
                    } else {
                        Err(e)
                    }
                })?;
                Ok(DataType::Int64)
            }
            Sum => match kd {
                Kind::Int | Kind::Bool => Ok(DataType::Int64),
                Kind::Float => Ok(DataType::Float64),
                _ => mismatch("numbers and booleans"),
            },
            Average | Variance | Skew | Kurtosis => {
                if num {
                    Ok(DataType::Float64)
                } else {
                    mismatch("numbers")
                }
            }
            Min | Max => {
                if ordered {
                    canonical(t)
                } else {
                    mismatch("numbers and strings")
                }
            }
            TopK | BottomK => {
                if ordered {
                    Ok(list_type(canonical(t)?))
                } else {
                    mismatch("numbers and strings")
                }
            }
            UniqueCount | ApproxUniqueCount | BoundedUniqueCount => {
                if ordered || kd == Kind::Bin {
                    Ok(DataType::Int64)
                } else {
                    mismatch("numbers, strings and binary")
                }
            }
            ApproxPercentile => {
                if num {
                    Ok(list_type(DataType::Float32))
                } else {
                    mismatch("numbers")
                }
            }
            Histogram => {
                if kd == Kind::Str {
                    Ok(map_type(DataType::Int32))
                } else {
                    mismatch("strings")
                }
            }
            ApproxHistogramK => {
                if ordered {
                    Ok(map_type(DataType::Int64))
                } else {
                    mismatch("numbers and strings")
                }
            }
            First | Last | FirstK | LastK => unreachable!("not simple"),
        }
    }
}

/// Parses a JSON list of numbers in [0, 1]; `Err(why)`.
fn parse_percentiles(s: &str) -> Result<Vec<f64>, String> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|_| "is not valid JSON".to_string())?;
    let items = v.as_array().ok_or("is not a JSON list")?;
    items
        .iter()
        .map(|x| {
            match x
                .as_f64()
                .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            {
                Some(p) if (0.0..=1.0).contains(&p) => Ok(p),
                Some(p) => Err(format!("contains {p}, outside [0, 1]")),
                None => Err(format!("contains {x}, which is not a number")),
            }
        })
        .collect()
}
