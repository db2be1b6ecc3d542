//! Column types as Chronon compares them (name and type, not nullability): a canonical
//! spelling per type in which nested field names of lists and maps and string encodings do
//! not matter. Used where a table's columns must keep their types: bootstrap tables, the
//! flattened log table.

use arrow::datatypes::DataType;

/// Whether two column types are the same (Chronon compares name and type, ignoring
/// nullability): nested field names of lists and maps and string encodings do not
/// matter.
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    type_key(a) == type_key(b)
}

/// A canonical spelling of a type for [`same_type`].
pub fn type_key(t: &DataType) -> String {
    use DataType::*;
    match t {
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView => "binary".into(),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) => {
            format!("array<{}>", type_key(f.data_type()))
        }
        Map(f, _) => match f.data_type() {
            Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                type_key(kv[0].data_type()),
                type_key(kv[1].data_type())
            ),
            other => format!("map<{}>", type_key(other)),
        },
        Struct(fs) => format!(
            "struct<{}>",
            fs.iter()
                .map(|f| format!("{}:{}", f.name(), type_key(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Dictionary(_, v) => type_key(v),
        other => format!("{other}"),
    }
}
