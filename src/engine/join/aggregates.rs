//! Stored aggregates of a join's event parts with unbounded windows ([`crate::dataflow::base`]):
//! where they live, when a run starts from them, and storing them for the next process.
//!
//! A part's stored aggregates hold, per key, what its unbounded columns read of the events
//! before the start of a boundary day `g`, with the fingerprints of the source partitions up
//! to `g` they were computed from. A runner whose first queries of the part reach back no
//! further than `g` with their bounded windows feeds them instead of that history: it reads
//! the source partitions from `g − 1` on, and of partitions `g − 1` and `g` only the rows
//! from the boundary on (the rows before it are counted as `stored`). Like the bounded
//! windows' reads, this relies on a partition's events lying within a day of it.
//!
//! They stop applying — and are retracted, and the whole history read instead — as soon as a
//! covered partition changes or disappears, a partition up to `g` appears, or new queries
//! reach before `g`. A process leaves them for the next one on its way out
//! ([`super::JoinRunner::store_aggregates`]): in `<warehouse>/.weft-aggregates/<output table>/`,
//! a `manifest.json` with an entry per part names the current folder of worker files; it is
//! replaced atomically after the files are complete, so a crash leaves the previous set.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Live;
use crate::dataflow::shard::{ReadTask, STORE_TAG};
use crate::dataflow::spec::{PartKind, PartSpec};
use crate::error::{Error, Result};
use crate::join::feed::InputId;
use crate::join::plan::{JoinPlan, PartPlan};
use crate::join::shard::{AggregatesRead, ReadPayload};
use crate::partition::Ds;
use crate::warehouse::Warehouse;

/// The tag of a stored-aggregate read's report: above every part index.
pub(super) const LOAD_TAG: u64 = 1 << 32;

const MANIFEST: &str = "manifest.json";
const FORMAT: u32 = 1;

/// The parts that can use stored aggregates, and the ones in use.
pub(super) struct Aggregates {
    wh: Warehouse,
    parts: BTreeMap<u16, Eligible>,
    /// Candidates found on the first sync, then the ones fed (until they stop applying).
    using: BTreeMap<u16, InUse>,
    looked: bool,
}

/// A part with an unbounded window: its spec, identity and bounded reach.
struct Eligible {
    spec: PartSpec,
    digest: String,
    /// How far back (ms) its bounded windows reach from a query.
    bounded: i64,
}

/// Stored aggregates a runner may use or uses for one part.
struct InUse {
    g: Ds,
    /// Per source input: the partitions up to `g` and their fingerprints.
    covers: HashMap<InputId, Vec<(Ds, u64)>>,
    stored_part: u32,
    files: Vec<PathBuf>,
    /// Once fed: the `(worker, key)` each file's rows are kept under.
    loaded: Option<Vec<(usize, u64)>>,
}

/// `manifest.json`: the folder of the current worker files and an entry per part.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The folder (under the output's) of the worker files, `p<part>-w<worker>.parquet`.
    folder: String,
    /// By part (its full prefix).
    parts: BTreeMap<String, PartEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct PartEntry {
    /// The part's identity (spec, sources, keys): aggregates of another config do not apply.
    digest: String,
    /// The part's index when stored (the files' `part` column and names).
    part: u32,
    /// The boundary day: the aggregates hold the events before its start.
    boundary: String,
    /// Per source input (`<source index>` or `<source index>m` for mutations): partitions
    /// up to the boundary day and their fingerprints.
    sources: BTreeMap<String, Vec<(String, u64)>>,
    keys: u64,
}

/// What storing did for one part.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub part: String,
    pub boundary: Ds,
    pub keys: u64,
}

/// A source input's name in the manifest: `<source index>`, `m` appended for mutations.
fn input_name(id: InputId) -> String {
    match id {
        InputId::Source {
            source, mutations, ..
        } => format!("{source}{}", if mutations { "m" } else { "" }),
        _ => unreachable!("stored aggregates cover source inputs only"),
    }
}

fn output_dir(wh: &Warehouse, plan: &JoinPlan) -> PathBuf {
    wh.root()
        .join(".weft-aggregates")
        .join(plan.output.to_string())
}

/// The identity of a part's aggregates: its spec, source scans, keys and inputs.
fn part_digest(p: &PartPlan, spec: &PartSpec) -> String {
    use md5::{Digest, Md5};
    let scans: Vec<_> = p.source_inputs().map(|(_, s)| s).collect();
    let text = serde_json::to_string(&(spec, scans, &p.right_keys, &p.inputs))
        .expect("a part's spec serializes");
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The partitions of a source listing that aggregates at boundary `g` cover: up to `g`, within
/// the source query's partition bounds (only those are ever read).
fn covered(scan: &crate::sql::scan::Scan, listing: &[(Ds, u64)], g: Ds) -> Vec<(Ds, u64)> {
    let (lo, hi) = super::digest::bounds(scan);
    listing
        .iter()
        .copied()
        .filter(|(d, _)| *d <= g && lo.is_none_or(|l| *d >= l) && hi.is_none_or(|h| *d <= h))
        .collect()
}

/// The mixed fingerprint a partition up to the boundary is fed under while aggregates are in
/// use (its rows before the boundary left out): fed again in full when they stop applying.
fn floored(fp: u64, at: i64) -> u64 {
    fp.rotate_left(17) ^ (at as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5354_4f52_4544
}

impl Aggregates {
    /// The parts of `plan` (with their specs) that can use stored aggregates: event parts with
    /// an unbounded window.
    pub(super) fn new(wh: &Warehouse, plan: &JoinPlan, specs: &[PartSpec]) -> Aggregates {
        let parts = plan
            .parts
            .iter()
            .zip(specs)
            .filter(|(_, s)| s.kind == PartKind::Events && s.max_window().is_none())
            .map(|(p, s)| {
                let e = Eligible {
                    spec: s.clone(),
                    digest: part_digest(p, s),
                    bounded: s.bounded_reach(),
                };
                (p.index, e)
            })
            .collect();
        Aggregates {
            wh: wh.clone(),
            parts,
            using: BTreeMap::new(),
            looked: false,
        }
    }

    /// The boundary day of the stored aggregates part `part` is fed from, if any.
    pub(super) fn boundary(&self, part: u16) -> Option<Ds> {
        self.using
            .get(&part)
            .filter(|u| u.loaded.is_some())
            .map(|u| u.g)
    }

    /// The fingerprints the part's source partitions count as fed with: those the stored
    /// aggregates cover as they were computed from (for the input records).
    pub(super) fn fed_as(&self, id: InputId, fed: &mut Vec<(Ds, u64)>) {
        let InputId::Source { part, .. } = id else {
            return;
        };
        let Some(u) = self.using.get(&part).filter(|u| u.loaded.is_some()) else {
            return;
        };
        let covers = u.covers.get(&id).map_or(&[][..], |c| &c[..]);
        fed.retain(|(d, _)| *d > u.g);
        fed.extend(covers.iter().copied());
        fed.sort();
    }
}

/// Reads the manifest once, before anything is fed: the candidates among the eligible
/// parts whose config and covered partitions match the warehouse now.
fn look(
    wh: &Warehouse,
    plan: &JoinPlan,
    aggs: &mut Aggregates,
    fps: &HashMap<InputId, Vec<(Ds, u64)>>,
) {
    aggs.looked = true;
    if aggs.parts.is_empty() {
        return;
    }
    let dir = output_dir(wh, plan);
    let m = match read_manifest(&dir) {
        Ok(Some(m)) if m.format == FORMAT => m,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "stored aggregates: manifest unreadable; reading all history");
            return;
        }
    };
    let folder = dir.join(&m.folder);
    for p in &plan.parts {
        let (Some(e), Some(entry)) = (aggs.parts.get(&p.index), m.parts.get(&p.full_prefix)) else {
            continue;
        };
        let Ok(g) = Ds::parse(&entry.boundary) else {
            continue;
        };
        if entry.digest != e.digest {
            tracing::info!(part = %p.full_prefix, "stored aggregates are of another config of the part; reading all history");
            continue;
        }
        let mut covers = HashMap::new();
        let mut stale = None;
        for (id, scan) in p.source_inputs() {
            let name = input_name(id);
            let stored: Vec<(Ds, u64)> = entry
                .sources
                .get(&name)
                .map(|v| {
                    v.iter()
                        .filter_map(|(d, fp)| Ds::parse(d).ok().map(|d| (d, *fp)))
                        .collect()
                })
                .unwrap_or_default();
            if stored != covered(scan, &fps[&id], g) {
                stale = stale.or(Some(name));
            }
            covers.insert(id, stored);
        }
        if let Some(input) = stale {
            tracing::info!(part = %p.full_prefix, source = %input, boundary = %g, "stored aggregates are out of date (a source partition up to their boundary changed, appeared or went); reading all history");
            continue;
        }
        let prefix = format!("p{}-", entry.part);
        let files: Vec<PathBuf> = match std::fs::read_dir(&folder) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.extension().is_some_and(|x| x == "parquet")
                            && f.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    })
                    .collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        };
        if files.is_empty() && entry.keys > 0 {
            tracing::warn!(part = %p.full_prefix, folder = %folder.display(), "stored aggregates: files missing; reading all history");
            continue;
        }
        aggs.using.insert(
            p.index,
            InUse {
                g,
                covers,
                stored_part: entry.part,
                files,
                loaded: None,
            },
        );
    }
}

/// Settles a part's stored aggregates before its sources are synced, given the span of its
/// new queries: feeds them on the part's first sync when they apply (the load tasks join
/// `tasks`), retracts them once they stop applying. Returns the boundary `(g, at)` while
/// they are in use.
pub(super) fn settle(
    plan: &JoinPlan,
    p: &PartPlan,
    live: &mut Live,
    fps: &HashMap<InputId, Vec<(Ds, u64)>>,
    span: Option<(i64, i64)>,
    tasks: &mut Vec<ReadTask>,
) -> Option<(Ds, i64)> {
    if !live.aggregates.looked {
        let wh = live.aggregates.wh.clone();
        look(&wh, plan, &mut live.aggregates, fps);
    }
    let bounded = live.aggregates.parts.get(&p.index)?.bounded;
    let u = live.aggregates.using.get(&p.index)?;
    let unchanged = p.source_inputs().all(|(id, scan)| {
        u.covers
            .get(&id)
            .is_some_and(|c| *c == covered(scan, &fps[&id], u.g))
    });
    let reaches = span.is_none_or(|(lo, _)| Ds::of_millis(lo - bounded) >= u.g);
    let loaded = u.loaded.is_some();
    let fresh = p
        .source_inputs()
        .all(|(id, _)| live.feeds.days(id).is_empty());
    if !(unchanged && reaches) || (!loaded && !fresh) {
        let u = live
            .aggregates
            .using
            .remove(&p.index)
            .expect("looked up above");
        if let Some(kept) = u.loaded {
            tracing::info!(part = %p.full_prefix, boundary = %u.g, "stored aggregates no longer apply (a covered source partition changed, or new queries reach before their boundary): retracting them and reading all history");
            let mut by_worker: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
            for (w, k) in kept {
                by_worker.entry(w).or_default().push(k);
            }
            tasks.extend(
                by_worker
                    .into_iter()
                    .map(|(worker, keys)| ReadTask::Retract { worker, keys }),
            );
        }
        return None;
    }
    if !loaded {
        let Some(_) = span else {
            // nothing asks for the part yet: decided when something does
            return None;
        };
        let spec = live.aggregates.parts[&p.index].spec.clone();
        let peers = live.dataflow.peers();
        let u = live
            .aggregates
            .using
            .get_mut(&p.index)
            .expect("looked up above");
        // no file: no key had events before the boundary, in use with nothing to feed
        let mut kept = Vec::with_capacity(u.files.len());
        for file in u.files.clone() {
            let worker = live.feeds.next_worker(peers);
            let key = live.feeds.take_key();
            let read = AggregatesRead {
                file,
                part: p.index,
                stored_part: u.stored_part,
                spec: spec.clone(),
                key,
            };
            tasks.push(ReadTask::Read {
                worker,
                tag: LOAD_TAG | p.index as u64,
                payload: ReadPayload::Aggregates(read).encode(),
            });
            kept.push((worker, key));
        }
        u.loaded = Some(kept);
        tracing::info!(part = %p.full_prefix, boundary = %u.g, files = u.files.len(), "starting from stored aggregates: reading source partitions from the day before their boundary on");
    }
    let g = live.aggregates.using[&p.index].g;
    Some((g, g.start_millis()))
}

/// The listing a based part's source is planned against: partitions up to `g` under their
/// floored fingerprints.
pub(super) fn planned(current: &[(Ds, u64)], g: Ds, at: i64) -> Vec<(Ds, u64)> {
    current
        .iter()
        .map(|&(d, fp)| {
            if d <= g {
                (d, floored(fp, at))
            } else {
                (d, fp)
            }
        })
        .collect()
}

/// Stores the aggregates of every eligible part for the next run — which computes the day
/// after the last maintained one and may recompute that one — when they would differ from
/// what is stored: one pass of the workers over their groups, then the manifest. They cover
/// the partitions that were fed (with bootstrap, only what uncovered rows reach): aggregates
/// missing a partition of the listing never apply.
pub(super) fn store(plan: &JoinPlan, live: &mut Live) -> Result<Vec<StoredReport>> {
    let Some(last) = live.owned.last().copied() else {
        return Ok(Vec::new());
    };
    if live.aggregates.parts.is_empty() {
        return Ok(Vec::new());
    }
    let wh = live.aggregates.wh.clone();
    let dir = output_dir(&wh, plan);
    // the next run may recompute the last maintained day too (its windows' reach takes in
    // the next day's source partitions, which land with it)
    let from = last.start_millis();
    let mut entries: BTreeMap<String, PartEntry> = BTreeMap::new();
    let mut boundaries: Vec<(u16, i64)> = Vec::new();
    for p in &plan.parts {
        let Some(e) = live.aggregates.parts.get(&p.index) else {
            continue;
        };
        let g = Ds::of_millis(from - e.bounded);
        if live.aggregates.boundary(p.index).is_some_and(|b| b > g) {
            continue;
        }
        // what the new aggregates cover: the stored ones' partitions, then what was fed
        let mut sources = BTreeMap::new();
        for (id, _) in p.source_inputs() {
            let mut fed: Vec<(Ds, u64)> = live.feeds.fingerprints(id);
            live.aggregates.fed_as(id, &mut fed);
            fed.retain(|(d, _)| *d <= g);
            sources.insert(
                input_name(id),
                fed.iter()
                    .map(|(d, fp)| (d.to_string(), *fp))
                    .collect::<Vec<_>>(),
            );
        }
        let entry = PartEntry {
            digest: e.digest.clone(),
            part: p.index as u32,
            boundary: g.to_string(),
            sources,
            keys: 0,
        };
        entries.insert(p.full_prefix.clone(), entry);
        boundaries.push((p.index, g.start_millis()));
    }
    let old = read_manifest(&dir).ok().flatten().unwrap_or_default();
    let same = |a: &PartEntry, b: &PartEntry| {
        PartEntry {
            keys: 0,
            ..a.clone()
        } == *b
    };
    let unchanged = old.format == FORMAT
        && old.parts.len() == entries.len()
        && entries
            .iter()
            .all(|(k, e)| old.parts.get(k).is_some_and(|o| same(o, e)));
    if boundaries.is_empty() || unchanged {
        return Ok(Vec::new());
    }
    let span =
        tracing::info_span!("store_aggregates", output = %plan.output, parts = boundaries.len());
    let _g = span.enter();
    let clock = std::time::Instant::now();
    let folder = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
        std::process::id()
    );
    let files = dir.join(&folder);
    std::fs::create_dir_all(&files)
        .map_err(|e| Error::io(format!("creating {}", files.display()), e))?;
    live.dataflow.store(&files, boundaries.clone())?;
    let sealed = live.dataflow.seal_all()?;
    let mut keys = vec![0u64; boundaries.len()];
    for r in sealed.reads.iter().filter(|r| r.tag == STORE_TAG) {
        for (k, n) in keys.iter_mut().zip(&r.counts) {
            *k += n;
        }
    }
    let mut out = Vec::new();
    for ((part, at), n) in boundaries.iter().zip(keys) {
        let p = &plan.parts[*part as usize];
        if let Some(e) = entries.get_mut(&p.full_prefix) {
            e.keys = n;
        }
        out.push(StoredReport {
            part: p.full_prefix.clone(),
            boundary: Ds::of_millis(*at),
            keys: n,
        });
    }
    let m = Manifest {
        format: FORMAT,
        folder: folder.clone(),
        parts: entries,
    };
    write_manifest(&dir, &m)?;
    // older folders are no longer named by the manifest
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() && e.file_name() != folder.as_str() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
    tracing::info!(ms = clock.elapsed().as_millis() as u64, "stored aggregates");
    Ok(out)
}

/// The manifest in `dir`: `None` when there is none, an error when it does not parse.
fn read_manifest(dir: &Path) -> std::result::Result<Option<Manifest>, String> {
    let text = match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let tmp = dir.join(format!(".{MANIFEST}.{}", std::process::id()));
    let text = serde_json::to_string_pretty(m).expect("a manifest serializes");
    std::fs::write(&tmp, text).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, dir.join(MANIFEST))
        .map_err(|e| Error::io(format!("replacing {}", dir.join(MANIFEST).display()), e))
}
