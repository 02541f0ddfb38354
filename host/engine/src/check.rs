//! The checks of a model that need the installed plugins: each resource,
//! contextualisation and config-management section against its plugin's JSON
//! schema (errors located at the offending key), the driver's own `validate`,
//! and a dry render of every template of every node, with placeholder
//! addresses and the names each config manager resolves from its section as
//! written. `validate` and `build` run the same checks: a file
//! that validates is not refused by build for any reason knowable before the
//! first cloud call.

use crate::config_management::resolved_as_written;
use crate::error::EngineError;
use occopus_model::render::dry_render;
use occopus_model::{Diagnostics, Implementation, Model, Renderer, Yaml};
use occopus_types::Plugins;
use std::collections::HashMap;

/// Runs the plugin checks and the dry render, adding to `diagnostics`.
pub async fn check_with_plugins(
    model: &Model,
    plugins: &dyn Plugins,
    renderer: &Renderer,
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
            check_implementation(implementation, plugins, &mut schemas, diagnostics).await;
        }
    }
    let resolved = resolved_as_written(model, plugins).await;
    dry_render(model, renderer, &resolved, diagnostics);
    diagnostics.sort();
}

async fn check_implementation(
    implementation: &Implementation,
    plugins: &dyn Plugins,
    schemas: &mut SchemaCache,
    diagnostics: &mut Diagnostics,
) {
    let resource = &implementation.resource;
    let type_location = resource
        .get("type")
        .map_or(&resource.location, |t| &t.location);
    match plugins.driver(&implementation.resource_type) {
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
        Err(error) => diagnostics.error(type_location, error.to_string(), INSTALL_PLUGIN),
    }
    if let Some(section) = &implementation.contextualisation
        && let Some(kind) = implementation.contextualisation_type()
    {
        let type_location = section
            .get("type")
            .map_or(&section.location, |t| &t.location);
        match plugins.contextualiser(kind) {
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
            Err(error) => diagnostics.error(type_location, error.to_string(), INSTALL_PLUGIN),
        }
    }
    if let Some(section) = &implementation.config_management
        && let Some(kind) = implementation.config_management_type()
    {
        let type_location = section
            .get("type")
            .map_or(&section.location, |t| &t.location);
        match plugins.config_manager(kind) {
            Ok(plugin) => {
                let info = plugin.info();
                schemas.check(
                    &info.name,
                    &info.config_schema,
                    section,
                    "config_management",
                    diagnostics,
                );
            }
            Err(error) => diagnostics.error(type_location, error.to_string(), INSTALL_PLUGIN),
        }
    }
}

/// What to do about a section no installed plugin serves.
const INSTALL_PLUGIN: &str = "install a plugin for it (see `occopus plugins list`)";

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

/// The checks `build` runs before anything is created: the same as
/// `validate`'s.
pub(crate) async fn check_buildable(
    model: &Model,
    plugins: &dyn Plugins,
    renderer: &Renderer,
) -> Result<(), EngineError> {
    let mut diagnostics = Diagnostics::default();
    check_with_plugins(model, plugins, renderer, &mut diagnostics).await;
    if diagnostics.has_errors() {
        return Err(EngineError::Invalid(diagnostics));
    }
    Ok(())
}
