//! Decoded log values as Arrow columns, for every type a logging schema can hold: what
//! [`crate::aggregate::value::to_array`] builds, plus Int16 / Int8 and structs (a struct value
//! is the `List` of its field values, as the join codec decodes it), nested in lists and maps
//! to any depth.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int16Array, Int8Array, ListArray, MapArray, StructArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

use crate::aggregate::value::to_array;
use crate::aggregate::Value;
use crate::error::{Error, Result};

fn misfit(dt: &DataType, v: &Value) -> Error {
    Error::arrow(
        format!("building a {dt} column from log values"),
        ArrowError::InvalidArgumentError(format!("value {v:?} does not fit the type")),
    )
}

/// Builds a column of type `dt` from values (`Null` → null).
pub fn values_to_array(dt: &DataType, values: &[Value]) -> Result<ArrayRef> {
    let ctx = || format!("building a {dt} column from log values");
    match dt {
        DataType::Int16 | DataType::Int8 => {
            let mut out: Vec<Option<i64>> = Vec::with_capacity(values.len());
            for v in values {
                out.push(match v {
                    Value::Null => None,
                    Value::Long(x) => Some(*x),
                    other => return Err(misfit(dt, other)),
                });
            }
            let narrow = |x: i64, lo: i64, hi: i64| {
                if (lo..=hi).contains(&x) {
                    Ok(x)
                } else {
                    Err(misfit(dt, &Value::Long(x)))
                }
            };
            Ok(if *dt == DataType::Int16 {
                Arc::new(Int16Array::from(
                    out.into_iter()
                        .map(|x| {
                            x.map(|x| narrow(x, i16::MIN as i64, i16::MAX as i64).map(|x| x as i16))
                                .transpose()
                        })
                        .collect::<Result<Vec<_>>>()?,
                ))
            } else {
                Arc::new(Int8Array::from(
                    out.into_iter()
                        .map(|x| {
                            x.map(|x| narrow(x, i8::MIN as i64, i8::MAX as i64).map(|x| x as i8))
                                .transpose()
                        })
                        .collect::<Result<Vec<_>>>()?,
                ))
            })
        }
        DataType::Struct(fields) => {
            let mut children: Vec<Vec<Value>> =
                vec![Vec::with_capacity(values.len()); fields.len()];
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    Value::Null => {
                        valid.push(false);
                        children.iter_mut().for_each(|c| c.push(Value::Null));
                    }
                    Value::List(items) if items.len() == fields.len() => {
                        valid.push(true);
                        for (c, x) in children.iter_mut().zip(items) {
                            c.push(x.clone());
                        }
                    }
                    other => return Err(misfit(dt, other)),
                }
            }
            let arrays = fields
                .iter()
                .zip(&children)
                .map(|(f, c)| values_to_array(f.data_type(), c))
                .collect::<Result<Vec<_>>>()?;
            let s = StructArray::try_new(fields.clone(), arrays, nulls(valid))
                .map_err(|e| Error::arrow(ctx(), e))?;
            Ok(Arc::new(s))
        }
        DataType::List(field) if needs_own_builder(field.data_type()) => {
            let (offsets, valid, items) = flatten(dt, values, |v| match v {
                Value::List(items) => Some(items.clone()),
                _ => None,
            })?;
            let child = values_to_array(field.data_type(), &items)?;
            let l = ListArray::try_new(field.clone(), offsets, child, nulls(valid))
                .map_err(|e| Error::arrow(ctx(), e))?;
            Ok(Arc::new(l))
        }
        DataType::Map(field, sorted) => match field.data_type() {
            DataType::Struct(kv) if kv.len() == 2 && needs_own_builder(kv[1].data_type()) => {
                let (offsets, valid, entries) = flatten(dt, values, |v| match v {
                    Value::Map(entries) => Some(
                        entries
                            .iter()
                            .map(|(k, x)| Value::List(vec![k.clone(), x.clone()]))
                            .collect(),
                    ),
                    _ => None,
                })?;
                let (mut keys, mut vals) = (Vec::new(), Vec::new());
                for e in entries {
                    let Value::List(mut kx) = e else {
                        unreachable!("entries are pairs")
                    };
                    vals.push(kx.pop().unwrap_or(Value::Null));
                    keys.push(kx.pop().unwrap_or(Value::Null));
                }
                if let Some(k) = keys.iter().find(|k| k.is_null()) {
                    return Err(misfit(dt, k));
                }
                let entries = StructArray::try_new(
                    kv.clone(),
                    vec![
                        values_to_array(kv[0].data_type(), &keys)?,
                        values_to_array(kv[1].data_type(), &vals)?,
                    ],
                    None,
                )
                .map_err(|e| Error::arrow(ctx(), e))?;
                let m = MapArray::try_new(field.clone(), offsets, entries, nulls(valid), *sorted)
                    .map_err(|e| Error::arrow(ctx(), e))?;
                Ok(Arc::new(m))
            }
            _ => to_array(dt, values),
        },
        _ => to_array(dt, values),
    }
}

/// Whether a type (or a type nested in it) is one `to_array` does not build.
fn needs_own_builder(dt: &DataType) -> bool {
    match dt {
        DataType::Int16 | DataType::Int8 | DataType::Struct(_) => true,
        DataType::List(f) => needs_own_builder(f.data_type()),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => needs_own_builder(kv[1].data_type()),
            _ => false,
        },
        _ => false,
    }
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    (!valid.iter().all(|v| *v)).then(|| NullBuffer::from(valid))
}

type Flat = (OffsetBuffer<i32>, Vec<bool>, Vec<Value>);

/// List-like values laid out for Arrow: offsets, validity and the concatenated children.
fn flatten(
    dt: &DataType,
    values: &[Value],
    children: impl Fn(&Value) -> Option<Vec<Value>>,
) -> Result<Flat> {
    let mut lengths = Vec::with_capacity(values.len());
    let mut valid = Vec::with_capacity(values.len());
    let mut items = Vec::new();
    for v in values {
        if v.is_null() {
            lengths.push(0);
            valid.push(false);
            continue;
        }
        let c = children(v).ok_or_else(|| misfit(dt, v))?;
        lengths.push(c.len());
        valid.push(true);
        items.extend(c);
    }
    Ok((OffsetBuffer::from_lengths(lengths), valid, items))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Field;

    use super::*;
    use crate::aggregate::value::{column_values, map_type};

    #[test]
    fn nested_structs_small_ints_lists_and_maps() {
        let point = DataType::Struct(
            vec![
                Field::new("x", DataType::Int16, true),
                Field::new(
                    "tags",
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    true,
                ),
            ]
            .into(),
        );
        let list_of_points = DataType::List(Arc::new(Field::new("item", point.clone(), true)));
        let p =
            |x: i64, t: &str| Value::List(vec![Value::Long(x), Value::List(vec![Value::str(t)])]);
        let values = vec![
            Value::List(vec![p(1, "a"), Value::Null, p(-3, "b")]),
            Value::Null,
            Value::List(vec![]),
        ];
        let a = values_to_array(&list_of_points, &values).unwrap();
        assert_eq!(a.data_type(), &list_of_points);
        assert_eq!(a.len(), 3);
        assert!(a.is_null(1));
        let inner = a.as_list::<i32>().value(0);
        let s = inner.as_struct();
        assert!(s.is_null(1));
        assert_eq!(
            s.column(0)
                .as_primitive::<arrow::datatypes::Int16Type>()
                .value(2),
            -3
        );

        let m = map_type(point.clone());
        let mv = vec![Value::Map(vec![(Value::str("k"), p(2, "c"))]), Value::Null];
        let a = values_to_array(&m, &mv).unwrap();
        assert_eq!(a.data_type(), &m);
        assert!(a.is_null(1));

        let bytes = values_to_array(&DataType::Int8, &[Value::Long(5), Value::Null]).unwrap();
        assert_eq!(
            column_values(&bytes).unwrap(),
            vec![Value::Long(5), Value::Null]
        );
        assert!(values_to_array(&DataType::Int8, &[Value::Long(300)]).is_err());
        assert!(values_to_array(&point, &[Value::Long(1)]).is_err());
        // plain types go through to_array
        let longs = values_to_array(&DataType::Int64, &[Value::Long(1)]).unwrap();
        assert_eq!(longs.data_type(), &DataType::Int64);
    }
}
