//! argMap defaults and errors, output types, Arrow round trips, Java key strings.

use super::*;

// ------------------------------------------------------------------------------------------
// argMap, output types, Arrow conversions

#[test]
fn arg_map_defaults_and_errors() {
    use Operation::*;
    assert_eq!(spec(ApproxUniqueCount, &[]).k, Some(8));
    assert_eq!(spec(ApproxPercentile, &[]).k, Some(128));
    assert_eq!(spec(ApproxPercentile, &[]).percentiles, vec![0.5]);
    assert_eq!(
        spec(ApproxPercentile, &[("percentiles", "[0.1, \"0.9\"]")]).percentiles,
        vec![0.1, 0.9]
    );
    assert_eq!(spec(ApproxHistogramK, &[]).k, Some(8));
    assert_eq!(spec(Histogram, &[]).k, Some(0));
    assert_eq!(spec(BoundedUniqueCount, &[]).k, Some(8));
    assert_eq!(spec(LastK, &[("k", " 5 ")]).k, Some(5));
    assert_eq!(
        spec(Sum, &[("k", "junk")]).k,
        None,
        "unrelated keys are ignored"
    );
    let err = |op, args: &[(&str, &str)]| AggSpec::new(&agg_of(op, args)).unwrap_err();
    assert!(
        err(LastK, &[]).contains("argMap `k`"),
        "{}",
        err(LastK, &[])
    );
    assert!(err(TopK, &[("k", "abc")]).contains("not an integer"));
    assert!(err(FirstK, &[("k", "0")]).contains("must be in"));
    for bad in ["0.5", "[1.5]", "[\"x\"]", "nope"] {
        let e = err(ApproxPercentile, &[("percentiles", bad)]);
        assert!(
            e.contains("`percentiles`") && e.contains("JSON list"),
            "{e}"
        );
    }
    assert!(err(ApproxUniqueCount, &[("k", "40")]).contains("lgK"));
    assert!(spec(Count, &[]).deletable() && spec(Histogram, &[]).deletable());
    assert!(!spec(Variance, &[]).deletable() && !spec(ApproxPercentile, &[]).deletable());
}

#[test]
fn output_types_per_operation() {
    use DataType::*;
    use Operation::*;
    let out = |op, args: &[(&str, &str)], t: &DataType| spec(op, args).output_type(t);
    let k3: &[(&str, &str)] = &[("k", "3")];
    assert_eq!(out(Sum, &[], &Int32), Ok(Int64));
    assert_eq!(out(Sum, &[], &Boolean), Ok(Int64));
    assert_eq!(out(Sum, &[], &Float32), Ok(Float64));
    assert_eq!(out(Average, &[], &Int16), Ok(Float64));
    assert_eq!(out(Min, &[], &Int32), Ok(Int64));
    assert_eq!(out(Max, &[], &Float32), Ok(Float64));
    assert_eq!(out(Max, &[], &LargeUtf8), Ok(Utf8));
    assert_eq!(out(Count, &[], &Binary), Ok(Int64));
    assert_eq!(out(Last, &[], &list_type(Int32)), Ok(list_type(Int64)));
    assert_eq!(out(LastK, k3, &Utf8), Ok(list_type(Utf8)));
    assert_eq!(
        out(FirstK, k3, &list_type(Int64)),
        Ok(list_type(list_type(Int64))),
        "lists not exploded"
    );
    assert_eq!(out(TopK, k3, &Float64), Ok(list_type(Float64)));
    assert_eq!(out(ApproxPercentile, &[], &Int64), Ok(list_type(Float32)));
    assert_eq!(out(Histogram, &[], &Utf8), Ok(map_type(Int32)));
    assert_eq!(out(ApproxHistogramK, &[], &Int64), Ok(map_type(Int64)));
    for op in [UniqueCount, ApproxUniqueCount, BoundedUniqueCount] {
        assert_eq!(out(op, &[], &Binary), Ok(Int64));
    }
    // List explode and map inputs.
    assert_eq!(out(Average, &[], &list_type(Int32)), Ok(Float64));
    assert_eq!(out(TopK, k3, &list_type(Int32)), Ok(list_type(Int64)));
    assert_eq!(
        out(Count, &[], &list_type(list_type(Int32))),
        Ok(Int64),
        "list of lists: counted as values"
    );
    assert_eq!(out(Sum, &[], &map_type(Float32)), Ok(map_type(Float64)));
    assert_eq!(
        out(Histogram, &[], &map_type(Utf8)),
        Ok(map_type(map_type(Int32)))
    );
    // Rejections.
    for t in [Date32, Timestamp(TimeUnit::Millisecond, None)] {
        for op in [Sum, Count, Last, Max] {
            let e = out(op, &[], &t).unwrap_err();
            assert!(e.contains("should not be aggregated over"), "{e}");
        }
    }
    assert!(out(Sum, &[], &Utf8)
        .unwrap_err()
        .contains("SUM does not accept"));
    assert!(out(Average, &[], &Boolean).is_err());
    assert!(out(Histogram, &[], &Int64).is_err());
    assert!(out(Min, &[], &Binary).is_err());
    assert!(out(ApproxPercentile, &[], &Utf8).is_err());
    assert!(out(Sum, &[], &list_type(Utf8)).is_err());
    let shape = InputShape::of;
    assert_eq!(shape(&list_type(Int32)), InputShape::List);
    assert_eq!(shape(&list_type(list_type(Int32))), InputShape::Scalar);
    assert_eq!(shape(&map_type(Int64)), InputShape::Map);
    assert_eq!(shape(&Utf8), InputShape::Scalar);
}

fn roundtrip(array: ArrayRef) {
    let values = column_values(&array).unwrap();
    assert_eq!(values.len(), array.len());
    let back = to_array(array.data_type(), &values).unwrap();
    assert_eq!(&back, &array, "{}", array.data_type());
}

#[test]
fn arrow_round_trips_and_conversions() {
    roundtrip(Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)])));
    roundtrip(Arc::new(Int32Array::from(vec![
        Some(1),
        None,
        Some(i32::MIN),
    ])));
    roundtrip(Arc::new(Float64Array::from(vec![
        Some(1.5),
        None,
        Some(-0.0),
    ])));
    roundtrip(Arc::new(Float32Array::from(vec![
        Some(0.1f32),
        None,
        Some(3.0),
    ])));
    roundtrip(Arc::new(BooleanArray::from(vec![
        Some(true),
        None,
        Some(false),
    ])));
    roundtrip(Arc::new(StringArray::from(vec![Some("a"), None, Some("")])));
    roundtrip(Arc::new(BinaryArray::from(vec![
        Some(&b"ab"[..]),
        None,
        Some(&b""[..]),
    ])));
    let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
        Some(vec![]),
    ]);
    roundtrip(Arc::new(lists));
    let mut mb = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    mb.keys().append_value("a");
    mb.values().append_value(1);
    mb.keys().append_value("b");
    mb.values().append_null();
    mb.append(true).unwrap();
    mb.append(false).unwrap();
    mb.append(true).unwrap();
    let map_array: ArrayRef = Arc::new(mb.finish());
    roundtrip(map_array.clone());
    assert_eq!(
        column_values(&map_array).unwrap(),
        vec![
            Value::Map(vec![(s("a"), l(1)), (s("b"), Value::Null)]),
            Value::Null,
            Value::Map(vec![])
        ]
    );
    // Our own list / map types round trip, nested.
    let nested = list_type(map_type(list_type(Utf8Type())));
    let v = vec![
        list(&[map(&[("k", list(&[s("x"), Value::Null]))]), Value::Null]),
        Value::Null,
    ];
    assert_eq!(column_values(&to_array(&nested, &v).unwrap()).unwrap(), v);
    // Conversions to canonical values.
    let small: ArrayRef = Arc::new(Int16Array::from(vec![Some(3i16), None]));
    assert_eq!(column_values(&small).unwrap(), vec![l(3), Value::Null]);
    let days: ArrayRef = Arc::new(Date32Array::from(vec![19000]));
    assert_eq!(column_values(&days).unwrap(), vec![l(19000)]);
    let ts: ArrayRef =
        Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_123i64]).with_timezone("UTC"));
    assert_eq!(column_values(&ts).unwrap(), vec![l(1_700_000_000_123)]);
    let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["z"]));
    assert_eq!(column_values(&large).unwrap(), vec![s("z")]);
    let f32s: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32]));
    assert_eq!(column_values(&f32s).unwrap(), vec![d(0.1f32 as f64)]);
    // Errors.
    let structs: ArrayRef = Arc::new(arrow::array::StructArray::from(vec![(
        Arc::new(Field::new("a", DataType::Int64, true)),
        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
    )]));
    assert!(column_values(&structs)
        .unwrap_err()
        .to_string()
        .contains("Struct"));
    assert!(to_array(&DataType::Int64, &[s("x")]).is_err());
    assert!(to_array(&DataType::Int32, &[l(1 << 40)]).is_err());
    assert!(to_array(&DataType::Date32, &[l(1)]).is_err());
    assert_eq!(to_array(&DataType::Float64, &[l(2)]).unwrap().len(), 1);
    // Finalized outputs fit their declared output types.
    let a = aggr(Operation::Histogram, &[], InputShape::Scalar, true);
    let v = result(&a, &[(0, s("a"), Some(s("u")), 1)]);
    let t = map_type(
        spec(Operation::Histogram, &[])
            .output_type(&DataType::Utf8)
            .unwrap(),
    );
    assert_eq!(to_array(&t, &[v, Value::Null]).unwrap().null_count(), 1);
}

#[allow(non_snake_case)]
fn Utf8Type() -> DataType {
    DataType::Utf8
}

#[test]
fn java_key_strings() {
    assert_eq!(d(1.0).key_string().as_ref(), "1.0");
    assert_eq!(d(0.001).key_string().as_ref(), "0.001");
    assert_eq!(d(1e-4).key_string().as_ref(), "1.0E-4");
    assert_eq!(d(12345678.9).key_string().as_ref(), "1.23456789E7");
    assert_eq!(d(-2.5).key_string().as_ref(), "-2.5");
    assert_eq!(l(-3).key_string().as_ref(), "-3");
    assert_eq!(Value::Bool(true).key_string().as_ref(), "true");
}
