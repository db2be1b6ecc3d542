//! Reading by the dataflow's workers ([`weft::dataflow::shard`]): a read task is done by the
//! worker it names (on that worker's thread), its rows are computed exactly as rows the
//! driver feeds, a retraction removes exactly what that worker read, the counts come back
//! with the epoch, and a failed read makes the seal an error that keeps its kind. Two
//! workers that serialize every exchanged record, so reports cross as they would between
//! processes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use weft::aggregate::{AggSpec, Aggregator, InputShape, Value};
use weft::config::Operation;
use weft::dataflow::records::Item;
use weft::dataflow::shard::{ReadError, ReadTask, ShardReader, Share as Read};
use weft::dataflow::spec::{ColumnSpec, PartKind, PartSpec};
use weft::dataflow::{Runtime, Topology, Update};
use weft::error::ErrorKind;

const DAY: i64 = 86_400_000;

/// SUM over all history of one input.
fn spec() -> PartSpec {
    PartSpec {
        kind: PartKind::Events,
        columns: vec![ColumnSpec {
            agg: Aggregator::new(
                AggSpec {
                    op: Operation::Sum,
                    k: None,
                    percentiles: vec![],
                },
                InputShape::Scalar,
                false,
            ),
            input: 0,
            bucket: None,
            window: None,
            hop: DAY,
        }],
    }
}

/// A fake share: events `(key, ts, v)` kept under `key`, or a failure.
#[derive(Serialize, Deserialize)]
struct Share {
    key: u64,
    events: Vec<(u8, i64, i64)>,
    fail: Option<String>,
}

/// Reads shares from their payload and notes which thread read each.
#[derive(Default)]
struct FakeReader {
    threads: Mutex<BTreeMap<u64, std::thread::ThreadId>>,
}

impl ShardReader for FakeReader {
    fn read(&self, payload: &[u8], counts: &mut Vec<u64>) -> Result<Vec<Read>, ReadError> {
        let s: Share = serde_json::from_slice(payload).unwrap();
        if let Some(m) = s.fail {
            return Err(ReadError {
                kind: "data".into(),
                message: m,
            });
        }
        self.threads
            .lock()
            .unwrap()
            .insert(s.key, std::thread::current().id());
        let col = |f: &dyn Fn(&(u8, i64, i64)) -> i64| -> Arc<dyn Array> {
            Arc::new(Int64Array::from(s.events.iter().map(f).collect::<Vec<_>>()))
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![col(&|e| e.0 as i64), col(&|e| e.1), col(&|e| e.2)],
        )
        .unwrap();
        let rows = vec![b];
        let updates = events_of(&rows);
        counts.resize(1, 0);
        counts[0] += updates.len() as u64;
        Ok(vec![Read {
            key: s.key,
            rows,
            updates,
        }])
    }

    fn updates(&self, _payload: &[u8], rows: &[RecordBatch]) -> Result<Vec<Update>, ReadError> {
        Ok(events_of(rows))
    }
}

/// The events of rows a share read.
fn events_of(rows: &[RecordBatch]) -> Vec<Update> {
    let mut out = Vec::new();
    for b in rows {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let (k, ts, v) = (c(0), c(1), c(2));
        for i in 0..b.num_rows() {
            out.push(event(k.value(i) as u8, ts.value(i), v.value(i), 1));
        }
    }
    out
}

fn event(key: u8, ts: i64, v: i64, r: isize) -> Update {
    (
        (
            (0, vec![key]),
            Item::Row {
                ds: (ts / DAY) as i32,
                ts,
                mutation: None,
                inputs: vec![Value::Long(v)],
            },
        ),
        r,
    )
}

fn query(key: u8, row: u64, r: isize) -> Update {
    let q = 100 * DAY;
    (((0, vec![key]), Item::Query { row, q, ds: 100 }), r)
}

fn read(worker: usize, tag: u64, share: &Share) -> ReadTask {
    ReadTask::Read {
        worker,
        tag,
        payload: serde_json::to_vec(share).unwrap(),
    }
}

/// The SUM each query row got, from an epoch's output.
fn sums(parts: &[weft::dataflow::records::PartValues], into: &mut BTreeMap<u64, Value>) {
    for (row, _, vals) in parts {
        match vals.first() {
            Some(v) => into.insert(*row, weft::aggregate::codec::decode(v)[0].clone()),
            None => into.remove(row),
        };
    }
}

#[test]
fn workers_read_their_share_retract_it_exactly_and_report_failures_with_their_kind() {
    let reader = Arc::new(FakeReader::default());
    let topology = Topology {
        workers: 2,
        cluster: None,
        serialize: true,
    };
    let rt = Runtime::start_reading(topology, Some(reader.clone())).unwrap();
    let mut df = rt.install(vec![spec()], None).unwrap();
    assert_eq!(df.peers(), 2);
    let a = Share {
        key: 10,
        events: vec![(1, DAY, 5), (1, 2 * DAY, 7), (2, DAY, 100)],
        fail: None,
    };
    let b = Share {
        key: 11,
        events: vec![(1, 3 * DAY, 1), (2, 4 * DAY, 1000)],
        fail: None,
    };
    // epoch 0: two shares read by different workers, queries fed by the driver
    df.read(vec![read(0, 7, &a), read(1, 8, &b)]).unwrap();
    df.update(vec![query(1, 1, 1), query(2, 2, 1)]);
    let out = df.seal_all().unwrap();
    let mut got = BTreeMap::new();
    sums(&out.parts, &mut got);
    assert_eq!(got[&1], Value::Long(13), "{got:?}");
    assert_eq!(got[&2], Value::Long(1100), "{got:?}");
    let mut reports: Vec<(u64, Vec<u64>)> = out
        .reads
        .iter()
        .map(|r| (r.tag, r.counts.clone()))
        .collect();
    reports.sort();
    assert_eq!(reports, vec![(7, vec![3]), (8, vec![2])]);
    let threads = reader.threads.lock().unwrap().clone();
    let distinct: std::collections::HashSet<_> = threads.values().collect();
    assert_eq!(
        distinct.len(),
        2,
        "each share is read on its own worker's thread"
    );

    // epoch 1: share `b` retracted by the worker that read it (a task for another worker
    // that keeps nothing under that key changes nothing)
    df.read(vec![
        ReadTask::Retract {
            worker: 0,
            keys: vec![11],
        },
        ReadTask::Retract {
            worker: 1,
            keys: vec![11],
        },
    ])
    .unwrap();
    let out = df.seal_all().unwrap();
    sums(&out.parts, &mut got);
    assert_eq!(got[&1], Value::Long(12), "{got:?}");
    assert_eq!(got[&2], Value::Long(100), "{got:?}");
    assert!(out.reads.is_empty(), "retractions report nothing");

    // epoch 2: a failed read fails the seal, naming the problem and keeping its kind
    let bad = Share {
        key: 12,
        events: vec![],
        fail: Some("table `data.events`, partition 2023-01-05: column `v` is a string".into()),
    };
    df.read(vec![read(1, 9, &bad)]).unwrap();
    let err = df.seal_all().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Data);
    assert!(
        err.to_string().contains("partition 2023-01-05: column `v`"),
        "{err}"
    );

    // the dataflow goes on: a later epoch still computes
    df.update(vec![event(2, 5 * DAY, 1, 1)]);
    let out = df.seal_all().unwrap();
    sums(&out.parts, &mut got);
    assert_eq!(got[&2], Value::Long(101), "{got:?}");
}
