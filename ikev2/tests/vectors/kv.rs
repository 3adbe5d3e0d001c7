//! Reader for the vector files in this directory: `[name]` starts a section, `key = value`
//! lines fill it, `#` starts a comment line. Lines before the first section form a section
//! with an empty name. Shared by the crypto and key-schedule tests via `#[path]`.

#![allow(dead_code)]

use std::path::PathBuf;

/// One `[section]` of a vector file.
pub struct Section {
    pub name: String,
    fields: Vec<(String, String)>,
}

impl Section {
    /// The value of `key`; panics (failing the test) when it is missing.
    pub fn get(&self, key: &str) -> &str {
        self.try_get(key)
            .unwrap_or_else(|| panic!("[{}] has no `{key}`", self.name))
    }

    /// The value of `key`, if present.
    pub fn try_get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` decoded from hex.
    pub fn hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.get(key))
            .unwrap_or_else(|e| panic!("[{}] `{key}` is not hex: {e}", self.name))
    }

    /// Every `(key, value)` pair in file order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }
}

/// Path of a file in `ikev2/tests/vectors/`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// Parses `ikev2/tests/vectors/<name>`.
pub fn read(name: &str) -> Vec<Section> {
    let text = std::fs::read_to_string(path(name))
        .unwrap_or_else(|e| panic!("cannot read vector file {name}: {e}"));
    let mut sections = vec![Section {
        name: String::new(),
        fields: Vec::new(),
    }];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                name: name.to_string(),
                fields: Vec::new(),
            });
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}: line without `=`: {line}"));
        if let Some(section) = sections.last_mut() {
            section
                .fields
                .push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    sections.retain(|s| !s.fields.is_empty());
    sections
}

/// Reads a binary vector file.
pub fn read_bytes(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).unwrap_or_else(|e| panic!("cannot read vector file {name}: {e}"))
}
