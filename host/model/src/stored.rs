//! A model kept in the state database: what `maintain`, `scale` and the REST
//! service need to create instances after the files are gone or changed, and
//! what a changed description is compared with.
//!
//! The stored form is the description and the definitions of the node types
//! it uses, as JSON with imports resolved (credentials are never stored: they
//! come from `auth_data.yaml` on every run). Each node also gets a
//! *fingerprint*: a digest of everything that shapes its instances (type, the
//! merged variables its templates read, filter, chosen implementation),
//! recorded on each instance, so an instance made from an older description
//! is recognised, and one whose node does not use a changed variable is not.

use crate::auth::AuthData;
use crate::diagnostics::Diagnostics;
use crate::infra::NodeSpec;
use crate::location::Location;
use crate::model::Model;
use crate::node_def::NodeDefinitions;
use crate::template::variables_used;
use crate::yaml::Yaml;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::path::Path;

impl Model {
    /// The model as stored: `{"infra": ..., "node_definitions": ...}`.
    pub fn to_stored(&self) -> Json {
        let mut definitions = serde_json::Map::new();
        for node in &self.infra.nodes {
            if let Some(implementations) = self.definitions.types.get(&node.node_type) {
                definitions.insert(
                    format!("node_def:{}", node.node_type),
                    implementations.iter().map(|i| i.to_json()).collect(),
                );
            }
        }
        json!({ "infra": self.infra.source, "node_definitions": definitions })
    }

    /// Reads a model stored by [`Model::to_stored`] for infra `infra_id`,
    /// with today's credentials.
    pub fn from_stored(
        stored: &Json,
        infra_id: &str,
        auth: AuthData,
    ) -> Result<Model, Diagnostics> {
        let location = Location::start_of(
            Path::new(&format!("<description stored for infra {infra_id}>")).into(),
        );
        let mut diagnostics = Diagnostics::default();
        let infra = stored.get("infra").map(|i| Yaml::from_json(i, &location));
        let definitions = stored
            .get("node_definitions")
            .map(|d| NodeDefinitions::from_yaml(&Yaml::from_json(d, &location), &mut diagnostics))
            .unwrap_or_default();
        let model = Model::assemble(infra.as_ref(), definitions, auth, &mut diagnostics);
        match model {
            Some(model) if !diagnostics.has_errors() => Ok(model),
            _ => {
                if !diagnostics.has_errors() {
                    diagnostics.error(
                        &location,
                        "the stored description has no `infra`",
                        "build the infrastructure again from its files",
                    );
                }
                Err(diagnostics)
            }
        }
    }

    /// Everything that shapes `node`'s instances, as JSON: its type, the
    /// merged variables its templates read (all, when they may read any),
    /// filter and chosen implementation.
    pub fn node_basis(&self, node: &NodeSpec) -> Json {
        let implementation = self.implementation(&node.name).map(|i| i.to_json());
        let mut texts = Vec::new();
        if let Some(implementation) = &implementation {
            strings_in(implementation, &mut texts);
        }
        let variables = match variables_used(texts.into_iter()) {
            Some(used) => Json::Object(
                node.variables
                    .iter()
                    .filter(|(key, _)| used.contains(*key))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            ),
            None => Json::Object(node.variables.clone()),
        };
        json!({
            "type": node.node_type,
            "variables": variables,
            "filter": node.filter,
            "implementation": implementation,
        })
    }

    /// A digest of [`Model::node_basis`].
    pub fn fingerprint(&self, node: &NodeSpec) -> String {
        fingerprint_of(&self.node_basis(node))
    }

    /// The fingerprint occopus recorded on instances before it counted only
    /// the variables a node's templates read (all merged variables): an
    /// instance recorded with it is as current as one with
    /// [`Model::fingerprint`], so an upgrade replaces nothing.
    pub fn fingerprint_with_every_variable(&self, node: &NodeSpec) -> String {
        fingerprint_of(&json!({
            "type": node.node_type,
            "variables": node.variables,
            "filter": node.filter,
            "implementation": self.implementation(&node.name).map(|i| i.to_json()),
        }))
    }
}

/// Every string in `json`, for the templates among them.
fn strings_in<'a>(json: &'a Json, found: &mut Vec<&'a str>) {
    match json {
        Json::String(text) => found.push(text),
        Json::Array(items) => items.iter().for_each(|item| strings_in(item, found)),
        Json::Object(map) => map.values().for_each(|value| strings_in(value, found)),
        _ => {}
    }
}

/// A digest of a node basis (hex, 16 characters: collisions do not matter
/// at the scale of one node's history): of its compact JSON, so a value
/// serialized in place digests as the same JSON built as a `Value` would.
pub fn fingerprint_of(basis: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(basis).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs between two node bases, in words ("variables.version",
/// "implementation"), for plans.
pub fn basis_changes(old: &Json, new: &Json) -> Vec<String> {
    let mut changes = Vec::new();
    for key in ["type", "filter", "implementation"] {
        if old.get(key) != new.get(key) {
            changes.push(key.to_string());
        }
    }
    let empty = serde_json::Map::new();
    let variables = |basis: &Json| basis.get("variables").and_then(Json::as_object).cloned();
    let (old_vars, new_vars) = (
        variables(old).unwrap_or_else(|| empty.clone()),
        variables(new).unwrap_or(empty),
    );
    let mut keys: Vec<&String> = old_vars.keys().chain(new_vars.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if old_vars.get(key) != new_vars.get(key) {
            changes.push(format!("variables.{key}"));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_the_variables_and_sections_that_differ() {
        let old = json!({"type": "t", "variables": {"a": 1, "b": 2}, "filter": {}, "implementation": {"resource": {"type": "dummy"}}});
        let new = json!({"type": "t", "variables": {"a": 1, "b": 3, "c": 0}, "filter": {}, "implementation": {"resource": {"type": "local"}}});
        assert_eq!(
            basis_changes(&old, &new),
            ["implementation", "variables.b", "variables.c"]
        );
        assert!(basis_changes(&old, &old).is_empty());
        assert_ne!(fingerprint_of(&old), fingerprint_of(&new));
        assert_eq!(fingerprint_of(&old).len(), 16);
    }
}
