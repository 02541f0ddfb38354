//! Node definitions (`node_definitions.yaml`): for each node type, one or more
//! implementations, each a cloud `resource` with optional contextualisation,
//! config management and health checks.

use crate::diagnostics::Diagnostics;
use crate::fields::Fields;
use crate::location::Location;
use crate::yaml::{Value, Yaml};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const IMPLEMENTATION_KEYS: &[&str] = &[
    "resource",
    "contextualisation",
    "config_management",
    "health_check",
];
const HEALTH_CHECK_KEYS: &[&str] = &["ping", "ports", "urls", "mysqldbs", "timeout", "type"];
/// Occopus's default: ten minutes of continuous failure before a node fails.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

/// Every node type defined, with its implementations.
#[derive(Debug, Clone, Default)]
pub struct NodeDefinitions {
    /// Type name (without `node_def:`) -> implementations.
    pub types: BTreeMap<String, Vec<Implementation>>,
    /// Types defined, but whose every implementation was refused (its
    /// problems are reported): a node of one is not also "undefined".
    pub broken: BTreeSet<String>,
    /// Whether a file of definitions could not be read at all (its problem
    /// is reported): any type may be defined there, so none is "undefined".
    pub incomplete: bool,
}

/// One way to make a node of a type.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// The `resource` section (a mapping with `type`).
    pub resource: Yaml,
    /// `resource.type`: selects the driver.
    pub resource_type: String,
    /// The `contextualisation` section.
    pub contextualisation: Option<Yaml>,
    /// The `config_management` section.
    pub config_management: Option<Yaml>,
    /// The health checks.
    pub health_check: HealthCheck,
    /// The `health_check` section as written (its strings are templates).
    pub health_check_yaml: Option<Yaml>,
    /// Where the implementation starts.
    pub location: Location,
}

/// What makes a node healthy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthCheck {
    /// ICMP echo (Occopus's default: on).
    pub ping: bool,
    /// TCP ports that must accept a connection.
    pub ports: Vec<u16>,
    /// URLs (templates with `{{ip}}`) that must answer 2xx/3xx.
    pub urls: Vec<String>,
    /// MySQL logins that must succeed.
    pub mysqldbs: Vec<MysqlDb>,
    /// How long checks may fail continuously before the node counts as failed.
    pub timeout: Duration,
}

/// A MySQL database login to check.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MysqlDb {
    /// Database name.
    pub name: String,
    /// User name.
    pub user: String,
    /// Password.
    pub pass: String,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            ping: true,
            ports: Vec::new(),
            urls: Vec::new(),
            mysqldbs: Vec::new(),
            timeout: DEFAULT_HEALTH_TIMEOUT,
        }
    }
}

impl NodeDefinitions {
    /// Reads a node definitions file, reporting every problem.
    pub fn from_yaml(yaml: &Yaml, diagnostics: &mut Diagnostics) -> Self {
        let mut definitions = NodeDefinitions::default();
        let Some(entries) = yaml.as_map() else {
            if !matches!(yaml.value, Value::Null) {
                diagnostics.error(
                    &yaml.location,
                    format!("node definitions must be a mapping, not {}", yaml.kind()),
                    "write `'node_def:TYPE':` followed by a list of implementations",
                );
            }
            return definitions;
        };
        for (key, value) in entries {
            let key_text = key.key_text();
            let Some(type_name) = key_text.strip_prefix("node_def:").filter(|t| !t.is_empty())
            else {
                // A node whose type is this key is not also "undefined".
                definitions.broken.insert(key_text.clone());
                diagnostics.error(
                    &key.location,
                    format!("`{key_text}` is not a node definition name"),
                    "node definitions are named `'node_def:TYPE'` (quoted, because of the ':')",
                );
                continue;
            };
            let implementations: Vec<Implementation> = match &value.value {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|item| Implementation::from_yaml(item, type_name, diagnostics))
                    .collect(),
                // A single implementation without the list is a common slip.
                Value::Map(_) => {
                    diagnostics.error(
                        &value.location,
                        format!("`node_def:{type_name}` must be a list of implementations"),
                        "put `-` before `resource:` (one list item per implementation)",
                    );
                    definitions.broken.insert(type_name.to_string());
                    continue;
                }
                _ => {
                    diagnostics.error(
                        &value.location,
                        format!(
                            "`node_def:{type_name}` must be a list of implementations, not {}",
                            value.kind()
                        ),
                        "write `- resource: {type: ...}` items under it",
                    );
                    definitions.broken.insert(type_name.to_string());
                    continue;
                }
            };
            if implementations.is_empty() {
                definitions.broken.insert(type_name.to_string());
                continue;
            }
            definitions
                .types
                .insert(type_name.to_string(), implementations);
        }
        definitions
    }

    /// Adds (or replaces) the types of `other`.
    pub fn extend(&mut self, other: NodeDefinitions) {
        self.types.extend(other.types);
        self.broken.extend(other.broken);
        self.incomplete |= other.incomplete;
    }

    /// Whether a node of `node_type` has nothing to be made from for a
    /// reason not reported yet.
    pub fn is_undefined(&self, node_type: &str) -> bool {
        !self.types.contains_key(node_type) && !self.broken.contains(node_type) && !self.incomplete
    }
}

impl Implementation {
    fn from_yaml(yaml: &Yaml, type_name: &str, diagnostics: &mut Diagnostics) -> Option<Self> {
        let what = format!("implementation of `node_def:{type_name}`");
        let fields = Fields::new(yaml, &what, IMPLEMENTATION_KEYS, &["resource"], diagnostics)?;
        let resource = fields.get("resource")?;
        if resource.as_map().is_none() {
            diagnostics.error(
                &resource.location,
                format!(
                    "the resource of `node_def:{type_name}` must be a mapping, not {}",
                    resource.kind()
                ),
                "write `resource: {type: DRIVER, ...}`",
            );
            return None;
        }
        let resource_type = match resource.get("type") {
            Some(t) => match t.as_str() {
                Some(s) => s.to_string(),
                None => {
                    diagnostics.error(
                        &t.location,
                        format!("the resource `type` must be a string, not {}", t.kind()),
                        "name the cloud driver, e.g. `type: local`",
                    );
                    return None;
                }
            },
            None => {
                diagnostics.error(
                    &resource.location,
                    format!("the resource of `node_def:{type_name}` has no `type`"),
                    "add `type:` naming the cloud driver (e.g. local, ec2, docker, nova)",
                );
                return None;
            }
        };
        for section in ["contextualisation", "config_management"] {
            if let Some(value) = fields.get(section) {
                match value.get("type").map(Yaml::as_str) {
                    Some(Some(_)) => {}
                    _ => diagnostics.error(
                        &value.location,
                        format!("the {section} of `node_def:{type_name}` needs a string `type`"),
                        match section {
                            "contextualisation" => "add `type: cloudinit` or `type: docker`",
                            _ => "add `type: chef` or `type: puppet_solo`",
                        },
                    ),
                }
            }
        }
        let health_check_yaml = fields.get("health_check").cloned();
        let health_check = health_check_yaml
            .as_ref()
            .map(|hc| HealthCheck::from_yaml(hc, type_name, diagnostics))
            .unwrap_or_default();
        Some(Implementation {
            resource: resource.clone(),
            resource_type,
            contextualisation: fields.get("contextualisation").cloned(),
            config_management: fields.get("config_management").cloned(),
            health_check,
            health_check_yaml,
            location: yaml.location.clone(),
        })
    }

    /// The resource section as JSON.
    pub fn resource_json(&self) -> Map<String, Json> {
        match self.resource.to_json() {
            Json::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The implementation as JSON, as it would be written in a file.
    pub fn to_json(&self) -> Json {
        let mut map = Map::new();
        map.insert("resource".into(), self.resource.to_json());
        let sections = [
            ("contextualisation", &self.contextualisation),
            ("config_management", &self.config_management),
            ("health_check", &self.health_check_yaml),
        ];
        for (key, section) in sections {
            if let Some(section) = section {
                map.insert(key.into(), section.to_json());
            }
        }
        Json::Object(map)
    }

    /// The contextualisation type, if any.
    pub fn contextualisation_type(&self) -> Option<&str> {
        self.contextualisation.as_ref()?.get("type")?.as_str()
    }

    /// The `config_management.type`, if the implementation has one.
    pub fn config_management_type(&self) -> Option<&str> {
        self.config_management.as_ref()?.get("type")?.as_str()
    }

    /// Whether this implementation's resource has every key/value of `filter`.
    pub fn matches(&self, filter: &Map<String, Json>) -> bool {
        let resource = self.resource_json();
        filter.iter().all(|(k, v)| resource.get(k) == Some(v))
    }
}

impl HealthCheck {
    fn from_yaml(yaml: &Yaml, type_name: &str, diagnostics: &mut Diagnostics) -> Self {
        let mut check = HealthCheck::default();
        let Some(fields) = Fields::new(
            yaml,
            format!("health_check of `node_def:{type_name}`"),
            HEALTH_CHECK_KEYS,
            &[],
            diagnostics,
        ) else {
            return check;
        };
        if let Some(ping) = fields.bool("ping", diagnostics) {
            check.ping = ping;
        }
        for port in fields.list("ports", diagnostics).unwrap_or_default() {
            match port.value {
                Value::Int(p) if (1..=65_535).contains(&p) => check.ports.push(p as u16),
                _ => diagnostics.error(
                    &port.location,
                    format!(
                        "a health-check port must be a number from 1 to 65535, not {}",
                        port.to_json()
                    ),
                    "list TCP port numbers, e.g. `ports: [22, 80]`",
                ),
            }
        }
        for url in fields.list("urls", diagnostics).unwrap_or_default() {
            match url.as_str() {
                Some(u) => check.urls.push(u.to_string()),
                None => diagnostics.error(
                    &url.location,
                    format!("a health-check url must be a string, not {}", url.kind()),
                    "e.g. `urls: ['http://{{ip}}:8080/health']`",
                ),
            }
        }
        for db in fields.list("mysqldbs", diagnostics).unwrap_or_default() {
            let Some(db_fields) = Fields::new(
                db,
                "mysqldbs entry",
                &["name", "user", "pass"],
                &["name", "user", "pass"],
                diagnostics,
            ) else {
                continue;
            };
            if let (Some(name), Some(user), Some(pass)) = (
                db_fields.string("name", diagnostics),
                db_fields.string("user", diagnostics),
                db_fields.string("pass", diagnostics),
            ) {
                check.mysqldbs.push(MysqlDb { name, user, pass });
            }
        }
        if let Some(timeout) = fields.seconds("timeout", diagnostics) {
            check.timeout = Duration::from_secs_f64(timeout);
        }
        if let Some(kind) = fields.string("type", diagnostics)
            && kind != "basic"
        {
            diagnostics.error(
                &yaml.key_location("type").clone(),
                format!("unknown health_check type `{kind}`"),
                "the only type is `basic` (the default); remove the key",
            );
        }
        check
    }
}
