//! Reading a model: the files loaded, the description checked, an
//! implementation chosen for each node, and the dependencies its templates
//! imply added (which needs the dry render, hence a module apart from the
//! model's type).

use crate::auth::AuthData;
use crate::diagnostics::Diagnostics;
use crate::infra::InfraDescription;
use crate::model::{Model, Sources};
use crate::node_def::NodeDefinitions;
use crate::render::{addresses_read, implied_dependencies};
use crate::yaml::{self, LoadLimits, Yaml};
use std::collections::BTreeMap;

impl Model {
    /// Reads and cross-checks the files; `imported` are definitions stored by
    /// `occopus import`. Returns the model (when it could be built at all) and
    /// every problem found.
    pub fn load(
        sources: &Sources,
        imported: NodeDefinitions,
        limits: LoadLimits,
    ) -> (Option<Model>, Diagnostics) {
        let mut diagnostics = Diagnostics::default();
        let infra_limits = LoadLimits {
            imports: sources.imports.clone(),
            ..limits.clone()
        };
        let infra_yaml = match &sources.infra_text {
            Some(text) => yaml::load_str(
                text,
                sources.infra.as_path().into(),
                infra_limits,
                &mut diagnostics,
            ),
            None => yaml::load_file(&sources.infra, infra_limits, &mut diagnostics),
        };
        let mut definitions = imported;
        for path in sources.node_files() {
            match yaml::load_file(&path, limits.clone(), &mut diagnostics) {
                Some(yaml) => {
                    definitions.extend(NodeDefinitions::from_yaml(&yaml, &mut diagnostics))
                }
                None => definitions.incomplete = true,
            }
        }
        let auth = match &sources.auth_data {
            Some(path) => yaml::load_file(path, limits, &mut diagnostics)
                .map(|yaml| AuthData::from_yaml(&yaml, &mut diagnostics))
                .unwrap_or_default(),
            None => AuthData::default(),
        };
        let model = Model::assemble(infra_yaml.as_ref(), definitions, auth, &mut diagnostics);
        diagnostics.sort();
        (model, diagnostics)
    }

    /// The model of a description document, once its definitions and
    /// credentials are read: the description checked, an implementation
    /// chosen per node.
    pub(crate) fn assemble(
        infra: Option<&Yaml>,
        definitions: NodeDefinitions,
        auth: AuthData,
        diagnostics: &mut Diagnostics,
    ) -> Option<Model> {
        let infra = InfraDescription::from_yaml(infra?, diagnostics)?;
        let chosen = choose_implementations(&infra, &definitions, diagnostics);
        let mut model = Model {
            infra,
            definitions,
            auth,
            chosen,
            addresses_read: BTreeMap::new(),
        };
        model.addresses_read = model
            .infra
            .nodes
            .iter()
            .map(|node| (node.name.clone(), addresses_read(&model, node)))
            .collect();
        model.add_implied_dependencies(diagnostics);
        Some(model)
    }

    /// Makes each node wait for the nodes whose addresses its templates use
    /// (see [`implied_dependencies`]), saying so, and refuses the cycles
    /// that makes.
    fn add_implied_dependencies(&mut self, diagnostics: &mut Diagnostics) {
        if self.infra.find_cycle().is_some() {
            return; // already reported, and the graph is not an order
        }
        let implied = implied_dependencies(self);
        for edge in &implied {
            diagnostics.warning(
                &edge.location,
                format!(
                    "node `{}` uses the address of `{}` without depending on it: it will wait until `{}` is ready",
                    edge.dependent, edge.dependency, edge.dependency
                ),
                format!(
                    "say so under `dependencies:` (`- [*{}, *{}]` with anchors on the nodes)",
                    edge.dependent, edge.dependency
                ),
            );
        }
        self.infra.dependencies.extend(implied);
        if let Some(cycle) = self.infra.find_cycle() {
            let location = self
                .infra
                .node(&cycle[0])
                .map_or(&self.infra.location, |n| &n.location)
                .clone();
            diagnostics.error(
                &location,
                format!(
                    "these nodes wait for one another, counting the addresses their templates use: {}",
                    cycle.join(" -> ")
                ),
                "one of them must be created first: drop its use of the other's address (getip, getprivip, getipall) or that dependency",
            );
        }
    }
}

/// Picks, for every node, the first implementation of its type that its
/// `filter` selects. (Occopus picks one at random; the first is predictable
/// and keeps a resumed build on the same cloud.)
fn choose_implementations(
    infra: &InfraDescription,
    definitions: &NodeDefinitions,
    diagnostics: &mut Diagnostics,
) -> BTreeMap<String, usize> {
    let mut chosen = BTreeMap::new();
    for node in &infra.nodes {
        let Some(implementations) = definitions.types.get(&node.node_type) else {
            // A node without `type` is reported as such.
            if node.node_type.is_empty() || !definitions.is_undefined(&node.node_type) {
                continue;
            }
            let known: Vec<&str> = definitions.types.keys().map(String::as_str).collect();
            diagnostics.error(
                &node.type_location,
                format!("node `{}` has type `{}`, which no node definition defines", node.name, node.node_type),
                if known.is_empty() {
                    "pass the node definitions with --nodes FILE, put them in nodes/node_definitions.yaml next to the infra file, or `occopus import` them".to_string()
                } else {
                    format!("define `'node_def:{}'` or use one of: {}", node.node_type, known.join(", "))
                },
            );
            continue;
        };
        match implementations.iter().position(|i| i.matches(&node.filter)) {
            Some(index) => {
                chosen.insert(node.name.clone(), index);
            }
            None => diagnostics.error(
                &node.location,
                format!(
                    "the filter of node `{}` matches none of the {} implementations of `{}`",
                    node.name,
                    implementations.len(),
                    node.node_type
                ),
                "a filter selects implementations whose resource has all its keys and values; loosen it",
            ),
        }
    }
    chosen
}
