//! Rendering a node's sections for one of its instances, and a dry render
//! of every template of a description with placeholder addresses, so that
//! undefined names and syntax errors show up before anything is created.

use crate::diagnostics::Diagnostics;
use crate::infra::{Dependency, NodeSpec};
use crate::model::Model;
use crate::node_def::Implementation;
use crate::stored::fingerprint_of;
use crate::template::{AddressBook, NodeContext, Renderer, TemplateError};
use crate::yaml::{Value, Yaml};
use occopus_types::InstanceAddresses;
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Addresses for a dry render of one node: a placeholder instance for each
/// node in `with_address` at a loopback address (no traffic is ever sent to
/// it, and were a rendered script run by hand, it would not reach another
/// machine); any other node of the infra has none yet. Every node asked for
/// is noted, so that a template's use of another node's address is known.
struct Placeholders {
    /// Every node of the infra, in file order (a node's index gives its address).
    nodes: Vec<String>,
    /// The nodes that have an instance.
    with_address: BTreeSet<String>,
    /// The nodes whose addresses were asked for.
    asked: Mutex<BTreeSet<String>>,
}

impl AddressBook for Placeholders {
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
        let index = self.nodes.iter().position(|n| n == node)?;
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(node.to_string());
        }
        if !self.with_address.contains(node) {
            return Some(Vec::new());
        }
        Some(vec![InstanceAddresses {
            public: vec![format!("127.100.0.{}", 1 + index % 254)],
            private: vec![format!("127.101.0.{}", 1 + index % 254)],
        }])
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }
}

/// The nodes `node` depends on, directly or through others.
fn dependencies(model: &Model, node: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut next = vec![node];
    while let Some(current) = next.pop() {
        for dependency in model.infra.dependencies_of(current) {
            if found.insert(dependency.to_string()) {
                next.push(dependency);
            }
        }
    }
    found
}

/// The names a config manager resolved for one instance: the top-level
/// template names they add (puppet_solo's `puppet`).
pub type ResolvedNames = serde_json::Map<String, Json>;

/// Renders every template of `node` (its sections, and its health checks
/// with a placeholder `ip`) with addresses for `with_address` and the names
/// its config manager `resolved`; returns the errors and the nodes whose
/// addresses the templates asked for.
fn render_with_placeholders(
    model: &Model,
    renderer: &Renderer,
    node: &NodeSpec,
    implementation: &Implementation,
    with_address: BTreeSet<String>,
    resolved: Option<&ResolvedNames>,
) -> (Vec<TemplateError>, BTreeSet<String>) {
    let book = Arc::new(Placeholders {
        nodes: model.infra.nodes.iter().map(|n| n.name.clone()).collect(),
        with_address,
        asked: Mutex::new(BTreeSet::new()),
    });
    let shared: Arc<dyn AddressBook> = book.clone();
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
        .map(|section| renderer.render_yaml(section, &context, shared.clone(), &ip));
    let sections =
        render_config_management(renderer, implementation, &context, &shared).and_then(|config| {
            let names = resolved.cloned().unwrap_or_default();
            let context = with_config_names(&context, config, names);
            render_sections(renderer, implementation, &context, &shared)
        });
    let errors = [sections.map(drop), health.map_or(Ok(()), |r| r.map(drop))]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    let asked = book.asked.lock().map(|a| a.clone()).unwrap_or_default();
    (errors, asked)
}

/// Renders every template of every node with placeholder addresses for the
/// nodes it depends on (only those are sure to exist when it is created), so
/// that undefined names, syntax errors and addresses that will not exist yet
/// show up before anything is created. `resolved` holds, by node, the names
/// its config manager resolved from its section as written.
pub fn dry_render(
    model: &Model,
    renderer: &Renderer,
    resolved: &HashMap<String, ResolvedNames>,
    diagnostics: &mut Diagnostics,
) {
    for node in &model.infra.nodes {
        let Some(implementation) = model.implementation(&node.name) else {
            continue;
        };
        let with_address = dependencies(model, &node.name);
        let (errors, _) = render_with_placeholders(
            model,
            renderer,
            node,
            implementation,
            with_address,
            resolved.get(&node.name),
        );
        for error in errors {
            diagnostics.error(&error.location, error.describe(), &error.help);
        }
    }
}

/// The other nodes whose addresses `node`'s templates read (`getip`,
/// `getprivip`, `getipall`), found by rendering them with placeholders
/// (without `cmd()`: a read after a `cmd()` call in the same string is not
/// seen). Undefined names render empty here, so that a name only a config
/// manager provides (puppet_solo's `puppet`) does not hide a read after it.
pub fn addresses_read(model: &Model, node: &NodeSpec) -> BTreeSet<String> {
    let Some(implementation) = model.implementation(&node.name) else {
        return BTreeSet::new();
    };
    let everyone: BTreeSet<String> = model.infra.nodes.iter().map(|n| n.name.clone()).collect();
    let (_, mut asked) = render_with_placeholders(
        model,
        &Renderer::scanning(),
        node,
        implementation,
        everyone,
        None,
    );
    asked.remove(&node.name);
    asked
}

/// The dependencies a node's templates imply: each other node whose address
/// they ask for (`getip`, `getprivip`, `getipall`) that the node does not
/// already depend on, directly or not. Occopus's tutorials rely on this
/// (puppet-solo-wordpress renders `getip('puppet-solo-mysql')` in a node that
/// lists no dependency: the original happened to create the nodes in file
/// order); here the node waits for the one whose address it uses. Located at
/// the section that asks.
pub fn implied_dependencies(model: &Model) -> Vec<Dependency> {
    let mut implied = Vec::new();
    for node in &model.infra.nodes {
        let Some(implementation) = model.implementation(&node.name) else {
            continue;
        };
        let Some(asked) = model.addresses_read.get(&node.name) else {
            continue;
        };
        let known = dependencies(model, &node.name);
        let location = implementation
            .contextualisation
            .as_ref()
            .map_or(&implementation.location, |c| &c.location);
        for other in asked {
            if !known.contains(other) {
                implied.push(Dependency {
                    dependent: node.name.clone(),
                    dependency: other.clone(),
                    location: location.clone(),
                    mappings: Vec::new(),
                });
            }
        }
    }
    implied
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
    }
    NodeContext {
        infra_id: infra_id.to_string(),
        infra_name: model.infra.name.clone(),
        user_id: model.infra.user_id.clone(),
        name: node.name.clone(),
        node_id: instance_id.to_string(),
        variables: Arc::new(node.variables.clone()),
        extra: Arc::new(extra),
    }
}

/// A node's rendered sections.
#[derive(Debug, Clone)]
pub struct RenderedSections {
    /// The resource section, rendered.
    pub resource: serde_json::Map<String, serde_json::Value>,
    /// The contextualisation section, rendered.
    pub contextualisation: Option<serde_json::Map<String, serde_json::Value>>,
}

impl RenderedSections {
    /// A digest of the sections: another one for the same instance means its
    /// templates now render otherwise (the addresses they read changed).
    pub fn digest(&self) -> String {
        /// The sections as `{"contextualisation", "resource"}`, serialized
        /// in place (not copied into a `Value` for each instance): the
        /// fields in the order a JSON object's sorted keys take, so that
        /// the digests stored by earlier versions stay the same.
        #[derive(serde::Serialize)]
        struct Sections<'a> {
            contextualisation: &'a Option<serde_json::Map<String, serde_json::Value>>,
            resource: &'a serde_json::Map<String, serde_json::Value>,
        }
        fingerprint_of(&Sections {
            contextualisation: &self.contextualisation,
            resource: &self.resource,
        })
    }
}

/// Renders a node's `config_management` section, if it has one. As Occopus
/// does, it is rendered before the others, which see it rendered (see
/// [`with_config_names`]) along with what its config manager resolved.
pub fn render_config_management(
    renderer: &Renderer,
    implementation: &Implementation,
    context: &NodeContext,
    book: &Arc<dyn AddressBook>,
) -> Result<Option<Json>, TemplateError> {
    implementation
        .config_management
        .as_ref()
        .map(|section| renderer.render_yaml(section, context, book.clone(), &[]))
        .transpose()
}

/// The context the node's other sections render in: its config-management
/// section as `rendered`, plus the names its config manager `resolved`.
pub fn with_config_names(
    context: &NodeContext,
    rendered: Option<Json>,
    resolved: ResolvedNames,
) -> NodeContext {
    let mut context = context.clone();
    let extra = Arc::make_mut(&mut context.extra);
    if let Some(rendered) = rendered {
        extra.insert("config_management".into(), rendered);
    }
    extra.extend(resolved);
    context
}

/// A rendered section as JSON text whose mapping keys keep the order of the
/// section as written (`raw`): the JSON values here forget it, and a config
/// manager may depend on it (puppet_solo joins a mapping's keys in order).
pub fn ordered_json(raw: &Yaml, rendered: &Json) -> String {
    let mut out = String::new();
    write_ordered(raw, rendered, &mut out);
    out
}

fn write_ordered(raw: &Yaml, rendered: &Json, out: &mut String) {
    match (&raw.value, rendered) {
        (Value::Map(entries), Json::Object(values)) => {
            out.push('{');
            let keys = entries.iter().map(|(key, raw)| (key.key_text(), raw));
            for (index, (key, raw)) in keys.filter(|(k, _)| values.contains_key(k)).enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(key.clone()).to_string());
                out.push(':');
                write_ordered(raw, &values[&key], out);
            }
            out.push('}');
        }
        (Value::Seq(items), Json::Array(values)) => {
            out.push('[');
            for (index, (raw, value)) in items.iter().zip(values).enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_ordered(raw, value, out);
            }
            out.push(']');
        }
        _ => out.push_str(&rendered.to_string()),
    }
}

/// Renders a node's resource and contextualisation sections, in a context
/// made by [`with_config_names`] when the node has a config-management
/// section. Health-check URLs are rendered later, with the node's own `ip`.
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
    Ok(RenderedSections {
        resource,
        contextualisation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_digest_is_the_one_earlier_versions_stored() {
        let object = |value: serde_json::Value| value.as_object().unwrap().clone();
        let resource = object(json!({"type": "dummy", "boot_time": 0.2, "tags": ["a", "b"]}));
        let contextualisation = object(json!({"type": "cloudinit", "context_template": "x: 1"}));
        for contextualisation in [None, Some(contextualisation)] {
            let sections = RenderedSections {
                resource: resource.clone(),
                contextualisation: contextualisation.clone(),
            };
            // How the digest was made before: a JSON object built, then printed.
            let stored = fingerprint_of(&json!({
                "resource": resource,
                "contextualisation": contextualisation,
            }));
            assert_eq!(sections.digest(), stored);
        }
    }
}
