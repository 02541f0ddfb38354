//! Credentials (`auth_data.yaml`): entries under `resource:` select the
//! resources they apply to by any of their keys, entries under
//! `config_management:` the config-management sections (a Chef server's
//! `client_name` and `client_key`); exactly one may apply.

use crate::diagnostics::Diagnostics;
use crate::fields::Fields;
use crate::location::Location;
use crate::yaml::{Value, Yaml};
use occopus_types::Credentials;
use serde_json::{Map, Value as Json};

/// The parsed credentials file. Its `Debug` never shows secret values.
#[derive(Clone, Default)]
pub struct AuthData {
    entries: Vec<AuthEntry>,
    config_entries: Vec<AuthEntry>,
}

#[derive(Clone)]
struct AuthEntry {
    selectors: Map<String, Json>,
    credentials: Vec<(String, String)>,
    location: Location,
}

impl std::fmt::Debug for AuthData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let selectors: Vec<_> = self
            .entries
            .iter()
            .chain(&self.config_entries)
            .map(|e| &e.selectors)
            .collect();
        write!(f, "AuthData({selectors:?}, values hidden)")
    }
}

/// Why no single entry applies to a resource.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AuthSelectionError(String);

impl AuthData {
    /// Reads an auth_data document.
    pub fn from_yaml(yaml: &Yaml, diagnostics: &mut Diagnostics) -> Self {
        let mut auth = AuthData::default();
        if matches!(yaml.value, Value::Null) {
            return auth;
        }
        let Some(fields) = Fields::new(
            yaml,
            "auth_data file",
            &["resource", "config_management"],
            &[],
            diagnostics,
        ) else {
            return auth;
        };
        auth.entries = entries(&fields, "resource", diagnostics);
        auth.config_entries = entries(&fields, "config_management", diagnostics);
        auth
    }

    /// The credentials for `resource`: those of the one entry whose selectors
    /// all equal the resource's keys; none when no entry applies.
    pub fn select(&self, resource: &Map<String, Json>) -> Result<Credentials, AuthSelectionError> {
        select(&self.entries, resource, "resource")
    }

    /// The credentials for a `config_management` section, chosen as
    /// [`AuthData::select`] chooses a resource's.
    pub fn select_config(
        &self,
        section: &Map<String, Json>,
    ) -> Result<Credentials, AuthSelectionError> {
        select(&self.config_entries, section, "config_management section")
    }
}

/// The entries of one list (`resource` or `config_management`).
fn entries(fields: &Fields, list: &str, diagnostics: &mut Diagnostics) -> Vec<AuthEntry> {
    let mut entries = Vec::new();
    for entry in fields.list(list, diagnostics).unwrap_or_default() {
        let Some(map) = entry.as_map() else {
            diagnostics.error(
                &entry.location,
                format!("an auth_data entry must be a mapping, not {}", entry.kind()),
                "write `- type: ec2` followed by `auth_data: {...}`",
            );
            continue;
        };
        let Some(data) = entry.get("auth_data") else {
            diagnostics.error(
                &entry.location,
                "this auth_data entry has no `auth_data`",
                "add `auth_data:` with the credentials (e.g. accesskey, secretkey)",
            );
            continue;
        };
        let credentials = match data.as_map() {
            Some(pairs) => pairs
                .iter()
                .map(|(k, v)| {
                    let value = match &v.value {
                        Value::String(s) => s.clone(),
                        _ => v.key_text(),
                    };
                    (k.key_text(), value)
                })
                .collect(),
            None => {
                diagnostics.error(
                    &data.location,
                    format!("`auth_data` must be a mapping, not {}", data.kind()),
                    "write the credentials as `key: value` pairs",
                );
                continue;
            }
        };
        let selectors = map
            .iter()
            .filter(|(k, _)| k.as_str() != Some("auth_data"))
            .map(|(k, v)| (k.key_text(), v.to_json()))
            .collect();
        entries.push(AuthEntry {
            selectors,
            credentials,
            location: entry.location.clone(),
        });
    }
    entries
}

/// The one entry of `entries` whose selectors all equal the section's keys.
fn select(
    entries: &[AuthEntry],
    section: &Map<String, Json>,
    what: &str,
) -> Result<Credentials, AuthSelectionError> {
    let applicable: Vec<&AuthEntry> = entries
        .iter()
        .filter(|e| e.selectors.iter().all(|(k, v)| section.get(k) == Some(v)))
        .collect();
    match applicable.as_slice() {
        [] => Ok(Credentials::default()),
        [entry] => Ok(Credentials::new(entry.credentials.iter().cloned())),
        many => Err(AuthSelectionError(format!(
            "{} auth_data entries apply to this {what} (at {}); add a selector such as `name` or `endpoint` so that exactly one does",
            many.len(),
            many.iter()
                .map(|e| e.location.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{LoadLimits, load_str};
    use std::path::Path;

    #[test]
    fn the_one_matching_entry_is_selected_and_ambiguity_is_an_error() {
        let text = "resource:\n  - type: ec2\n    auth_data: {accesskey: A, secretkey: S}\n  - type: nova\n    name: x\n    auth_data: {username: u, password: p}\n  - type: nova\n    auth_data: {username: v, password: q}\n";
        let mut d = Diagnostics::default();
        let yaml = load_str(
            text,
            Path::new("auth.yaml").into(),
            LoadLimits::default(),
            &mut d,
        )
        .unwrap();
        let auth = AuthData::from_yaml(&yaml, &mut d);
        assert!(d.is_empty(), "{d}");
        let resource = |json: Json| json.as_object().unwrap().clone();
        let ec2 = auth
            .select(&resource(
                serde_json::json!({"type": "ec2", "endpoint": "e"}),
            ))
            .unwrap();
        assert_eq!(
            ec2,
            Credentials::new([
                ("accesskey".into(), "A".into()),
                ("secretkey".into(), "S".into())
            ])
        );
        assert!(!format!("{auth:?}").contains("S}"));
        let error = auth
            .select(&resource(serde_json::json!({"type": "nova", "name": "x"})))
            .unwrap_err();
        assert!(error.to_string().contains("2 auth_data entries"), "{error}");
        let none = auth
            .select(&resource(serde_json::json!({"type": "local"})))
            .unwrap();
        assert_eq!(none, Credentials::default());
    }
}
