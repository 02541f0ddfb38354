//! `cloudinit`: checks a node's rendered user-data and hands it to the driver.
//!
//! `context_template` is either text (already rendered by the host) or a mapping,
//! which becomes a `#cloud-config` document. Text must be a cloud-config whose
//! body is a YAML mapping, a script (`#!`), or another format cloud-init accepts
//! by its first line. The size limit of the target cloud is enforced here, so an
//! oversized payload fails before any instance is made.

use occopus_plugin_sdk::contextualiser::*;
use occopus_plugin_sdk::parse_section;
use serde::Deserialize;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "cloudinit contextualisation",
  "type": "object",
  "required": ["type", "context_template"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "cloudinit"},
    "context_template": {"type": ["string", "object"]},
    "attributes": {"type": "object"}
  }
}"#;

/// First lines, besides `#cloud-config` and `#!`, that cloud-init recognises.
const OTHER_FORMATS: [&str; 6] = [
    "#include",
    "#cloud-boothook",
    "#part-handler",
    "#cloud-config-archive",
    "#cloud-config-jsonp",
    "Content-Type: multipart/",
];

#[derive(Deserialize)]
struct Section {
    context_template: serde_json::Value,
}

/// The user-data size limit of a cloud, in bytes of raw (not base64) user-data.
fn size_limit(resource_type: &str) -> Option<usize> {
    match resource_type {
        // "User data is limited to 16 KB, in raw form, before it is base64-encoded."
        "ec2" => Some(16 * 1024),
        // Nova and Azure limit the base64 form to 64 KiB.
        "nova" | "azure_vm" => Some(65_535 / 4 * 3),
        _ => None,
    }
}

fn check_cloud_config(text: &str) -> Result<(), PluginError> {
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Mapping(_)) => Ok(()),
        Ok(serde_yaml::Value::Null) => Ok(()),
        Ok(other) => Err(PluginError::InvalidConfig(format!(
            "the #cloud-config document must be a YAML mapping of cloud-init keys, not {}",
            yaml_kind(&other)
        ))),
        Err(e) => Err(PluginError::InvalidConfig(format!(
            "the #cloud-config document is not valid YAML: {e}"
        ))),
    }
}

fn yaml_kind(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        _ => "a scalar",
    }
}

/// Builds the user-data text from the section's `context_template`.
fn user_data(template: serde_json::Value) -> Result<String, PluginError> {
    match template {
        serde_json::Value::String(text) => {
            let first_line = text.trim_start().lines().next().unwrap_or("");
            if first_line.trim_end() == "#cloud-config" {
                check_cloud_config(&text)?;
            } else if !first_line.starts_with("#!")
                && !OTHER_FORMATS.iter().any(|f| first_line.starts_with(f))
            {
                return Err(PluginError::InvalidConfig(format!(
                    "context_template must start with `#cloud-config` or `#!` (a script); \
                     it starts with `{}`",
                    first_line.chars().take(40).collect::<String>()
                )));
            }
            Ok(text)
        }
        mapping @ serde_json::Value::Object(_) => {
            let yaml = serde_yaml::to_string(&mapping)
                .map_err(|e| PluginError::Internal(format!("writing the cloud-config: {e}")))?;
            Ok(format!("#cloud-config\n{yaml}"))
        }
        _ => Err(PluginError::InvalidConfig(
            "context_template must be text or a mapping".into(),
        )),
    }
}

struct CloudInit;

impl Contextualiser for CloudInit {
    fn describe() -> ContextualiserInfo {
        ContextualiserInfo {
            name: "cloudinit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            context_types: vec!["cloudinit".into()],
            context_schema: SCHEMA.into(),
        }
    }

    fn contextualise(section: String, facts: NodeFacts) -> Result<Payload, PluginError> {
        let section: Section = parse_section(&section)?;
        let text = user_data(section.context_template)?;
        if let Some(limit) = size_limit(&facts.resource_type)
            && text.len() > limit
        {
            return Err(PluginError::InvalidConfig(format!(
                "the user-data of node `{}` is {} bytes; {} allows at most {limit} bytes. \
                 Move large files out of the template (download them at boot instead)",
                facts.node_name,
                text.len(),
                facts.resource_type
            )));
        }
        Ok(Payload::UserData(text))
    }
}

export_contextualiser!(CloudInit);
