//! Plans a join from its config: the left scan (event or entity left, skew filter), and for
//! each join part its key mapping, the kind of computation (events, entity snapshot, entity
//! mutations, raw rows), source scans, windows and output columns (chronon-semantics
//! §2.2–§2.6, §3.1–§3.4). Everything the engine cannot compute is rejected here, naming the
//! config field.

use crate::aggregate::AggSpec;
use crate::config::{naming, Accuracy, Derivation, GroupBy, Join, Query, Source};
use crate::dataflow::spec::{tail_hop, PartKind};
use crate::error::{Error, Result};
use crate::partition::DAY_MS;
use crate::sql::scan::Scan;
use crate::warehouse::TableName;

/// One aggregated output column of a join part.
#[derive(Debug, Clone)]
pub struct OutColumn {
    /// Full output name: `<fullPrefix>_<groupBy column>`.
    pub name: String,
    /// GroupBy output column name (before prefixing).
    pub gb_column: String,
    pub spec: AggSpec,
    /// Index into the part's inputs of the aggregated column, and of the bucket column.
    pub input: usize,
    pub bucket: Option<usize>,
    pub window_ms: Option<i64>,
    pub hop: i64,
}

/// How a GroupBy source is read.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Events, or an entity snapshot table.
    pub scan: Scan,
    /// The mutation table of a TEMPORAL entity part.
    pub mutations: Option<Scan>,
}

impl PartPlan {
    /// Every table this part reads, as dataflow inputs: each source's scan and, for a
    /// TEMPORAL entity source, its mutation table.
    pub fn source_inputs(&self) -> impl Iterator<Item = (super::feed::InputId, &Scan)> {
        self.sources.iter().enumerate().flat_map(move |(si, s)| {
            [(Some(&s.scan), false), (s.mutations.as_ref(), true)]
                .into_iter()
                .filter_map(move |(scan, mutations)| {
                    let id = super::feed::InputId::Source {
                        part: self.index,
                        source: si as u16,
                        mutations,
                    };
                    scan.map(|scan| (id, scan))
                })
        })
    }
}

/// A join part as the engine computes it.
#[derive(Debug, Clone)]
pub struct PartPlan {
    pub index: u16,
    pub full_prefix: String,
    pub group_by: GroupBy,
    /// Left columns holding the GroupBy keys, in GroupBy key order.
    pub left_keys: Vec<String>,
    pub right_keys: Vec<String>,
    pub kind: PartKind,
    /// SNAPSHOT accuracy (event parts read whole days before the left row's day).
    pub snapshot: bool,
    /// Source columns fed to the dataflow, in order (aggregation inputs, then buckets; for
    /// raw parts the value columns).
    pub inputs: Vec<String>,
    /// Aggregated columns (empty for raw parts).
    pub columns: Vec<OutColumn>,
    /// Raw parts: output names of the value columns (`<fullPrefix>_<column>`).
    pub raw_names: Vec<String>,
    /// How far back (ms) a query reaches into events; `None` = all history.
    pub reach_ms: Option<i64>,
    pub sources: Vec<SourcePlan>,
    pub derivations: Vec<Derivation>,
}

/// The left side of a join.
#[derive(Debug, Clone)]
pub struct LeftPlan {
    pub scan: Scan,
    /// Event left (rows have `ts`) or entity left (rows are snapshots of their `ds`).
    pub events: bool,
}

/// A planned join.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    pub name: String,
    pub output: TableName,
    pub left: LeftPlan,
    pub parts: Vec<PartPlan>,
    pub derivations: Vec<Derivation>,
    /// Bootstrap parts in priority order (chronon-semantics §4.1).
    pub bootstrap: Vec<super::bootstrap::BootPartPlan>,
    /// Online-only external parts (their fields are bootstrapped or NULL, §4.9).
    pub externals: Vec<super::bootstrap::ExternalPlan>,
}

impl JoinPlan {
    /// Whether the output needs the bootstrap stage or external-field handling.
    pub fn has_bootstrap(&self) -> bool {
        !self.bootstrap.is_empty()
    }
}

fn unsupported(join: &Join, path: &str, what: &str) -> Error {
    Error::Config {
        file: join.meta_data.name.clone(),
        path: path.into(),
        message: format!("{what} is not supported by this version of weft's join engine yet"),
    }
}

/// The skew filter of §3.2: `k NOT IN (v…)` per entry (`k IS NOT NULL` too when the list
/// names null), OR-ed together; rows it rejects are removed from the output.
fn skew_filter(join: &Join) -> Option<String> {
    let clauses: Vec<String> = join
        .skew_keys
        .iter()
        .map(|(k, vs)| {
            let nulls = vs.iter().any(|v| v.eq_ignore_ascii_case("null"));
            let vals: Vec<&str> = vs
                .iter()
                .filter(|v| !v.eq_ignore_ascii_case("null"))
                .map(String::as_str)
                .collect();
            let mut c = if vals.is_empty() {
                "true".to_string()
            } else {
                format!("{k} NOT IN ({})", vals.join(", "))
            };
            if nulls {
                c = format!("({c} AND {k} IS NOT NULL)");
            }
            format!("({c})")
        })
        .collect();
    (!clauses.is_empty()).then(|| clauses.join(" OR "))
}

impl JoinPlan {
    pub fn new(join: &Join) -> Result<JoinPlan> {
        let mut errors = Vec::new();
        let name = join.meta_data.name.clone();
        let output = TableName::parse(&naming::output_table(&join.meta_data)?)?;
        let (table, query, events) = match &join.left {
            Source::Events(e) => {
                if e.query.time_column.is_none() {
                    errors.push(Error::Config {
                        file: name.clone(),
                        path: "left.events.query.timeColumn".into(),
                        message: "an event left needs a timeColumn (epoch milliseconds)".into(),
                    });
                }
                (e.table.clone(), e.query.clone(), true)
            }
            Source::Entities(e) => (e.snapshot_table.clone(), e.query.clone(), false),
            Source::JoinSource(_) => {
                return Err(unsupported(join, "left.joinSource", "a JoinSource left"))
            }
        };
        let mut fill = vec![("ds".to_string(), None)];
        if let (true, Some(tc)) = (events, &query.time_column) {
            fill.push(("ts".to_string(), Some(tc.clone())));
        }
        let mut query = query;
        if let Some(f) = skew_filter(join) {
            query.wheres.push(f);
        }
        let left = LeftPlan {
            scan: Scan {
                table,
                query,
                fill_ins: fill,
                range: None,
                purpose: format!("left of join {name}"),
            },
            events,
        };
        let mut parts = Vec::new();
        for (i, jp) in crate::join::semantic_hash::hashed_parts(join)
            .iter()
            .enumerate()
        {
            let (path, full_prefix) = if i < join.join_parts.len() {
                (format!("joinParts[{i}]"), naming::part_full_prefix(jp))
            } else {
                let e = join
                    .online_external_parts
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.source.offline_group_by.is_some())
                    .nth(i - join.join_parts.len())
                    .expect("hashed_parts lists external parts with an offlineGroupBy");
                (
                    format!("onlineExternalParts[{}].source.offlineGroupBy", e.0),
                    super::bootstrap::external_full_name(e.1),
                )
            };
            match plan_join_part(join, jp, i, &path, full_prefix, events) {
                Ok(p) => parts.push(p),
                Err(e) => errors.push(e),
            }
        }
        duplicate_columns(join, &parts, &mut errors);
        let (bootstrap, externals) = match super::bootstrap::plan(join) {
            Ok(b) => b,
            Err(e) => {
                errors.push(e);
                Default::default()
            }
        };
        Error::collect(errors)?;
        Ok(JoinPlan {
            name,
            output,
            left,
            parts,
            derivations: join.derivations.clone(),
            bootstrap,
            externals,
        })
    }
}

/// Refuses two parts producing an output column of one name (a part listed twice, prefixes
/// and GroupBy names that collide): the table could not be read.
fn duplicate_columns(join: &Join, parts: &[PartPlan], errors: &mut Vec<Error>) {
    // (a left column named like a feature is allowed: it bootstraps that feature)
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    for p in parts {
        let names: Vec<String> = if p.columns.is_empty() {
            p.raw_names.clone()
        } else {
            p.columns.iter().map(|c| c.name.clone()).collect()
        };
        let here = format!("joinParts[{}] ({})", p.index, p.group_by.meta_data.name);
        for n in names {
            match seen.get(&n) {
                Some(prev) => errors.push(Error::Config {
                    file: join.meta_data.name.clone(),
                    path: format!("joinParts[{}]", p.index),
                    message: format!(
                        "output column `{n}` of {here} is also produced by {prev}; remove the repeated part or give one of them a prefix, so every column has its own name"
                    ),
                }),
                None => {
                    seen.insert(n, here.clone());
                }
            }
        }
    }
}

/// Plans join part `i` (an event or entity left). Also how a GroupBy is planned on its own
/// ([`crate::groupby`]): as the one part of an entity-left join.
pub(crate) fn plan_part(join: &Join, i: usize, event_left: bool) -> Result<PartPlan> {
    let jp = &join.join_parts[i];
    plan_join_part(
        join,
        jp,
        i,
        &format!("joinParts[{i}]"),
        naming::part_full_prefix(jp),
        event_left,
    )
}

/// Plans a label GroupBy of `labelPart` (at config path `at`) as dataflow part `index`,
/// with its columns named like a join part's (`<fullPrefix>_<column>`).
pub(crate) fn plan_label_part(
    join: &Join,
    jp: &crate::config::JoinPart,
    index: u16,
    at: &str,
) -> Result<PartPlan> {
    plan_join_part(
        join,
        jp,
        index as usize,
        at,
        naming::part_full_prefix(jp),
        true,
    )
}

/// Plans a join part (or an external part's offline GroupBy) at config path `at`, with its
/// columns named `<full_prefix>_<column>`.
fn plan_join_part(
    join: &Join,
    jp: &crate::config::JoinPart,
    i: usize,
    at: &str,
    full_prefix: String,
    event_left: bool,
) -> Result<PartPlan> {
    let gb = &jp.group_by;
    let name = join.meta_data.name.clone();
    let path = format!("{at}.groupBy");
    let path = path.replace(".offlineGroupBy.groupBy", ".offlineGroupBy");
    let mut errors = Vec::new();
    let snapshot = gb.inferred_accuracy() == Accuracy::Snapshot;
    // left column for each GroupBy key: identity unless keyMapping maps a left column to it
    let left_keys: Vec<String> = gb
        .key_columns
        .iter()
        .map(|rk| {
            jp.key_mapping
                .iter()
                .find(|(_, r)| *r == rk)
                .map(|(l, _)| l.clone())
                .unwrap_or_else(|| rk.clone())
        })
        .collect();
    for (l, r) in &jp.key_mapping {
        if !gb.key_columns.contains(r) {
            errors.push(Error::Config {
                file: name.clone(),
                path: format!("{at}.keyMapping.{l}"),
                message: format!(
                    "maps to `{r}`, which is not a key of GroupBy {} (keys: {})",
                    gb.meta_data.name,
                    gb.key_columns.join(", ")
                ),
            });
        }
    }
    if gb.sources.is_empty() {
        errors.push(Error::Config {
            file: name.clone(),
            path: format!("{path}.sources"),
            message: "a GroupBy needs at least one source".into(),
        });
    }
    let events = gb.sources.iter().all(Source::is_events);
    let entities = gb.sources.iter().all(|s| matches!(s, Source::Entities(_)));
    if !events && !entities {
        errors.push(unsupported(
            join,
            &format!("{path}.sources"),
            "mixing event and entity sources, or a JoinSource,",
        ));
    }
    let has_mutations = gb
        .sources
        .iter()
        .any(|s| matches!(s, Source::Entities(e) if e.mutation_table.is_some()));
    let kind = match (events, &gb.aggregations) {
        (_, None) => PartKind::Raw,
        (true, _) => PartKind::Events,
        (false, _) if event_left && !snapshot && has_mutations => PartKind::Mutations,
        (false, _) => PartKind::Snapshot,
    };
    if kind == PartKind::Raw && events {
        errors.push(Error::Config {
            file: name.clone(),
            path: format!("{path}.aggregations"),
            message: "a GroupBy without aggregations must read entity sources (Chronon rule); add aggregations or use an entity source".into(),
        });
    }
    // Inputs and columns.
    let mut inputs: Vec<String> = Vec::new();
    let input_index = |c: &str, inputs: &mut Vec<String>| match inputs.iter().position(|x| x == c) {
        Some(p) => p,
        None => {
            inputs.push(c.to_string());
            inputs.len() - 1
        }
    };
    let mut columns = Vec::new();
    let mut raw_names = Vec::new();
    let mut reach: Option<i64> = Some(0);
    match &gb.aggregations {
        Some(aggs) => {
            let specs: Vec<Option<AggSpec>> = aggs
                .iter()
                .enumerate()
                .map(|(a, agg)| match AggSpec::new(agg) {
                    Ok(s) => Some(s),
                    Err(m) => {
                        errors.push(Error::Config {
                            file: name.clone(),
                            path: format!("{path}.aggregations[{a}].argMap"),
                            message: m,
                        });
                        None
                    }
                })
                .collect();
            for agg in aggs {
                input_index(&agg.input_column, &mut inputs);
            }
            for part in naming::aggregation_parts(gb) {
                let agg = &aggs[part.agg_index];
                let Some(spec) = specs[part.agg_index].clone() else {
                    continue;
                };
                if agg.element_wise == Some(true) {
                    errors.push(unsupported(
                        join,
                        &format!("{path}.aggregations[{}].elementWise", part.agg_index),
                        "elementWise aggregation",
                    ));
                }
                let w = naming::window_millis(&part.window);
                if snapshot && w.is_some_and(|w| w % DAY_MS != 0) {
                    errors.push(Error::Config {
                        file: name.clone(),
                        path: format!("{path}.aggregations[{}].windows", part.agg_index),
                        message: "Window can only be multiples of 1d for SNAPSHOT accuracy; use a day window or TEMPORAL accuracy".into(),
                    });
                }
                let hop = if snapshot && kind == PartKind::Events {
                    DAY_MS
                } else {
                    tail_hop(w)
                };
                reach = match (reach, w) {
                    (Some(m), Some(w)) => Some(m.max(w + hop)),
                    _ => None,
                };
                let bucket = part.bucket.as_deref().map(|b| input_index(b, &mut inputs));
                columns.push(OutColumn {
                    name: format!("{full_prefix}_{}", part.column),
                    gb_column: part.column.clone(),
                    spec,
                    input: inputs
                        .iter()
                        .position(|x| x == &agg.input_column)
                        .expect("inputs hold every aggregation input"),
                    bucket,
                    window_ms: w,
                    hop,
                });
            }
        }
        None => {
            let selects = gb.sources.first().and_then(|s| s.query().selects.clone());
            match selects {
                Some(sel) => {
                    for c in sel.keys().filter(|c| !gb.key_columns.contains(c)) {
                        if c == "ts" || c == "ds" {
                            continue;
                        }
                        input_index(c, &mut inputs);
                        raw_names.push(format!("{full_prefix}_{c}"));
                    }
                }
                None => errors.push(Error::Config {
                    file: name.clone(),
                    path: format!("{path}.sources[0].entities.query.selects"),
                    message:
                        "a GroupBy without aggregations needs explicit selects (its value columns)"
                            .into(),
                }),
            }
        }
    }
    let mut sources = Vec::new();
    for (s, src) in gb.sources.iter().enumerate() {
        match source_plan(join, gb, &path, s, src, snapshot, kind, &inputs) {
            Ok(p) => sources.push(p),
            Err(e) => errors.push(e),
        }
    }
    Error::collect(errors)?;
    Ok(PartPlan {
        index: i as u16,
        full_prefix,
        group_by: gb.clone(),
        left_keys,
        right_keys: gb.key_columns.clone(),
        kind,
        snapshot,
        inputs,
        columns,
        raw_names,
        reach_ms: reach,
        sources,
        derivations: gb.derivations.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn source_plan(
    join: &Join,
    gb: &GroupBy,
    part_path: &str,
    s: usize,
    src: &Source,
    snapshot: bool,
    kind: PartKind,
    inputs: &[String],
) -> Result<SourcePlan> {
    let name = &join.meta_data.name;
    let path = format!("{part_path}.sources[{s}]");
    let q = src.query();
    let mut fill: Vec<(String, Option<String>)> = vec![("ds".into(), None)];
    fill.extend(gb.key_columns.iter().map(|k| (k.clone(), None)));
    // 1 ms before the end of the partition's day (§2.2), read from the source's own
    // partition column (`partitionColumn`, `ds` by default)
    let end_of_day = format!(
        "((unix_timestamp({}, 'yyyy-MM-dd') + 86400) * 1000) - 1",
        crate::sql::scan::ident(q.partition_column.as_deref().unwrap_or("ds"))
    );
    let ts = match (&q.time_column, src) {
        (Some(tc), _) => tc.clone(),
        (None, Source::Events(_)) if snapshot => end_of_day,
        (None, Source::Entities(_)) => {
            if gb.aggregations.iter().flatten().any(|a| {
                naming::windows_of(a)
                    .iter()
                    .any(|w| !naming::is_unbounded(w))
            }) {
                return Err(Error::Config {
                    file: name.clone(),
                    path: format!("{path}.entities.query.timeColumn"),
                    message: "an entity source with windowed aggregations needs a timeColumn"
                        .into(),
                });
            }
            end_of_day
        }
        _ => {
            return Err(Error::Config {
                file: name.clone(),
                path: format!("{path}.events.query.timeColumn"),
                message: "a TEMPORAL event source needs a timeColumn".into(),
            })
        }
    };
    fill.push(("ts".into(), Some(ts)));
    for c in inputs {
        if !fill.iter().any(|(n, _)| n == c) {
            fill.push((c.clone(), None));
        }
    }
    let query = Query {
        selects: q.selects.clone().or_else(|| Some(Default::default())),
        ..q.clone()
    };
    let purpose = format!("{path} ({}) of join {name}", gb.meta_data.name);
    let scan = Scan {
        table: src.table(),
        query: query.clone(),
        fill_ins: fill.clone(),
        range: None,
        purpose: purpose.clone(),
    };
    let mutations = match (kind, src) {
        (PartKind::Mutations, Source::Entities(e)) => {
            match &e.mutation_table {
                Some(mt) => {
                    let mut f = fill.clone();
                    let mts = q.mutation_time_column.clone().ok_or_else(|| Error::Config {
                    file: name.clone(),
                    path: format!("{path}.entities.query.mutationTimeColumn"),
                    message: "a TEMPORAL entity source with a mutationTable needs mutationTimeColumn".into(),
                })?;
                    let rev = q.reversal_column.clone().ok_or_else(|| Error::Config {
                    file: name.clone(),
                    path: format!("{path}.entities.query.reversalColumn"),
                    message: "a TEMPORAL entity source with a mutationTable needs reversalColumn (is_before)".into(),
                })?;
                    f.push(("mutation_ts".into(), Some(mts)));
                    f.push(("is_before".into(), Some(rev)));
                    Some(Scan {
                        table: mt.clone(),
                        query,
                        fill_ins: f,
                        range: None,
                        purpose: format!("{purpose} mutations"),
                    })
                }
                None => None,
            }
        }
        _ => None,
    };
    Ok(SourcePlan { scan, mutations })
}
