//! The in-memory copy of the monitored tables, kept exactly as the server describes it, and the
//! list of rows each update changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::datum::{Atom, Datum, Uuid};
use crate::error::Error;
use crate::schema::DatabaseSchema;

/// One row: every monitored column, defaults filled in for the ones the server left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    // Column names are shared with the cache's list of monitored columns, not copied per row.
    columns: BTreeMap<Arc<str>, Datum>,
}

impl Row {
    /// The raw value of a column.
    pub fn get(&self, column: &str) -> Option<&Datum> {
        self.columns.get(column)
    }

    /// A string scalar (or the element of a one-element string set).
    pub fn str(&self, column: &str) -> Option<&str> {
        self.get(column)?.as_atom()?.as_str()
    }

    /// A boolean scalar.
    pub fn bool(&self, column: &str) -> Option<bool> {
        match self.get(column)?.as_atom()? {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// An integer scalar.
    pub fn integer(&self, column: &str) -> Option<i64> {
        match self.get(column)?.as_atom()? {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// A string-to-string map; empty if the column is missing or of another type.
    pub fn string_map(&self, column: &str) -> BTreeMap<String, String> {
        let Some(map) = self.get(column).and_then(Datum::as_map) else {
            return BTreeMap::new();
        };
        map.iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect()
    }

    /// The strings of a string set.
    pub fn strings(&self, column: &str) -> BTreeSet<String> {
        self.get(column)
            .into_iter()
            .flat_map(Datum::set)
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    }

    /// The UUIDs of a reference set (or optional reference).
    pub fn uuids(&self, column: &str) -> Vec<Uuid> {
        self.get(column)
            .into_iter()
            .flat_map(Datum::set)
            .filter_map(|a| a.as_uuid().cloned())
            .collect()
    }

    /// All columns.
    pub fn columns(&self) -> &BTreeMap<Arc<str>, Datum> {
        &self.columns
    }
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The row is new.
    Insert,
    /// Some monitored column changed.
    Modify,
    /// The row is gone.
    Delete,
}

/// One changed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    /// The table.
    pub table: String,
    /// The row's UUID.
    pub uuid: Uuid,
    /// What happened.
    pub kind: ChangeKind,
}

/// The rows one server transaction (or one full resynchronisation) changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// True when the whole cache was replaced by a snapshot (rows missing from it deleted).
    pub replaced: bool,
    /// The rows that changed; unchanged rows of a snapshot are not listed.
    pub changes: Vec<RowChange>,
}

/// Rows per table, keyed by UUID.
pub type Table = HashMap<Uuid, Row>;

/// The monitored tables of one database.
#[derive(Debug, Clone, Default)]
pub struct TableCache {
    schema: DatabaseSchema,
    monitored: BTreeMap<String, Vec<Arc<str>>>,
    /// Per table, a row holding every monitored column's default (rebuilt with the schema).
    defaults: HashMap<String, Row>,
    tables: HashMap<String, Table>,
}

impl TableCache {
    /// An empty cache for the given tables and columns.
    pub fn new(monitored: &[(String, Vec<String>)]) -> Self {
        Self {
            schema: DatabaseSchema::default(),
            monitored: monitored
                .iter()
                .map(|(t, cols)| {
                    (
                        t.clone(),
                        cols.iter().map(|c| Arc::from(c.as_str())).collect(),
                    )
                })
                .collect(),
            defaults: HashMap::new(),
            tables: HashMap::new(),
        }
    }

    /// Sets the schema the next updates are typed with (it may change between connections).
    pub fn set_schema(&mut self, schema: DatabaseSchema) {
        self.schema = schema;
        self.defaults = self
            .monitored
            .iter()
            .map(|(table, cols)| {
                let columns = cols
                    .iter()
                    .filter_map(|c| {
                        let ty = self.schema.column(table, c)?;
                        Some((c.clone(), Datum::default_for(ty)))
                    })
                    .collect();
                (table.clone(), Row { columns })
            })
            .collect();
    }

    /// The schema in use.
    pub fn schema(&self) -> &DatabaseSchema {
        &self.schema
    }

    /// A table's rows (empty if none arrived yet).
    pub fn table(&self, name: &str) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.tables.get(name).into_iter().flat_map(|t| t.iter())
    }

    /// One row.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(uuid)
    }

    /// Number of rows in a table.
    pub fn len(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, HashMap::len)
    }

    /// Whether no table holds a row.
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(HashMap::is_empty)
    }

    /// Drops every row.
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// Applies `<table-updates2>` (from `update2`/`update3` or a `found=true` reply) in place.
    pub fn apply_updates2(&mut self, updates: &Value) -> Result<ChangeSet, Error> {
        let mut tables = std::mem::take(&mut self.tables);
        let result = self.merge_updates2(&mut tables, updates);
        self.tables = tables;
        result.map(|changes| ChangeSet {
            replaced: false,
            changes,
        })
    }

    /// Replaces the cache with the snapshot in `<table-updates2>` (a `monitor_cond` reply or a
    /// `found=false` `monitor_cond_since` reply): rows absent from it are reported deleted.
    pub fn replace_with_updates2(&mut self, updates: &Value) -> Result<ChangeSet, Error> {
        let mut fresh = HashMap::new();
        self.merge_updates2(&mut fresh, updates)?;
        Ok(self.swap_in(fresh))
    }

    /// Applies RFC 7047 `<table-updates>` (the old `update` notification) in place.
    pub fn apply_updates1(&mut self, updates: &Value) -> Result<ChangeSet, Error> {
        let mut tables = std::mem::take(&mut self.tables);
        let result = self.merge_updates1(&mut tables, updates);
        self.tables = tables;
        result.map(|changes| ChangeSet {
            replaced: false,
            changes,
        })
    }

    /// Replaces the cache with the snapshot in an old-style `monitor` reply.
    pub fn replace_with_updates1(&mut self, updates: &Value) -> Result<ChangeSet, Error> {
        let mut fresh = HashMap::new();
        self.merge_updates1(&mut fresh, updates)?;
        Ok(self.swap_in(fresh))
    }

    fn swap_in(&mut self, fresh: HashMap<String, Table>) -> ChangeSet {
        let old = std::mem::replace(&mut self.tables, fresh);
        let mut changes = Vec::new();
        for (tname, old_rows) in &old {
            let new_rows = self.tables.get(tname);
            for (uuid, row) in old_rows {
                match new_rows.and_then(|t| t.get(uuid)) {
                    None => changes.push(change(tname, uuid, ChangeKind::Delete)),
                    Some(new) if new != row => {
                        changes.push(change(tname, uuid, ChangeKind::Modify))
                    }
                    Some(_) => {}
                }
            }
        }
        for (tname, new_rows) in &self.tables {
            let old_rows = old.get(tname);
            for uuid in new_rows.keys() {
                if old_rows.is_none_or(|t| !t.contains_key(uuid)) {
                    changes.push(change(tname, uuid, ChangeKind::Insert));
                }
            }
        }
        ChangeSet {
            replaced: true,
            changes,
        }
    }

    fn merge_updates2(
        &self,
        tables: &mut HashMap<String, Table>,
        updates: &Value,
    ) -> Result<Vec<RowChange>, Error> {
        let mut changes = Vec::new();
        for (tname, rows) in self.table_updates(updates)? {
            let table = tables.entry(tname.clone()).or_default();
            let updates = row_updates(tname, rows)?;
            table.reserve(updates.len());
            for (uuid, op, body) in updates {
                let kind = match op {
                    "initial" | "insert" => {
                        let row = self.parse_row(tname, body, None)?;
                        let existed = table.insert(uuid.clone(), row).is_some();
                        if existed {
                            ChangeKind::Modify
                        } else {
                            ChangeKind::Insert
                        }
                    }
                    "modify" => {
                        let row = table.get_mut(&uuid).ok_or_else(|| missing(tname, &uuid))?;
                        self.apply_modify(tname, row, body)?;
                        ChangeKind::Modify
                    }
                    "delete" => {
                        table.remove(&uuid).ok_or_else(|| missing(tname, &uuid))?;
                        ChangeKind::Delete
                    }
                    other => {
                        return Err(Error::Malformed {
                            what: "row update",
                            reason: format!("{tname} {uuid}: unknown operation {other:?}"),
                        })
                    }
                };
                changes.push(change(tname, &uuid, kind));
            }
        }
        Ok(changes)
    }

    fn merge_updates1(
        &self,
        tables: &mut HashMap<String, Table>,
        updates: &Value,
    ) -> Result<Vec<RowChange>, Error> {
        let mut changes = Vec::new();
        for (tname, rows) in self.table_updates(updates)? {
            let table = tables.entry(tname.clone()).or_default();
            let rows = rows.as_object().ok_or_else(|| malformed_table(tname))?;
            for (uuid_text, body) in rows {
                let uuid = parse_row_uuid(tname, uuid_text)?;
                let new = body.get("new");
                let kind = match (new, table.get(&uuid)) {
                    (None, _) => {
                        table.remove(&uuid).ok_or_else(|| missing(tname, &uuid))?;
                        ChangeKind::Delete
                    }
                    // The new row replaces the columns it names; the others keep their value.
                    (Some(new), base) => {
                        let kind = if base.is_some() {
                            ChangeKind::Modify
                        } else {
                            ChangeKind::Insert
                        };
                        let row = self.parse_row(tname, new, base)?;
                        table.insert(uuid.clone(), row);
                        kind
                    }
                };
                changes.push(change(tname, &uuid, kind));
            }
        }
        Ok(changes)
    }

    fn table_updates<'a>(&self, updates: &'a Value) -> Result<Vec<(&'a String, &'a Value)>, Error> {
        let obj = updates.as_object().ok_or_else(|| Error::Malformed {
            what: "table updates",
            reason: "not an object".into(),
        })?;
        obj.iter()
            .map(|(tname, rows)| {
                if self.monitored.contains_key(tname) {
                    Ok((tname, rows))
                } else {
                    Err(Error::Unmonitored(format!("table {tname}")))
                }
            })
            .collect()
    }

    /// Builds a row from `body`, starting from `base` (or from defaults).
    fn parse_row(&self, table: &str, body: &Value, base: Option<&Row>) -> Result<Row, Error> {
        let mut row = match base {
            Some(b) => b.clone(),
            None => self.default_row(table)?,
        };
        for (col, v) in columns_of(table, body)? {
            let (name, ty) = self.column_type(table, col)?;
            let datum =
                Datum::from_json(ty, v).map_err(|reason| datum_error(table, col, reason))?;
            row.columns.insert(name, datum);
        }
        Ok(row)
    }

    fn apply_modify(&self, table: &str, row: &mut Row, body: &Value) -> Result<(), Error> {
        for (col, v) in columns_of(table, body)? {
            let (name, ty) = self.column_type(table, col)?;
            let diff = Datum::from_json(ty, v).map_err(|reason| datum_error(table, col, reason))?;
            let slot = row
                .columns
                .entry(name)
                .or_insert_with(|| Datum::default_for(ty));
            slot.apply_diff(ty, diff)
                .map_err(|reason| datum_error(table, col, reason))?;
        }
        Ok(())
    }

    fn default_row(&self, table: &str) -> Result<Row, Error> {
        let row = self.defaults.get(table).cloned().unwrap_or_default();
        // A monitored column the schema lacks has no default: report it, naming the column.
        if let Some(cols) = self.monitored.get(table) {
            if let Some(missing) = cols.iter().find(|c| !row.columns.contains_key(&***c)) {
                return Err(datum_error(table, missing, "not in the schema".into()));
            }
        }
        Ok(row)
    }

    /// The shared name and the type of a monitored column.
    fn column_type(
        &self,
        table: &str,
        col: &str,
    ) -> Result<(Arc<str>, &crate::schema::ColumnType), Error> {
        let name = self
            .monitored
            .get(table)
            .and_then(|cols| cols.iter().find(|c| &***c == col))
            .ok_or_else(|| Error::Unmonitored(format!("column {table}.{col}")))?;
        let ty = self
            .schema
            .column(table, col)
            .ok_or_else(|| datum_error(table, col, "not in the schema".into()))?;
        Ok((name.clone(), ty))
    }
}

/// Splits a table's row updates into (uuid, operation, body).
fn row_updates<'a>(table: &str, rows: &'a Value) -> Result<Vec<(Uuid, &'a str, &'a Value)>, Error> {
    let rows = rows.as_object().ok_or_else(|| malformed_table(table))?;
    let mut out = Vec::with_capacity(rows.len());
    for (uuid_text, update) in rows {
        let uuid = parse_row_uuid(table, uuid_text)?;
        let op = update
            .as_object()
            .and_then(single_entry)
            .ok_or_else(|| Error::Malformed {
                what: "row update",
                reason: format!("{table} {uuid}: not an object with exactly one operation"),
            })?;
        out.push((uuid, op.0.as_str(), op.1));
    }
    Ok(out)
}

fn single_entry(obj: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut it = obj.iter();
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

fn columns_of<'a>(table: &str, body: &'a Value) -> Result<&'a Map<String, Value>, Error> {
    match body {
        Value::Object(o) => Ok(o),
        // `delete` carries null in update2; never asked for columns.
        _ => Err(Error::Malformed {
            what: "row",
            reason: format!("{table}: row is not an object"),
        }),
    }
}

fn parse_row_uuid(table: &str, text: &str) -> Result<Uuid, Error> {
    Uuid::parse(text).ok_or_else(|| Error::Malformed {
        what: "row update",
        reason: format!("{table}: row key {text:?} is not a UUID"),
    })
}

fn malformed_table(table: &str) -> Error {
    Error::Malformed {
        what: "table update",
        reason: format!("{table}: rows are not an object"),
    }
}

fn missing(table: &str, uuid: &Uuid) -> Error {
    Error::Malformed {
        what: "row update",
        reason: format!("{table} {uuid}: modify or delete of a row not in the cache"),
    }
}

fn datum_error(table: &str, column: &str, reason: String) -> Error {
    Error::Datum {
        table: table.into(),
        column: column.into(),
        reason,
    }
}

fn change(table: &str, uuid: &Uuid, kind: ChangeKind) -> RowChange {
    RowChange {
        table: table.to_string(),
        uuid: uuid.clone(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U1: &str = "11111111-1111-1111-1111-111111111111";
    const U2: &str = "22222222-2222-2222-2222-222222222222";

    fn cache() -> TableCache {
        let mut c = TableCache::new(&[(
            "Chassis".into(),
            vec!["name".into(), "other_config".into(), "encaps".into()],
        )]);
        c.set_schema(
            DatabaseSchema::from_json(&json!({"name": "SB", "tables": {"Chassis": {"columns": {
                "name": {"type": "string"},
                "other_config": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
                "encaps": {"type": {"key": {"type": "uuid"}, "min": 1, "max": "unlimited"}}
            }}}}))
            .unwrap(),
        );
        c
    }

    fn u(s: &str) -> Uuid {
        Uuid::parse(s).unwrap()
    }

    #[test]
    fn insert_fills_omitted_columns_with_defaults() {
        let mut c = cache();
        c.apply_updates2(&json!({"Chassis": {U1: {"insert": {"name": "ch1"}}}}))
            .unwrap();
        let row = c.row("Chassis", &u(U1)).unwrap();
        assert_eq!(row.str("name"), Some("ch1"));
        assert!(row.string_map("other_config").is_empty());
        // RFC 7047 §5.1: a column with min 1 defaults to one default atom.
        assert_eq!(row.uuids("encaps"), vec![Uuid::zero()]);
    }

    #[test]
    fn modify_applies_map_diff_and_delete_removes() {
        let mut c = cache();
        c.apply_updates2(&json!({"Chassis": {U1: {"insert": {"name": "ch1",
            "other_config": ["map", [["a", "1"], ["b", "2"]]]}}}}))
            .unwrap();
        let cs = c
            .apply_updates2(
                &json!({"Chassis": {U1: {"modify": {"other_config": ["map", [["a", "1"]]]}}}}),
            )
            .unwrap();
        assert_eq!(cs.changes[0].kind, ChangeKind::Modify);
        let row = c.row("Chassis", &u(U1)).unwrap();
        assert_eq!(
            row.string_map("other_config"),
            BTreeMap::from([("b".into(), "2".into())])
        );
        c.apply_updates2(&json!({"Chassis": {U1: {"delete": null}}}))
            .unwrap();
        assert_eq!(c.len("Chassis"), 0);
    }

    #[test]
    fn full_replace_reports_rows_missing_from_the_snapshot_as_deleted() {
        let mut c = cache();
        c.apply_updates2(
            &json!({"Chassis": {U1: {"insert": {"name": "a"}}, U2: {"insert": {"name": "b"}}}}),
        )
        .unwrap();
        let cs = c
            .replace_with_updates2(&json!({"Chassis": {U2: {"initial": {"name": "b2"}}}}))
            .unwrap();
        assert!(cs.replaced);
        let mut kinds: Vec<_> = cs
            .changes
            .iter()
            .map(|c| (c.uuid.to_string(), c.kind))
            .collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kinds,
            vec![
                (U1.into(), ChangeKind::Delete),
                (U2.into(), ChangeKind::Modify)
            ]
        );
        assert_eq!(c.len("Chassis"), 1);
    }

    #[test]
    fn modify_of_unknown_row_and_unmonitored_table_are_errors() {
        let mut c = cache();
        let r = c.apply_updates2(&json!({"Chassis": {U1: {"modify": {"name": "x"}}}}));
        assert!(matches!(r, Err(Error::Malformed { .. })));
        let r = c.apply_updates2(&json!({"Port_Binding": {U1: {"insert": {}}}}));
        assert!(matches!(r, Err(Error::Unmonitored(_))));
        let r = c.apply_updates2(&json!({"Chassis": {U1: {"insert": {"name": 5}}}}));
        assert!(matches!(r, Err(Error::Datum { .. })));
    }

    #[test]
    fn old_style_update_keeps_unnamed_columns() {
        let mut c = cache();
        c.replace_with_updates1(&json!({"Chassis": {U1: {"new": {"name": "a",
            "other_config": ["map", [["k", "v"]]]}}}}))
            .unwrap();
        c.apply_updates1(&json!({"Chassis": {U1: {"old": {"name": "a"}, "new": {"name": "b"}}}}))
            .unwrap();
        let row = c.row("Chassis", &u(U1)).unwrap();
        assert_eq!(row.str("name"), Some("b"));
        assert_eq!(row.string_map("other_config").len(), 1);
        c.apply_updates1(&json!({"Chassis": {U1: {"old": {"name": "b"}}}}))
            .unwrap();
        assert!(c.is_empty());
    }
}
