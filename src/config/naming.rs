//! Chronon's naming rules: clean names, output tables, and feature column names
//! (chronon-semantics §1.4, §2.4, §3.3).

use super::model::{Aggregation, GroupBy, JoinPart, MetaData, Operation, TimeUnit, Window};
use crate::error::Result;

/// Replaces every character outside `[a-zA-Z0-9_]` with `_`.
pub fn sanitize(s: &str) -> String {
    super::model::sanitize(s)
}

/// `cleanName`: the sanitized `metaData.name`.
pub fn clean_name(meta: &MetaData) -> String {
    meta.clean_name()
}

/// `<outputNamespace>.<cleanName>`: the output table of a join, GroupBy or staging query.
pub fn output_table(meta: &MetaData) -> Result<String> {
    meta.output_table()
}

/// Whether a window is unbounded (`length <= 0` or `i32::MAX`).
pub fn is_unbounded(w: &Window) -> bool {
    w.length <= 0 || w.length == i32::MAX
}

/// A window's length in milliseconds, `None` when unbounded.
pub fn window_millis(w: &Window) -> Option<i64> {
    if is_unbounded(w) {
        return None;
    }
    let unit = match w.time_unit {
        TimeUnit::Hours => 3_600_000,
        TimeUnit::Days => 86_400_000,
    };
    Some(w.length as i64 * unit)
}

/// The name suffix of an operation (`sum`, `last5`, `approx_percentile`, …).
pub fn op_suffix(agg: &Aggregation) -> String {
    let k = agg.arg_map.get("k").map(String::as_str).unwrap_or("");
    match agg.operation {
        Operation::Min => "min".into(),
        Operation::Max => "max".into(),
        Operation::First => "first".into(),
        Operation::Last => "last".into(),
        Operation::UniqueCount => "unique_count".into(),
        Operation::ApproxUniqueCount => "approx_unique_count".into(),
        Operation::Count => "count".into(),
        Operation::Sum => "sum".into(),
        Operation::Average => "average".into(),
        Operation::Variance => "variance".into(),
        Operation::Skew => "skew".into(),
        Operation::Kurtosis => "kurtosis".into(),
        Operation::ApproxPercentile => "approx_percentile".into(),
        Operation::LastK => format!("last{k}"),
        Operation::FirstK => format!("first{k}"),
        Operation::TopK => format!("top{k}"),
        Operation::BottomK => format!("bottom{k}"),
        Operation::Histogram => "histogram".into(),
        Operation::ApproxHistogramK => "approx_histogram_k".into(),
        Operation::BoundedUniqueCount => "bounded_unique_count".into(),
    }
}

/// The window suffix (`_7d`, `_12h`), empty for unbounded windows.
pub fn window_suffix(w: &Window) -> String {
    if is_unbounded(w) {
        return String::new();
    }
    let unit = match w.time_unit {
        TimeUnit::Hours => "h",
        TimeUnit::Days => "d",
    };
    format!("_{}{}", w.length, unit)
}

/// The windows of an aggregation; a missing list means one unbounded window.
pub fn windows_of(agg: &Aggregation) -> Vec<Window> {
    match &agg.windows {
        Some(ws) if !ws.is_empty() => ws.clone(),
        _ => vec![Window {
            length: 0,
            time_unit: TimeUnit::Days,
        }],
    }
}

/// One unpacked output column of a GroupBy: aggregation index, window, optional bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationPart {
    pub agg_index: usize,
    pub window: Window,
    pub bucket: Option<String>,
    pub column: String,
}

/// Unpacks every aggregation into `buckets × windows` parts, in Chronon's order.
pub fn aggregation_parts(gb: &GroupBy) -> Vec<AggregationPart> {
    let mut out = Vec::new();
    for (i, agg) in gb.aggregations.iter().flatten().enumerate() {
        let buckets: Vec<Option<String>> = if agg.buckets.is_empty() {
            vec![None]
        } else {
            agg.buckets.iter().cloned().map(Some).collect()
        };
        for bucket in &buckets {
            for w in windows_of(agg) {
                let mut column = format!(
                    "{}_{}{}",
                    agg.input_column,
                    op_suffix(agg),
                    window_suffix(&w)
                );
                if let Some(b) = bucket {
                    column.push_str(&format!("_by_{b}"));
                }
                out.push(AggregationPart {
                    agg_index: i,
                    window: w,
                    bucket: bucket.clone(),
                    column,
                });
            }
        }
    }
    out
}

/// `fullPrefix` of a join part: `[<prefix>_]<groupBy cleanName>`.
pub fn part_full_prefix(part: &JoinPart) -> String {
    let gb = clean_name(&part.group_by.meta_data);
    match &part.prefix {
        Some(p) if !p.is_empty() => format!("{p}_{gb}"),
        _ => gb,
    }
}

/// `<ns>.<join cleanName>[_<prefix>]_<groupBy cleanName>`: the part table of a join part.
pub fn part_table(join_meta: &MetaData, part: &JoinPart) -> Result<String> {
    Ok(format!(
        "{}_{}",
        output_table(join_meta)?,
        part_full_prefix(part)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_replaces_non_word_characters() {
        assert_eq!(sanitize("risk.checkout.v1"), "risk_checkout_v1");
        assert_eq!(sanitize("a-b c/d"), "a_b_c_d");
    }

    #[test]
    fn window_suffixes() {
        let w = |length, time_unit| Window { length, time_unit };
        assert_eq!(window_suffix(&w(7, TimeUnit::Days)), "_7d");
        assert_eq!(window_suffix(&w(12, TimeUnit::Hours)), "_12h");
        assert_eq!(window_suffix(&w(i32::MAX, TimeUnit::Days)), "");
        assert_eq!(window_millis(&w(2, TimeUnit::Days)), Some(172_800_000));
        assert_eq!(window_millis(&w(0, TimeUnit::Days)), None);
    }
}
