//! The infrastructure description (`infra.yaml`): nodes, their scaling and
//! variables, and the dependencies between them.

use crate::diagnostics::Diagnostics;
use crate::fields::{Fields, is_hostname_like};
use crate::location::Location;
use crate::yaml::{Value, Yaml};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

pub use occopus_types::Scaling;

/// Keys allowed at the top of an infrastructure description.
const INFRA_KEYS: &[&str] = &[
    "infra_name",
    "infra_id",
    "user_id",
    "nodes",
    "variables",
    "dependencies",
];
/// Keys allowed on a node.
const NODE_KEYS: &[&str] = &[
    "name",
    "type",
    "scaling",
    "filter",
    "variables",
    "reconfigure",
];

/// A validated infrastructure description.
#[derive(Debug, Clone)]
pub struct InfraDescription {
    /// `infra_name`.
    pub name: String,
    /// `infra_id`, when the file fixes one.
    pub id: Option<String>,
    /// `user_id`, a free label.
    pub user_id: Option<String>,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSpec>,
    /// Edges: `dependent` needs `dependency` ready first.
    pub dependencies: Vec<Dependency>,
    /// Where the description starts.
    pub location: Location,
    /// The whole document as JSON (imports resolved), kept so an infra can
    /// be maintained after its files are gone.
    pub source: Json,
}

/// A node of the description.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Unique name in the infra.
    pub name: String,
    /// The node definition type (`node_def:TYPE`).
    pub node_type: String,
    /// Instance count limits.
    pub scaling: Scaling,
    /// Selects among the type's implementations by resource keys.
    pub filter: Map<String, Json>,
    /// Infra variables deep-merged with the node's own (the node's win).
    pub variables: Map<String, Json>,
    /// What happens to its instances when their templates would now render
    /// otherwise (the addresses they read changed): occopus's addition.
    pub reconfigure: Reconfigure,
    /// Where the node is described.
    pub location: Location,
    /// Where its `type` is written.
    pub type_location: Location,
}

/// A node's `reconfigure`: what happens to an instance whose templates would
/// now render otherwise, because the addresses they read (`getip`,
/// `getipall`, ...) changed: after a scale-down, a load balancer's list of
/// backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reconfigure {
    /// It is kept as it was made, as in Occopus; `plan` says it is out of date.
    #[default]
    Keep,
    /// It is replaced, rolling, as a changed node's instances are.
    Replace,
}

/// `dependent` is created only once `dependency` is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The node that waits.
    pub dependent: String,
    /// The node waited for.
    pub dependency: String,
    /// Where the edge is written.
    pub location: Location,
    /// Attributes of the dependency the dependent receives (`mappings:`),
    /// for Chef's `connect` cookbook.
    pub mappings: Vec<AttributeMapping>,
}

/// One `mappings` item of a dependency: `{attributes: [SOURCE, DESTINATION],
/// synch: BOOL}`, the dependency's attribute SOURCE becoming the
/// dependent's DESTINATION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeMapping {
    /// The dependency's attribute (dotted).
    pub source: String,
    /// The dependent's attribute (dotted).
    pub destination: String,
    /// Occopus's `synch` flag: accepted, not acted on.
    pub synch: bool,
}

impl AttributeMapping {
    fn from_yaml(yaml: &Yaml, diagnostics: &mut Diagnostics) -> Option<Self> {
        let fields = Fields::new(
            yaml,
            "dependency mapping",
            &["attributes", "synch"],
            &["attributes"],
            diagnostics,
        )?;
        let attributes = fields.get("attributes")?;
        let names: Option<Vec<&str>> = attributes
            .as_seq()
            .map(|items| items.iter().map(Yaml::as_str).collect::<Option<_>>())
            .unwrap_or_default();
        let Some([source, destination]) = names.as_deref() else {
            diagnostics.error(
                &attributes.location,
                "a mapping's `attributes` must be two attribute names: the dependency's, then the dependent's",
                "write `attributes: [fqdn, wordpress.db.host]`",
            );
            return None;
        };
        Some(AttributeMapping {
            source: (*source).to_string(),
            destination: (*destination).to_string(),
            synch: fields.bool("synch", diagnostics).unwrap_or(false),
        })
    }
}

impl InfraDescription {
    /// Reads a description, reporting every problem into `diagnostics`. Returns
    /// what could be read even when there were errors (so later checks still
    /// find theirs).
    pub fn from_yaml(yaml: &Yaml, diagnostics: &mut Diagnostics) -> Option<Self> {
        let fields = Fields::new(
            yaml,
            "infrastructure description",
            INFRA_KEYS,
            &["infra_name", "nodes"],
            diagnostics,
        )?;
        let name = fields.string("infra_name", diagnostics).unwrap_or_default();
        if fields.get("infra_name").is_some() && !is_hostname_like(&name) {
            diagnostics.error(
                &fields.get("infra_name").unwrap_or(yaml).location,
                format!("infra_name `{name}` is not hostname-like"),
                "use 1 to 63 letters, digits and '-'",
            );
        }
        let id = fields.string("infra_id", diagnostics);
        if let (Some(id), Some(at)) = (&id, fields.get("infra_id"))
            && !is_valid_id(id)
        {
            diagnostics.error(
                &at.location,
                format!("infra_id `{id}` is not a valid id"),
                "use 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        let infra_variables = variables(&fields, diagnostics);
        let mut nodes = Vec::new();
        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        for item in fields.list("nodes", diagnostics).unwrap_or_default() {
            let Some(node) = NodeSpec::from_yaml(item, &infra_variables, diagnostics) else {
                continue;
            };
            if let Some(first) = seen.get(&node.name) {
                diagnostics.error(
                    &node.location,
                    format!(
                        "a second node is named `{}` (first at line {})",
                        node.name, first.line
                    ),
                    "node names must be unique in an infrastructure; rename one",
                );
                continue;
            }
            seen.insert(node.name.clone(), node.location.clone());
            nodes.push(node);
        }
        if fields.get("nodes").is_some() && nodes.is_empty() && !diagnostics.has_errors() {
            diagnostics.error(
                &yaml.key_location("nodes").clone(),
                "the infrastructure has no nodes",
                "add at least one node under `nodes:`",
            );
        }
        let dependencies = fields
            .list("dependencies", diagnostics)
            .unwrap_or_default()
            .iter()
            .filter_map(|edge| Dependency::from_yaml(edge, &seen, diagnostics))
            .collect::<Vec<_>>();
        let infra = InfraDescription {
            name,
            id,
            user_id: fields.string("user_id", diagnostics),
            nodes,
            dependencies,
            location: yaml.location.clone(),
            source: yaml.to_json(),
        };
        if let Some(cycle) = infra.find_cycle() {
            let edge = infra
                .dependencies
                .iter()
                .find(|d| d.dependent == cycle[0])
                .map_or(&yaml.location, |d| &d.location);
            diagnostics.error(
                edge,
                format!("the dependencies form a cycle: {}", cycle.join(" -> ")),
                "remove one of these dependencies",
            );
        }
        Some(infra)
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The names of the nodes `name` depends on.
    pub fn dependencies_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.dependencies
            .iter()
            .filter(move |d| d.dependent == name)
            .map(|d| d.dependency.as_str())
    }

    /// The nodes in an order where every node comes after its dependencies
    /// (file order among independent nodes). Only meaningful without cycles.
    pub fn topological_order(&self) -> Vec<&NodeSpec> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::with_capacity(self.nodes.len());
        while order.len() < self.nodes.len() {
            let before = order.len();
            for node in &self.nodes {
                if !done.contains(node.name.as_str())
                    && self.dependencies_of(&node.name).all(|d| done.contains(d))
                {
                    done.insert(&node.name);
                    order.push(node);
                }
            }
            if order.len() == before {
                break; // a cycle: reported by validation
            }
        }
        order
    }

    /// A dependency cycle, as node names with the first repeated at the end.
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        fn visit<'a>(
            infra: &'a InfraDescription,
            name: &'a str,
            marks: &mut BTreeMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            match marks.get(name).copied().unwrap_or(Mark::New) {
                Mark::Done => return None,
                Mark::Active => {
                    let start = path.iter().position(|n| *n == name).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(name.to_string());
                    return Some(cycle);
                }
                Mark::New => {}
            }
            marks.insert(name, Mark::Active);
            path.push(name);
            for next in infra.dependencies_of(name) {
                if let Some(cycle) = visit(infra, next, marks, path) {
                    return Some(cycle);
                }
            }
            path.pop();
            marks.insert(name, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        self.nodes
            .iter()
            .find_map(|node| visit(self, &node.name, &mut marks, &mut Vec::new()))
    }
}

/// Whether `id` can be an infra id (also used in tags and file names).
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn variables(fields: &Fields<'_>, diagnostics: &mut Diagnostics) -> Map<String, Json> {
    fields.object("variables", diagnostics).unwrap_or_default()
}

impl NodeSpec {
    fn from_yaml(
        yaml: &Yaml,
        infra_variables: &Map<String, Json>,
        diagnostics: &mut Diagnostics,
    ) -> Option<Self> {
        let fields = Fields::new(yaml, "node", NODE_KEYS, &["name", "type"], diagnostics)?;
        let name = fields.string("name", diagnostics)?;
        if !is_hostname_like(&name) {
            diagnostics.error(
                &fields.get("name")?.location,
                format!("node name `{name}` is not hostname-like"),
                "use 1 to 63 letters, digits and '-'",
            );
        }
        let node_type = fields.string("type", diagnostics).unwrap_or_default();
        let mut variables = infra_variables.clone();
        deep_merge(&mut variables, self::variables(&fields, diagnostics));
        let reconfigure = match fields.string("reconfigure", diagnostics).as_deref() {
            None | Some("keep") => Reconfigure::Keep,
            Some("replace") => Reconfigure::Replace,
            Some(other) => {
                diagnostics.error(
                    &fields.get("reconfigure")?.location,
                    format!("`reconfigure` of node `{name}` is `{other}`"),
                    "write `keep` (the default: out-of-date instances stay) or `replace` (they are replaced, rolling)",
                );
                Reconfigure::Keep
            }
        };
        Some(NodeSpec {
            reconfigure,
            scaling: scaling(&fields, &name, diagnostics),
            filter: fields.object("filter", diagnostics).unwrap_or_default(),
            variables,
            type_location: fields.get("type").unwrap_or(yaml).location.clone(),
            location: yaml.location.clone(),
            name,
            node_type,
        })
    }
}

fn scaling(node: &Fields<'_>, name: &str, diagnostics: &mut Diagnostics) -> Scaling {
    let Some(yaml) = node.get("scaling") else {
        return Scaling { min: 1, max: 1 };
    };
    let Some(fields) = Fields::new(
        yaml,
        format!("scaling of node `{name}`"),
        &["min", "max"],
        &[],
        diagnostics,
    ) else {
        return Scaling { min: 1, max: 1 };
    };
    let min = fields
        .integer("min", 0..=100_000, diagnostics)
        .map(|v| v as u32);
    let max = fields
        .integer("max", 0..=100_000, diagnostics)
        .map(|v| v as u32);
    // Occopus silently made a `min` of 0 into 1; a node with no instance is
    // not supported here either, so it is refused rather than changed. An
    // explicit max below an explicit min is a mistake worth reporting too.
    let min_is_zero = min == Some(0);
    if min_is_zero {
        diagnostics.error(
            &yaml.get("min").map_or(&yaml.location, |v| &v.location).clone(),
            format!("`min` of the scaling of node `{name}` is 0, but every node has at least one instance"),
            "set `min: 1`, or leave the node out of the description until it is needed",
        );
    }
    let min = min.unwrap_or(1).max(1);
    if let Some(max) = max
        && max < min
        && yaml.get("min").is_some()
        && !min_is_zero
    {
        diagnostics.error(
            &yaml.key_location("max").clone(),
            format!("scaling of node `{name}`: max ({max}) is below min ({min})"),
            "make max at least min",
        );
    }
    Scaling {
        min,
        max: max.unwrap_or(min).max(min),
    }
}

impl Dependency {
    fn from_yaml(
        yaml: &Yaml,
        nodes: &BTreeMap<String, Location>,
        diagnostics: &mut Diagnostics,
    ) -> Option<Self> {
        let mut mappings = Vec::new();
        let pair = match &yaml.value {
            Value::Seq(_) => yaml,
            Value::Map(_) => {
                let fields = Fields::new(
                    yaml,
                    "dependency",
                    &["connection", "mappings"],
                    &["connection"],
                    diagnostics,
                )?;
                for item in fields.list("mappings", diagnostics).unwrap_or_default() {
                    mappings.extend(AttributeMapping::from_yaml(item, diagnostics));
                }
                fields.get("connection")?
            }
            _ => {
                diagnostics.error(
                    &yaml.location,
                    format!("a dependency must be a pair of nodes, not {}", yaml.kind()),
                    "write `- [*DEPENDENT, *DEPENDENCY]` or `- connection: [*DEPENDENT, *DEPENDENCY]`",
                );
                return None;
            }
        };
        let ends = match pair.as_seq() {
            Some([a, b]) => [a, b],
            _ => {
                diagnostics.error(
                    &pair.location,
                    "a dependency must list exactly two nodes: the dependent, then its dependency",
                    "write `[*DEPENDENT, *DEPENDENCY]` using the nodes' anchors",
                );
                return None;
            }
        };
        let mut names = Vec::with_capacity(2);
        for end in ends {
            // An end is the node's mapping (through an alias) or, as a
            // convenience, the node's name.
            let name = end
                .get("name")
                .and_then(Yaml::as_str)
                .or_else(|| end.as_str())
                .map(str::to_string);
            match name {
                Some(name) if nodes.contains_key(&name) => names.push(name),
                Some(name) => {
                    diagnostics.error(
                        &end.location,
                        format!("the dependency names node `{name}`, which is not defined"),
                        format!(
                            "define it under `nodes:` or use one of: {}",
                            nodes.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    return None;
                }
                // A node (through its alias) without a name: reported as such.
                None if end.as_map().is_some() => return None,
                None => {
                    diagnostics.error(
                        &end.location,
                        format!(
                            "a dependency end must be a node (`*ALIAS`), not {}",
                            end.kind()
                        ),
                        "give the node an anchor (`- &A name: ...`) and refer to it as `*A`",
                    );
                    return None;
                }
            }
        }
        let dependency = names.pop()?;
        let dependent = names.pop()?;
        if dependent == dependency {
            diagnostics.error(
                &pair.location,
                format!("node `{dependent}` depends on itself"),
                "remove this dependency",
            );
            return None;
        }
        Some(Dependency {
            dependent,
            dependency,
            location: pair.location.clone(),
            mappings,
        })
    }
}

/// Merges `overlay` into `base` recursively; `overlay`'s values win.
pub fn deep_merge(base: &mut Map<String, Json>, overlay: Map<String, Json>) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Json::Object(inner)), Json::Object(over)) => deep_merge(inner, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{LoadLimits, load_str};
    use std::path::Path;
    use std::sync::Arc;

    fn read(text: &str) -> (Option<InfraDescription>, Diagnostics) {
        let mut diagnostics = Diagnostics::default();
        let yaml = load_str(
            text,
            Arc::from(Path::new("infra.yaml")),
            LoadLimits::default(),
            &mut diagnostics,
        )
        .expect("test YAML parses");
        let infra = InfraDescription::from_yaml(&yaml, &mut diagnostics);
        (infra, diagnostics)
    }

    /// Occopus's mapping form of a dependency (chef-wordpress writes it):
    /// each item maps an attribute of the dependency onto the dependent's.
    #[test]
    fn dependency_mappings_are_read_and_a_bad_one_is_located() {
        let head = "infra_name: w\nnodes:\n  - &W {name: wp, type: t}\n  - &D {name: db, type: t}\ndependencies:\n  - connection: [*W, *D]\n    mappings:\n";
        let (infra, diagnostics) = read(&format!(
            "{head}      - attributes: [fqdn, wordpress.db.host]\n        synch: true\n"
        ));
        assert!(!diagnostics.has_errors(), "{diagnostics}");
        let dependency = &infra.unwrap().dependencies[0];
        assert_eq!(
            (
                dependency.dependent.as_str(),
                dependency.dependency.as_str()
            ),
            ("wp", "db")
        );
        assert_eq!(
            dependency.mappings,
            [AttributeMapping {
                source: "fqdn".into(),
                destination: "wordpress.db.host".into(),
                synch: true,
            }]
        );
        let (_, diagnostics) = read(&format!("{head}      - attributes: [fqdn]\n"));
        let shown = diagnostics.to_string();
        assert!(shown.contains("infra.yaml:8:"), "{shown}");
        assert!(shown.contains("must be two attribute names"), "{shown}");
    }
}
