//! Chronon configs: the typed model of compiled JSON (`model`), the quirks of its encoding
//! (`lenient`), naming rules ([`naming`]), and loading files with errors that name the file
//! and the JSON path of the bad field.

pub(crate) mod lenient;
pub(crate) mod model;
pub mod naming;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use model::*;

/// A compiled config of any of the three kinds weft runs.
#[derive(Debug, Clone)]
pub enum Conf {
    Join(Box<Join>),
    GroupBy(Box<GroupBy>),
    StagingQuery(Box<StagingQuery>),
}

/// Which kind of config a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfKind {
    Join,
    GroupBy,
    StagingQuery,
}

impl Conf {
    pub fn meta(&self) -> &MetaData {
        match self {
            Conf::Join(j) => &j.meta_data,
            Conf::GroupBy(g) => &g.meta_data,
            Conf::StagingQuery(s) => &s.meta_data,
        }
    }
    pub fn kind(&self) -> ConfKind {
        match self {
            Conf::Join(_) => ConfKind::Join,
            Conf::GroupBy(_) => ConfKind::GroupBy,
            Conf::StagingQuery(_) => ConfKind::StagingQuery,
        }
    }
}

/// Infers the kind from the folder (`joins/`, `group_bys/`, `staging_queries/`) as Chronon's
/// run.py does, and otherwise from the document's fields.
fn infer_kind(path: &Path, doc: &serde_json::Value) -> Option<ConfKind> {
    for comp in path.components().rev() {
        match comp.as_os_str().to_str() {
            Some("joins") => return Some(ConfKind::Join),
            Some("group_bys") => return Some(ConfKind::GroupBy),
            Some("staging_queries") => return Some(ConfKind::StagingQuery),
            _ => {}
        }
    }
    let has = |k: &str| doc.get(k).is_some();
    if has("left") {
        Some(ConfKind::Join)
    } else if has("keyColumns") && has("sources") {
        Some(ConfKind::GroupBy)
    } else if has("query") && doc.get("query").is_some_and(|q| q.is_string()) {
        Some(ConfKind::StagingQuery)
    } else {
        None
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &Path, doc: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(doc).map_err(|e| Error::Config {
        file: file.display().to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Parses one compiled config from a JSON string; `file` names it in errors.
pub fn parse_conf(file: &Path, text: &str) -> Result<Conf> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Config {
        file: file.display().to_string(),
        path: format!("line {} column {}", e.line(), e.column()),
        message: format!("not valid JSON: {e}"),
    })?;
    let kind = infer_kind(file, &doc).ok_or_else(|| Error::Config {
        file: file.display().to_string(),
        path: ".".into(),
        message: "cannot tell whether this is a Join, GroupBy or StagingQuery: put it under a joins/, group_bys/ or staging_queries/ folder".into(),
    })?;
    Ok(match kind {
        ConfKind::Join => Conf::Join(Box::new(parse(file, doc)?)),
        ConfKind::GroupBy => Conf::GroupBy(Box::new(parse(file, doc)?)),
        ConfKind::StagingQuery => Conf::StagingQuery(Box::new(parse(file, doc)?)),
    })
}

/// Loads one compiled config file.
pub fn load_conf(path: &Path) -> Result<Conf> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        context: format!("reading config {}", path.display()),
        source: e,
    })?;
    parse_conf(path, &text)
}

/// Every config file under `path` (or `path` itself if it is a file), sorted; hidden files and
/// Python sources are skipped.
pub fn conf_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(Error::NotFound {
            what: format!("config path {}", path.display()),
            fix: "pass a compiled config file or a folder such as dataflows/production".into(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::Io {
            context: format!("listing {}", dir.display()),
            source: e,
        })?;
        for entry in rd.flatten() {
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.')
                || name.starts_with("__")
                || name.ends_with(".py")
                || name.ends_with(".md")
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl MetaData {
    /// Table properties Chronon puts on every table it writes (`chronon_generated`,
    /// `chronon_table_type`), over the config's own `tableProperties`.
    pub fn chronon_table_properties(
        &self,
        table_type: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let mut p: std::collections::BTreeMap<String, String> = self
            .table_properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        p.insert("chronon_generated".into(), "true".into());
        p.insert("chronon_table_type".into(), table_type.into());
        p
    }
}

impl GroupBy {
    /// Accuracy as Chronon infers it: explicit, else TEMPORAL if any source has a topic.
    pub fn inferred_accuracy(&self) -> Accuracy {
        self.accuracy.unwrap_or_else(|| {
            if self.sources.iter().any(Source::has_topic) {
                Accuracy::Temporal
            } else {
                Accuracy::Snapshot
            }
        })
    }

    /// True when every source is an event source.
    pub fn is_events(&self) -> bool {
        self.sources.iter().all(|s| match s {
            Source::JoinSource(j) => j.join.left.is_events(),
            other => other.is_events(),
        })
    }
}
