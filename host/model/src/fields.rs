//! Reading typed fields out of a located YAML mapping, reporting each problem
//! (missing, unknown or mistyped keys) with its location instead of stopping.

use crate::diagnostics::Diagnostics;
use crate::yaml::{Value, Yaml};

/// A mapping being read: `what` names it in messages ("node definition", ...).
pub struct Fields<'a> {
    yaml: &'a Yaml,
    what: String,
}

impl<'a> Fields<'a> {
    /// Reads `yaml` as a mapping with `allowed` keys, of which `required` must be
    /// present. `None` (and an error) when it is not a mapping.
    pub fn new(
        yaml: &'a Yaml,
        what: impl Into<String>,
        allowed: &[&str],
        required: &[&str],
        diagnostics: &mut Diagnostics,
    ) -> Option<Self> {
        let what = what.into();
        let Some(entries) = yaml.as_map() else {
            diagnostics.error(
                &yaml.location,
                format!("the {what} must be a mapping, not {}", yaml.kind()),
                format!(
                    "write it as `key: value` lines; keys: {}",
                    allowed.join(", ")
                ),
            );
            return None;
        };
        for (key, _) in entries {
            let name = key.key_text();
            if !allowed.contains(&name.as_str()) {
                let hint = closest(&name, allowed)
                    .map(|k| format!("did you mean `{k}`? "))
                    .unwrap_or_default();
                diagnostics.error(
                    &key.location,
                    format!("unknown key `{name}` in the {what}"),
                    format!("{hint}allowed keys: {}", allowed.join(", ")),
                );
            }
        }
        for key in required {
            if yaml.get(key).is_none() {
                diagnostics.error(
                    &yaml.location,
                    format!("the {what} has no `{key}`"),
                    format!("add `{key}:` to it"),
                );
            }
        }
        Some(Fields { yaml, what })
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a Yaml> {
        self.yaml.get(key)
    }

    /// A string field. Numbers are accepted as their text (YAML users write
    /// `version: 3.3` meaning a string).
    pub fn string(&self, key: &str, diagnostics: &mut Diagnostics) -> Option<String> {
        let value = self.get(key)?;
        match &value.value {
            Value::String(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) => Some(value.key_text()),
            _ => {
                self.wrong_type(value, key, "a string", diagnostics);
                None
            }
        }
    }

    /// A boolean field.
    pub fn bool(&self, key: &str, diagnostics: &mut Diagnostics) -> Option<bool> {
        let value = self.get(key)?;
        match value.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(value, key, "true or false", diagnostics);
                None
            }
        }
    }

    /// A whole number in `range`.
    pub fn integer(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        diagnostics: &mut Diagnostics,
    ) -> Option<i64> {
        let value = self.get(key)?;
        match value.value {
            Value::Int(i) if range.contains(&i) => Some(i),
            Value::Int(i) => {
                diagnostics.error(
                    &value.location,
                    format!(
                        "`{key}` of the {} is {i}; it must be between {} and {}",
                        self.what,
                        range.start(),
                        range.end()
                    ),
                    format!("use a value from {} to {}", range.start(), range.end()),
                );
                None
            }
            _ => {
                self.wrong_type(value, key, "a whole number", diagnostics);
                None
            }
        }
    }

    /// A number of seconds (integer or decimal, not negative).
    pub fn seconds(&self, key: &str, diagnostics: &mut Diagnostics) -> Option<f64> {
        let value = self.get(key)?;
        match value.value {
            Value::Int(i) if i >= 0 => Some(i as f64),
            Value::Float(f) if f.is_finite() && f >= 0.0 => Some(f),
            _ => {
                self.wrong_type(value, key, "a number of seconds (0 or more)", diagnostics);
                None
            }
        }
    }

    /// A mapping field, as JSON.
    pub fn object(
        &self,
        key: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let value = self.get(key)?;
        match value.to_json() {
            serde_json::Value::Object(map) => Some(map),
            serde_json::Value::Null => Some(serde_json::Map::new()),
            _ => {
                self.wrong_type(value, key, "a mapping", diagnostics);
                None
            }
        }
    }

    /// A list field.
    pub fn list(&self, key: &str, diagnostics: &mut Diagnostics) -> Option<&'a [Yaml]> {
        let value = self.get(key)?;
        match &value.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(value, key, "a list", diagnostics);
                None
            }
        }
    }

    /// Reports that `key` has the wrong type.
    pub fn wrong_type(
        &self,
        value: &Yaml,
        key: &str,
        expected: &str,
        diagnostics: &mut Diagnostics,
    ) {
        diagnostics.error(
            &value.location,
            format!(
                "`{key}` of the {} must be {expected}, not {}",
                self.what,
                value.kind()
            ),
            format!("change the value of `{key}`"),
        );
    }
}

/// The allowed key nearest to `name` (a typo), if any is close.
pub(crate) fn closest<'k>(name: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance, for "did you mean" hints on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// Whether `name` is hostname-like, as Occopus requires of infra and node
/// names: 1 to 63 of `[A-Za-z0-9-]`.
pub fn is_hostname_like(name: &str) -> bool {
    (1..=63).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(
            super::closest("scalling", &["scaling", "name"]),
            Some("scaling")
        );
        assert_eq!(super::closest("zzz", &["scaling", "name"]), None);
    }
}
