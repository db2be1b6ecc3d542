//! Chronon's staging-query macros (`{{ start_date }}`, `{{ end_date }}`, `{{ latest_date }}`,
//! `{{ max_date(table=ns.t) }}`), substituted textually; anything left unresolved is an error.

use regex::Regex;

use crate::error::{Error, Result};
use crate::partition::Ds;
use crate::warehouse::{TableName, Warehouse};

/// The values macros expand to for one run of a staging query.
pub struct MacroValues<'a> {
    pub start_date: Option<Ds>,
    pub end_date: Option<Ds>,
    pub latest_date: Ds,
    pub warehouse: &'a Warehouse,
    /// The config, for error messages.
    pub conf_name: &'a str,
}

fn pattern() -> Regex {
    Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^)]*)\))?\s*\}\}").expect("valid regex")
}

/// Expands every macro in `sql`.
pub fn render(sql: &str, v: &MacroValues) -> Result<String> {
    let re = pattern();
    let mut errors: Vec<String> = Vec::new();
    let out = re.replace_all(sql, |c: &regex::Captures| {
        let name = &c[1];
        let args = c.get(2).map(|m| m.as_str()).unwrap_or("");
        let r: std::result::Result<String, String> = match name {
            "start_date" => v.start_date.map(|d| d.to_string()).ok_or_else(|| {
                "`{{ start_date }}` needs a partitioned run: set startPartition on the staging query".to_string()
            }),
            "end_date" => v.end_date.map(|d| d.to_string()).ok_or_else(|| {
                "`{{ end_date }}` needs a partitioned run: set startPartition on the staging query".to_string()
            }),
            "latest_date" => Ok(v.latest_date.to_string()),
            "max_date" => max_date(args, v.warehouse),
            other => Err(format!("unknown macro `{{{{ {other} }}}}`")),
        };
        r.unwrap_or_else(|e| {
            errors.push(e);
            String::new()
        })
    });
    if !errors.is_empty() {
        return Err(Error::Config {
            file: v.conf_name.to_string(),
            path: "query".into(),
            message: format!(
                "Unresolved template macro(s): {}; the macros are start_date, end_date, latest_date and max_date(table=ns.t)",
                errors.join("; ")
            ),
        });
    }
    // an opening `{{` no macro consumed: an unclosed or malformed macro
    if let Some(at) = out.find("{{") {
        let snippet: String = out[at..].chars().take(40).collect();
        return Err(Error::Config {
            file: v.conf_name.to_string(),
            path: "query".into(),
            message: format!(
                "malformed template macro at `{snippet}`: a macro is `{{{{ name }}}}` (start_date, end_date, latest_date, max_date(table=ns.t))"
            ),
        });
    }
    Ok(out.into_owned())
}

fn max_date(args: &str, wh: &Warehouse) -> std::result::Result<String, String> {
    let mut table = None;
    for a in args.split(',') {
        if let Some((k, val)) = a.split_once('=') {
            if k.trim() == "table" {
                table = Some(
                    val.trim()
                        .trim_matches(|c| c == '\'' || c == '"')
                        .to_string(),
                );
            }
        }
    }
    let table = table.ok_or_else(|| "`max_date` needs a `table=ns.t` argument".to_string())?;
    let t = TableName::parse(&table).map_err(|e| e.to_string())?;
    let parts = wh.partitions(&t).map_err(|e| e.to_string())?;
    parts
        .last()
        .map(|d| d.to_string())
        .ok_or_else(|| format!("`max_date(table={table})`: the table has no partitions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_rejects_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(dir.path()).unwrap();
        let v = MacroValues {
            start_date: Some(Ds::parse("2026-01-01").unwrap()),
            end_date: Some(Ds::parse("2026-01-03").unwrap()),
            latest_date: Ds::parse("2026-01-09").unwrap(),
            warehouse: &wh,
            conf_name: "t",
        };
        let s = render(
            "ds BETWEEN '{{ start_date }}' AND '{{end_date}}' -- {{  latest_date }}",
            &v,
        )
        .unwrap();
        assert_eq!(s, "ds BETWEEN '2026-01-01' AND '2026-01-03' -- 2026-01-09");
        let e = render("{{ nope }}", &v).unwrap_err().to_string();
        assert!(
            e.contains("Unresolved template macro") && e.contains("nope"),
            "{e}"
        );
        let e = render("{{ max_date(table=data.none) }}", &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no partitions"), "{e}");
    }
}
