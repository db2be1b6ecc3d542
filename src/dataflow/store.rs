//! Stored-aggregate files: in one pass over its groups, each worker writes the bases
//! ([`super::base`]) of the requested parts, one Parquet file per part, `p<part>-w<worker>.parquet`
//! in the folder the driver names (columns `part` u32, `key` binary, `state` binary); the
//! engine reads them back as `Item::Base` updates, routed to whichever worker owns each key
//! then.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, BinaryBuilder, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::operator::Groups;
use super::records::Item;
use super::spec::PartSpec;
use super::tiles::Layout;
use super::Update;

/// The schema of a stored-aggregate file.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("part", DataType::UInt32, false),
        Field::new("key", DataType::Binary, false),
        Field::new("state", DataType::Binary, false),
    ]))
}

/// The file a worker writes in `dir` for a part.
pub fn file_name(part: u16, worker: usize) -> String {
    format!("p{part}-w{worker}.parquet")
}

/// Rows a part's file is written in: the encoded bases of one batch are all that is held.
const BATCH_ROWS: usize = 8192;

/// One part's file being written, a batch at a time.
struct PartFile {
    part: u16,
    at: i64,
    path: std::path::PathBuf,
    keys: BinaryBuilder,
    states: BinaryBuilder,
    rows: usize,
    n: u64,
    writer: Option<parquet::arrow::ArrowWriter<std::fs::File>>,
}

impl PartFile {
    fn push(&mut self, key: &[u8], state: &[u8]) -> Result<(), String> {
        self.keys.append_value(key);
        self.states.append_value(state);
        self.rows += 1;
        self.n += 1;
        if self.rows >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.rows == 0 {
            return Ok(());
        }
        let err = |e: &dyn std::fmt::Display| format!("writing {}: {e}", self.path.display());
        let parts = UInt32Array::from(vec![self.part as u32; self.rows]);
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(parts),
                Arc::new(self.keys.finish()),
                Arc::new(self.states.finish()),
            ],
        )
        .map_err(|e| err(&e))?;
        self.rows = 0;
        if self.writer.is_none() {
            let file = std::fs::File::create(&self.path).map_err(|e| err(&e))?;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            let w = parquet::arrow::ArrowWriter::try_new(file, schema(), Some(props))
                .map_err(|e| err(&e))?;
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("opened above");
        w.write(&batch).map_err(|e| err(&e))?;
        // a row group per batch: nothing but the current batch stays in memory
        w.flush().map_err(|e| err(&e))
    }

    fn finish(mut self) -> Result<u64, String> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            let path = self.path.display().to_string();
            w.close().map_err(|e| format!("writing {path}: {e}"))?;
        }
        Ok(self.n)
    }
}

/// Writes the bases at the given boundaries (`(part, at)`) of this worker's groups, one
/// file per part in `dir` (none for a part without any); returns how many keys it wrote per
/// part, in the order given.
pub fn write(
    groups: &Groups,
    specs: &[PartSpec],
    layouts: &[Layout],
    parts: &[(u16, i64)],
    dir: &Path,
    worker: usize,
) -> Result<Vec<u64>, String> {
    let mut files: Vec<PartFile> = parts
        .iter()
        .map(|&(part, at)| PartFile {
            part,
            at,
            path: dir.join(file_name(part, worker)),
            keys: BinaryBuilder::new(),
            states: BinaryBuilder::new(),
            rows: 0,
            n: 0,
            writer: None,
        })
        .collect();
    let mut groups = groups.borrow_mut();
    for ((part, key), state) in groups.iter_mut() {
        let Some(f) = files.iter_mut().find(|f| f.part == *part) else {
            continue;
        };
        let (Some(spec), Some(layout)) = (specs.get(*part as usize), layouts.get(*part as usize))
        else {
            continue;
        };
        if let Some(bytes) = state.base_at(spec, layout, f.at) {
            f.push(key, &bytes)?;
        }
    }
    drop(groups);
    files.into_iter().map(PartFile::finish).collect()
}

/// The updates of a stored-aggregate file's rows for part `part` (rows of other parts are
/// skipped), each base checked to decode for the part; `sign` +1 feeds, −1 retracts.
pub fn updates(
    batches: &[RecordBatch],
    part: u16,
    stored_part: u32,
    spec: &PartSpec,
    sign: isize,
) -> Result<Vec<Update>, String> {
    let layout = Layout::new(spec);
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| format!("stored aggregates have no `{name}` column"))
        };
        let parts = col("part")?
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or("stored aggregates: `part` is not u32")?;
        let keys = col("key")?
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or("stored aggregates: `key` is not binary")?;
        let states = col("state")?
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or("stored aggregates: `state` is not binary")?;
        for i in 0..b.num_rows() {
            if parts.is_null(i) || parts.value(i) != stored_part {
                continue;
            }
            let state = states.value(i);
            super::base::Base::decode(state, spec, &layout, true)
                .map_err(|e| format!("stored aggregates of row {i}: {e}"))?;
            out.push((
                (
                    (part, keys.value(i).to_vec()),
                    Item::Base {
                        state: state.to_vec(),
                    },
                ),
                sign,
            ));
        }
    }
    Ok(out)
}
