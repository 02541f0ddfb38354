//! Occopus's `chef` config manager, against a Chef server's API over
//! `wasi:http` with signed requests (see `sign.rs`), as Occopus's own does:
//! - per infrastructure, an environment named by the infra id;
//! - per node, a role `<infra_id>_<node name>` and a Chef node named by the
//!   instance id, in that environment, with the run list
//!   `role[<infra_id>_<node>]`, the bootstrap recipe (`recipe[connect]`, the
//!   cookbook Occopus's images carry) and the user's `run_list`, and the
//!   node's attributes as its normal attributes (`a.b: v` as `{a: {b: v}}`);
//! - a node is ready once its first chef-client run reported in (the node
//!   has `ohai_time`);
//! - destroy removes the node (and the API client chef-client registered
//!   for it), then the infrastructure's roles and environment.
//!
//! The `endpoint` is the API's URL as the user gives it: a Chef 11 server or
//! goiardi (`http://host:4545`), or an organisation of a current one
//! (`https://host/organizations/ORG`). Credentials: `client_name` and
//! `client_key` (the client's PEM key) in auth_data's `config_management`
//! entries.

mod sign;

use occopus_plugin_sdk::config_manager::*;
use occopus_plugin_sdk::http::{Request, Response};
use occopus_plugin_sdk::{clock, credential, parse_section, require_http_endpoint};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sign::{SignVersion, Signed, Signer};

struct Chef;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "chef config_management section",
  "type": "object",
  "required": ["type", "endpoint", "run_list"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "chef"},
    "endpoint": {"type": "string", "description": "The Chef server API's URL; for an organisation of a current server, https://HOST/organizations/ORG."},
    "run_list": {"type": "array", "items": {"type": "string"}, "description": "Recipes and roles after the node's role and the bootstrap recipe, such as recipe[apache2]."},
    "bootstrap_recipe": {"type": "string", "description": "The recipe put after the node's role (default recipe[connect], as Occopus); an empty string for none."},
    "sign_version": {"enum": ["1.0", "1.3"], "description": "The request signing protocol: 1.0 (SHA-1, default, as Occopus) or 1.3 (SHA-256)."}
  }
}"#;

/// The `config_management` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(rename = "type")]
    _type: String,
    endpoint: String,
    run_list: Vec<String>,
    #[serde(default = "connect_recipe")]
    bootstrap_recipe: String,
    #[serde(default)]
    sign_version: SignVersion,
}

fn connect_recipe() -> String {
    "recipe[connect]".into()
}

/// The Chef server of one call, as one client.
struct Server {
    base: String,
    signer: Signer,
}

impl Server {
    fn of(target: &Target) -> Result<(Section, Server), PluginError> {
        let section: Section = parse_section(&target.section)?;
        require_http_endpoint(
            &section.endpoint,
            "the Chef server's API URL, such as https://chef.example.org/organizations/ORG",
        )?;
        let signer = Signer::new(
            credential(&target.credentials, "client_name")?,
            credential(&target.credentials, "client_key")?,
            section.sign_version,
        )?;
        let base = section.endpoint.trim_end_matches('/').to_owned();
        Ok((section, Server { base, signer }))
    }

    /// Sends a signed request to `path` (below the endpoint).
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, PluginError> {
        let url = format!("{}{path}", self.base);
        let body = body.map(Value::to_string).unwrap_or_default();
        let url_path = url_path(&url);
        let timestamp = sign::timestamp(clock::unix_millis() / 1000);
        let headers = self.signer.headers(&Signed {
            method,
            path: url_path,
            body: body.as_bytes(),
            timestamp: &timestamp,
        })?;
        let mut request = Request::new(method, &url)
            .header("accept", "application/json")
            .header("x-chef-version", CHEF_VERSION);
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request.send()
    }

    /// A call whose success is any 2xx, or one of `also_fine` (409: it
    /// exists already; 404: it is gone already).
    fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        also_fine: &[u16],
    ) -> Result<Response, PluginError> {
        let response = self.call(method, path, body)?;
        if (200..300).contains(&response.status) || also_fine.contains(&response.status) {
            return Ok(response);
        }
        Err(error_of(method, path, &response))
    }
}

/// The chef-client version the requests say they come from (servers refuse
/// requests without one).
const CHEF_VERSION: &str = "12.0.0";

/// The path of a URL (what the signature covers), query excluded.
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("/", |at| &after_scheme[at..]);
    path.split('?').next().unwrap_or(path)
}

/// The contract's error for a refused call, with the server's own words.
fn error_of(method: &str, path: &str, response: &Response) -> PluginError {
    let said = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .map(|e| match e {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
            Value::String(text) => text,
            other => other.to_string(),
        })
        .unwrap_or_else(|| response.text().chars().take(300).collect());
    let what = format!(
        "the Chef server answered {method} {path} with {}: {said}",
        response.status
    );
    match response.status {
        401 | 403 => PluginError::Unauthorized(format!(
            "{what}; check `client_name` and `client_key` of the auth_data entry for this \
             endpoint (the key must be that client's, and the client allowed to manage nodes, \
             roles and environments)"
        )),
        404 => PluginError::NotFound(format!(
            "{what}; check the section's `endpoint` (a current Chef server's ends with \
             /organizations/ORG)"
        )),
        400 | 413 => {
            PluginError::InvalidConfig(format!("{what}; fix the config_management section"))
        }
        408 | 429 | 500..=599 => PluginError::Transient(what),
        _ => PluginError::Internal(what),
    }
}

/// The role of a node: `<infra_id>_<node name>`, as Occopus names it.
fn role_name(node: &NodeFacts) -> String {
    format!("{}_{}", node.infra.infra_id, node.node_name)
}

/// The node's run list: its role, the bootstrap recipe, then the user's
/// (each put in front only when the user's list lacks it, as Occopus does).
fn run_list(section: &Section, node: &NodeFacts) -> Vec<String> {
    let mut list = section.run_list.clone();
    for item in [
        section.bootstrap_recipe.clone(),
        format!("role[{}]", role_name(node)),
    ] {
        if !item.is_empty() && !list.contains(&item) {
            list.insert(0, item);
        }
    }
    list
}

/// The node's normal attributes: each `a.b.c: v` of its attributes set at
/// that path (PyChef's `set_dotted`).
fn normal_attributes(attributes: &str) -> Result<Map<String, Value>, PluginError> {
    let given: Map<String, Value> = serde_json::from_str(attributes).map_err(|e| {
        PluginError::Internal(format!(
            "the host sent attributes that are not a JSON object: {e}"
        ))
    })?;
    let mut normal = Map::new();
    for (dotted, value) in given {
        let mut at = &mut normal;
        let mut parts: Vec<&str> = dotted.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        for part in parts {
            let entry = at.entry(part).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            at = entry.as_object_mut().expect("made an object just above");
        }
        at.insert(last.to_owned(), value);
    }
    Ok(normal)
}

fn node_body(section: &Section, node: &NodeFacts) -> Result<Value, PluginError> {
    Ok(json!({
        "name": node.instance_id,
        "chef_environment": node.infra.infra_id,
        "json_class": "Chef::Node",
        "chef_type": "node",
        "run_list": run_list(section, node),
        "normal": normal_attributes(&node.attributes)?,
        "default": {},
        "override": {},
        "automatic": {},
    }))
}

/// A name as one segment of a URL path (Chef names are `[A-Za-z0-9_.:-]`;
/// anything else is encoded rather than trusted).
fn segment(name: &str) -> String {
    occopus_plugin_sdk::http::percent_encode(name)
}

impl ConfigManager for Chef {
    fn describe() -> ConfigManagerInfo {
        ConfigManagerInfo {
            name: "chef".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_types: vec!["chef".into()],
            config_schema: SCHEMA.into(),
        }
    }

    fn prepare_infra(target: Target, infra: InfraFacts) -> Result<(), PluginError> {
        let (_, server) = Server::of(&target)?;
        let environment = json!({
            "name": infra.infra_id,
            "description": format!("occopus infrastructure {}", infra.infra_name),
            "json_class": "Chef::Environment",
            "chef_type": "environment",
            "cookbook_versions": {},
            "default_attributes": {},
            "override_attributes": {},
        });
        server.expect("POST", "/environments", Some(&environment), &[409])?;
        Ok(())
    }

    fn resolve_attributes(target: Target, _: NodeFacts) -> Result<String, PluginError> {
        // Nothing for the templates (as Occopus); the section is checked.
        parse_section::<Section>(&target.section)?;
        Ok("{}".into())
    }

    fn register_node(target: Target, node: NodeFacts) -> Result<(), PluginError> {
        let (section, server) = Server::of(&target)?;
        let role = json!({
            "name": role_name(&node),
            "description": format!("occopus node {} of infrastructure {}", node.node_name, node.infra.infra_name),
            "json_class": "Chef::Role",
            "chef_type": "role",
            "run_list": [],
            "env_run_lists": {},
            "default_attributes": {},
            "override_attributes": {},
        });
        server.expect("POST", "/roles", Some(&role), &[409])?;
        let body = node_body(&section, &node)?;
        let made = server.expect("POST", "/nodes", Some(&body), &[409])?;
        if made.status == 409 {
            // Registered before (a retried build): make it what it must be.
            let path = format!("/nodes/{}", segment(&node.instance_id));
            server.expect("PUT", &path, Some(&body), &[])?;
        }
        Ok(())
    }

    fn node_state(target: Target, node: NodeFacts) -> Result<ConfigState, PluginError> {
        let (_, server) = Server::of(&target)?;
        let path = format!("/nodes/{}", segment(&node.instance_id));
        let response = server.expect("GET", &path, None, &[404])?;
        if response.status == 404 {
            return Ok(ConfigState::Unknown);
        }
        let found: Value = serde_json::from_slice(&response.body).map_err(|e| {
            PluginError::Internal(format!("the Chef server's node {path} is not JSON: {e}"))
        })?;
        let reported = ["automatic", "normal", "default", "override"]
            .iter()
            .any(|level| found.get(level).and_then(|a| a.get("ohai_time")).is_some());
        Ok(if reported {
            ConfigState::Ready
        } else {
            ConfigState::Pending
        })
    }

    fn drop_node(target: Target, node: NodeFacts) -> Result<(), PluginError> {
        let (_, server) = Server::of(&target)?;
        let name = segment(&node.instance_id);
        server.expect("DELETE", &format!("/nodes/{name}"), None, &[404])?;
        // The API client its chef-client registered, if it ran.
        server.expect("DELETE", &format!("/clients/{name}"), None, &[404])?;
        Ok(())
    }

    fn drop_infra(target: Target, infra: InfraFacts) -> Result<(), PluginError> {
        let (_, server) = Server::of(&target)?;
        let listed = server.expect("GET", "/roles", None, &[])?;
        let roles: Map<String, Value> = serde_json::from_slice(&listed.body).map_err(|e| {
            PluginError::Internal(format!(
                "the Chef server's role list is not a JSON object: {e}"
            ))
        })?;
        let prefix = format!("{}_", infra.infra_id);
        for role in roles.keys().filter(|r| r.starts_with(&prefix)) {
            server.expect("DELETE", &format!("/roles/{}", segment(role)), None, &[404])?;
        }
        let environment = format!("/environments/{}", segment(&infra.infra_id));
        server.expect("DELETE", &environment, None, &[404])?;
        Ok(())
    }
}

occopus_plugin_sdk::config_manager::export_config_manager!(Chef);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(attributes: &str) -> NodeFacts {
        NodeFacts {
            infra: InfraFacts {
                infra_id: "inf1".into(),
                infra_name: "demo".into(),
            },
            node_name: "apache2".into(),
            instance_id: "apache2-1-ab12".into(),
            attributes: attributes.into(),
        }
    }

    fn section(json: &str) -> Section {
        parse_section(json).unwrap()
    }

    #[test]
    fn the_run_list_is_role_then_bootstrap_then_the_users_as_occopus_makes_it() {
        let s =
            section(r#"{"type": "chef", "endpoint": "http://c", "run_list": ["recipe[apache2]"]}"#);
        assert_eq!(
            run_list(&s, &node("{}")),
            ["role[inf1_apache2]", "recipe[connect]", "recipe[apache2]"]
        );
        let s = section(
            r#"{"type": "chef", "endpoint": "http://c", "run_list": ["recipe[connect]", "x"],
                "bootstrap_recipe": "recipe[connect]"}"#,
        );
        assert_eq!(
            run_list(&s, &node("{}")),
            ["role[inf1_apache2]", "recipe[connect]", "x"]
        );
        let s = section(
            r#"{"type": "chef", "endpoint": "http://c", "run_list": [], "bootstrap_recipe": ""}"#,
        );
        assert_eq!(run_list(&s, &node("{}")), ["role[inf1_apache2]"]);
    }

    #[test]
    fn dotted_attributes_nest_and_unknown_keys_are_refused() {
        let normal = normal_attributes(
            r#"{"wordpress.db.name": "wp", "wordpress.db.user": "u", "port": 80}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(normal),
            json!({"wordpress": {"db": {"name": "wp", "user": "u"}}, "port": 80})
        );
        let bad = parse_section::<Section>(
            r#"{"type": "chef", "endpoint": "http://c", "run_list": [], "runlist": []}"#,
        );
        assert!(matches!(bad, Err(PluginError::InvalidConfig(m)) if m.contains("runlist")));
    }

    #[test]
    fn refusals_name_what_to_change() {
        let unauthorized = error_of(
            "GET",
            "/nodes/x",
            &Response::new(401, r#"{"error": ["Failed to authenticate as occopus."]}"#),
        );
        assert!(
            matches!(&unauthorized, PluginError::Unauthorized(m)
                if m.contains("client_key") && m.contains("Failed to authenticate")),
            "{unauthorized:?}"
        );
        assert!(matches!(
            error_of("POST", "/roles", &Response::new(503, "busy")),
            PluginError::Transient(_)
        ));
        assert!(matches!(
            error_of("GET", "/nodes", &Response::new(404, "{}")),
            PluginError::NotFound(m) if m.contains("/organizations/ORG")
        ));
        assert_eq!(
            url_path("https://h:443/organizations/o/nodes?x=1"),
            "/organizations/o/nodes"
        );
        assert_eq!(url_path("http://h:4545"), "/");
    }
}
