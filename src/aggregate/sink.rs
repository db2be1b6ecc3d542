//! [`ColumnSink`]: builds one Arrow output column value by value, from encoded values
//! ([`super::codec`]) or from [`Value`]s. Int64, Float64, Boolean and Utf8 columns append
//! scalars straight into Arrow builders, without a `Value` per cell; every other type
//! collects values and goes through [`to_array`]. Either way a value that does not fit the
//! column's type is the same error as [`to_array`]'s.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;

use super::codec::{self, Scalar};
use super::value::{misfit, to_array};
use super::Value;
use crate::error::{Error, Result};

/// One output column being built.
pub enum ColumnSink {
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    /// Any other type: values collected for [`to_array`].
    Values(DataType, Vec<Value>),
}

impl ColumnSink {
    /// An empty column of type `dt`, with room for `rows` values.
    pub fn new(dt: &DataType, rows: usize) -> ColumnSink {
        match dt {
            DataType::Int64 => ColumnSink::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => ColumnSink::Float64(Float64Builder::with_capacity(rows)),
            DataType::Boolean => ColumnSink::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Utf8 => ColumnSink::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            other => ColumnSink::Values(other.clone(), Vec::with_capacity(rows)),
        }
    }

    /// The column's type.
    fn data_type(&self) -> DataType {
        match self {
            ColumnSink::Int64(_) => DataType::Int64,
            ColumnSink::Float64(_) => DataType::Float64,
            ColumnSink::Boolean(_) => DataType::Boolean,
            ColumnSink::Utf8(_) => DataType::Utf8,
            ColumnSink::Values(dt, _) => dt.clone(),
        }
    }

    /// Appends a NULL.
    pub fn push_null(&mut self) {
        match self {
            ColumnSink::Int64(b) => b.append_null(),
            ColumnSink::Float64(b) => b.append_null(),
            ColumnSink::Boolean(b) => b.append_null(),
            ColumnSink::Utf8(b) => b.append_null(),
            ColumnSink::Values(_, v) => v.push(Value::Null),
        }
    }

    /// Appends one value.
    pub fn push_value(&mut self, v: Value) -> Result<()> {
        if let ColumnSink::Values(_, values) = self {
            values.push(v);
            return Ok(());
        }
        match scalar_of(&v) {
            Some(s) if self.push_scalar(s) => Ok(()),
            _ => Err(self.misfit(&v)),
        }
    }

    /// Appends the value at the front of `bytes` (an encoding made by [`codec::encode`]) and
    /// advances past it.
    pub fn push_encoded(&mut self, bytes: &mut &[u8]) -> Result<()> {
        if let ColumnSink::Values(_, values) = self {
            let v = codec::try_decode_value(bytes).map_err(Error::internal)?;
            values.push(v);
            return Ok(());
        }
        match codec::read_scalar(bytes) {
            Scalar::End => Err(Error::internal(format!(
                "building a {} column: an encoded row has fewer values than the output has columns",
                self.data_type()
            ))),
            Scalar::Nested => {
                let v = codec::try_decode_value(bytes).map_err(Error::internal)?;
                Err(self.misfit(&v))
            }
            s => {
                if self.push_scalar(s) {
                    Ok(())
                } else {
                    Err(self.misfit(&value_of(s)))
                }
            }
        }
    }

    /// Appends a scalar if it fits the column (as [`to_array`] converts); false if not.
    fn push_scalar(&mut self, s: Scalar) -> bool {
        match (self, s) {
            (ColumnSink::Int64(b), Scalar::Null) => b.append_null(),
            (ColumnSink::Float64(b), Scalar::Null) => b.append_null(),
            (ColumnSink::Boolean(b), Scalar::Null) => b.append_null(),
            (ColumnSink::Utf8(b), Scalar::Null) => b.append_null(),
            (ColumnSink::Int64(b), Scalar::Long(x)) => b.append_value(x),
            (ColumnSink::Float64(b), Scalar::Long(x)) => b.append_value(x as f64),
            (ColumnSink::Float64(b), Scalar::Double(bits)) => b.append_value(f64::from_bits(bits)),
            (ColumnSink::Boolean(b), Scalar::Bool(x)) => b.append_value(x),
            (ColumnSink::Utf8(b), Scalar::Str(s)) => b.append_value(s),
            _ => return false,
        }
        true
    }

    fn misfit(&self, v: &Value) -> Error {
        misfit(&self.data_type(), v)
    }

    /// The finished column.
    pub fn finish(self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnSink::Int64(mut b) => Arc::new(b.finish()),
            ColumnSink::Float64(mut b) => Arc::new(b.finish()),
            ColumnSink::Boolean(mut b) => Arc::new(b.finish()),
            ColumnSink::Utf8(mut b) => Arc::new(b.finish()),
            ColumnSink::Values(dt, values) => return to_array(&dt, &values),
        })
    }
}

fn scalar_of(v: &Value) -> Option<Scalar<'_>> {
    Some(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Long(x) => Scalar::Long(*x),
        Value::Double(bits) => Scalar::Double(*bits),
        Value::Str(s) => Scalar::Str(s),
        _ => return None,
    })
}

fn value_of(s: Scalar) -> Value {
    match s {
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Long(x) => Value::Long(x),
        Scalar::Double(bits) => Value::Double(bits),
        Scalar::Str(s) => Value::str(s),
        Scalar::Null | Scalar::Nested | Scalar::End => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Long(3),
            Value::double(-1.5),
            Value::Bool(true),
            Value::str("x"),
            Value::List(vec![Value::Long(1), Value::Null]),
        ]
    }

    /// Every type, built value by value and from encoded values, equals `to_array` over the
    /// same values; a misfit is an error on both paths.
    #[test]
    fn sinks_build_what_to_array_builds() {
        let types = [
            DataType::Int64,
            DataType::Float64,
            DataType::Boolean,
            DataType::Utf8,
            DataType::Int32,
            crate::aggregate::value::list_type(DataType::Int64),
        ];
        for dt in &types {
            for v in values() {
                let col = vec![Value::Null, v.clone(), Value::Null];
                let expected = to_array(dt, &col);
                let mut by_value = ColumnSink::new(dt, 3);
                let mut encoded = ColumnSink::new(dt, 3);
                let mut buf = Vec::new();
                codec::encode(&col, &mut buf);
                let mut bytes = buf.as_slice();
                let mut ok = (true, true);
                for x in &col {
                    ok.0 &= by_value.push_value(x.clone()).is_ok();
                    ok.1 &= encoded.push_encoded(&mut bytes).is_ok();
                }
                let by_value = if ok.0 { by_value.finish().ok() } else { None };
                let encoded = if ok.1 { encoded.finish().ok() } else { None };
                match expected {
                    Ok(array) => {
                        assert_eq!(by_value.as_ref(), Some(&array), "{dt} {v:?}");
                        assert_eq!(encoded.as_ref(), Some(&array), "{dt} {v:?}");
                    }
                    Err(_) => {
                        assert!(by_value.is_none(), "{dt} accepted {v:?}");
                        assert!(encoded.is_none(), "{dt} accepted {v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_short_encoded_row_is_an_error_not_a_panic() {
        let mut sink = ColumnSink::new(&DataType::Int64, 1);
        let mut bytes: &[u8] = &[];
        let err = sink.push_encoded(&mut bytes).unwrap_err().to_string();
        assert!(err.contains("fewer values"), "{err}");
    }
}
