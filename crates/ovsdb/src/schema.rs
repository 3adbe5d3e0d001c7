//! The parts of a database schema (RFC 7047 §3.2) the client needs: column types, which decide
//! how a value is parsed, what a missing column's default is and how a `modify` diff applies.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::Error;

/// The type of one atom (RFC 7047 §3.2 `<atomic-type>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    /// A 64-bit signed integer.
    Integer,
    /// A double.
    Real,
    /// true or false.
    Boolean,
    /// A UTF-8 string.
    String,
    /// A row reference or other UUID.
    Uuid,
}

impl AtomicType {
    fn parse(v: &Value) -> Result<Self, Error> {
        let name = match v {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Schema("base type without \"type\"".into()))?,
            _ => {
                return Err(Error::Schema(format!(
                    "base type {v} is neither string nor object"
                )))
            }
        };
        match name {
            "integer" => Ok(Self::Integer),
            "real" => Ok(Self::Real),
            "boolean" => Ok(Self::Boolean),
            "string" => Ok(Self::String),
            "uuid" => Ok(Self::Uuid),
            other => Err(Error::Schema(format!("unknown atomic type {other:?}"))),
        }
    }
}

/// A column's type: key (and value for maps) with the element count bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// The key (or only) atom type.
    pub key: AtomicType,
    /// The value type of a map column.
    pub value: Option<AtomicType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` for "unlimited".
    pub max: Option<u64>,
}

impl ColumnType {
    /// A plain scalar: exactly one atom, replaced whole by `modify`.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }

    /// A map column.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    fn parse(v: &Value) -> Result<Self, Error> {
        match v {
            Value::String(_) => Ok(Self {
                key: AtomicType::parse(v)?,
                value: None,
                min: 1,
                max: Some(1),
            }),
            Value::Object(o) => {
                let key = AtomicType::parse(
                    o.get("key")
                        .ok_or_else(|| Error::Schema("column type without key".into()))?,
                )?;
                let value = o.get("value").map(AtomicType::parse).transpose()?;
                let min = match o.get("min") {
                    None => 1,
                    Some(m) => m
                        .as_u64()
                        .ok_or_else(|| Error::Schema(format!("min {m} is not a count")))?,
                };
                let max = match o.get("max") {
                    None => Some(1),
                    Some(Value::String(s)) if s == "unlimited" => None,
                    Some(m) => Some(
                        m.as_u64()
                            .ok_or_else(|| Error::Schema(format!("max {m} is not a count")))?,
                    ),
                };
                Ok(Self {
                    key,
                    value,
                    min,
                    max,
                })
            }
            _ => Err(Error::Schema(format!(
                "column type {v} is not a string or object"
            ))),
        }
    }
}

/// The columns of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSchema {
    /// Column name to type.
    pub columns: HashMap<String, ColumnType>,
    /// Whether rows live without references (Encap is not a root table in the Southbound).
    pub is_root: bool,
}

/// A database schema as returned by `get_schema`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseSchema {
    /// The database name, e.g. "OVN_Southbound".
    pub name: String,
    /// The schema version, e.g. "20.27.0".
    pub version: String,
    /// Table name to table.
    pub tables: HashMap<String, TableSchema>,
}

impl DatabaseSchema {
    /// Parses a `<database-schema>` object.
    pub fn from_json(v: &Value) -> Result<Self, Error> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Schema("no database name".into()))?
            .to_string();
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let tables_json = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::Schema("no tables object".into()))?;
        let mut tables = HashMap::new();
        for (tname, t) in tables_json {
            let cols = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| Error::Schema(format!("table {tname} has no columns object")))?;
            let mut columns = HashMap::new();
            for (cname, c) in cols {
                let ty = c
                    .get("type")
                    .ok_or_else(|| Error::Schema(format!("column {tname}.{cname} has no type")))?;
                let ty = ColumnType::parse(ty)
                    .map_err(|e| Error::Schema(format!("column {tname}.{cname}: {e}")))?;
                columns.insert(cname.clone(), ty);
            }
            let is_root = t.get("isRoot").and_then(Value::as_bool).unwrap_or(false);
            tables.insert(tname.clone(), TableSchema { columns, is_root });
        }
        Ok(Self {
            name,
            version,
            tables,
        })
    }

    /// The type of `table.column`, if the schema has it.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.tables.get(table)?.columns.get(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn column_types_parse_with_rfc_defaults() {
        let s = DatabaseSchema::from_json(&json!({
            "name": "DB", "version": "1.0.0",
            "tables": {"T": {"isRoot": true, "columns": {
                "s": {"type": "string"},
                "o": {"type": {"key": {"type": "uuid", "refTable": "X"}, "min": 0, "max": 1}},
                "m": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
                "e": {"type": {"key": {"type": "string", "enum": ["set", ["a", "b"]]}}}
            }}}
        }))
        .unwrap();
        assert!(s.column("T", "s").unwrap().is_scalar());
        assert!(s.column("T", "e").unwrap().is_scalar());
        let o = s.column("T", "o").unwrap();
        assert!(!o.is_scalar() && o.key == AtomicType::Uuid && o.max == Some(1));
        let m = s.column("T", "m").unwrap();
        assert!(m.is_map() && m.max.is_none());
    }

    #[test]
    fn unknown_atomic_type_is_a_schema_error() {
        let r = DatabaseSchema::from_json(&json!({
            "name": "DB", "tables": {"T": {"columns": {"c": {"type": "complex"}}}}
        }));
        assert!(matches!(r, Err(Error::Schema(_))));
    }
}
