//! `local`: the driver of occopus's built-in local cloud.
//!
//! It talks to the local cloud's HTTP API (`occopus local-cloud serve`, or the
//! one occopus starts itself) over `wasi:http`, like any driver talks to its
//! cloud: it has no other access to the machine. A node is a process group
//! with its own loopback address; the node's cloud-init user-data is applied
//! to it (see `occopus local-cloud --help`).

use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::http::{Request, Response, percent_encode};
use occopus_plugin_sdk::parse_section;
use serde::Deserialize;
use serde_json::json;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "local resource",
  "type": "object",
  "required": ["type"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "local"},
    "endpoint": {"type": "string", "description": "the local cloud's API; occopus fills it in when it runs the local cloud itself"},
    "name": {"type": "string", "description": "selects auth_data entries; unused"}
  }
}"#;

#[derive(Deserialize)]
struct Resource {
    endpoint: Option<String>,
}

/// The node as the local cloud reports it.
#[derive(Deserialize)]
struct Node {
    id: String,
    client_token: String,
    infra_id: String,
    infra_name: String,
    node_name: String,
    address: String,
    state: String,
    detail: Option<String>,
}

impl Node {
    fn state(&self) -> InstanceState {
        match self.state.as_str() {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "failed" => InstanceState::Failed,
            "shutdown" => InstanceState::Shutdown,
            _ => InstanceState::Unknown,
        }
    }
}

fn endpoint(resource: &str) -> Result<String, PluginError> {
    let resource: Resource = parse_section(resource)?;
    resource
        .endpoint
        .map(|e| e.trim_end_matches('/').to_owned())
        .ok_or_else(|| {
            PluginError::InvalidConfig(
                "no `endpoint`: give the local cloud's URL (`occopus local-cloud serve` prints \
                 it), or let occopus start the local cloud itself"
                    .into(),
            )
        })
}

/// Sends a request to the local cloud and maps its error answers.
fn call(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<Response, PluginError> {
    let url = format!("{}{path}", endpoint(&target.resource)?);
    let mut request = Request::new(method, &url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send()?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let message = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| response.text());
    Err(match response.status {
        404 => PluginError::NotFound(message),
        429 => PluginError::Quota(message),
        503 => PluginError::Transient(message),
        _ => PluginError::Internal(format!(
            "the local cloud answered {}: {message}",
            response.status
        )),
    })
}

fn parse<T: serde::de::DeserializeOwned>(response: &Response) -> Result<T, PluginError> {
    serde_json::from_slice(&response.body)
        .map_err(|e| PluginError::Internal(format!("unexpected answer from the local cloud: {e}")))
}

struct Local;

impl Driver for Local {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "local".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["local".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        parse_section::<Resource>(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let user_data = match request.payload {
            Payload::None => String::new(),
            Payload::UserData(text) => text,
            Payload::Container(_) => {
                return Err(PluginError::InvalidConfig(
                    "local nodes take cloud-init user-data (contextualisation type `cloudinit`), \
                     not a container spec"
                        .into(),
                ));
            }
        };
        let body = json!({
            "client_token": request.instance_id,
            "user_data": user_data,
            "infra_id": request.tags.infra_id,
            "infra_name": request.tags.infra_name,
            "node_name": request.tags.node_name,
        });
        let response = call(&request.target, "POST", "/v1/nodes", Some(body.to_string()))?;
        Ok(parse::<Node>(&response)?.id)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let node: Node = parse(&call(
            &target,
            "GET",
            &format!("/v1/nodes/{cloud_id}"),
            None,
        )?)?;
        let state = node.state();
        let addresses: Vec<String> = Some(node.address)
            .filter(|a| !a.is_empty())
            .into_iter()
            .collect();
        Ok(InstanceStatus {
            state,
            public_addresses: addresses.clone(),
            private_addresses: addresses,
            detail: node.detail,
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        match call(&target, "DELETE", &format!("/v1/nodes/{cloud_id}"), None) {
            Ok(_) | Err(PluginError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        #[derive(Deserialize)]
        struct Nodes {
            nodes: Vec<Node>,
        }
        let path = format!("/v1/nodes?infra={}", percent_encode(&infra_id));
        let nodes: Nodes = parse(&call(&target, "GET", &path, None)?)?;
        Ok(nodes
            .nodes
            .into_iter()
            .map(|node| ListedInstance {
                state: node.state(),
                tags: InstanceTags {
                    infra_id: node.infra_id,
                    infra_name: node.infra_name,
                    node_name: node.node_name,
                },
                cloud_id: node.id,
                instance_id: node.client_token,
            })
            .collect())
    }
}

export_driver!(Local);
