//! Spark SQL functions that Chronon configs use and that neither DataFusion nor the
//! `datafusion-spark` crate provide with Spark's semantics: `from_unixtime`, `unix_timestamp`,
//! `date_format` (with Java date patterns, in UTC, as Chronon forces the session to UTC) and
//! `get_json_object`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Builder, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use datafusion::common::{exec_err, plan_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Translates a Java `SimpleDateFormat` pattern (`yyyy-MM-dd HH:mm:ss`) to a chrono format.
pub fn java_to_chrono(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // quoted literal; '' is a single quote
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '\'' {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                if chars[j] == '%' {
                    out.push_str("%%")
                } else {
                    out.push(chars[j])
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%")
            } else {
                out.push(c)
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', _) => "%3f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', _) => "%j",
            _ => {
                return Err(format!(
                    "unsupported letter `{c}` in date pattern `{pattern}`"
                ))
            }
        };
        out.push_str(spec);
        i += n;
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    FromUnixtime,
    UnixTimestamp,
    DateFormat,
    GetJsonObject,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SparkFn {
    kind: Kind,
    signature: Signature,
}

const DEFAULT_FMT: &str = "yyyy-MM-dd HH:mm:ss";

impl ScalarUDFImpl for SparkFn {
    fn name(&self) -> &str {
        match self.kind {
            Kind::FromUnixtime => "from_unixtime",
            Kind::UnixTimestamp => "unix_timestamp",
            Kind::DateFormat => "date_format",
            Kind::GetJsonObject => "get_json_object",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let (min, max) = match self.kind {
            Kind::FromUnixtime => (1, 2),
            Kind::UnixTimestamp => (1, 2),
            Kind::DateFormat => (2, 2),
            Kind::GetJsonObject => (2, 2),
        };
        if args.len() < min || args.len() > max {
            return plan_err!(
                "{} takes {min} to {max} arguments, got {}",
                self.name(),
                args.len()
            );
        }
        Ok(match self.kind {
            Kind::UnixTimestamp => DataType::Int64,
            _ => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let out: ArrayRef = match self.kind {
            Kind::FromUnixtime => {
                let secs = cast(&arrays[0], &DataType::Int64)?;
                let secs = secs.as_primitive::<arrow::datatypes::Int64Type>();
                let fmts = string_arg(arrays.get(1))?;
                let mut b = StringBuilder::with_capacity(n, n * 19);
                for i in 0..secs.len() {
                    let fmt = fmts.as_ref().map(|f| f.value(i)).unwrap_or(DEFAULT_FMT);
                    if secs.is_null(i) || fmts.as_ref().is_some_and(|f| f.is_null(i)) {
                        b.append_null();
                        continue;
                    }
                    let cf = chrono_fmt(fmt)?;
                    match DateTime::from_timestamp(secs.value(i), 0) {
                        Some(dt) => b.append_value(dt.naive_utc().format(&cf).to_string()),
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::UnixTimestamp => {
                let fmts = string_arg(arrays.get(1))?;
                let mut b = Int64Builder::with_capacity(arrays[0].len());
                let millis = temporal_millis(&arrays[0], fmts.as_ref())?;
                for v in millis {
                    b.append_option(v.map(|ms| ms.div_euclid(1000)));
                }
                Arc::new(b.finish())
            }
            Kind::DateFormat => {
                let fmts = string_arg(arrays.get(1))?.expect("two arguments");
                let millis = temporal_millis(&arrays[0], None)?;
                let mut b = StringBuilder::new();
                for (i, v) in millis.into_iter().enumerate() {
                    match (v, fmts.is_null(i)) {
                        (Some(ms), false) => {
                            let cf = chrono_fmt(fmts.value(i))?;
                            let dt = DateTime::from_timestamp_millis(ms)
                                .expect("in range")
                                .naive_utc();
                            b.append_value(dt.format(&cf).to_string());
                        }
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::GetJsonObject => {
                let docs = string_arg(Some(&arrays[0]))?.expect("argument");
                let paths = string_arg(arrays.get(1))?.expect("two arguments");
                let mut b = StringBuilder::new();
                for i in 0..docs.len() {
                    if docs.is_null(i) || paths.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    b.append_option(json_path(docs.value(i), paths.value(i)));
                }
                Arc::new(b.finish())
            }
        };
        if all_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn chrono_fmt(java: &str) -> DfResult<String> {
    match java_to_chrono(java) {
        Ok(f) => Ok(f),
        Err(e) => exec_err!("{e}"),
    }
}

fn string_arg(a: Option<&ArrayRef>) -> DfResult<Option<arrow::array::StringArray>> {
    match a {
        None => Ok(None),
        Some(a) => Ok(Some(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())),
    }
}

/// Epoch milliseconds of a date, timestamp or string column (strings parsed with `fmt`, or as
/// `yyyy-MM-dd[ HH:mm:ss]` when no format is given).
fn temporal_millis(
    a: &ArrayRef,
    fmt: Option<&arrow::array::StringArray>,
) -> DfResult<Vec<Option<i64>>> {
    match a.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            let ms = cast(&ms, &DataType::Int64)?;
            let ms = ms.as_primitive::<arrow::datatypes::Int64Type>();
            Ok((0..ms.len())
                .map(|i| (!ms.is_null(i)).then(|| ms.value(i)))
                .collect())
        }
        _ => {
            let s = cast(a, &DataType::Utf8)?;
            let s = s.as_string::<i32>();
            let mut out = Vec::with_capacity(s.len());
            for i in 0..s.len() {
                if s.is_null(i) || fmt.is_some_and(|f| f.is_null(i)) {
                    out.push(None);
                    continue;
                }
                let v = s.value(i);
                let parsed = match fmt {
                    Some(f) => {
                        let cf = chrono_fmt(f.value(i))?;
                        NaiveDateTime::parse_from_str(v, &cf).ok().or_else(|| {
                            NaiveDate::parse_from_str(v, &cf)
                                .ok()
                                .map(|d| d.and_hms_opt(0, 0, 0).unwrap())
                        })
                    }
                    None => NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                        .ok()
                        .or_else(|| {
                            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                                .ok()
                                .map(|d| d.and_hms_opt(0, 0, 0).unwrap())
                        }),
                };
                out.push(parsed.map(|dt| dt.and_utc().timestamp_millis()));
            }
            Ok(out)
        }
    }
}

/// Evaluates a Spark JSON path (`$.a.b[0]`, `$['a']`) on a document; scalars are returned as
/// text, objects and arrays as JSON. Invalid JSON or a missing path gives NULL, as in Spark.
pub fn json_path(doc: &str, path: &str) -> Option<String> {
    let mut cur: serde_json::Value = serde_json::from_str(doc).ok()?;
    let p = path.strip_prefix('$')?;
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                let key: String = chars[start..j].iter().collect();
                cur = cur.get(&key)?.clone();
                i = j;
            }
            '[' => {
                let end = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if let Some(k) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    cur = cur.get(k)?.clone();
                } else {
                    let idx: usize = inner.parse().ok()?;
                    cur = cur.get(idx)?.clone();
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    match cur {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// The UDFs of this module, ready to register.
pub fn udfs() -> Vec<ScalarUDF> {
    [
        Kind::FromUnixtime,
        Kind::UnixTimestamp,
        Kind::DateFormat,
        Kind::GetJsonObject,
    ]
    .into_iter()
    .map(|kind| {
        ScalarUDF::from(SparkFn {
            kind,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns() {
        assert_eq!(java_to_chrono("yyyy-MM-dd").unwrap(), "%Y-%m-%d");
        assert_eq!(
            java_to_chrono("yyyy-MM-dd HH:mm:ss").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(java_to_chrono("yyyyMMdd'T'HH").unwrap(), "%Y%m%dT%H");
        assert!(java_to_chrono("yyyy-QQ").is_err());
    }

    #[test]
    fn json_paths() {
        let d = r#"{"a": {"b": [1, {"c": "x"}]}, "n": null, "s": "str"}"#;
        assert_eq!(json_path(d, "$.a.b[0]").as_deref(), Some("1"));
        assert_eq!(json_path(d, "$.a.b[1].c").as_deref(), Some("x"));
        assert_eq!(json_path(d, "$['s']").as_deref(), Some("str"));
        assert_eq!(json_path(d, "$.a.b[1]").as_deref(), Some(r#"{"c":"x"}"#));
        assert_eq!(json_path(d, "$.n"), None);
        assert_eq!(json_path(d, "$.missing"), None);
        assert_eq!(json_path("not json", "$.a"), None);
    }
}
