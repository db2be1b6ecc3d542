//! The reuse decision a new semantic hash drives (chronon-semantics §3.7): what changed since
//! the version the output was written with (parts added, removed or changed, the left, the
//! bootstrap parts, derivations), and so what is reused, archived or recomputed — with the
//! prose weft prints about it.

use std::fmt;

use super::*;

/// Why everything is recomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullRecompute {
    LeftChanged,
    BootstrapChanged,
    LeftAndBootstrapChanged,
}

/// What a run must do with existing tables, given the stored and the current semantic hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The join's output table.
    pub output_table: String,
    /// A hash was stored (otherwise nothing is archived and only missing partitions run).
    pub had_previous: bool,
    /// Set when the left source or the bootstrap parts changed: everything is archived and
    /// recomputed.
    pub full_recompute: Option<FullRecompute>,
    /// Part tables (current names) whose GroupBy changed.
    pub changed_parts: Vec<String>,
    /// Part tables that are new in this version of the join.
    pub added_parts: Vec<String>,
    /// Part tables of the previous version that are gone (a removed part, or a renamed one).
    pub removed_parts: Vec<String>,
    /// Part tables whose previous results stay valid.
    pub reused_parts: Vec<String>,
    /// The derivations changed (or were added or removed).
    pub derived_changed: bool,
    /// Bootstrap parts were added to a join whose stored hash had no bootstrap entry.
    pub bootstrap_added: bool,
    /// The output table must be rewritten (archived and recomputed from the parts).
    pub rewrite_output: bool,
    /// Tables to archive, in order: part tables, then the bootstrap table, then the output.
    pub archive: Vec<String>,
    /// Archived tables are renamed to `<table>_<archive_suffix>`.
    pub archive_suffix: String,
    /// Every current part table, in join order.
    pub all_parts: Vec<String>,
}

impl Decision {
    /// Part tables to compute from scratch (every part on a full recompute).
    pub fn recompute_parts(&self) -> Vec<String> {
        if self.full_recompute.is_some() {
            return self.all_parts.clone();
        }
        self.all_parts
            .iter()
            .filter(|p| self.changed_parts.contains(p) || self.added_parts.contains(p))
            .cloned()
            .collect()
    }

    /// Nothing to archive or recompute beyond missing partitions.
    pub fn is_unchanged(&self) -> bool {
        self.archive.is_empty()
            && !self.rewrite_output
            && self.full_recompute.is_none()
            && self.added_parts.is_empty()
    }

    /// The same decision with another archive suffix (e.g. a fixed one in tests).
    pub fn with_archive_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.archive_suffix = suffix.into();
        self
    }

    /// The name a table gets when archived.
    pub fn archived_name(&self, table: &str) -> String {
        format!("{table}_{}", self.archive_suffix)
    }

    /// A part table's name for users: its full prefix (the table name without the output
    /// table's name), e.g. `risk_purchases_v1`.
    pub fn part_label(&self, table: &str) -> String {
        table
            .strip_prefix(&format!("{}_", self.output_table))
            .unwrap_or(table)
            .to_string()
    }

    /// Archives every table of [`Decision::archive`] that exists, returning `(old, archived)`
    /// pairs. Refresh the SQL engine afterwards.
    pub fn apply_archive(&self, wh: &Warehouse) -> Result<Vec<(TableName, TableName)>> {
        let mut out = Vec::new();
        for t in &self.archive {
            let name = TableName::parse(t)?;
            if wh.exists(&name) {
                let archived = wh.archive_table(&name, &self.archive_suffix)?;
                tracing::info!(table = %name, archived = %archived, "archived");
                out.push((name, archived));
            }
        }
        Ok(out)
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let archiving = || {
            self.archive
                .iter()
                .map(|t| format!("{t} to {}", self.archived_name(t)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.had_previous {
            return write!(
                f,
                "no semantic hash stored on {}: nothing to archive; computing missing partitions",
                self.output_table
            );
        }
        if let Some(why) = self.full_recompute {
            let why = match why {
                FullRecompute::LeftChanged => "left source changed",
                FullRecompute::BootstrapChanged => "bootstrap parts changed",
                FullRecompute::LeftAndBootstrapChanged => "left source and bootstrap parts changed",
            };
            return write!(
                f,
                "{why}: archiving {} and recomputing everything",
                archiving()
            );
        }
        let mut what: Vec<String> = Vec::new();
        for (list, verb) in [
            (&self.changed_parts, "changed"),
            (&self.added_parts, "added"),
            (&self.removed_parts, "removed"),
        ] {
            for t in list {
                what.push(format!("part `{}` {verb}", self.part_label(t)));
            }
        }
        if self.derived_changed {
            what.push("derivations changed".into());
        }
        if self.bootstrap_added {
            what.push("bootstrap parts added".into());
        }
        let reused: Vec<String> = self
            .reused_parts
            .iter()
            .map(|t| self.part_label(t))
            .collect();
        if what.is_empty() {
            return write!(
                f,
                "join unchanged since the last run: reusing {} and {}; computing missing partitions",
                if reused.is_empty() {
                    "no parts".to_string()
                } else {
                    format!("parts {}", quoted_list(&reused))
                },
                self.output_table
            );
        }
        write!(f, "{}: ", what.join(", "))?;
        let recompute = self.recompute_parts();
        if recompute.is_empty() {
            write!(f, "recomputing no parts")?;
        } else {
            write!(
                f,
                "recomputing {} of {} parts",
                recompute.len(),
                self.all_parts.len()
            )?;
        }
        if !reused.is_empty() {
            write!(f, "; reusing {}", quoted_list(&reused))?;
        }
        if self.archive.is_empty() {
            if self.rewrite_output {
                write!(f, "; rewriting {}", self.output_table)?;
            }
        } else {
            write!(f, "; archiving {}", archiving())?;
            if self.rewrite_output {
                write!(f, " and rewriting {}", self.output_table)?;
            }
        }
        Ok(())
    }
}

/// Chronon's reuse decision (§3.7) between the stored hash `old` and the current hash `new`
/// of `join`. The archive suffix is the current UTC time (see [`Decision::with_archive_suffix`]).
pub fn decide(old: Option<&SemanticHash>, new: &SemanticHash, join: &Join) -> Decision {
    let output = output_table(&join.meta_data).unwrap_or_else(|_| clean_name(&join.meta_data));
    let bootstrap_key = format!("{output}_bootstrap");
    let is_part = |k: &str| k != LEFT_SOURCE_KEY && k != DERIVED_KEY && k != bootstrap_key;
    let all_parts: Vec<String> = new.keys().filter(|k| is_part(k)).cloned().collect();
    let mut d = Decision {
        output_table: output.clone(),
        had_previous: old.is_some(),
        full_recompute: None,
        changed_parts: vec![],
        added_parts: vec![],
        removed_parts: vec![],
        reused_parts: vec![],
        derived_changed: false,
        bootstrap_added: false,
        rewrite_output: false,
        archive: vec![],
        archive_suffix: archive_suffix_now(),
        all_parts,
    };
    let Some(old) = old else {
        return d;
    };

    let left_changed = old.get(LEFT_SOURCE_KEY) != new.get(LEFT_SOURCE_KEY);
    let bootstrap_changed = match (old.get(&bootstrap_key), new.get(&bootstrap_key)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    d.full_recompute = match (left_changed, bootstrap_changed) {
        (true, true) => Some(FullRecompute::LeftAndBootstrapChanged),
        (true, false) => Some(FullRecompute::LeftChanged),
        (false, true) => Some(FullRecompute::BootstrapChanged),
        (false, false) => None,
    };
    if d.full_recompute.is_some() {
        d.archive = old
            .keys()
            .filter(|k| k.as_str() != LEFT_SOURCE_KEY && k.as_str() != DERIVED_KEY)
            .cloned()
            .collect();
        // Part tables first, then the bootstrap table (Chronon's listing order differs; the
        // set is the same).
        d.archive.sort_by_key(|k| *k == bootstrap_key);
        d.archive.push(output);
        d.rewrite_output = true;
        return d;
    }

    for part in &d.all_parts {
        match old.get(part) {
            None => d.added_parts.push(part.clone()),
            Some(h) if Some(h) != new.get(part) => d.changed_parts.push(part.clone()),
            Some(_) => d.reused_parts.push(part.clone()),
        }
    }
    d.removed_parts = old
        .keys()
        .filter(|k| is_part(k) && !new.contains_key(*k))
        .cloned()
        .collect();
    d.derived_changed = old.get(DERIVED_KEY) != new.get(DERIVED_KEY);
    d.bootstrap_added = !old.contains_key(&bootstrap_key)
        && new.contains_key(&bootstrap_key)
        && !join.bootstrap_parts.is_empty();
    d.rewrite_output = !d.changed_parts.is_empty()
        || !d.added_parts.is_empty()
        || !d.removed_parts.is_empty()
        || d.derived_changed
        || d.bootstrap_added;
    d.archive = d
        .changed_parts
        .iter()
        .chain(&d.removed_parts)
        .cloned()
        .collect();
    if d.rewrite_output {
        d.archive.push(output);
    }
    d
}

/// Reads the stored hash of the join's output table and decides what to archive and recompute.
/// A stored hash that weft cannot compare (computed with topics, or by Chronon) is an error
/// asking the user to archive the output table by hand or drop the property.
pub fn plan_versioning(wh: &Warehouse, join: &Join) -> Result<(SemanticHash, Decision)> {
    let new = semantic_hash(join)?;
    let output = TableName::parse(&output_table(&join.meta_data)?)?;
    let stored = load_semantic_hash(wh, &output)?;
    if let Some(s) = &stored {
        if !s.exclude_topic || !s.weft {
            let why = if !s.exclude_topic {
                "was computed with streaming topics included (an older Chronon)"
            } else {
                "was not computed by weft (Chronon's hashes are not comparable with weft's)"
            };
            return Err(Error::data(
                &output.to_string(),
                None,
                format!("the stored `{SEMANTIC_HASH_PROPERTY}` {why}, so weft cannot tell which parts changed"),
            )
            .with_fix(format!(
                "archive the table by hand (rename its folder to {output}_<timestamp>) to recompute everything, or remove the `{SEMANTIC_HASH_PROPERTY}` property from its _weft_table.json to keep the existing partitions"
            )));
        }
    }
    let decision = decide(stored.as_ref().map(|s| &s.hash), &new, join);
    Ok((new, decision))
}
