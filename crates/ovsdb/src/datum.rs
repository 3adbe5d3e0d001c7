//! OVSDB values (RFC 7047 §5.1): atoms, sets and maps, their JSON forms, defaults and the diffs
//! that `update2`/`update3` `modify` carries.
//!
//! On the wire a one-element set is the bare atom, `["set", [...]]` otherwise; a map is always
//! `["map", [[k, v], ...]]`; a UUID is `["uuid", "..."]`. Only the column type tells a scalar
//! from a one-element set, so parsing always takes the type.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{json, Value};

use crate::schema::{AtomicType, ColumnType};

/// Length of the canonical text form of a UUID.
const UUID_TEXT_LEN: usize = 36;

/// A UUID in its canonical lower-case text form (8-4-4-4-12 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(String);

impl Uuid {
    /// Parses the canonical text form; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != UUID_TEXT_LEN {
            return None;
        }
        let ok = s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
        ok.then(|| Uuid(s.to_ascii_lowercase()))
    }

    /// The all-zero UUID, which `monitor_cond_since` takes as "no transaction seen yet".
    pub fn zero() -> Self {
        Uuid("00000000-0000-0000-0000-000000000000".into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One atomic value.
#[derive(Debug, Clone)]
pub enum Atom {
    /// An integer.
    Integer(i64),
    /// A real.
    Real(f64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    String(String),
    /// A UUID.
    Uuid(Uuid),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    /// The string, if this is a string atom.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The UUID, if this is a UUID atom.
    pub fn as_uuid(&self) -> Option<&Uuid> {
        match self {
            Atom::Uuid(u) => Some(u),
            _ => None,
        }
    }

    /// Parses an atom of type `ty` from its JSON form.
    pub fn from_json(ty: AtomicType, v: &Value) -> Result<Self, String> {
        match (ty, v) {
            (AtomicType::Integer, Value::Number(n)) => n
                .as_i64()
                .map(Atom::Integer)
                .ok_or_else(|| format!("{n} is not a 64-bit integer")),
            (AtomicType::Real, Value::Number(n)) => n
                .as_f64()
                .map(Atom::Real)
                .ok_or_else(|| format!("{n} is not a real")),
            (AtomicType::Boolean, Value::Bool(b)) => Ok(Atom::Boolean(*b)),
            (AtomicType::String, Value::String(s)) => Ok(Atom::String(s.clone())),
            (AtomicType::Uuid, Value::Array(a)) => match a.as_slice() {
                [Value::String(tag), Value::String(u)] if tag == "uuid" => Uuid::parse(u)
                    .map(Atom::Uuid)
                    .ok_or_else(|| format!("{u:?} is not a UUID")),
                _ => Err(format!("{v} is not [\"uuid\", ...]")),
            },
            _ => Err(format!("{v} is not a {ty:?}")),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.as_str()]),
        }
    }
}

impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Atom {}

/// A column value: a set of atoms (a scalar is a one-element set) or a map.
///
/// Both are sorted vectors without duplicate elements (keys): most values hold zero or one
/// element, and a vector of one costs a single small allocation where a B-tree costs a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// A set, sorted, no duplicates; scalars and optional values have one (or zero) elements.
    Set(Vec<Atom>),
    /// A map, sorted by key, no duplicate keys.
    Map(Vec<(Atom, Atom)>),
}

impl Datum {
    /// The value a column holds when `initial`/`insert` leaves it out (RFC 7047 §5.1 defaults):
    /// 0, 0.0, false, "", the all-zero UUID for scalars; empty for sets and maps.
    pub fn default_for(ty: &ColumnType) -> Self {
        if ty.is_map() {
            return Datum::Map(Vec::new());
        }
        if ty.min == 0 {
            return Datum::Set(Vec::new());
        }
        let atom = match ty.key {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::zero()),
        };
        Datum::Set(vec![atom])
    }

    /// Parses a datum of column type `ty`; a bare atom is a one-element set.
    pub fn from_json(ty: &ColumnType, v: &Value) -> Result<Self, String> {
        if let Some(value_ty) = ty.value {
            let pairs = tagged(v, "map").ok_or_else(|| format!("{v} is not [\"map\", ...]"))?;
            let mut map = Vec::with_capacity(pairs.len());
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([k, val]) => {
                        map.push((Atom::from_json(ty.key, k)?, Atom::from_json(value_ty, val)?));
                    }
                    _ => return Err(format!("map entry {pair} is not [key, value]")),
                }
            }
            map.sort_by(|a, b| a.0.cmp(&b.0));
            map.dedup_by(|a, b| a.0 == b.0);
            return Ok(Datum::Map(map));
        }
        match tagged(v, "set") {
            Some(elems) => {
                let mut set = elems
                    .iter()
                    .map(|e| Atom::from_json(ty.key, e))
                    .collect::<Result<Vec<_>, _>>()?;
                set.sort();
                set.dedup();
                Ok(Datum::Set(set))
            }
            None => Ok(Datum::Set(vec![Atom::from_json(ty.key, v)?])),
        }
    }

    /// The JSON form, a one-element set written as its bare atom.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(s) if s.len() == 1 => s.iter().next().map(Atom::to_json).unwrap_or_default(),
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// Applies an `update2` `modify` diff of column type `ty` (RFC 7047 extension in
    /// ovsdb-server(7)): a scalar is replaced; a set's elements are toggled; a map key absent
    /// before is added, one present with the same value is removed, one with another value is
    /// updated.
    pub fn apply_diff(&mut self, ty: &ColumnType, diff: Datum) -> Result<(), String> {
        if ty.is_scalar() {
            *self = diff;
            return Ok(());
        }
        match (self, diff) {
            (Datum::Set(old), Datum::Set(toggles)) => {
                for atom in toggles {
                    match old.binary_search(&atom) {
                        Ok(i) => {
                            old.remove(i);
                        }
                        Err(i) => old.insert(i, atom),
                    }
                }
                Ok(())
            }
            (Datum::Map(old), Datum::Map(changes)) => {
                for (k, v) in changes {
                    match old.binary_search_by(|(ok, _)| ok.cmp(&k)) {
                        Ok(i) => {
                            if old.get(i).is_some_and(|(_, cur)| *cur == v) {
                                old.remove(i);
                            } else if let Some(slot) = old.get_mut(i) {
                                slot.1 = v;
                            }
                        }
                        Err(i) => old.insert(i, (k, v)),
                    }
                }
                Ok(())
            }
            _ => Err("diff kind does not match the column (set vs map)".into()),
        }
    }

    /// The only element, if this is a one-element set (a scalar or a filled optional column).
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Datum::Set(s) if s.len() == 1 => s.first(),
            _ => None,
        }
    }

    /// The set's elements (empty for a map).
    pub fn set(&self) -> impl Iterator<Item = &Atom> {
        let elems = match self {
            Datum::Set(s) => Some(s.iter()),
            Datum::Map(_) => None,
        };
        elems.into_iter().flatten()
    }

    /// The map's entries, sorted by key (`None` for a set).
    pub fn as_map(&self) -> Option<&[(Atom, Atom)]> {
        match self {
            Datum::Map(m) => Some(m),
            Datum::Set(_) => None,
        }
    }
}

/// The payload of `[tag, payload]` when the tag matches and the payload is an array.
fn tagged<'a>(v: &'a Value, tag: &str) -> Option<&'a Vec<Value>> {
    match v.as_array()?.as_slice() {
        [Value::String(t), Value::Array(items)] if t == tag => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(key: AtomicType, value: Option<AtomicType>, min: u64, max: Option<u64>) -> ColumnType {
        ColumnType {
            key,
            value,
            min,
            max,
        }
    }

    fn s(x: &str) -> Atom {
        Atom::String(x.into())
    }

    #[test]
    fn one_element_set_arrives_as_the_bare_atom() {
        let t = ty(AtomicType::String, None, 0, None);
        let d = Datum::from_json(&t, &json!("geneve")).unwrap();
        assert_eq!(d, Datum::Set(vec![s("geneve")]));
        assert_eq!(d.to_json(), json!("geneve"));
        let two = Datum::from_json(&t, &json!(["set", ["b", "a", "b"]])).unwrap();
        assert_eq!(
            two,
            Datum::Set(vec![s("a"), s("b")]),
            "sorted, duplicates dropped"
        );
    }

    #[test]
    fn uuid_atom_is_tagged_and_validated() {
        let t = ty(AtomicType::Uuid, None, 1, None);
        let u = "4c2cfb7a-5c4d-4e42-a5f0-6f6c2bdb9a2b";
        let d = Datum::from_json(&t, &json!(["uuid", u])).unwrap();
        assert_eq!(d.as_atom().unwrap().as_uuid().unwrap().as_str(), u);
        assert!(Datum::from_json(&t, &json!(["uuid", "nope"])).is_err());
        assert!(Datum::from_json(&t, &json!(["named-uuid", u])).is_err());
    }

    #[test]
    fn map_diff_adds_removes_and_updates_keys() {
        let t = ty(AtomicType::String, Some(AtomicType::String), 0, None);
        let mut m = Datum::from_json(&t, &json!(["map", [["a", "1"], ["b", "2"]]])).unwrap();
        let diff = Datum::from_json(&t, &json!(["map", [["a", "1"], ["b", "3"], ["c", "4"]]]));
        m.apply_diff(&t, diff.unwrap()).unwrap();
        let want = json!(["map", [["b", "3"], ["c", "4"]]]);
        assert_eq!(m, Datum::from_json(&t, &want).unwrap());
    }

    #[test]
    fn set_diff_toggles_elements_and_optional_column_is_a_set() {
        let t = ty(AtomicType::String, None, 0, Some(1));
        let mut d = Datum::default_for(&t);
        d.apply_diff(&t, Datum::from_json(&t, &json!("x")).unwrap())
            .unwrap();
        assert_eq!(d.as_atom(), Some(&s("x")));
        let swap = Datum::from_json(&t, &json!(["set", ["x", "y"]])).unwrap();
        d.apply_diff(&t, swap).unwrap();
        assert_eq!(d.as_atom(), Some(&s("y")));
    }

    #[test]
    fn scalar_diff_replaces_and_defaults_follow_the_type() {
        let t = ty(AtomicType::Boolean, None, 1, Some(1));
        let mut d = Datum::default_for(&t);
        assert_eq!(d.as_atom(), Some(&Atom::Boolean(false)));
        d.apply_diff(&t, Datum::from_json(&t, &json!(true)).unwrap())
            .unwrap();
        assert_eq!(d.as_atom(), Some(&Atom::Boolean(true)));
        assert!(Datum::from_json(&t, &json!("true")).is_err());
    }

    /// The diff ovsdb-server sends for old -> new (ovsdb-server(7), update2 "modify").
    fn server_diff(old: &Datum, new: &Datum) -> Datum {
        match (old, new) {
            (Datum::Set(o), Datum::Set(n)) => {
                let mut d: Vec<Atom> = o.iter().filter(|a| !n.contains(a)).cloned().collect();
                d.extend(n.iter().filter(|a| !o.contains(a)).cloned());
                d.sort();
                Datum::Set(d)
            }
            (Datum::Map(o), Datum::Map(n)) => {
                let mut d: Vec<(Atom, Atom)> = Vec::new();
                for (k, v) in o {
                    match n.iter().find(|(nk, _)| nk == k) {
                        None => d.push((k.clone(), v.clone())),
                        Some((_, nv)) if nv != v => d.push((k.clone(), nv.clone())),
                        Some(_) => {}
                    }
                }
                for (k, v) in n {
                    if !o.iter().any(|(ok, _)| ok == k) {
                        d.push((k.clone(), v.clone()));
                    }
                }
                d.sort_by(|a, b| a.0.cmp(&b.0));
                Datum::Map(d)
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn applying_the_server_diff_to_old_gives_new_for_random_sets_and_maps() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
        let set_ty = ty(AtomicType::String, None, 0, None);
        let map_ty = ty(AtomicType::String, Some(AtomicType::String), 0, None);
        let random_set = |rng: &mut rand::rngs::StdRng| {
            let mut v: Vec<Atom> = (0..rng.gen_range(0..6))
                .map(|_| s(&rng.gen_range(0..8).to_string()))
                .collect();
            v.sort();
            v.dedup();
            Datum::Set(v)
        };
        for _ in 0..500 {
            let (old, new) = (random_set(&mut rng), random_set(&mut rng));
            let mut got = old.clone();
            got.apply_diff(&set_ty, server_diff(&old, &new)).unwrap();
            assert_eq!(got, new, "set {old:?} -> {new:?}");

            let random_map = |rng: &mut rand::rngs::StdRng| {
                let mut v: Vec<(Atom, Atom)> = (0..rng.gen_range(0..6))
                    .map(|_| {
                        (
                            s(&rng.gen_range(0..8).to_string()),
                            s(&rng.gen_range(0..3).to_string()),
                        )
                    })
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v.dedup_by(|a, b| a.0 == b.0);
                Datum::Map(v)
            };
            let (old, new) = (random_map(&mut rng), random_map(&mut rng));
            let mut got = old.clone();
            got.apply_diff(&map_ty, server_diff(&old, &new)).unwrap();
            assert_eq!(got, new, "map {old:?} -> {new:?}");
        }
    }

    #[test]
    fn integer_out_of_range_is_rejected() {
        let t = ty(AtomicType::Integer, None, 1, Some(1));
        assert!(Datum::from_json(&t, &json!(1e300)).is_err());
        assert!(Datum::from_json(&t, &json!(u64::MAX)).is_err());
    }
}
