//! An example driver for "restcloud", a minimal REST cloud API:
//! `POST /servers` (idempotent by `client_token`), `GET /servers/ID`,
//! `DELETE /servers/ID`, `GET /servers?infra=ID`, with a bearer token.
//! It shows what the SDK leaves to a driver author: mapping the API.

use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::{credential, http::Request, http::Response, parse_section};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Resource {
    endpoint: String,
    image: String,
}

#[derive(Deserialize)]
struct Server {
    id: String,
    state: String,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    client_token: String,
    #[serde(default)]
    node: String,
}

impl Server {
    fn state(&self) -> InstanceState {
        match self.state.as_str() {
            "building" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "error" => InstanceState::Failed,
            "stopped" => InstanceState::Shutdown,
            _ => InstanceState::Unknown,
        }
    }
}

/// Sends a request with the token and maps HTTP failures to the contract.
fn call(
    target: &Target,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<Response, PluginError> {
    let resource: Resource = parse_section(&target.resource)?;
    let token = credential(&target.credentials, "token")?;
    let mut request = Request::new(method, &format!("{}{path}", resource.endpoint))
        .header("authorization", &format!("Bearer {token}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send()?;
    match response.status {
        200..=299 | 404 => Ok(response),
        401 | 403 => Err(PluginError::Unauthorized(
            "restcloud refused the token".into(),
        )),
        429 | 500.. => Err(PluginError::Transient(format!(
            "restcloud answered {}",
            response.status
        ))),
        status => Err(PluginError::InvalidConfig(format!(
            "restcloud answered {status}: {}",
            response.text()
        ))),
    }
}

fn json<T: serde::de::DeserializeOwned>(response: &Response) -> Result<T, PluginError> {
    serde_json::from_slice(&response.body)
        .map_err(|e| PluginError::Internal(format!("bad answer: {e}")))
}

struct RestCloud;

impl Driver for RestCloud {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "restcloud".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["restcloud".into()],
            resource_schema: r#"{"type": "object", "required": ["type", "endpoint", "image"]}"#
                .into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        parse_section::<Resource>(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let image = parse_section::<Resource>(&request.target.resource)?.image;
        let user_data = match request.payload {
            Payload::UserData(text) => Some(text),
            _ => None,
        };
        let body = json!({"client_token": request.instance_id, "image": image, "user_data": user_data,
                          "infra": request.tags.infra_id, "node": request.tags.node_name});
        let response = call(&request.target, "POST", "/servers", Some(body))?;
        Ok(json::<Server>(&response)?.id)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let response = call(&target, "GET", &format!("/servers/{cloud_id}"), None)?;
        if response.status == 404 {
            return Err(PluginError::NotFound(format!("no server {cloud_id}")));
        }
        let server: Server = json(&response)?;
        let addresses: Vec<String> = server.ip.iter().cloned().collect();
        Ok(InstanceStatus {
            state: server.state(),
            public_addresses: addresses.clone(),
            private_addresses: addresses,
            detail: Some(server.state),
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        call(&target, "DELETE", &format!("/servers/{cloud_id}"), None).map(drop)
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let servers: Vec<Server> = json(&call(
            &target,
            "GET",
            &format!("/servers?infra={infra_id}"),
            None,
        )?)?;
        let listed = servers.into_iter().map(|s| ListedInstance {
            state: s.state(),
            tags: InstanceTags {
                infra_id: infra_id.clone(),
                infra_name: String::new(),
                node_name: s.node,
            },
            cloud_id: s.id,
            instance_id: s.client_token,
        });
        Ok(listed.collect())
    }
}

export_driver!(RestCloud);
