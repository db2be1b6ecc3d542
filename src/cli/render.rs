//! How the CLI shows tables and rows to people: aligned tables (comfy-table), NULL shown as
//! `NULL` (never as an empty string), epoch-millisecond time columns (`ts`, `*_ts`) with
//! their UTC time beside the number, long cell values cut, long lists elided.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

use crate::error::{Error, Result};

/// How NULL is shown.
pub const NULL: &str = "NULL";
/// The longest cell shown; longer values are cut with `…`.
const MAX_CELL: usize = 48;

/// An aligned table; `right` names the columns aligned right (numbers).
pub fn table(header: &[&str], right: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    for (i, h) in header.iter().enumerate() {
        if right.contains(h) {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    for r in rows {
        t.add_row(r);
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first `head` and last `tail` items, and how many are elided between them.
pub fn elide<T>(items: &[T], head: usize, tail: usize) -> (&[T], usize, &[T]) {
    if items.len() <= head + tail + 1 {
        return (items, 0, &[]);
    }
    (
        &items[..head],
        items.len() - head - tail,
        &items[items.len() - tail..],
    )
}

/// Whether a column holds epoch milliseconds by Chronon's naming (`ts`, `…_ts`).
fn is_time(name: &str, t: &DataType) -> bool {
    *t == DataType::Int64 && (name == "ts" || name.ends_with("_ts"))
}

fn utc(ms: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
}

fn cut(s: String) -> String {
    if s.chars().count() <= MAX_CELL {
        return s;
    }
    let mut out: String = s.chars().take(MAX_CELL - 1).collect();
    out.push('…');
    out
}

/// The widest a table of rows may be before it is shown one column per line: `COLUMNS`
/// (the terminal's width, when the shell exports it) or 160.
fn max_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(160)
}

/// Rows as a bordered table: NULL as `NULL`, time columns with their UTC time, cells cut at
/// 48 characters. Rows wider than the terminal are shown transposed: one line per column,
/// one table column per row.
pub fn rows(batches: &[RecordBatch]) -> Result<String> {
    let Some(first) = batches.first() else {
        return Ok("(no rows)".into());
    };
    let schema = first.schema();
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let opts = FormatOptions::default().with_null(NULL);
    let mut body: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::arrow("formatting rows", e))?;
        for r in 0..b.num_rows() {
            let mut cells = Vec::with_capacity(b.num_columns());
            for (c, f) in schema.fields().iter().enumerate() {
                let col = b.column(c);
                let mut s = cut(formatters[c].value(r).to_string());
                if is_time(f.name(), f.data_type()) && !col.is_null(r) {
                    if let Some(u) = utc(col.as_primitive::<Int64Type>().value(r)) {
                        s = format!("{s} ({u})");
                    }
                }
                cells.push(s);
            }
            body.push(cells);
        }
    }
    let width = |cols: &[usize]| cols.iter().map(|w| w + 3).sum::<usize>() + 1;
    let col_widths: Vec<usize> = (0..header.len())
        .map(|c| {
            body.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut t = Table::new();
    t.load_preset(presets::ASCII_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if width(&col_widths) <= max_width() || body.is_empty() {
        t.set_header(header);
        for r in body {
            t.add_row(r);
        }
    } else {
        let mut h = vec!["column".to_string()];
        h.extend((1..=body.len()).map(|i| format!("row {i}")));
        t.set_header(h);
        for (c, name) in header.into_iter().enumerate() {
            let mut line = vec![name];
            line.extend(body.iter().map(|r| r[c].clone()));
            t.add_row(line);
        }
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn nulls_times_and_long_values_read_plainly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("ts", DataType::Int64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![
                Some(""),
                None,
                Some(&*"x".repeat(100)),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(1_772_236_898_683),
                None,
                Some(0),
            ])),
        ];
        let b = RecordBatch::try_new(schema, cols).unwrap();
        let out = rows(std::slice::from_ref(&b)).unwrap();
        assert!(
            out.contains("1772236898683 (2026-02-28 00:01:38.683 UTC)"),
            "{out}"
        );
        assert_eq!(out.matches(NULL).count(), 2, "{out}");
        assert!(out.contains('…') && !out.contains(&"x".repeat(60)), "{out}");
        assert!(out.lines().next().unwrap().len() <= 160, "{out}");
        // many columns: one line per column
        let wide = RecordBatch::try_new(
            Arc::new(Schema::new(
                (0..20)
                    .map(|i| Field::new(format!("a_long_feature_name_{i}"), DataType::Int64, true))
                    .collect::<Vec<_>>(),
            )),
            (0..20)
                .map(|i| Arc::new(Int64Array::from(vec![i as i64])) as ArrayRef)
                .collect(),
        )
        .unwrap();
        let out = rows(&[wide]).unwrap();
        assert!(out.contains("| column") && out.contains("row 1"), "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= 160), "{out}");
    }

    #[test]
    fn long_lists_keep_their_ends() {
        let v: Vec<i32> = (0..59).collect();
        let (head, hidden, tail) = elide(&v, 3, 2);
        assert_eq!((head, hidden, tail), (&v[..3], 54, &v[57..]));
        let short = [1, 2, 3];
        assert_eq!(elide(&short, 1, 1), (&short[..], 0, &[][..]));
    }

    #[test]
    fn tables_are_aligned() {
        let out = table(
            &["table", "rows"],
            &["rows"],
            vec![
                vec!["a.b".into(), "5".into()],
                vec!["long.name".into(), "12345".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let ends: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert!(
            ends.iter().all(|e| *e == ends[0]),
            "right-aligned numbers end together: {out}"
        );
    }
}
