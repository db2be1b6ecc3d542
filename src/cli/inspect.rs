//! `weft validate`, `weft tables` and `weft show`: look at configs and warehouse tables.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{conf_files, load_conf, naming, Conf, GroupBy, Join};
use crate::error::{Error, Result};
use crate::warehouse::{TableName, Warehouse};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Config files or folders (for example dataflows/production).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    /// Only tables in this namespace.
    pub namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Table name, `namespace.table`.
    pub table: String,
    /// Sample rows to print from the latest partition.
    #[arg(long, default_value_t = 5)]
    pub rows: usize,
    /// Partition to sample instead of the latest.
    #[arg(long)]
    pub ds: Option<String>,
    /// List every partition (by default, long lists show their first and last five).
    #[arg(long = "all-partitions")]
    pub all_partitions: bool,
}

/// Output columns of a GroupBy inside a join, prefixed.
fn group_by_columns(gb: &GroupBy) -> Vec<String> {
    match &gb.aggregations {
        Some(a) if !a.is_empty() => naming::aggregation_parts(gb)
            .into_iter()
            .map(|p| p.column)
            .collect(),
        _ => gb
            .sources
            .first()
            .and_then(|s| s.query().selects.as_ref())
            .map(|s| {
                s.keys()
                    .filter(|k| !gb.key_columns.contains(k) && *k != "ts" && *k != "ds")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn join_columns(j: &Join) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let left: Vec<String> = j
        .left
        .query()
        .selects
        .as_ref()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_else(|| vec!["*".into()]);
    out.push(("left".to_string(), left));
    for jp in &j.join_parts {
        let prefix = naming::part_full_prefix(jp);
        out.push((
            format!("part {}", jp.group_by.meta_data.name),
            group_by_columns(&jp.group_by)
                .into_iter()
                .map(|c| format!("{prefix}_{c}"))
                .collect(),
        ));
    }
    for ep in &j.online_external_parts {
        let name = &ep.source.metadata.name;
        let fields: Vec<String> = ep
            .source
            .value_schema
            .as_ref()
            .map(|s| s.params.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default();
        let pre = match (&ep.prefix, name.as_str()) {
            (_, "contextual") => "ext_contextual".to_string(),
            (Some(p), _) => format!("ext_{p}_{name}"),
            (None, _) => format!("ext_{name}"),
        };
        out.push((
            format!("external {name}"),
            fields.iter().map(|f| format!("{pre}_{f}")).collect(),
        ));
    }
    if !j.derivations.is_empty() {
        out.push((
            "derivations".into(),
            j.derivations.iter().map(|d| d.name.clone()).collect(),
        ));
    }
    if let Some(lp) = &j.label_part {
        for jp in &lp.labels {
            let prefix = naming::part_full_prefix(jp);
            out.push((
                format!("label {}", jp.group_by.meta_data.name),
                group_by_columns(&jp.group_by)
                    .into_iter()
                    .map(|c| format!("label_{prefix}_{c}"))
                    .collect(),
            ));
        }
    }
    out
}

pub fn validate(a: ValidateArgs) -> Result<()> {
    let mut errors = Vec::new();
    let mut count = 0;
    for root in &a.paths {
        for f in conf_files(root)? {
            count += 1;
            match load_conf(&f) {
                Err(e) => errors.push(e),
                Ok(conf) => {
                    // the same planning checks a backfill makes
                    let planned = match &conf {
                        Conf::Join(j) => crate::join::plan::JoinPlan::new(j)
                            .and_then(|p| crate::label::LabelPlan::new(j, &p).map(|_| ())),
                        Conf::GroupBy(g) => crate::groupby::GroupByPlan::new(g).map(|_| ()),
                        Conf::StagingQuery(sq) => naming::output_table(&sq.meta_data).map(|_| ()),
                    };
                    if let Err(e) = planned {
                        errors.push(e);
                    }
                    let table =
                        naming::output_table(conf.meta()).unwrap_or_else(|e| format!("<{e}>"));
                    match &conf {
                        Conf::StagingQuery(sq) => println!(
                            "staging_query {}\n  output {table} (from {})",
                            sq.meta_data.name,
                            sq.start_partition.as_deref().unwrap_or("unpartitioned")
                        ),
                        Conf::GroupBy(gb) => {
                            println!(
                                "group_by {}\n  output {table}\n  keys {}",
                                gb.meta_data.name,
                                gb.key_columns.join(", ")
                            );
                            println!("  columns {}", group_by_columns(gb).join(", "));
                        }
                        Conf::Join(j) => {
                            println!("join {}\n  output {table}", j.meta_data.name);
                            for (what, cols) in join_columns(j) {
                                println!("  {what}: {}", cols.join(", "));
                            }
                        }
                    }
                }
            }
        }
    }
    println!("{count} config(s), {} with problems", errors.len());
    Error::collect(errors)
}

pub fn tables(warehouse: &Path, a: TablesArgs) -> Result<()> {
    let wh = Warehouse::open_existing(warehouse)?;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for t in wh.tables()? {
        if a.namespace.as_ref().is_some_and(|ns| *ns != t.namespace) {
            continue;
        }
        // a table that cannot be read is listed with its error; the others are still shown
        let listed = (|| -> Result<Vec<String>> {
            let infos = wh.partition_infos(&t)?;
            if let (Some(f), Some(l)) = (infos.first(), infos.last()) {
                let n: u64 = infos.iter().map(|i| i.rows).sum();
                return Ok(vec![
                    t.to_string(),
                    infos.len().to_string(),
                    format!("{} .. {}", f.ds, l.ds),
                    n.to_string(),
                ]);
            }
            let nested = nested_partitions(&wh, &t)?;
            Ok(match (nested.first(), nested.last()) {
                (Some(f), Some(l)) => vec![
                    t.to_string(),
                    nested.len().to_string(),
                    format!("{} .. {}", f.spec, l.spec),
                    nested.iter().map(|p| p.rows).sum::<u64>().to_string(),
                ],
                _ => vec![
                    t.to_string(),
                    "0".into(),
                    "(no partitions)".into(),
                    "0".into(),
                ],
            })
        })();
        match listed {
            Ok(r) => rows.push(r),
            Err(e) => {
                rows.push(vec![
                    t.to_string(),
                    "?".into(),
                    format!("unreadable: {}", e.to_string().lines().next().unwrap_or("")),
                    "?".into(),
                ]);
                errors.push(e);
            }
        }
    }
    if rows.is_empty() {
        println!("no tables in {} (try `weft demo`)", warehouse.display());
        return Ok(());
    }
    println!(
        "{}",
        super::render::table(
            &["table", "partitions", "range", "rows"],
            &["partitions", "rows"],
            rows
        )
    );
    Error::collect(errors)
}

/// Partitions listed in full up to this many; longer lists show their first and last ones.
const PARTITIONS_SHOWN: usize = 10;

pub fn show(warehouse: &Path, a: ShowArgs) -> Result<()> {
    let wh = Warehouse::open_existing(warehouse)?;
    let t = TableName::parse(&a.table)?;
    if !wh.exists(&t) {
        return Err(wh.missing_table(&t, "weft show"));
    }
    println!("table {t}  ({})", wh.table_dir(&t).display());
    let schema = wh.table_schema(&t)?;
    println!("columns:");
    for f in schema.fields() {
        println!("  {:<50} {}", f.name(), f.data_type());
    }
    let nested = if wh.partitions(&t)?.is_empty() {
        nested_partitions(&wh, &t)?
    } else {
        vec![]
    };
    if let Some(p) = nested.first() {
        // e.g. a label table: label_ds=…/ds=…
        for col in p.spec.split('/').filter_map(|kv| kv.split('=').next()) {
            println!("  {col:<50} partition (yyyy-MM-dd)");
        }
    } else {
        println!("  {:<50} partition (yyyy-MM-dd)", "ds");
    }
    // properties without a value (cleared marks) say nothing
    let props: Vec<(String, String)> = wh
        .properties(&t)?
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if !props.is_empty() {
        println!("properties:");
        for (k, v) in &props {
            println!("  {k} = {v}");
        }
    }
    let all = a.all_partitions;
    let listing = |specs: Vec<[String; 4]>| {
        let rows: Vec<Vec<String>> = specs.into_iter().map(|r| r.to_vec()).collect();
        let (head, hidden, tail) = if all {
            (&rows[..], 0, &[][..])
        } else {
            super::render::elide(&rows, PARTITIONS_SHOWN / 2, PARTITIONS_SHOWN / 2)
        };
        let mut shown: Vec<Vec<String>> = head.to_vec();
        if hidden > 0 {
            shown.push(vec![
                format!("… {hidden} more (--all-partitions lists them)"),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        shown.extend(tail.iter().cloned());
        let text = super::render::table(
            &["partition", "rows", "files", "bytes"],
            &["rows", "files", "bytes"],
            shown,
        );
        for l in text.lines() {
            println!("  {l}");
        }
    };
    if !nested.is_empty() {
        println!("partitions: {}", nested.len());
        listing(
            nested
                .iter()
                .map(|p| {
                    [
                        p.spec.clone(),
                        p.rows.to_string(),
                        p.files.len().to_string(),
                        p.bytes.to_string(),
                    ]
                })
                .collect(),
        );
        if let (Some(p), true) = (nested.last(), a.rows > 0) {
            let batches = wh.read_files(&p.files)?;
            print_sample(&format!("sample of {}:", p.spec), batches, a.rows)?;
        }
        return Ok(());
    }
    let infos = wh.partition_infos(&t)?;
    println!("partitions: {}", infos.len());
    listing(
        infos
            .iter()
            .map(|i| {
                [
                    format!("ds={}", i.ds),
                    i.rows.to_string(),
                    i.files.to_string(),
                    i.bytes.to_string(),
                ]
            })
            .collect(),
    );
    let sample = match &a.ds {
        Some(d) => Some(crate::partition::Ds::parse(d)?),
        None => infos.last().map(|i| i.ds),
    };
    if let (Some(ds), true) = (sample, a.rows > 0) {
        let batches = wh.read_partition(&t, ds)?;
        print_sample(&format!("sample of ds={ds}:"), batches, a.rows)?;
    }
    Ok(())
}

/// Prints the first `n` rows of `batches` under a heading.
fn print_sample(
    heading: &str,
    batches: Vec<arrow::record_batch::RecordBatch>,
    n: usize,
) -> Result<()> {
    let mut rows = Vec::new();
    let mut left = n;
    for b in batches {
        if left == 0 {
            break;
        }
        let k = left.min(b.num_rows());
        rows.push(b.slice(0, k));
        left -= k;
    }
    println!("{heading}");
    println!("{}", super::render::rows(&rows)?);
    Ok(())
}

/// A partition below the top level, such as a label table's `label_ds=…/ds=…`.
struct NestedPartition {
    spec: String,
    files: Vec<std::path::PathBuf>,
    rows: u64,
    bytes: u64,
}

/// The partitions of a table partitioned by more than `ds` (its data files grouped by folder),
/// sorted by their `k=v/…` path, with row counts from the Parquet footers.
fn nested_partitions(wh: &Warehouse, t: &TableName) -> Result<Vec<NestedPartition>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let root = wh.table_dir(t);
    let mut by_dir: std::collections::BTreeMap<String, NestedPartition> = Default::default();
    for f in wh.data_files(t)? {
        let spec = f
            .parent()
            .and_then(|p| p.strip_prefix(&root).ok())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let file = std::fs::File::open(&f)
            .map_err(|e| Error::io(format!("opening {}", f.display()), e))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let rows = SerializedFileReader::new(file)
            .map_err(|e| Error::parquet(format!("reading {}", f.display()), e))?
            .metadata()
            .file_metadata()
            .num_rows() as u64;
        let p = by_dir.entry(spec.clone()).or_insert(NestedPartition {
            spec,
            files: vec![],
            rows: 0,
            bytes: 0,
        });
        p.files.push(f);
        p.rows += rows;
        p.bytes += bytes;
    }
    Ok(by_dir
        .into_values()
        .filter(|p| !p.spec.is_empty())
        .collect())
}
