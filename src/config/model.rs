//! Typed model of Chronon's compiled Join, GroupBy and StagingQuery JSON (thrift field names,
//! camelCase). Unknown fields are ignored, as Chronon's own reader does.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::lenient::{int_enum, json_string_list, nullable, opt_bool, opt_json_string};

int_enum!(
    /// Aggregation operation (thrift `Operation`).
    Operation {
        Min = 0, Max = 1, First = 2, Last = 3, UniqueCount = 4, ApproxUniqueCount = 5, Count = 6,
        Sum = 7, Average = 8, Variance = 9, Skew = 10, Kurtosis = 11, ApproxPercentile = 12,
        LastK = 13, FirstK = 14, TopK = 15, BottomK = 16, Histogram = 17, ApproxHistogramK = 18,
        BoundedUniqueCount = 19,
    }
);

int_enum!(
    /// Window time unit (thrift `TimeUnit`).
    TimeUnit { Hours = 0, Days = 1 }
);

int_enum!(
    /// GroupBy accuracy (thrift `Accuracy`).
    Accuracy { Temporal = 0, Snapshot = 1 }
);

int_enum!(
    /// Column data kind in external source schemas (thrift `DataKind`).
    DataKind {
        Boolean = 0, Byte = 1, Short = 2, Int = 3, Long = 4, Float = 5, Double = 6, String = 7,
        Binary = 8, Date = 9, Timestamp = 10, Map = 11, List = 12, Struct = 13,
    }
);

/// `MetaData`: names, ownership, schedule and free-form settings of a config.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetaData {
    /// `<team>.<module>.<variable>`; absent on nested metadata such as `labelPart.metaData`.
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "opt_bool")]
    pub online: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub production: Option<bool>,
    #[serde(default, deserialize_with = "opt_json_string")]
    pub custom_json: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "json_string_list")]
    pub dependencies: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub table_properties: IndexMap<String, String>,
    pub output_namespace: Option<String>,
    pub team: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub mode_to_env_map: IndexMap<String, IndexMap<String, String>>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub consistency_check: Option<bool>,
    pub sample_percent: Option<f64>,
    pub offline_schedule: Option<String>,
    pub consistency_sample_percent: Option<f64>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub historical_backfill: Option<bool>,
    pub deprecation_date: Option<String>,
    pub description: Option<String>,
}

/// `Query`: how a source table is read (selects, wheres, partition bounds, time column).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    /// Output column → Spark SQL expression; `None` means `SELECT *`.
    pub selects: Option<IndexMap<String, String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub wheres: Vec<String>,
    pub start_partition: Option<String>,
    pub end_partition: Option<String>,
    pub time_column: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub setups: Vec<String>,
    pub mutation_time_column: Option<String>,
    pub reversal_column: Option<String>,
    pub partition_column: Option<String>,
}

/// `EventSource`: immutable events, partition `ds` holds the events of that day.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    pub table: String,
    pub topic: Option<String>,
    #[serde(default)]
    pub query: Query,
    #[serde(default, deserialize_with = "opt_bool")]
    pub is_cumulative: Option<bool>,
}

/// `EntitySource`: daily snapshots of an entity table, optional mutations.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitySource {
    pub snapshot_table: String,
    pub mutation_table: Option<String>,
    pub mutation_topic: Option<String>,
    #[serde(default)]
    pub query: Query,
}

/// `JoinSource`: the output of another join used as a GroupBy source (chaining).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinSource {
    pub join: Box<Join>,
    #[serde(default)]
    pub query: Query,
}

/// `Source`, a thrift union: exactly one of `events`, `entities`, `joinSource`.
#[derive(Debug, Clone, Serialize)]
pub enum Source {
    Events(EventSource),
    Entities(EntitySource),
    JoinSource(JoinSource),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSource {
    events: Option<EventSource>,
    entities: Option<EntitySource>,
    join_source: Option<JoinSource>,
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSource::deserialize(d)?;
        match (raw.events, raw.entities, raw.join_source) {
            (Some(e), None, None) => Ok(Source::Events(e)),
            (None, Some(e), None) => Ok(Source::Entities(e)),
            (None, None, Some(j)) => Ok(Source::JoinSource(j)),
            _ => Err(serde::de::Error::custom(
                "a Source must set exactly one of `events`, `entities` or `joinSource`",
            )),
        }
    }
}

impl Source {
    /// The query applied when reading this source.
    pub fn query(&self) -> &Query {
        match self {
            Source::Events(e) => &e.query,
            Source::Entities(e) => &e.query,
            Source::JoinSource(j) => &j.query,
        }
    }

    /// The table the rows come from (for entities: the snapshot table).
    pub fn table(&self) -> String {
        match self {
            Source::Events(e) => e.table.clone(),
            Source::Entities(e) => e.snapshot_table.clone(),
            // a join source without an output namespace fails its plan; its name stands in here
            Source::JoinSource(j) => j
                .join
                .meta_data
                .output_table()
                .unwrap_or_else(|_| j.join.meta_data.name.clone()),
        }
    }

    pub fn is_events(&self) -> bool {
        matches!(self, Source::Events(_))
    }

    /// Whether a streaming topic is attached (drives accuracy inference).
    pub fn has_topic(&self) -> bool {
        match self {
            Source::Events(e) => e.topic.is_some(),
            Source::Entities(e) => e.mutation_topic.is_some(),
            Source::JoinSource(j) => j.join.left.has_topic(),
        }
    }
}

/// `Window`: a length in hours or days; `length <= 0` or `i32::MAX` means unbounded.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    pub length: i32,
    pub time_unit: TimeUnit,
}

/// `Aggregation`: one operation over one input column, unpacked into windows × buckets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Aggregation {
    pub input_column: String,
    pub operation: Operation,
    #[serde(default, deserialize_with = "nullable")]
    pub arg_map: IndexMap<String, String>,
    pub windows: Option<Vec<Window>>,
    #[serde(default, deserialize_with = "nullable")]
    pub buckets: Vec<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub element_wise: Option<bool>,
}

/// `Derivation`: an output column computed by a Spark SQL expression (`*` keeps the rest).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Derivation {
    pub name: String,
    pub expression: String,
    pub meta_data: Option<MetaData>,
}

/// `GroupBy`: keyed aggregations over one or more sources.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupBy {
    pub meta_data: MetaData,
    pub sources: Vec<Source>,
    pub key_columns: Vec<String>,
    pub aggregations: Option<Vec<Aggregation>>,
    pub accuracy: Option<Accuracy>,
    pub backfill_start_date: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub derivations: Vec<Derivation>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub is_incremental: Option<bool>,
}

/// `JoinPart`: a GroupBy joined to the left, with key mapping (left column → GroupBy key).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinPart {
    pub group_by: GroupBy,
    #[serde(default, deserialize_with = "nullable")]
    pub key_mapping: IndexMap<String, String>,
    pub prefix: Option<String>,
}

/// `TDataType`: a (possibly nested) column type in external source schemas.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TDataType {
    pub kind: DataKind,
    #[serde(default, deserialize_with = "nullable")]
    pub params: Vec<DataField>,
    pub name: Option<String>,
}

/// A named field of a struct `TDataType`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataField {
    pub name: String,
    pub data_type: TDataType,
}

/// `ExternalSource`: values fetched online from a handler (or contextual request fields).
/// Note the lower-case `metadata`, as Chronon writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSource {
    pub metadata: MetaData,
    pub key_schema: Option<TDataType>,
    pub value_schema: Option<TDataType>,
    pub factory_config: Option<FactoryConfig>,
    pub offline_group_by: Option<GroupBy>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FactoryConfig {
    pub factory_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub factory_params: IndexMap<String, String>,
}

/// `ExternalPart`: an external source attached to a join for online serving.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalPart {
    pub source: ExternalSource,
    #[serde(default, deserialize_with = "nullable")]
    pub key_mapping: IndexMap<String, String>,
    pub prefix: Option<String>,
}

/// `BootstrapPart`: a table whose columns pre-fill join output columns, matched on row ids.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapPart {
    pub table: String,
    pub query: Option<Query>,
    #[serde(default, deserialize_with = "nullable")]
    pub key_columns: Vec<String>,
    pub meta_data: Option<MetaData>,
}

/// `LabelPart`: label GroupBys attached to a join with left offsets in days.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelPart {
    pub labels: Vec<JoinPart>,
    pub left_start_offset: i32,
    pub left_end_offset: i32,
    pub meta_data: Option<MetaData>,
}

/// `Join`: a left (driver) source enriched by join parts, bootstraps, labels and derivations.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    pub meta_data: MetaData,
    pub left: Source,
    #[serde(default, deserialize_with = "nullable")]
    pub join_parts: Vec<JoinPart>,
    #[serde(default, deserialize_with = "nullable")]
    pub skew_keys: IndexMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub online_external_parts: Vec<ExternalPart>,
    pub label_part: Option<LabelPart>,
    #[serde(default, deserialize_with = "nullable")]
    pub bootstrap_parts: Vec<BootstrapPart>,
    #[serde(default, deserialize_with = "nullable")]
    pub row_ids: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub derivations: Vec<Derivation>,
    pub model_transforms: Option<serde_json::Value>,
}

/// `StagingQuery`: templated SQL whose result is written to `<ns>.<cleanName>` by `ds`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagingQuery {
    pub meta_data: MetaData,
    pub query: String,
    pub start_partition: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub setups: Vec<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub create_view: Option<bool>,
}

/// Replaces every character outside `[a-zA-Z0-9_]` with `_` (Chronon's name sanitizing).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl MetaData {
    /// `cleanName`: the sanitized `name` (chronon-semantics §1.4).
    pub fn clean_name(&self) -> String {
        sanitize(&self.name)
    }

    /// `<outputNamespace>.<cleanName>`: the output table of a join, GroupBy or staging query.
    pub fn output_table(&self) -> crate::error::Result<String> {
        let ns = self.output_namespace.as_deref().ok_or_else(|| crate::error::Error::Config {
            file: self.name.clone(),
            path: "metaData.outputNamespace".into(),
            message: "is not set; set `output_namespace` on the config or a `namespace` for its team in teams.json, then recompile".into(),
        })?;
        let bad = |path: &str, message: String| crate::error::Error::Config {
            file: self.name.clone(),
            path: path.into(),
            message,
        };
        if self.name.trim().is_empty() {
            return Err(bad(
                "metaData.name",
                "is empty; every config needs a name (compile.py derives it from the file path: recompile)".into(),
            ));
        }
        if ns.is_empty() || !ns.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(
                "metaData.outputNamespace",
                format!("`{ns}` is not a namespace: use letters, digits and underscores only (it names a folder of the warehouse)"),
            ));
        }
        Ok(format!("{ns}.{}", self.clean_name()))
    }
}
