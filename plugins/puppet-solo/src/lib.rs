//! Occopus's `puppet_solo` config manager: no server. It gives the node's
//! templates `puppet.modules`, `puppet.manifests` and `puppet.attributes`,
//! made exactly as Occopus makes them from the rendered section: the items of
//! each list joined by spaces, each item as Python 3's `str()` shows it (a
//! mapping reads `{'dbuser': 'wp'}`). The text matters: the
//! puppet-solo-wordpress tutorial's cloud-init turns the attributes into Hiera
//! data with `sed`, expecting exactly that shape. Every node is `ready` as far
//! as Puppet goes (as in Occopus): the node's health checks say when the
//! `puppet apply` its cloud-init runs has done its work.

mod python;

use occopus_plugin_sdk::config_manager::*;
use python::PyValue;

struct PuppetSolo;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "puppet_solo config_management section",
  "type": "object",
  "required": ["type", "manifests"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "puppet_solo"},
    "manifests": {"description": "Manifests the node applies; `puppet.manifests` joins them with spaces."},
    "modules": {"description": "Puppet modules the node installs; `puppet.modules` joins them with spaces."},
    "attributes": {"description": "Values for the manifests; `puppet.attributes` joins Python's str() of each with spaces."}
  }
}"#;

impl ConfigManager for PuppetSolo {
    fn describe() -> ConfigManagerInfo {
        ConfigManagerInfo {
            name: "puppet_solo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_types: vec!["puppet_solo".into()],
            config_schema: SCHEMA.into(),
        }
    }

    fn prepare_infra(_: Target, _: InfraFacts) -> Result<(), PluginError> {
        Ok(())
    }

    fn resolve_attributes(target: Target, _: NodeFacts) -> Result<String, PluginError> {
        let section = PyValue::parse(&target.section)?;
        Ok(serde_json::json!({ "puppet": names(&section) }).to_string())
    }

    fn register_node(_: Target, _: NodeFacts) -> Result<(), PluginError> {
        Ok(())
    }

    fn node_state(_: Target, _: NodeFacts) -> Result<ConfigState, PluginError> {
        Ok(ConfigState::Ready)
    }

    fn drop_node(_: Target, _: NodeFacts) -> Result<(), PluginError> {
        Ok(())
    }

    fn drop_infra(_: Target, _: InfraFacts) -> Result<(), PluginError> {
        Ok(())
    }
}

/// `{"modules": .., "manifests": .., "attributes": ..}` of a section.
fn names(section: &PyValue) -> serde_json::Value {
    let joined = |key: &str| section.get(key).map(PyValue::joined).unwrap_or_default();
    serde_json::json!({
        "modules": joined("modules"),
        "manifests": joined("manifests"),
        "attributes": joined("attributes"),
    })
}

occopus_plugin_sdk::config_manager::export_config_manager!(PuppetSolo);

#[cfg(test)]
mod tests {
    use super::*;

    /// The puppet-solo-wordpress tutorial's wordpress node, its templates
    /// rendered; the expected strings are what Occopus's puppet_solo
    /// config manager (Python 3) makes of them:
    /// `' '.join(str(k) for k in [{'dbuser': 'wp'}, ...])`.
    #[test]
    fn the_tutorials_strings_are_occopus_own() {
        let section = r#"{"type": "puppet_solo",
            "manifests": ["https://example.org/wordpress-init.pp"],
            "modules": ["example42-apache", "example42-php", "hunner-wordpress"],
            "attributes": [{"dbuser": "wp"}, {"dbpass": "s3cret"}, {"dbname": "wordpress"},
                {"mysqlhost": "127.0.0.7"}]}"#;
        let resolved = PuppetSolo::resolve_attributes(
            Target {
                section: section.into(),
                credentials: vec![],
            },
            NodeFacts {
                infra: InfraFacts {
                    infra_id: "i".into(),
                    infra_name: "demo".into(),
                },
                node_name: "wordpress".into(),
                instance_id: "wordpress-1".into(),
                attributes: "{}".into(),
            },
        )
        .unwrap();
        let names: serde_json::Value = serde_json::from_str(&resolved).unwrap();
        let names = &names["puppet"];
        assert_eq!(names["manifests"], "https://example.org/wordpress-init.pp");
        assert_eq!(
            names["modules"],
            "example42-apache example42-php hunner-wordpress"
        );
        assert_eq!(
            names["attributes"],
            "{'dbuser': 'wp'} {'dbpass': 's3cret'} {'dbname': 'wordpress'} {'mysqlhost': '127.0.0.7'}"
        );
    }

    #[test]
    fn a_section_without_lists_gives_empty_names_and_is_always_ready() {
        let names = names(&PyValue::parse(r#"{"type": "puppet_solo", "manifests": []}"#).unwrap());
        assert_eq!(
            names,
            serde_json::json!({"modules": "", "manifests": "", "attributes": ""})
        );
        assert!(PyValue::parse("not json").is_err());
    }
}
