//! Deserializers for the quirks of Chronon's thrift simple-JSON output: booleans written as
//! `0`/`1`, enums as integers, JSON documents embedded as strings, and `null` where a list is
//! expected.

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A boolean written as `true`/`false` or as the integers `0`/`1`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(b)),
        Some(serde_json::Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(serde_json::Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(other) => Err(de::Error::custom(format!(
            "expected a boolean (true/false or 0/1), found {other}"
        ))),
    }
}

/// A field that may be absent or `null`; both mean the type's default (empty list or map).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON document stored as a string (`metaData.customJson`). Parsed eagerly so that a broken
/// document is reported with the path of the field that holds it.
pub fn opt_json_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| de::Error::custom(format!("expected a JSON document in a string: {e}"))),
    }
}

/// A list of JSON documents stored as strings (`metaData.dependencies`). Staging queries
/// write plain table specs (`ns.t/ds={{ ds }}`) instead; those are kept as strings.
pub fn json_string_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<serde_json::Value>, D::Error> {
    let list = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
    Ok(list
        .into_iter()
        .map(|s| match serde_json::from_str(&s) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => serde_json::Value::String(s),
        })
        .collect())
}

/// Declares a thrift enum that Chronon serialises as an integer code.
macro_rules! int_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant with its thrift code, in code order.
            pub const ALL: &'static [($name, i64)] = &[$(($name::$variant, $code)),+];

            /// The thrift integer code.
            pub fn code(self) -> i64 {
                match self { $($name::$variant => $code),+ }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                let found = v.clone();
                let by_code = v.as_i64().and_then(|c| Self::ALL.iter().find(|(_, k)| *k == c));
                let by_name = v.as_str().and_then(|s| {
                    Self::ALL.iter().find(|(e, _)| format!("{:?}", e).eq_ignore_ascii_case(&s.replace('_', "")))
                });
                match by_code.or(by_name) {
                    Some((e, _)) => Ok(*e),
                    None => {
                        let valid: Vec<String> = Self::ALL.iter().map(|(e, c)| format!("{c}={e:?}")).collect();
                        Err(serde::de::Error::custom(format!(
                            "expected a {} code ({}), found {}",
                            stringify!($name), valid.join(", "), found
                        )))
                    }
                }
            }
        }
    };
}
pub(crate) use int_enum;
