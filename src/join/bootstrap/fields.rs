//! The join's field universe (chronon-semantics §4.3): every column a bootstrap table may
//! supply — join-part keys (left names) and values (after GroupBy derivations), external key
//! and value fields, and join-derived fields — with its type, plus each join part's coverage
//! dependencies. When two entries share a name the later one's type wins, in Chronon's order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use regex::Regex;

pub use crate::warehouse::types::{same_type, type_key};

use super::ExternalPlan;
use crate::config::{DataKind, Derivation, TDataType};
use crate::dataflow::spec::BootstrapSpec;
use crate::join::derive::derivation_projection;

/// What a field of the universe is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    PartKey,
    PartValue(u16),
    ExternalKey { contextual: bool },
    ExternalValue { contextual: bool },
    Derived,
}

/// One field of the universe.
#[derive(Debug, Clone)]
pub struct JoinField {
    pub name: String,
    pub data_type: DataType,
    pub kind: FieldKind,
}

/// The field universe and coverage dependencies of a join.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub list: Vec<JoinField>,
    index: HashMap<String, u16>,
    /// Per join part, its value fields (after GroupBy derivations).
    pub part_values: Vec<Vec<u16>>,
    /// Per join part, `(field, base fields)` dependencies (§4.6).
    pub deps: Vec<Vec<(u16, Vec<u16>)>>,
    /// Join-part and external value names: the base columns of join derivations.
    pub base_values: Vec<String>,
}

impl Fields {
    /// Builds the universe. `part_values` are each part's value fields after GroupBy
    /// derivations; `part_keys` the left key columns of each part with their types; `derived`
    /// the join derivations' output fields with types (see [`derived_fields`]).
    pub fn build(
        part_keys: &[Vec<Field>],
        part_values: &[Vec<Field>],
        externals: &[ExternalPlan],
        derived: &[(String, DataType, String)],
    ) -> Fields {
        let mut f = Fields::default();
        for keys in part_keys {
            for k in keys {
                f.add(k.name(), k.data_type(), FieldKind::PartKey);
            }
        }
        for (p, values) in part_values.iter().enumerate() {
            let ids = values
                .iter()
                .map(|v| f.add(v.name(), v.data_type(), FieldKind::PartValue(p as u16)))
                .collect();
            f.part_values.push(ids);
            f.base_values
                .extend(values.iter().map(|v| v.name().to_string()));
        }
        for e in externals {
            for (k, t) in &e.keys {
                f.add(
                    k,
                    t,
                    FieldKind::ExternalKey {
                        contextual: e.contextual,
                    },
                );
            }
        }
        for e in externals {
            for (v, t) in &e.values {
                f.add(
                    v,
                    t,
                    FieldKind::ExternalValue {
                        contextual: e.contextual,
                    },
                );
                f.base_values.push(v.clone());
            }
        }
        for (d, t, _) in derived {
            f.add(d, t, FieldKind::Derived);
        }
        // coverage dependencies
        let ident = Regex::new("[a-zA-Z_][a-zA-Z0-9_]*").expect("valid regex");
        for values in &f.part_values {
            let deps = if derived.is_empty() {
                values.iter().map(|&v| (v, vec![v])).collect()
            } else {
                derived
                    .iter()
                    .filter_map(|(d, _, expr)| {
                        let ids: Vec<&str> = ident.find_iter(expr).map(|m| m.as_str()).collect();
                        let bases: Vec<u16> = values
                            .iter()
                            .copied()
                            .filter(|&v| ids.contains(&f.list[v as usize].name.as_str()))
                            .collect();
                        (!bases.is_empty()).then(|| (f.index[d.as_str()], bases))
                    })
                    .collect()
            };
            f.deps.push(deps);
        }
        f
    }

    fn add(&mut self, name: &str, t: &DataType, kind: FieldKind) -> u16 {
        match self.index.get(name) {
            Some(&i) => {
                self.list[i as usize].data_type = t.clone();
                i
            }
            None => {
                let i = self.list.len() as u16;
                self.list.push(JoinField {
                    name: name.to_string(),
                    data_type: t.clone(),
                    kind,
                });
                self.index.insert(name.to_string(), i);
                i
            }
        }
    }

    /// The index of a field by name.
    pub fn get(&self, name: &str) -> Option<u16> {
        self.index.get(name).copied()
    }

    /// The dataflow's coverage description.
    pub fn spec(&self) -> BootstrapSpec {
        BootstrapSpec {
            deps: self.deps.clone(),
        }
    }

    /// Names of the contextual key fields.
    pub fn contextual_keys(&self) -> Vec<&JoinField> {
        self.list
            .iter()
            .filter(|f| f.kind == FieldKind::ExternalKey { contextual: true })
            .collect()
    }
}

/// The join derivations' output fields `(name, type, expression)` over base values and left
/// columns (`*` expands over both, so left columns become derived fields, as in Chronon), given
/// the types of every column of the derived empty frame.
pub fn derived_fields(
    base_values: &[String],
    left_columns: &[String],
    derivations: &[Derivation],
    derived_types: &dyn Fn(&str) -> Option<DataType>,
) -> Vec<(String, DataType, String)> {
    if derivations.is_empty() {
        return Vec::new();
    }
    let mut columns: Vec<String> = base_values.to_vec();
    columns.extend(
        left_columns
            .iter()
            .filter(|c| !base_values.contains(c))
            .cloned(),
    );
    derivation_projection(&columns, derivations)
        .into_iter()
        .filter_map(|(n, e)| derived_types(&n).map(|t| (n, t, e)))
        .collect()
}

/// The Arrow type of an external-source field type.
pub fn arrow_type(t: &TDataType) -> Option<DataType> {
    Some(match t.kind {
        DataKind::Boolean => DataType::Boolean,
        DataKind::Byte => DataType::Int8,
        DataKind::Short => DataType::Int16,
        DataKind::Int => DataType::Int32,
        DataKind::Long => DataType::Int64,
        DataKind::Float => DataType::Float32,
        DataKind::Double => DataType::Float64,
        DataKind::String => DataType::Utf8,
        DataKind::Binary => DataType::Binary,
        DataKind::Date => DataType::Date32,
        DataKind::Timestamp => DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
        DataKind::List => {
            let elem = arrow_type(&t.params.first()?.data_type)?;
            DataType::List(Arc::new(Field::new("item", elem, true)))
        }
        DataKind::Map => {
            // Chronon maps have string keys
            crate::aggregate::value::map_type(arrow_type(&t.params.get(1)?.data_type)?)
        }
        DataKind::Struct => DataType::Struct(
            t.params
                .iter()
                .map(|f| Some(Field::new(&f.name, arrow_type(&f.data_type)?, true)))
                .collect::<Option<Vec<_>>>()?
                .into(),
        ),
    })
}
