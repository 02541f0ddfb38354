//! The checks that need the installed plugins: each resource and
//! contextualisation section against its plugin's JSON schema (errors located
//! at the offending key), the driver's own `validate`, and a dry render of
//! every template of every node, with placeholder addresses.

use super::{Diagnostics, Implementation, Location, Model, Yaml};
use crate::plugin::PluginCatalog;
use crate::template::{AddressBook, InstanceAddresses, NodeContext, Renderer};
use std::collections::HashMap;
use std::sync::Arc;

/// How strict to be about what is not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// `occopus validate`: a resource type without a driver is a warning.
    Validate,
    /// `occopus build`: every node needs its driver and contextualiser.
    Build,
}

/// Config-management types occopus knows (they only add template names).
const CONFIG_MANAGEMENT_TYPES: &[&str] = &["puppet_solo", "chef"];

/// Runs the plugin checks and the dry render, adding to `diagnostics`.
pub async fn check_with_plugins(
    model: &Model,
    catalog: &PluginCatalog,
    renderer: &Renderer,
    strictness: Strictness,
    diagnostics: &mut Diagnostics,
) {
    let mut schemas = SchemaCache::default();
    // Every implementation of every type the infra uses (not only the chosen
    // one): a broken alternative is still a broken file.
    let mut seen_types = std::collections::BTreeSet::new();
    for node in &model.infra.nodes {
        if !seen_types.insert(node.node_type.as_str()) {
            continue;
        }
        for implementation in model
            .definitions
            .types
            .get(&node.node_type)
            .into_iter()
            .flatten()
        {
            check_implementation(
                implementation,
                catalog,
                &mut schemas,
                strictness,
                diagnostics,
            )
            .await;
        }
    }
    dry_render(model, renderer, diagnostics);
    diagnostics.sort();
}

async fn check_implementation(
    implementation: &Implementation,
    catalog: &PluginCatalog,
    schemas: &mut SchemaCache,
    strictness: Strictness,
    diagnostics: &mut Diagnostics,
) {
    let resource = &implementation.resource;
    let type_location = resource
        .get("type")
        .map_or(&resource.location, |t| &t.location);
    match catalog.driver(&implementation.resource_type) {
        Ok(driver) => {
            let before = diagnostics.counts().0;
            let schema = &driver.info().resource_schema;
            schemas.check(
                &driver.info().name,
                schema,
                resource,
                "resource",
                diagnostics,
            );
            // The driver's own checks, once the shape is right.
            if diagnostics.counts().0 == before
                && let Err(error) = driver.validate(&implementation.resource_json()).await
            {
                diagnostics.error(
                    &resource.location,
                    error.to_string(),
                    format!(
                        "fix this `{}` resource section",
                        implementation.resource_type
                    ),
                );
            }
        }
        Err(error) => missing(
            strictness,
            type_location,
            error.to_string(),
            "resource section",
            diagnostics,
        ),
    }
    if let Some(section) = &implementation.contextualisation
        && let Some(kind) = implementation.contextualisation_type()
    {
        let type_location = section
            .get("type")
            .map_or(&section.location, |t| &t.location);
        match catalog.contextualiser(kind) {
            Ok(plugin) => {
                let info = plugin.info();
                schemas.check(
                    &info.name,
                    &info.context_schema,
                    section,
                    "contextualisation",
                    diagnostics,
                );
            }
            Err(error) => missing(
                strictness,
                type_location,
                error.to_string(),
                "contextualisation section",
                diagnostics,
            ),
        }
    }
    if let Some(section) = &implementation.config_management
        && let Some(kind) = section.get("type").and_then(Yaml::as_str)
        && !CONFIG_MANAGEMENT_TYPES.contains(&kind)
    {
        diagnostics.error(
            &section.location,
            format!("unknown config_management type `{kind}`"),
            format!("use one of: {}", CONFIG_MANAGEMENT_TYPES.join(", ")),
        );
    }
}

fn missing(
    strictness: Strictness,
    location: &Location,
    message: String,
    what: &str,
    diagnostics: &mut Diagnostics,
) {
    match strictness {
        Strictness::Validate => diagnostics.warning(
            location,
            format!("{message}; this {what} was not checked"),
            "install a plugin for it (see `occopus plugins list`) to check it and to build",
        ),
        Strictness::Build => diagnostics.error(
            location,
            message,
            "install a plugin for it (see `occopus plugins list`)",
        ),
    }
}

/// Compiled schemas, by section and plugin name (a driver and a
/// contextualiser may share a name, as `docker` does).
#[derive(Default)]
struct SchemaCache(HashMap<(String, String), Option<jsonschema::Validator>>);

impl SchemaCache {
    fn check(
        &mut self,
        plugin: &str,
        schema: &str,
        section: &Yaml,
        what: &str,
        diagnostics: &mut Diagnostics,
    ) {
        let key = (what.to_owned(), plugin.to_owned());
        let validator = self.0.entry(key).or_insert_with(|| {
            let schema: serde_json::Value = serde_json::from_str(schema).ok()?;
            jsonschema::validator_for(&schema)
                .inspect_err(
                    |e| tracing::warn!(plugin, error = %e, "plugin schema does not compile"),
                )
                .ok()
        });
        let Some(validator) = validator else {
            return;
        };
        let instance = section.to_json();
        for error in validator.iter_errors(&instance) {
            let pointer = error.instance_path().as_str().to_string();
            let at = section.pointer(&pointer).unwrap_or(section);
            let (location, message) = match error.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let key = unexpected.first().cloned().unwrap_or_default();
                    (
                        at.key_location(&key).clone(),
                        format!(
                            "unknown key `{}` in this {what} (plugin `{plugin}`)",
                            unexpected.join("`, `")
                        ),
                    )
                }
                _ => {
                    let place = if pointer.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " at `{}`",
                            pointer.trim_start_matches('/').replace('/', ".")
                        )
                    };
                    (
                        at.location.clone(),
                        format!("{what}{place}: {error} (plugin `{plugin}`)"),
                    )
                }
            };
            diagnostics.error(
                &location,
                message,
                format!("see the schema with `occopus plugins inspect {plugin}`"),
            );
        }
    }
}

/// Addresses for a dry render: every node of the infra has one instance at a
/// documentation address (no traffic is ever sent to it).
struct Placeholders(Vec<String>);

impl AddressBook for Placeholders {
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
        let index = self.0.iter().position(|n| n == node)?;
        Some(vec![InstanceAddresses {
            public: vec![format!("192.0.2.{}", 1 + index % 254)],
            private: vec![format!("198.51.100.{}", 1 + index % 254)],
        }])
    }
}

/// Renders every template of every node with placeholder addresses, so that
/// undefined names and syntax errors show up before anything is created.
fn dry_render(model: &Model, renderer: &Renderer, diagnostics: &mut Diagnostics) {
    let book: Arc<dyn AddressBook> = Arc::new(Placeholders(
        model.infra.nodes.iter().map(|n| n.name.clone()).collect(),
    ));
    for node in &model.infra.nodes {
        let Some(implementation) = model.implementation(&node.name) else {
            continue;
        };
        let context = node_context(
            model,
            node,
            implementation,
            "dry-run",
            &format!("{}-dry-run", node.name),
        );
        let ip = [("ip", serde_json::Value::from("192.0.2.1"))];
        let health = implementation
            .health_check_yaml
            .as_ref()
            .map(|section| renderer.render_yaml(section, &context, book.clone(), &ip));
        let results = [
            render_sections(renderer, implementation, &context, &book).map(drop),
            health.map_or(Ok(()), |r| r.map(drop)),
        ];
        for error in results.into_iter().filter_map(Result::err) {
            diagnostics.error(&error.location, error.describe(), "fix the template");
        }
    }
}

/// The template context of an instance of `node`.
pub fn node_context(
    model: &Model,
    node: &super::NodeSpec,
    implementation: &Implementation,
    infra_id: &str,
    instance_id: &str,
) -> NodeContext {
    let mut extra = serde_json::Map::new();
    extra.insert("type".into(), node.node_type.clone().into());
    extra.insert(
        "scaling".into(),
        serde_json::to_value(node.scaling).unwrap_or_default(),
    );
    extra.insert(
        "filter".into(),
        serde_json::Value::Object(node.filter.clone()),
    );
    extra.insert("resource".into(), implementation.resource.to_json());
    if let Some(cm) = &implementation.config_management {
        extra.insert("config_management".into(), cm.to_json());
        if cm.get("type").and_then(Yaml::as_str) == Some("puppet_solo") {
            extra.insert("puppet".into(), puppet_names(cm));
        }
    }
    NodeContext {
        infra_id: infra_id.to_string(),
        infra_name: model.infra.name.clone(),
        user_id: model.infra.user_id.clone(),
        name: node.name.clone(),
        node_id: instance_id.to_string(),
        variables: node.variables.clone(),
        extra,
    }
}

/// Occopus's `puppet.{manifests,modules,attributes}`: each list space-joined.
fn puppet_names(section: &Yaml) -> serde_json::Value {
    let joined = |key: &str| {
        section
            .get(key)
            .map(|v| match v.to_json() {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_string),
            })
            .unwrap_or_default()
    };
    serde_json::json!({
        "manifests": joined("manifests"),
        "modules": joined("modules"),
        "attributes": joined("attributes"),
    })
}

/// A node's rendered sections.
#[derive(Debug, Clone)]
pub struct RenderedSections {
    /// The resource section, rendered.
    pub resource: serde_json::Map<String, serde_json::Value>,
    /// The contextualisation section, rendered.
    pub contextualisation: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Renders a node's resource, contextualisation and config-management
/// sections. Health-check URLs are rendered later, with the node's own `ip`.
pub fn render_sections(
    renderer: &Renderer,
    implementation: &Implementation,
    context: &NodeContext,
    book: &Arc<dyn AddressBook>,
) -> Result<RenderedSections, crate::template::TemplateError> {
    let object = |json: serde_json::Value| match json {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let resource =
        object(renderer.render_yaml(&implementation.resource, context, book.clone(), &[])?);
    let contextualisation = implementation
        .contextualisation
        .as_ref()
        .map(|section| {
            renderer
                .render_yaml(section, context, book.clone(), &[])
                .map(object)
        })
        .transpose()?;
    if let Some(cm) = &implementation.config_management {
        renderer.render_yaml(cm, context, book.clone(), &[])?;
    }
    Ok(RenderedSections {
        resource,
        contextualisation,
    })
}
