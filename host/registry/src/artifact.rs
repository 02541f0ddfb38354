//! A component as an OCI artifact: its config (the Wasm OCI artifact layout's
//! `application/vnd.wasm.config.v0+json`) and the manifest's annotations,
//! which say what occopus plugin it is without downloading it.

use serde::Serialize;
use std::collections::BTreeMap;

/// The media type of the one layer: the component's bytes.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The media type of the artifact's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// Annotation: the plugin's kind (`driver`, `contextualiser`, `config-manager`).
pub const KIND_ANNOTATION: &str = "dev.occopus.plugin.kind";
/// Annotation: the `occopus:plugin` contract version it was built against.
pub const CONTRACT_ANNOTATION: &str = "dev.occopus.plugin.contract";
/// Annotation: the types it serves, comma-separated.
pub const TYPES_ANNOTATION: &str = "dev.occopus.plugin.types";

/// What is told about a component pushed.
#[derive(Debug, Clone, Default)]
pub struct ComponentInfo {
    /// The plugin's name (the image title).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// `driver`, `contextualiser` or `config-manager`.
    pub kind: String,
    /// The contract version.
    pub contract: String,
    /// The types it serves.
    pub types: Vec<String>,
    /// The interfaces the component imports (`wasi:http/outgoing-handler@0.2.6`, ...).
    pub imports: Vec<String>,
    /// The interfaces it exports (`occopus:plugin/driver@0.1.3`, ...).
    pub exports: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    created: &'a str,
    architecture: &'static str,
    os: &'static str,
    layer_digests: [&'a str; 1],
    component: ComponentSection<'a>,
}

#[derive(Serialize)]
struct ComponentSection<'a> {
    exports: &'a [String],
    imports: &'a [String],
}

impl ComponentInfo {
    /// The artifact's config for a layer of digest `layer_digest`.
    pub(crate) fn config(&self, layer_digest: &str, created: &str) -> Vec<u8> {
        serde_json::to_vec(&WasmConfig {
            created,
            architecture: "wasm",
            os: "wasip2",
            layer_digests: [layer_digest],
            component: ComponentSection {
                exports: &self.exports,
                imports: &self.imports,
            },
        })
        .expect("a config serializes")
    }

    /// The manifest's annotations.
    pub(crate) fn annotations(&self, created: &str) -> BTreeMap<String, String> {
        [
            ("org.opencontainers.image.title", self.name.clone()),
            ("org.opencontainers.image.version", self.version.clone()),
            ("org.opencontainers.image.created", created.to_owned()),
            (KIND_ANNOTATION, self.kind.clone()),
            (CONTRACT_ANNOTATION, self.contract.clone()),
            (TYPES_ANNOTATION, self.types.join(",")),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_follows_the_wasm_artifact_layout() {
        let info = ComponentInfo {
            name: "dummy".into(),
            exports: vec!["occopus:plugin/driver@0.1.3".into()],
            ..ComponentInfo::default()
        };
        let config: serde_json::Value =
            serde_json::from_slice(&info.config("sha256:ab", "2026-12-03T00:00:00Z")).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["layerDigests"][0], "sha256:ab");
        assert_eq!(
            config["component"]["exports"][0],
            "occopus:plugin/driver@0.1.3"
        );
        assert_eq!(config["created"], "2026-12-03T00:00:00Z");
    }
}
