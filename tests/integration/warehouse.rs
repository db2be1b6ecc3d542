//! The embedded warehouse: Hive layout on disk, crash recovery of interrupted partition
//! writes, atomic partition replacement, table properties, partition infos, and schema
//! conflicts between partitions.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;

use weft::partition::Ds;
use weft::sql::Session;
use weft::warehouse::{TableName, Warehouse};

// ---------------------------------------------------------------- helpers

fn ds(s: &str) -> Ds {
    Ds::parse(s).unwrap()
}

fn table(s: &str) -> TableName {
    TableName::parse(s).unwrap()
}

fn spec(d: &str) -> Vec<(String, String)> {
    vec![("ds".to_string(), d.to_string())]
}

fn id_name_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn id_name(ids: &[i64]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        id_name_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

fn write_ids(wh: &Warehouse, t: &str, d: &str, ids: &[i64]) {
    wh.write_partition(&table(t), &spec(d), id_name_schema(), &[id_name(ids)])
        .unwrap();
}

/// The `id` column of some batches, sorted.
fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            (0..c.len()).map(move |i| c.value(i)).collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "NULL".to_string()
                        } else {
                            array_value_to_string(c, i).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

fn list(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return vec![];
    }
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    list(dir)
        .into_iter()
        .filter(|n| n.ends_with(".parquet"))
        .map(|n| dir.join(n))
        .collect()
}

// ---------------------------------------------------------------- layout

#[test]
fn hive_layout_on_disk_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    write_ids(&wh, "data.users", "2026-01-01", &[1, 2, 3]);
    write_ids(&wh, "data.users", "2026-01-02", &[4]);
    write_ids(&wh, "nodefault", "2026-01-02", &[9]);

    // <root>/<ns>/<name>/ds=YYYY-MM-DD/*.parquet
    let root = dir.path();
    assert_eq!(
        list(&root.join("data/users")),
        vec!["ds=2026-01-01", "ds=2026-01-02"]
    );
    let files = parquet_files(&root.join("data/users/ds=2026-01-01"));
    assert_eq!(files.len(), 1);
    // a name without a namespace lives in `default`
    assert_eq!(
        parquet_files(&root.join("default/nodefault/ds=2026-01-02")).len(),
        1
    );

    // The files are plain Parquet without the partition column, readable by any reader.
    let f = std::fs::File::open(&files[0]).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let cols: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(cols, vec!["id", "name"]);
    assert_eq!(ids(&batches), vec![1, 2, 3]);

    // Read back through the warehouse API.
    assert_eq!(
        wh.tables().unwrap(),
        vec![table("data.users"), table("default.nodefault")]
    );
    assert_eq!(
        wh.partitions(&table("data.users")).unwrap(),
        vec![ds("2026-01-01"), ds("2026-01-02")]
    );
    assert_eq!(
        ids(&wh
            .read_partition(&table("data.users"), ds("2026-01-02"))
            .unwrap()),
        vec![4]
    );
    assert!(wh.partitions(&table("data.absent")).unwrap().is_empty());
    let e = wh
        .read_partition(&table("data.users"), ds("2026-01-05"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.users") && e.contains("ds=2026-01-05") && e.contains("does not exist"),
        "{e}"
    );

    // And through SQL, where ds comes back as the partition column.
    let engine = Session::new(&wh).unwrap();
    let got = rows(
        &engine
            .query("SELECT id, name, ds FROM data.users", "test")
            .unwrap(),
    );
    assert_eq!(
        got,
        vec![
            vec!["1", "n1", "2026-01-01"],
            vec!["2", "n2", "2026-01-01"],
            vec!["3", "n3", "2026-01-01"],
            vec!["4", "n4", "2026-01-02"],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    assert_eq!(
        rows(
            &engine
                .query("SELECT id FROM default.nodefault", "test")
                .unwrap()
        ),
        vec![vec!["9".to_string()]]
    );
}

#[test]
fn empty_partition_is_written_with_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let t = table("data.empty");
    wh.write_partition(&t, &spec("2026-01-01"), id_name_schema(), &[])
        .unwrap();
    assert_eq!(wh.partitions(&t).unwrap(), vec![ds("2026-01-01")]);
    assert!(wh
        .read_partition(&t, ds("2026-01-01"))
        .unwrap()
        .iter()
        .all(|b| b.num_rows() == 0));
    let names: Vec<String> = wh
        .table_schema(&t)
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["id", "name"]);
}

// ---------------------------------------------------------------- atomic writes and recovery

#[test]
fn open_recovers_from_a_crash_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    {
        let wh = Warehouse::open(&root).unwrap();
        write_ids(&wh, "data.t", "2026-01-01", &[1, 2]);
        write_ids(&wh, "data.t", "2026-01-02", &[3, 4, 5]);
        write_ids(&wh, "data.t", "2026-01-03", &[6]);
    }
    let part2 = root.join("data/t/ds=2026-01-02");
    let part3 = root.join("data/t/ds=2026-01-03");

    // Crash 1: a write died while its file was half written under .weft-staging.
    let staging = root.join(".weft-staging/1234-5678-0");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(
        staging.join("part-00000.parquet"),
        b"PAR1\x15\x00half-written",
    )
    .unwrap();

    // Crash 2: a replacement of ds=2026-01-02 died after parking the old partition in the
    // trash and before the new one was moved into place: the target is missing.
    let trash = root.join(".weft-trash");
    std::fs::create_dir_all(&trash).unwrap();
    std::fs::rename(&part2, trash.join("crash-1")).unwrap();
    std::fs::write(
        trash.join("crash-1.target"),
        part2.to_string_lossy().as_bytes(),
    )
    .unwrap();
    assert!(!part2.exists());

    // Crash 3: a replacement of ds=2026-01-03 died after the new partition was in place but
    // before the parked old one was deleted: the old one must not come back.
    let old3 = trash.join("crash-2");
    std::fs::create_dir_all(&old3).unwrap();
    std::fs::write(old3.join("part-00000.parquet"), b"stale").unwrap();
    std::fs::write(
        trash.join("crash-2.target"),
        part3.to_string_lossy().as_bytes(),
    )
    .unwrap();

    // Staging and trash are never tables.
    let wh = Warehouse::open(&root).unwrap();
    assert_eq!(wh.tables().unwrap(), vec![table("data.t")]);

    // The parked partition is back, intact; the completed one is untouched.
    assert_eq!(
        wh.partitions(&table("data.t")).unwrap(),
        vec![ds("2026-01-01"), ds("2026-01-02"), ds("2026-01-03")]
    );
    assert_eq!(
        ids(&wh
            .read_partition(&table("data.t"), ds("2026-01-02"))
            .unwrap()),
        vec![3, 4, 5]
    );
    assert_eq!(
        ids(&wh
            .read_partition(&table("data.t"), ds("2026-01-03"))
            .unwrap()),
        vec![6]
    );
    // staging and trash are cleared
    assert!(
        list(&root.join(".weft-staging")).is_empty(),
        "{:?}",
        list(&root.join(".weft-staging"))
    );
    assert!(list(&trash).is_empty(), "{:?}", list(&trash));

    // The table reads cleanly through SQL (no stray half-written file anywhere).
    let engine = Session::new(&wh).unwrap();
    let got = rows(
        &engine
            .query("SELECT count(*), sum(id) FROM data.t", "test")
            .unwrap(),
    );
    assert_eq!(got, vec![vec!["6".to_string(), "21".to_string()]]);

    // Re-opening again is a no-op.
    let wh = Warehouse::open(&root).unwrap();
    assert_eq!(
        ids(&wh
            .read_partition(&table("data.t"), ds("2026-01-02"))
            .unwrap()),
        vec![3, 4, 5]
    );
}

#[test]
fn overwriting_a_partition_replaces_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let t = table("data.t");
    write_ids(&wh, "data.t", "2026-01-01", &[1, 2, 3]);
    write_ids(&wh, "data.t", "2026-01-02", &[7]);
    let engine = Session::new(&wh).unwrap();
    assert_eq!(
        rows(&engine.query("SELECT count(*) FROM data.t", "test").unwrap()),
        vec![vec!["4".to_string()]]
    );

    write_ids(&wh, "data.t", "2026-01-01", &[10, 20]);
    // only the new rows, in a single file; nothing left in staging, and the trash holds only
    // the replaced folder, retired for a minute so that readers that listed it can finish
    assert_eq!(
        ids(&wh.read_partition(&t, ds("2026-01-01")).unwrap()),
        vec![10, 20]
    );
    assert_eq!(
        parquet_files(&dir.path().join("data/t/ds=2026-01-01")).len(),
        1
    );
    assert!(list(&dir.path().join(".weft-staging")).is_empty());
    let trash = list(&dir.path().join(".weft-trash"));
    assert!(
        trash.len() <= 1 && trash.iter().all(|n| n.starts_with("retired-")),
        "unexpected trash: {trash:?}"
    );
    // the other partition is untouched
    assert_eq!(
        ids(&wh.read_partition(&t, ds("2026-01-02")).unwrap()),
        vec![7]
    );
    // SQL sees the replacement after a refresh
    engine.refresh().unwrap();
    assert_eq!(
        rows(&engine.query("SELECT id, ds FROM data.t", "test").unwrap()),
        vec![
            vec!["10", "2026-01-01"],
            vec!["20", "2026-01-01"],
            vec!["7", "2026-01-02"]
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );

    // drop_partition removes it whole
    wh.drop_partition(&t, &spec("2026-01-01")).unwrap();
    assert_eq!(wh.partitions(&t).unwrap(), vec![ds("2026-01-02")]);
    assert!(list(&dir.path().join(".weft-trash"))
        .iter()
        .all(|n| n.starts_with("retired-")));
}

/// A reader running while a partition is replaced again and again sees either the old rows or
/// the new rows, never a mix or a torn file.
#[test]
fn concurrent_reader_never_sees_a_half_written_partition() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let t = table("data.t");
    let a: Vec<i64> = (0..2000).collect();
    let b: Vec<i64> = (5000..5500).collect();
    write_ids(&wh, "data.t", "2026-01-01", &a);

    let done = Arc::new(AtomicBool::new(false));
    // reads completed: the writer waits for reads between its writes, so the two overlap
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let wh = wh.clone();
        let t = t.clone();
        let (a, b) = (a.clone(), b.clone());
        let done = done.clone();
        let reads = reads.clone();
        std::thread::spawn(move || {
            let (mut whole, mut missing) = (0usize, 0usize);
            let (mut seen_a, mut seen_b) = (false, false);
            // read at least once, however the threads are scheduled
            while whole == 0 || !done.load(Ordering::Relaxed) {
                let r = wh.read_partition(&t, ds("2026-01-01"));
                reads.fetch_add(1, Ordering::SeqCst);
                match r {
                    Ok(batches) => {
                        let got = ids(&batches);
                        assert!(
                            got == a || got == b,
                            "a reader saw {} rows that are neither version",
                            got.len()
                        );
                        seen_a |= got == a;
                        seen_b |= got == b;
                        whole += 1;
                    }
                    // Where the platform has no atomic exchange, the old folder is parked before
                    // the new one lands: a reader can find the partition briefly absent, never torn.
                    Err(e) => {
                        let m = e.to_string();
                        assert!(
                            m.contains("does not exist") || m.contains("No such file"),
                            "unexpected read error: {m}"
                        );
                        missing += 1;
                    }
                }
            }
            (whole, missing, seen_a && seen_b)
        })
    };
    for i in 0..40 {
        let before = reads.load(Ordering::SeqCst);
        write_ids(
            &wh,
            "data.t",
            "2026-01-01",
            if i % 2 == 0 { &b } else { &a },
        );
        // a read that started after this write completes before the next one
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while reads.load(Ordering::SeqCst) < before + 2 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
    done.store(true, Ordering::Relaxed);
    let (whole, missing, saw_both) = reader.join().unwrap();
    assert!(whole > 0);
    assert!(
        saw_both,
        "the reader read between writes, so it saw both versions"
    );
    if cfg!(target_os = "linux") {
        assert_eq!(
            missing, 0,
            "on Linux the partition is swapped atomically and never absent"
        );
    }
    assert_eq!(ids(&wh.read_partition(&t, ds("2026-01-01")).unwrap()), a);
}

// ---------------------------------------------------------------- properties and infos

#[test]
fn properties_round_trip_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let t = table("data.props");
    assert!(wh.properties(&t).unwrap().is_empty());

    let p = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    wh.set_properties(
        &t,
        &p(&[
            ("semantic_hash", "{\"left\":\"abc\"}"),
            ("chronon_generated", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(
        wh.properties(&t).unwrap(),
        p(&[
            ("semantic_hash", "{\"left\":\"abc\"}"),
            ("chronon_generated", "true")
        ])
    );

    // merge: existing keys are overwritten, others kept
    wh.set_properties(
        &t,
        &p(&[
            ("semantic_hash", "{\"left\":\"def\"}"),
            ("schema_hash_x", "1"),
        ]),
    )
    .unwrap();
    let expected = p(&[
        ("semantic_hash", "{\"left\":\"def\"}"),
        ("chronon_generated", "true"),
        ("schema_hash_x", "1"),
    ]);
    assert_eq!(wh.properties(&t).unwrap(), expected);

    // persisted: a new handle reads the same, and the table folder is not a data partition
    let wh2 = Warehouse::open(dir.path()).unwrap();
    assert_eq!(wh2.properties(&t).unwrap(), expected);
    assert!(wh2.partitions(&t).unwrap().is_empty());
    // no temporary files are left beside the properties file
    assert_eq!(
        list(&dir.path().join("data/props")),
        vec!["_weft_table.json"]
    );

    // properties sit beside data without disturbing it
    write_ids(&wh, "data.props", "2026-01-01", &[1]);
    assert_eq!(wh.properties(&t).unwrap(), expected);
    let engine = Session::new(&wh).unwrap();
    assert_eq!(
        rows(&engine.query("SELECT id FROM data.props", "test").unwrap()),
        vec![vec!["1".to_string()]]
    );

    // a corrupt file is an error naming the table
    std::fs::write(dir.path().join("data/props/_weft_table.json"), "{not json").unwrap();
    let e = wh.properties(&t).unwrap_err().to_string();
    assert!(e.contains("data.props") && e.contains("corrupt"), "{e}");
}

#[test]
fn partition_infos_count_rows_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let t = table("data.t");
    write_ids(&wh, "data.t", "2026-01-01", &[1, 2, 3]);
    // two batches in one partition
    wh.write_partition(
        &t,
        &spec("2026-01-02"),
        id_name_schema(),
        &[id_name(&[4, 5]), id_name(&[6, 7, 8])],
    )
    .unwrap();
    wh.write_partition(&t, &spec("2026-01-04"), id_name_schema(), &[])
        .unwrap();

    let infos = wh.partition_infos(&t).unwrap();
    let summary: Vec<(String, usize, u64)> = infos
        .iter()
        .map(|i| (i.ds.to_string(), i.files, i.rows))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("2026-01-01".to_string(), 1, 3),
            ("2026-01-02".to_string(), 1, 5),
            ("2026-01-04".to_string(), 1, 0)
        ]
    );
    for i in &infos {
        let f = &parquet_files(&dir.path().join(format!("data/t/ds={}", i.ds)))[0];
        assert_eq!(i.bytes, std::fs::metadata(f).unwrap().len());
    }
    assert!(wh.partition_infos(&table("data.none")).unwrap().is_empty());
}

// ---------------------------------------------------------------- schema conflicts

#[test]
fn column_type_conflict_between_partitions_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    let t = table("data.mixed");
    write_ids(&wh, "data.mixed", "2026-01-01", &[1]);
    // in the next partition `id` is a string
    let s2 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let b2 = RecordBatch::try_new(
        s2.clone(),
        vec![
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
            Arc::new(StringArray::from(vec!["n"])),
        ],
    )
    .unwrap();
    wh.write_partition(&t, &spec("2026-01-02"), s2, &[b2])
        .unwrap();

    let e = wh.table_schema(&t).unwrap_err().to_string();
    assert!(e.contains("data.mixed"), "{e}");
    assert!(
        e.contains("ds=2026-01-02"),
        "names the conflicting partition: {e}"
    );
    assert!(e.contains("`id`"), "names the column: {e}");
    assert!(
        e.contains("ds=2026-01-01"),
        "names where the other type was seen: {e}"
    );
    assert!(
        e.contains("Utf8") && e.contains("Int64"),
        "names both types: {e}"
    );

    // The session leaves the table out (jobs that do not read it run) and a query that
    // reads it fails with the same message.
    let session = Session::new(&wh).expect("a broken table does not stop the session");
    let e = session
        .query("SELECT * FROM data.mixed", "test")
        .expect_err("reading a table with conflicting types fails")
        .to_string();
    assert!(
        e.contains("data.mixed") && e.contains("ds=2026-01-02") && e.contains("`id`"),
        "{e}"
    );

    // A column that only appears later is fine (appended, nullable).
    let t2 = table("data.grows");
    write_ids(&wh, "data.grows", "2026-01-01", &[1]);
    let s3 = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("extra", DataType::Int64, false),
    ]));
    let b3 = RecordBatch::try_new(
        s3.clone(),
        vec![
            Arc::new(Int64Array::from(vec![2])) as ArrayRef,
            Arc::new(Int64Array::from(vec![42])),
        ],
    )
    .unwrap();
    wh.write_partition(&t2, &spec("2026-01-02"), s3, &[b3])
        .unwrap();
    let schema = wh.table_schema(&t2).unwrap();
    let fields: Vec<(String, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.is_nullable()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("id".into(), true),
            ("name".into(), true),
            ("extra".into(), true)
        ]
    );
}

/// The engine caches file listings; a refresh must make partitions written (or replaced) since
/// the last query visible.
#[test]
fn engine_sees_new_and_replaced_partitions_after_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(dir.path()).unwrap();
    write_ids(&wh, "data.t", "2026-01-01", &[1, 2, 3]);
    let engine = Session::new(&wh).unwrap();
    let q = |sql: &str| rows(&engine.query(sql, "test").unwrap());
    let one = |v: &str| vec![vec![v.to_string()]];
    assert_eq!(q("SELECT sum(id) FROM data.t"), one("6"));
    assert_eq!(
        q("SELECT count(*) FROM data.t WHERE ds = '2026-01-01'"),
        one("3")
    );

    // a new partition
    write_ids(&wh, "data.t", "2026-01-02", &[10]);
    engine.refresh().unwrap();
    assert_eq!(q("SELECT sum(id) FROM data.t"), one("16"));
    assert_eq!(
        q("SELECT sum(id) FROM data.t WHERE ds = '2026-01-02'"),
        one("10")
    );

    // a replaced partition with fewer rows (same file name, different size)
    write_ids(&wh, "data.t", "2026-01-01", &[100, 200]);
    engine.refresh().unwrap();
    assert_eq!(
        q("SELECT sum(id), count(*) FROM data.t WHERE ds = '2026-01-01'"),
        vec![vec!["300".to_string(), "2".to_string()]]
    );
    assert_eq!(q("SELECT sum(id) FROM data.t"), one("310"));

    // a dropped partition
    wh.drop_partition(&table("data.t"), &spec("2026-01-02"))
        .unwrap();
    engine.refresh().unwrap();
    assert_eq!(q("SELECT sum(id) FROM data.t"), one("300"));
}

#[test]
fn opening_a_warehouse_never_disturbs_a_running_writer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Warehouse::open(&root).unwrap();
    // a live writer (another process) is staging a partition; a dead one left a folder behind
    let mut live = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let name = |pid: u32| format!("{:020}-{pid}-0", 1_765_000_000_000_000_000u128);
    let staging = root.join(".weft-staging");
    let live_dir = staging.join(name(live.id()));
    let dead_dir = staging.join(name(dead.id()));
    for d in [&live_dir, &dead_dir] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("part-00000.parquet"), b"PAR1").unwrap();
    }
    Warehouse::open(&root).unwrap();
    assert!(
        live_dir.exists(),
        "a running writer's staging folder is left alone"
    );
    assert!(!dead_dir.exists(), "what a dead process left is cleaned up");
    live.kill().unwrap();
    live.wait().unwrap();
    Warehouse::open(&root).unwrap();
    assert!(
        !live_dir.exists(),
        "once the writer is gone, its folder is cleaned up"
    );
}
