//! A section as Python sees it after `yaml.load`, and Python 3's `str()` and
//! `repr()` of it. The host hands the section over as JSON whose mapping keys
//! keep the order they were written in; Python's dicts keep it too, so the
//! values are read here into a type that keeps it (serde_json's own map
//! sorts them).

use occopus_plugin_sdk::PluginError;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A value of the section, mapping keys in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Dict(Vec<(String, PyValue)>),
}

impl PyValue {
    /// Reads a section from the JSON text the host gives.
    pub fn parse(json: &str) -> Result<PyValue, PluginError> {
        serde_json::from_str(json).map_err(|e| {
            PluginError::Internal(format!("the host sent a section that is not JSON: {e}"))
        })
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `' '.join(str(item) for item in value)`: a list's items, a mapping's
    /// keys (Python iterates those). A lone string is taken whole (Python
    /// would spell it out letter by letter, which no template can use);
    /// nothing (`None`, an empty list) gives an empty string, as Occopus's
    /// `if value:` does.
    pub fn joined(&self) -> String {
        match self {
            PyValue::None => String::new(),
            PyValue::List(items) => items.iter().map(PyValue::str).collect::<Vec<_>>().join(" "),
            PyValue::Dict(entries) => entries
                .iter()
                .map(|(key, _)| key.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            other => other.str(),
        }
    }

    /// Python's `str(value)`: a string as itself, anything else as its repr.
    pub fn str(&self) -> String {
        match self {
            PyValue::Str(text) => text.clone(),
            other => other.repr(),
        }
    }

    /// Python 3's `repr(value)`.
    pub fn repr(&self) -> String {
        match self {
            PyValue::None => "None".into(),
            PyValue::Bool(true) => "True".into(),
            PyValue::Bool(false) => "False".into(),
            PyValue::Int(i) => i.to_string(),
            PyValue::Float(f) => repr_float(*f),
            PyValue::Str(text) => repr_str(text),
            PyValue::List(items) => {
                let shown: Vec<String> = items.iter().map(PyValue::repr).collect();
                format!("[{}]", shown.join(", "))
            }
            PyValue::Dict(entries) => {
                let shown: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("{}: {}", repr_str(key), value.repr()))
                    .collect();
                format!("{{{}}}", shown.join(", "))
            }
        }
    }
}

/// Python's repr of a `str`: single quotes unless the text has a single
/// quote and no double one; backslash, quote and control characters
/// escaped as Python escapes them.
fn repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut shown = String::with_capacity(text.len() + 2);
    shown.push(quote);
    for c in text.chars() {
        match c {
            '\\' => shown.push_str("\\\\"),
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if c == quote => {
                shown.push('\\');
                shown.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                shown.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if ('\u{80}'..='\u{a0}').contains(&c) => {
                shown.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => shown.push(c),
        }
    }
    shown.push(quote);
    shown
}

/// Python's repr of a `float`: the shortest text that reads back, with
/// `.0` on whole numbers and an exponent (`1e+16`, `1e-05`) outside
/// 1e-4..1e16.
fn repr_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let magnitude = f.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let shown = format!("{f:e}");
        let (mantissa, exponent) = shown.split_once('e').unwrap_or((&shown, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let shown = f.to_string();
    if shown.contains('.') {
        shown
    } else {
        format!("{shown}.0")
    }
}

impl<'de> Deserialize<'de> for PyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PyVisitor)
    }
}

struct PyVisitor;

impl<'de> Visitor<'de> for PyVisitor {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<PyValue, E> {
        Ok(PyValue::None)
    }

    fn visit_bool<E>(self, value: bool) -> Result<PyValue, E> {
        Ok(PyValue::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<PyValue, E> {
        Ok(PyValue::Int(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<PyValue, E> {
        Ok(PyValue::Int(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<PyValue, E> {
        Ok(PyValue::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<PyValue, E> {
        Ok(PyValue::Str(value.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyValue, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, PyValue>()? {
            entries.push((key, value));
        }
        Ok(PyValue::Dict(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each expected text is Python 3's `str()` of the same value (checked
    /// with python3), keys in the order written.
    #[test]
    fn values_read_as_python_shows_them() {
        let cases = [
            (
                r#"{"b": 1, "a": [true, null, 1.5]}"#,
                "{'b': 1, 'a': [True, None, 1.5]}",
            ),
            (r#"{"q": "it's"}"#, r#"{'q': "it's"}"#),
            (r#"{"q": "say \"hi\" it's"}"#, r#"{'q': 'say "hi" it\'s'}"#),
            (r#"{"p": "a\\b\nc\td"}"#, r"{'p': 'a\\b\nc\td'}"),
            (
                r#"{"u": "café ☕", "c": "\u0001"}"#,
                r"{'u': 'café ☕', 'c': '\x01'}",
            ),
            (
                r#"{"f": 2.0, "g": 1.0e+20, "h": 0.00001, "i": 123.25}"#,
                "{'f': 2.0, 'g': 1e+20, 'h': 1e-05, 'i': 123.25}",
            ),
        ];
        for (json, python) in cases {
            assert_eq!(PyValue::parse(json).unwrap().str(), python, "{json}");
        }
        assert_eq!(PyValue::parse(r#"["x", 3]"#).unwrap().joined(), "x 3");
        assert_eq!(
            PyValue::parse(r#"{"a": 1, "b": 2}"#).unwrap().joined(),
            "a b"
        );
        assert_eq!(PyValue::parse("null").unwrap().joined(), "");
    }
}
