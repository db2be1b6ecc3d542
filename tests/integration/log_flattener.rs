//! The log flattener end to end (chronon-semantics §5.3–§5.6, §10.2 SchemaEvolutionTest): join
//! codecs encode responses, a [`Logger`] writes them through the [`FileLogSink`] into the raw log
//! table, and `flatten_log` turns them into `<join>_logged`: the exact flattened layout, rows
//! of several schema hashes in one day each decoded with its own schema, columns appended by
//! later schemas and never removed, type changes and unknown hashes failing, dropped rows
//! counted, the table properties, the CLI, and a join bootstrapping from the flattened table.

use crate::bootfix;
use crate::reference;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, Field};
use bootfix::*;
use reference::conf::{self, part};
use reference::harness::warehouse;
use reference::{output_table, V};
use serde_json::{json, Value as J};
use weft::aggregate::value::column_values;
use weft::aggregate::Value;
use weft::logging::columns::values_to_array;
use weft::logging::flatten::{flatten_log, FlattenOptions, FlattenReport};
use weft::logging::sink::{raw_file_schema, raw_spec};
use weft::logging::{
    request_name, FileLogSink, JoinCodec, LoggableResponse, Logger, LoggerConfig, DEFAULT_LOG_TABLE,
};
use weft::partition::Ds;
use weft::warehouse::{TableName, Warehouse};

/// The logging join of most tests.
const JOIN: &str = "unit_test.test_join";
const LOGGED: &str = "test.unit_test_test_join_logged";
const D1: &str = "2026-03-01";
const D2: &str = "2026-03-02";
const D3: &str = "2026-03-03";

fn ds(s: &str) -> Ds {
    Ds::parse(s).unwrap()
}

fn ts(day: &str, ms: i64) -> i64 {
    ds(day).start_millis() + ms
}

/// A join named `name` over the bootstrap fixtures, with `samplePercent` if given.
fn join_conf(name: &str, sample: Option<f64>) -> J {
    let mut j = join(name, vec![part(user_transactions(), &[], None)]);
    if let Some(p) = sample {
        j["metaData"]["samplePercent"] = json!(p);
    }
    j
}

fn options(end: &str) -> FlattenOptions {
    FlattenOptions {
        end: ds(end),
        log_table: DEFAULT_LOG_TABLE.into(),
        step_days: 30,
        run_first_hole: false,
    }
}

fn flatten(wh: &Warehouse, j: &J, end: &str) -> weft::Result<FlattenReport> {
    flatten_log(wh, &conf::parse(j), &options(end), &|_, _, _| {})
}

fn fields(v: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    v.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
}

fn codec(keys: &[(&str, DataType)], values: &[(&str, DataType)]) -> JoinCodec {
    JoinCodec::new(JOIN, fields(keys), fields(values)).unwrap()
}

/// A data event of [`JOIN`], fetched by its request name.
fn event(c: &JoinCodec, ts_millis: i64, keys: &[Value], values: &[Value]) -> LoggableResponse {
    c.data_event(&request_name(JOIN), ts_millis, keys, values)
        .unwrap()
}

/// Logs `events` through a [`Logger`] into the default raw log table, as a server would.
fn log(wh: &Warehouse, events: Vec<LoggableResponse>) {
    let sink = FileLogSink::new(wh.clone(), DEFAULT_LOG_TABLE).unwrap();
    let logger = Logger::new(
        Box::new(sink),
        LoggerConfig {
            capacity: 10_000,
            batch_size: 7,
            flush_interval: Duration::from_millis(50),
        },
    );
    let n = events.len() as u64;
    for e in events {
        logger.log(e);
    }
    let stats = logger.shutdown();
    assert_eq!(
        (stats.written, stats.dropped, stats.failed),
        (n, 0, 0),
        "{stats:?}"
    );
}

fn long(x: i64) -> Value {
    Value::Long(x)
}

/// A map with string keys, as weft types maps.
fn map_type(values: DataType) -> DataType {
    let entries = Field::new_map(
        "map",
        "entries",
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", values, true),
        false,
        true,
    );
    entries.data_type().clone()
}

fn list(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

/// One partition of a table: column names and the columns' arrays.
fn partition(wh: &Warehouse, table: &str, day: &str) -> (Vec<String>, Vec<ArrayRef>) {
    let t = TableName::parse(table).unwrap();
    let batches = wh.read_partition(&t, ds(day)).unwrap();
    let schema = batches[0].schema();
    let cols = schema.fields().iter().map(|f| f.name().clone()).collect();
    let batch = arrow::compute::concat_batches(&schema, &batches).unwrap();
    (cols, batch.columns().to_vec())
}

/// A partition as rows of column name → value (columns of types `column_values` reads).
fn rows(wh: &Warehouse, table: &str, day: &str) -> Vec<BTreeMap<String, Value>> {
    let (cols, arrays) = partition(wh, table, day);
    let values: Vec<Vec<Value>> = arrays.iter().map(|a| column_values(a).unwrap()).collect();
    (0..arrays[0].len())
        .map(|i| {
            cols.iter()
                .zip(&values)
                .map(|(c, v)| (c.clone(), v[i].clone()))
                .collect()
        })
        .collect()
}

fn table_columns(wh: &Warehouse, table: &str) -> Vec<String> {
    let s = wh.table_schema(&TableName::parse(table).unwrap()).unwrap();
    s.fields().iter().map(|f| f.name().clone()).collect()
}

// ------------------------------------------------------------------------------------------

/// SchemaEvolutionTest testStructFeatures: two features holding lists of structs flatten to
/// exactly `[schema_hash, ts, id, <a>, <b>]` partitioned by ds, with the struct values intact.
#[test]
fn struct_features_flatten_to_the_exact_layout() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let a = "unit_test_list_struct_a_list_struct_a";
    let b = "unit_test_list_struct_b_list_struct_b";
    let sa = DataType::Struct(
        vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]
        .into(),
    );
    let sb = DataType::Struct(
        vec![
            Field::new("counts", map_type(DataType::Int64), true),
            Field::new("inner", sa.clone(), true),
        ]
        .into(),
    );
    let c = codec(
        &[("id", DataType::Int64)],
        &[(a, list(sa.clone())), (b, list(sb.clone()))],
    );
    let item_a = |n: &str, s: f64| Value::List(vec![Value::str(n), Value::double(s)]);
    let item_b = |k: &str, v: i64| {
        Value::List(vec![
            Value::Map(vec![(Value::str(k), long(v))]),
            item_a(k, v as f64),
        ])
    };
    let values = [
        vec![
            Value::List(vec![item_a("x", 1.5), Value::Null]),
            Value::List(vec![item_b("k", 2)]),
        ],
        vec![Value::Null, Value::List(vec![])],
    ];
    log(
        &wh,
        vec![
            c.control_event(ts(D1, 0)),
            event(&c, ts(D1, 10), &[long(1)], &values[0]),
            event(&c, ts(D1, 20), &[long(2)], &values[1]),
        ],
    );
    let r = flatten(&wh, &join_conf(JOIN, Some(10.0)), D1).unwrap();
    assert_eq!(r.written, vec![ds(D1)]);
    assert_eq!((r.rows_in, r.rows_out), (2, 2));
    let (cols, arrays) = partition(&wh, LOGGED, D1);
    assert_eq!(cols, vec!["schema_hash", "ts", "id", a, b]);
    let t = TableName::parse(LOGGED).unwrap();
    assert_eq!(
        wh.partitions(&t).unwrap(),
        vec![ds(D1)],
        "partitioned by ds"
    );
    let exp_a = values_to_array(&list(sa), &[values[0][0].clone(), values[1][0].clone()]).unwrap();
    let exp_b = values_to_array(&list(sb), &[values[0][1].clone(), values[1][1].clone()]).unwrap();
    assert_eq!(arrays[3].as_ref(), exp_a.as_ref());
    assert_eq!(arrays[4].as_ref(), exp_b.as_ref());
    assert_eq!(column_values(&arrays[2]).unwrap(), vec![long(1), long(2)]);
    assert_eq!(
        column_values(&arrays[0]).unwrap(),
        vec![Value::str(c.schema_hash()); 2]
    );
    assert_eq!(
        column_values(&arrays[1]).unwrap(),
        vec![long(ts(D1, 10)), long(ts(D1, 20))]
    );
}

/// Rows of two schema hashes in one day are each decoded with their own schema (a column the
/// row's schema lacks is NULL); contextual values are kept as keys only; the table properties
/// carry the join's properties, every hash's schema JSON and the log-table markers.
#[test]
fn each_row_decodes_with_its_own_schema_and_properties_are_written() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let v1 = codec(
        &[("user", DataType::Int64), ("request_id", DataType::Utf8)],
        &[
            ("f_long", DataType::Int64),
            ("ext_contextual_request_id", DataType::Utf8),
        ],
    );
    // v2 orders its fields differently and adds features of every primitive type
    let v2 = codec(
        &[("request_id", DataType::Utf8), ("user", DataType::Int64)],
        &[
            ("f_str", DataType::Utf8),
            ("f_long", DataType::Int64),
            ("f_int", DataType::Int32),
            ("f_short", DataType::Int16),
            ("f_byte", DataType::Int8),
            ("f_float", DataType::Float32),
            ("f_double", DataType::Float64),
            ("f_bool", DataType::Boolean),
            ("f_bytes", DataType::Binary),
        ],
    );
    assert_ne!(v1.schema_hash(), v2.schema_hash());
    // the hash as the spec defines it (§5.3), computed here, not with weft's function: the
    // first 10 characters of base64(md5(logging schema JSON)), the JSON a 3-entry map
    for c in [&v1, &v2] {
        use base64::Engine as _;
        use md5::Digest as _;
        let json = c.logging_schema_json();
        let doc: serde_json::Value = serde_json::from_str(json).unwrap();
        let mut keys: Vec<&str> = doc
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["join_name", "key_schema", "value_schema"], "{json}");
        let digest = md5::Md5::digest(json.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        assert_eq!(c.schema_hash(), &b64[..10], "{json}");
    }
    let v2_values = vec![
        Value::str("s"),
        long(7),
        long(-70_000),
        long(300),
        long(-5),
        Value::double(0.25),
        Value::double(1e300),
        Value::Bool(false),
        Value::Bytes(vec![9, 8].into()),
    ];
    log(
        &wh,
        vec![
            v1.control_event(ts(D1, 0)),
            event(
                &v1,
                ts(D1, 1),
                &[long(1), Value::str("r1")],
                &[long(10), Value::str("r1")],
            ),
            v2.control_event(ts(D1, 2)),
            event(&v2, ts(D1, 3), &[Value::str("r2"), long(2)], &v2_values),
            event(
                &v1,
                ts(D1, 4),
                &[long(3), Value::str("r3")],
                &[Value::Null, Value::str("r3")],
            ),
        ],
    );
    let r = flatten(&wh, &join_conf(JOIN, Some(10.0)), D1).unwrap();
    assert_eq!(
        (r.rows_in, r.rows_out, r.null_hash, r.undecodable),
        (3, 3, 0, 0)
    );
    let mut hashes = vec![v1.schema_hash().to_string(), v2.schema_hash().to_string()];
    hashes.sort();
    assert_eq!(r.hashes, hashes);
    let out = rows(&wh, LOGGED, D1);
    let cols: Vec<&String> = out[0].keys().collect();
    assert!(
        !cols.iter().any(|c| c.starts_with("ext_contextual")),
        "{cols:?}"
    );
    assert_eq!(
        partition(&wh, LOGGED, D1).0,
        vec![
            "schema_hash",
            "ts",
            "user",
            "request_id",
            "f_long",
            "f_str",
            "f_int",
            "f_short",
            "f_byte",
            "f_float",
            "f_double",
            "f_bool",
            "f_bytes"
        ],
        "v1 (published first) fields, then v2's new ones; keys before values"
    );
    let by_id: BTreeMap<String, &BTreeMap<String, Value>> = out
        .iter()
        .map(|r| (r["request_id"].key_string().to_string(), r))
        .collect();
    let r1 = by_id["r1"];
    assert_eq!(r1["schema_hash"], Value::str(v1.schema_hash()));
    assert_eq!(
        (r1["user"].clone(), r1["f_long"].clone()),
        (long(1), long(10))
    );
    for c in ["f_str", "f_int", "f_bool", "f_bytes"] {
        assert_eq!(r1[c], Value::Null, "{c} is not in v1's schema");
    }
    let r2 = by_id["r2"];
    assert_eq!(r2["schema_hash"], Value::str(v2.schema_hash()));
    assert_eq!(r2["user"], long(2));
    let got: Vec<Value> = [
        "f_str", "f_long", "f_int", "f_short", "f_byte", "f_float", "f_double", "f_bool", "f_bytes",
    ]
    .iter()
    .map(|c| r2[*c].clone())
    .collect();
    assert_eq!(got, v2_values);
    assert_eq!(by_id["r3"]["f_long"], Value::Null, "a logged NULL");
    let schema = wh.table_schema(&TableName::parse(LOGGED).unwrap()).unwrap();
    for (c, t) in [
        ("f_short", DataType::Int16),
        ("f_byte", DataType::Int8),
        ("f_float", DataType::Float32),
    ] {
        assert_eq!(schema.field_with_name(c).unwrap().data_type(), &t, "{c}");
    }

    let props = wh.properties(&TableName::parse(LOGGED).unwrap()).unwrap();
    assert_eq!(props["chronon_log_table"], "true");
    assert_eq!(props["chronon_generated"], "true");
    assert_eq!(props["chronon_table_type"], "logged");
    assert_eq!(props["source"], "chronon", "the join's tableProperties");
    for c in [&v1, &v2] {
        assert_eq!(
            props[&format!("schema_hash_{}", c.schema_hash())],
            c.logging_schema_json()
        );
    }
    assert_eq!(
        props
            .keys()
            .filter(|k| k.starts_with("schema_hash_"))
            .count(),
        2
    );
}

/// SchemaEvolutionTest testAddFeatures / testRemoveFeatures: a later run with a new schema
/// appends its new column; the removed feature's column stays (NULL in the new partition);
/// earlier partitions are untouched; the schema properties accumulate.
#[test]
fn later_schemas_append_columns_and_keep_removed_ones() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let j = join_conf(JOIN, Some(5.0));
    let v1 = codec(
        &[("id", DataType::Int64)],
        &[("a", DataType::Int64), ("b", DataType::Utf8)],
    );
    log(
        &wh,
        vec![
            v1.control_event(ts(D1, 0)),
            event(&v1, ts(D1, 5), &[long(1)], &[long(11), Value::str("b1")]),
            event(&v1, ts(D1, 6), &[long(2)], &[long(12), Value::str("b2")]),
        ],
    );
    let r1 = flatten(&wh, &j, D1).unwrap();
    assert_eq!((r1.columns_before, r1.columns_after), (0, 3));
    assert_eq!(
        table_columns(&wh, LOGGED),
        vec!["schema_hash", "ts", "id", "a", "b"]
    );
    let before = rows(&wh, LOGGED, D1);

    // v2 drops `a` and adds `c`
    let v2 = codec(
        &[("id", DataType::Int64)],
        &[("b", DataType::Utf8), ("c", DataType::Float64)],
    );
    log(
        &wh,
        vec![
            v2.control_event(ts(D2, 0)),
            event(
                &v2,
                ts(D2, 5),
                &[long(3)],
                &[Value::str("b3"), Value::double(0.5)],
            ),
            event(
                &v2,
                ts(D2, 6),
                &[long(4)],
                &[Value::Null, Value::double(1.5)],
            ),
        ],
    );
    let r2 = flatten(&wh, &j, D2).unwrap();
    assert_eq!(r2.written, vec![ds(D2)], "D1 is already flattened");
    assert_eq!(r2.already_present, 1);
    assert_eq!((r2.columns_before, r2.columns_after), (3, 4));
    assert_eq!(r2.new_columns, vec!["c"]);
    assert_eq!(
        table_columns(&wh, LOGGED),
        vec!["schema_hash", "ts", "id", "a", "b", "c"],
        "c appended, a kept"
    );
    let d2 = rows(&wh, LOGGED, D2);
    assert_eq!(d2.len(), 2);
    assert!(d2.iter().all(|r| r["a"] == Value::Null));
    assert_eq!(d2[0]["c"], Value::double(0.5));
    assert_eq!(d2[1]["b"], Value::Null);
    assert_eq!(
        rows(&wh, LOGGED, D1),
        before,
        "earlier partitions are not rewritten"
    );
    let props = wh.properties(&TableName::parse(LOGGED).unwrap()).unwrap();
    assert_eq!(
        props[&format!("schema_hash_{}", v1.schema_hash())],
        v1.logging_schema_json(),
        "cumulative"
    );
    assert_eq!(
        props[&format!("schema_hash_{}", v2.schema_hash())],
        v2.logging_schema_json()
    );

    // nothing left to do
    let r3 = flatten(&wh, &j, D2).unwrap();
    assert!(r3.written.is_empty() && r3.already_present == 2, "{r3:?}");
}

/// A feature whose type changes between runs fails with the column and table named, and
/// nothing is written; so does one name with two types within a run.
#[test]
fn a_type_change_is_an_error() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let j = join_conf(JOIN, Some(5.0));
    let v1 = codec(&[("id", DataType::Int64)], &[("a", DataType::Int64)]);
    log(
        &wh,
        vec![
            v1.control_event(ts(D1, 0)),
            event(&v1, ts(D1, 1), &[long(1)], &[long(1)]),
        ],
    );
    flatten(&wh, &j, D1).unwrap();
    let v2 = codec(&[("id", DataType::Int64)], &[("a", DataType::Utf8)]);
    log(
        &wh,
        vec![
            v2.control_event(ts(D2, 0)),
            event(&v2, ts(D2, 1), &[long(1)], &[Value::str("x")]),
        ],
    );
    let e = flatten(&wh, &j, D2).unwrap_err().to_string();
    assert!(
        e.contains("Existing columns cannot be modified")
            && e.contains(LOGGED)
            && e.contains("column `a`"),
        "{e}"
    );
    let t = TableName::parse(LOGGED).unwrap();
    assert_eq!(wh.partitions(&t).unwrap(), vec![ds(D1)]);

    // both schemas in one day: the conflict is found among the day's schemas
    let (_d, wh2) = warehouse(&db(1, 5));
    log(
        &wh2,
        vec![
            v1.control_event(ts(D1, 0)),
            v2.control_event(ts(D1, 1)),
            event(&v1, ts(D1, 2), &[long(1)], &[long(2)]),
            event(&v2, ts(D1, 3), &[long(1)], &[Value::str("y")]),
        ],
    );
    let e = flatten(&wh2, &j, D1).unwrap_err().to_string();
    assert!(
        e.contains("Found field with same name `a` but different dataTypes")
            && e.contains(v1.schema_hash())
            && e.contains(v2.schema_hash()),
        "{e}"
    );
    assert!(!wh2.exists(&t));
}

/// Rows whose hash no control event published fail the job, naming the hash, the partition
/// and the fix; nothing is written.
#[test]
fn an_unknown_hash_is_an_error() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let c = codec(&[("id", DataType::Int64)], &[("a", DataType::Int64)]);
    log(&wh, vec![event(&c, ts(D1, 1), &[long(1)], &[long(1)])]);
    let e = flatten(&wh, &join_conf(JOIN, Some(5.0)), D1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("schema hash `{}`", c.schema_hash()))
            && e.contains("SCHEMA_PUBLISH_EVENT")
            && e.contains("ds=2026-03-01/name=unit_test%2Ftest_join")
            && e.contains("fix:"),
        "{e}"
    );
    assert!(!wh.exists(&TableName::parse(LOGGED).unwrap()));
}

/// Legacy rows without a schema hash and rows whose bytes do not decode (truncated Avro, not
/// base64, NULL ts) are dropped and counted, with examples; the rest is flattened.
#[test]
fn null_hash_and_corrupt_rows_are_dropped_and_counted() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let c = codec(
        &[("id", DataType::Int64)],
        &[("a", DataType::Int64), ("b", DataType::Utf8)],
    );
    let good = event(&c, ts(D1, 1), &[long(1)], &[long(5), Value::str("five")]);
    let mut legacy = event(&c, ts(D1, 2), &[long(2)], &[long(6), Value::Null]);
    legacy.schema_hash = None;
    let mut truncated = event(&c, ts(D1, 3), &[long(3)], &[long(7), Value::str("seven")]);
    truncated
        .value_bytes
        .truncate(truncated.value_bytes.len() - 2);
    log(
        &wh,
        vec![c.control_event(ts(D1, 0)), good, legacy, truncated],
    );
    // a file from another writer: a row that is not base64 and one without ts_millis
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let key = b64(&c.encode_key(&[long(4)]).unwrap());
    let value = b64(&c.encode_value(&[long(8), Value::Null]).unwrap());
    let batch = RecordBatch::try_new(
        raw_file_schema(),
        vec![
            Arc::new(StringArray::from(vec![
                Some(key.as_str()),
                Some(key.as_str()),
            ])),
            Arc::new(StringArray::from(vec![
                Some("%%%not base64"),
                Some(value.as_str()),
            ])),
            Arc::new(Int64Array::from(vec![Some(ts(D1, 4)), None])),
            Arc::new(StringArray::from(vec![
                Some(c.schema_hash()),
                Some(c.schema_hash()),
            ])),
        ],
    )
    .unwrap();
    wh.append_file(
        &TableName::parse(DEFAULT_LOG_TABLE).unwrap(),
        &raw_spec(ds(D1), &request_name(JOIN)),
        raw_file_schema(),
        &[batch],
    )
    .unwrap();

    let r = flatten(&wh, &join_conf(JOIN, Some(5.0)), D1).unwrap();
    assert_eq!(
        (r.rows_in, r.rows_out, r.null_hash, r.undecodable),
        (5, 1, 1, 3),
        "{r:?}"
    );
    assert_eq!(r.undecodable_examples.len(), 3);
    assert!(r
        .undecodable_examples
        .iter()
        .all(|e| e.contains(c.schema_hash()) && e.contains("ds=2026-03-01")));
    assert!(
        r.undecodable_examples
            .iter()
            .any(|e| e.contains("not base64")),
        "{:?}",
        r.undecodable_examples
    );
    assert!(r
        .undecodable_examples
        .iter()
        .any(|e| e.contains("ts_millis is NULL")));
    let out = rows(&wh, LOGGED, D1);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0]["id"].clone(), out[0]["b"].clone()),
        (long(1), Value::str("five"))
    );
}

/// A join without samplePercent is skipped with the reason; a logged join without any logs
/// fails with Chronon's message; partitions before the first flattened one are skipped unless
/// asked for.
#[test]
fn skips_errors_and_first_hole() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let r = flatten(&wh, &join_conf(JOIN, None), D1).unwrap();
    assert!(
        r.skipped.as_deref().unwrap().contains("samplePercent"),
        "{r:?}"
    );
    let e = flatten(&wh, &join_conf(JOIN, Some(1.0)), D1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("The join name unit_test/test_join does not have available logged data yet")
            && e.contains(DEFAULT_LOG_TABLE),
        "{e}"
    );

    let j = join_conf(JOIN, Some(1.0));
    let c = codec(&[("id", DataType::Int64)], &[("a", DataType::Int64)]);
    log(
        &wh,
        vec![
            c.control_event(ts(D1, 0)),
            event(&c, ts(D2, 1), &[long(2)], &[long(2)]),
        ],
    );
    assert_eq!(
        flatten(&wh, &j, D1).unwrap().written,
        vec![],
        "D2 is after --end-ds"
    );
    assert_eq!(flatten(&wh, &j, D3).unwrap().written, vec![ds(D2)]);
    log(&wh, vec![event(&c, ts(D1, 1), &[long(1)], &[long(1)])]);
    assert_eq!(
        flatten(&wh, &j, D3).unwrap().written,
        vec![],
        "D1 is before the first output partition"
    );
    let mut o = options(D3);
    o.run_first_hole = true;
    let r = flatten_log(&wh, &conf::parse(&j), &o, &|_, _, _| {}).unwrap();
    assert_eq!(r.written, vec![ds(D1)]);
}

/// LogBootstrapTest through the real pipeline: a join's responses for most left rows of the
/// last day are logged (feature values perturbed), flattened, and a join with
/// `bootstrapParts: [{"table": "<ns>.<join>_logged"}]` takes the logged values for those rows
/// and computes the others.
#[test]
fn log_bootstrap_reads_the_flattened_table() {
    const PERTURB: i64 = 1_000_000;
    let (_dir, wh) = warehouse(&db(21, 40));
    let name = "unit_test.user_transaction_features";
    let base = join_conf("unit_test.user_transaction_features_base", None);
    run_join(&wh, &base);
    let computed = rows_by_id(&wh, &output_table(&base));
    let c = JoinCodec::new(
        name,
        fields(&[("user", DataType::Int64), ("request_id", DataType::Utf8)]),
        fields(&[(SUM_30D, DataType::Int64), (SUM_15D, DataType::Int64)]),
    )
    .unwrap();
    let end = end_day();
    let to_value = |v: &V| match v {
        V::Int(i) => long(*i),
        V::Str(s) => Value::str(s),
        V::Null => Value::Null,
        other => panic!("unexpected {other:?}"),
    };
    let plus = |v: &V| match v {
        V::Int(i) => long(i + PERTURB),
        _ => Value::Null,
    };
    let mut events = vec![c.control_event(ds(&end).start_millis())];
    let mut logged = BTreeMap::new();
    for (i, ((id, day), r)) in computed.iter().enumerate() {
        if *day != end || i % 3 == 0 {
            continue;
        }
        let V::Int(t) = r["ts"] else { panic!("ts") };
        events.push(
            c.data_event(
                &request_name(name),
                t,
                &[to_value(&r["user"]), to_value(&r["request_id"])],
                &[plus(&r[SUM_30D]), plus(&r[SUM_15D])],
            )
            .unwrap(),
        );
        logged.insert(id.clone(), (plus(&r[SUM_30D]), plus(&r[SUM_15D])));
    }
    assert!(logged.len() > 10);
    log(&wh, events);
    let mut j = join_conf(name, Some(100.0));
    let r = flatten(&wh, &j, &end).unwrap();
    assert_eq!(r.rows_out as usize, logged.len());
    assert_eq!(r.output, "test.unit_test_user_transaction_features_logged");

    j["bootstrapParts"] = json!([{ "table": r.output }]);
    let report = run_join(&wh, &j);
    let out = rows_by_id(&wh, &output_table(&j));
    assert_eq!(out.len(), computed.len());
    let prov = report.provenance.expect("provenance");
    assert_eq!(prov.parts[0].covered as usize, logged.len());
    let v = |x: &V| to_value(x);
    for ((id, day), row) in &out {
        match logged.get(id).filter(|_| *day == end) {
            Some((s30, s15)) => {
                assert_eq!(
                    (&v(&row[SUM_30D]), &v(&row[SUM_15D])),
                    (s30, s15),
                    "logged {id}"
                )
            }
            None => {
                let b = &computed[&(id.clone(), day.clone())];
                assert_eq!(
                    (&row[SUM_30D], &row[SUM_15D]),
                    (&b[SUM_30D], &b[SUM_15D]),
                    "computed {id}"
                );
            }
        }
    }
}

/// The raw log table is an ordinary Hive-layout table: SQL sees its `ds` and `name` partition
/// columns with the request name decoded, as Chronon's schema table GroupBy reads it (§5.5).
#[test]
fn the_raw_log_table_reads_with_sql() {
    let (_dir, wh) = warehouse(&db(1, 5));
    let c = codec(&[("id", DataType::Int64)], &[("a", DataType::Int64)]);
    log(
        &wh,
        vec![
            c.control_event(ts(D1, 0)),
            event(&c, ts(D1, 1), &[long(1)], &[long(1)]),
            event(&c, ts(D2, 1), &[long(2)], &[long(2)]),
            event(&c, ts(D2, 2), &[long(3)], &[long(3)]),
        ],
    );
    let engine = weft::sql::Session::new(&wh).unwrap();
    let batches = engine
        .query(
            "SELECT name, ds, count(*) AS n, min(ts_millis) AS t, min(schema_hash) AS h \
             FROM default.chronon_log_table GROUP BY name, ds ORDER BY name, ds",
            "test",
        )
        .unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let col = |i: usize| column_values(batch.column(i)).unwrap();
    assert_eq!(
        col(0),
        vec![
            Value::str("SCHEMA_PUBLISH_EVENT"),
            Value::str("unit_test/test_join"),
            Value::str("unit_test/test_join")
        ]
    );
    assert_eq!(col(1), vec![Value::str(D1), Value::str(D1), Value::str(D2)]);
    assert_eq!(col(2), vec![long(1), long(1), long(2)]);
    assert_eq!(
        col(3),
        vec![long(ts(D1, 0)), long(ts(D1, 1)), long(ts(D2, 1))]
    );
    assert_eq!(
        col(4),
        vec![
            Value::Null,
            Value::str(c.schema_hash()),
            Value::str(c.schema_hash())
        ]
    );
}

/// `weft log-flattener` runs the job and prints the summary; `--help` shows an example.
#[test]
fn cli_flattens_and_reports() {
    let (dir, wh) = warehouse(&db(1, 5));
    let c = codec(&[("id", DataType::Int64)], &[("a", DataType::Int64)]);
    let mut legacy = event(&c, ts(D1, 2), &[long(2)], &[long(2)]);
    legacy.schema_hash = None;
    log(
        &wh,
        vec![
            c.control_event(ts(D1, 0)),
            event(&c, ts(D1, 1), &[long(1)], &[long(1)]),
            legacy,
        ],
    );
    let conf_dir = dir.path().join("production/joins/unit_test");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = conf_dir.join("test_join");
    std::fs::write(
        &conf,
        serde_json::to_string_pretty(&join_conf(JOIN, Some(5.0))).unwrap(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["--warehouse", wh.root().to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    let text = run(&[
        "log-flattener",
        "--conf",
        conf.to_str().unwrap(),
        "--end-ds",
        D1,
    ]);
    assert!(
        text.contains(&format!("{LOGGED}: wrote 1 partition(s)")),
        "{text}"
    );
    assert!(
        text.contains("rows: 2 read, 1 written, 1 dropped (no schema_hash: 1, undecodable: 0)"),
        "{text}"
    );
    assert!(text.contains(c.schema_hash()), "{text}");
    let text = run(&[
        "log-flattener",
        "--conf",
        conf.to_str().unwrap(),
        "--end-ds",
        D1,
    ]);
    assert!(text.contains("nothing to do"), "{text}");
    let help = run(&["log-flattener", "--help"]);
    assert!(
        help.contains("weft log-flattener --conf") && help.contains("--log-table"),
        "{help}"
    );
}
