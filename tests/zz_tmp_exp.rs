use std::sync::Arc;
use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use weft::sql::Engine;
use weft::warehouse::{TableName, Warehouse};
fn n(e:&Engine, sql:&str)->usize{ e.query(sql,"t").unwrap().iter().map(|b|b.num_rows()).sum() }
#[test]
fn exp() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    let t = TableName::parse("a.t").unwrap();
    let w = |d:&str| { let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1])) as ArrayRef]).unwrap();
        wh.write_partition(&t, &[("ds".into(), d.into())], schema.clone(), &[b]).unwrap(); };
    w("2026-01-01");
    let e = Engine::new(&wh).unwrap();
    println!("A {}", n(&e, "SELECT * FROM a.t"));
    w("2026-01-02"); e.refresh().unwrap();
    println!("B {}", n(&e, "SELECT * FROM a.t"));
    println!("B2 {}", n(&e, "SELECT * FROM a.t WHERE ds='2026-01-02'"));
    e.refresh().unwrap();
    println!("C {}", n(&e, "SELECT * FROM a.t"));
    w("2026-01-03"); e.refresh().unwrap();
    println!("D {}", n(&e, "SELECT * FROM a.t"));
    e.refresh().unwrap();
    println!("E {}", n(&e, "SELECT * FROM a.t"));
}
