//! Rendering a node's sections for one of its instances, and a dry render
//! of every template of a description with placeholder addresses, so that
//! undefined names and syntax errors show up before anything is created.

use crate::diagnostics::Diagnostics;
use crate::infra::NodeSpec;
use crate::model::Model;
use crate::node_def::Implementation;
use crate::template::{AddressBook, NodeContext, Renderer, TemplateError};
use crate::yaml::Yaml;
use occopus_types::InstanceAddresses;
use std::sync::Arc;

/// Addresses for a dry render: every node of the infra has one instance at a
/// loopback address (no traffic is ever sent to it, and were a rendered
/// script run by hand, it would not reach another machine).
struct Placeholders(Vec<String>);

impl AddressBook for Placeholders {
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
        let index = self.0.iter().position(|n| n == node)?;
        Some(vec![InstanceAddresses {
            public: vec![format!("127.100.0.{}", 1 + index % 254)],
            private: vec![format!("127.101.0.{}", 1 + index % 254)],
        }])
    }
}

/// Renders every template of every node with placeholder addresses, so that
/// undefined names and syntax errors show up before anything is created.
pub fn dry_render(model: &Model, renderer: &Renderer, diagnostics: &mut Diagnostics) {
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
        let ip = [("ip", serde_json::Value::from("127.100.0.1"))];
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
    node: &NodeSpec,
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
) -> Result<RenderedSections, TemplateError> {
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
