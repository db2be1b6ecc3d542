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

/// One part's rows being built.
struct Builder {
    part: u16,
    at: i64,
    keys: BinaryBuilder,
    states: BinaryBuilder,
    n: u64,
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
    let mut builders: Vec<Builder> = parts
        .iter()
        .map(|&(part, at)| Builder {
            part,
            at,
            keys: BinaryBuilder::new(),
            states: BinaryBuilder::new(),
            n: 0,
        })
        .collect();
    let mut groups = groups.borrow_mut();
    for ((part, key), state) in groups.iter_mut() {
        let Some(b) = builders.iter_mut().find(|b| b.part == *part) else {
            continue;
        };
        let (Some(spec), Some(layout)) = (specs.get(*part as usize), layouts.get(*part as usize))
        else {
            continue;
        };
        if let Some(bytes) = state.base_at(spec, layout, b.at) {
            b.keys.append_value(key);
            b.states.append_value(bytes);
            b.n += 1;
        }
    }
    drop(groups);
    let mut counts = Vec::with_capacity(builders.len());
    for mut b in builders {
        counts.push(b.n);
        if b.n == 0 {
            continue;
        }
        let parts = UInt32Array::from(vec![b.part as u32; b.n as usize]);
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(parts),
                Arc::new(b.keys.finish()),
                Arc::new(b.states.finish()),
            ],
        )
        .map_err(|e| format!("building stored aggregates: {e}"))?;
        let path = dir.join(file_name(b.part, worker));
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema(), Some(props))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        w.write(&batch)
            .and_then(|_| w.close().map(|_| ()))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(counts)
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
