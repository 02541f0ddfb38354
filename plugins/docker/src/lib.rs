//! `docker`: the driver of Docker hosts, over the Docker Engine API.
//!
//! A node instance is a container named `occopus-<instance id>` (so a repeated
//! create finds the one an earlier, interrupted create made) and labelled with
//! the infra id and name, node name and instance id (which is how `list` finds
//! it). The image is pulled when it is missing and the resource's `origin`
//! allows it. The endpoint is `tcp://host:port`, `http(s)://host:port` or
//! `unix:///path/docker.sock` (carried by the occopus host's unix bridge, which
//! only this driver may use by default).

mod engine_api;

use engine_api::{ApiError, Engine};
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::http::percent_encode;
use occopus_plugin_sdk::parse_section;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "docker resource",
  "type": "object",
  "required": ["type", "endpoint", "image"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "docker"},
    "endpoint": {"type": "string", "description": "the Docker API: tcp://host:2375, http(s)://host:port or unix:///var/run/docker.sock"},
    "origin": {"type": "string", "description": "where a missing image comes from: `dockerhub` (the daemon's registry), an http(s) URL of a root filesystem tarball (imported), or `local` (never pulled)"},
    "image": {"type": "string"},
    "tag": {"type": ["string", "number"], "description": "default: latest"},
    "network_mode": {"type": "string", "description": "the container's network (Docker's NetworkMode), default: the daemon's default bridge"},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// Label keys occopus puts on every container.
const LABEL_INFRA_ID: &str = "occopus.infra-id";
const LABEL_INFRA_NAME: &str = "occopus.infra-name";
const LABEL_NODE_NAME: &str = "occopus.node-name";
const LABEL_INSTANCE_ID: &str = "occopus.instance-id";

#[derive(Deserialize)]
struct Resource {
    endpoint: String,
    origin: Option<String>,
    image: String,
    tag: Option<Value>,
    network_mode: Option<String>,
}

/// Where a missing image may come from.
#[derive(Debug, PartialEq, Eq)]
enum Origin {
    /// Pulled from the daemon's registry.
    Registry,
    /// Imported from a root filesystem tarball at this URL.
    Tarball(String),
    /// Never pulled: it must be on the host already.
    Local,
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        engine_api::base_url(&resource.endpoint)?;
        resource.origin()?;
        Ok(resource)
    }

    fn tag(&self) -> String {
        match &self.tag {
            None => "latest".into(),
            Some(Value::String(tag)) => tag.clone(),
            Some(other) => other.to_string(),
        }
    }

    fn reference(&self) -> String {
        format!("{}:{}", self.image, self.tag())
    }

    fn origin(&self) -> Result<Origin, PluginError> {
        match self.origin.as_deref() {
            None | Some("local") => Ok(Origin::Local),
            Some("dockerhub") => Ok(Origin::Registry),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Origin::Tarball(url.to_owned()))
            }
            Some(other) => Err(PluginError::InvalidConfig(format!(
                "origin `{other}` is none of `dockerhub`, `local` or an http(s) URL of an image \
                 tarball"
            ))),
        }
    }
}

fn engine(target: &Target) -> Result<(Resource, Engine), PluginError> {
    let resource = Resource::parse(&target.resource)?;
    let engine = Engine::new(&resource.endpoint)?;
    Ok((resource, engine))
}

/// The container name of an instance: the create's idempotency key.
fn container_name(instance_id: &str) -> String {
    format!("occopus-{instance_id}")
}

/// Makes sure the image is on the host, pulling or importing it if the origin allows.
fn ensure_image(engine: &Engine, resource: &Resource) -> Result<(), PluginError> {
    let reference = resource.reference();
    match engine.get(&format!("/images/{reference}/json")) {
        Ok(_) => return Ok(()),
        Err(ApiError::Status { status: 404, .. }) => {}
        Err(error) => return Err(error.into_plugin_error(&format!("inspecting image {reference}"))),
    }
    let query = match resource.origin()? {
        Origin::Local => {
            return Err(PluginError::InvalidConfig(format!(
                "image {reference} is not on the Docker host and origin is `local`: load it there \
                 (docker load / docker import), or set `origin` to `dockerhub` or a tarball URL"
            )));
        }
        Origin::Registry => format!(
            "fromImage={}&tag={}",
            percent_encode(&resource.image),
            percent_encode(&resource.tag())
        ),
        Origin::Tarball(url) => format!(
            "fromSrc={}&repo={}&tag={}",
            percent_encode(&url),
            percent_encode(&resource.image),
            percent_encode(&resource.tag())
        ),
    };
    engine
        .post_progress(&format!("/images/create?{query}"))
        .map_err(|e| e.into_plugin_error(&format!("pulling image {reference}")))
}

/// The body of `POST /containers/create`.
fn container_config(resource: &Resource, request: &CreateRequest) -> Result<Value, PluginError> {
    let (env, command) = match &request.payload {
        Payload::None => (Vec::new(), None),
        Payload::Container(spec) => (
            spec.env
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect(),
            spec.command.clone(),
        ),
        Payload::UserData(_) => {
            return Err(PluginError::InvalidConfig(
                "containers take an environment and a command (contextualisation type `docker`), \
                 not cloud-init user-data"
                    .into(),
            ));
        }
    };
    let tags = &request.tags;
    let labels: BTreeMap<&str, &str> = [
        (LABEL_INFRA_ID, tags.infra_id.as_str()),
        (LABEL_INFRA_NAME, tags.infra_name.as_str()),
        (LABEL_NODE_NAME, tags.node_name.as_str()),
        (LABEL_INSTANCE_ID, request.instance_id.as_str()),
    ]
    .into();
    let mut config = json!({
        "Image": resource.reference(),
        "Env": env,
        "Labels": labels,
        "HostConfig": {},
    });
    if let Some(command) = command {
        config["Cmd"] = json!(command);
    }
    if let Some(mode) = &resource.network_mode {
        config["HostConfig"]["NetworkMode"] = json!(mode);
    }
    Ok(config)
}

/// The container's id, from an inspect answer.
fn container_id(inspect: &Value) -> Result<String, PluginError> {
    inspect["Id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PluginError::Internal("Docker answered a container without an Id".into()))
}

/// Starts a container (a started one is left as it is).
fn start(engine: &Engine, id: &str) -> Result<(), PluginError> {
    match engine.post(&format!("/containers/{id}/start"), None) {
        Ok(_) | Err(ApiError::Status { status: 304, .. }) => Ok(()),
        Err(error) => Err(error.into_plugin_error(&format!("starting container {id}"))),
    }
}

/// The contract's state of a container status word (`docker ps`'s `State`,
/// `docker inspect`'s `State.Status`). An exited container has stopped
/// running its node, as Occopus saw it (`shutdown`); a paused or dead one is broken.
fn contract_state(status: &str) -> InstanceState {
    match status {
        "created" | "restarting" => InstanceState::Pending,
        "running" => InstanceState::Running,
        "exited" | "removing" => InstanceState::Shutdown,
        "paused" | "dead" => InstanceState::Failed,
        _ => InstanceState::Unknown,
    }
}

/// The contract's view of `docker inspect`'s `State`.
fn state_of(inspect: &Value) -> (InstanceState, String) {
    let state = &inspect["State"];
    let status = state["Status"].as_str().unwrap_or_default();
    let exit_code = state["ExitCode"].as_i64().unwrap_or_default();
    let contract = contract_state(status);
    let detail = match status {
        "exited" => format!("exited with code {exit_code}"),
        other => other.to_owned(),
    };
    (contract, detail)
}

/// The container's addresses on each of its networks.
fn addresses_of(inspect: &Value) -> Vec<String> {
    let networks = inspect["NetworkSettings"]["Networks"].as_object();
    let mut addresses: Vec<String> = networks
        .into_iter()
        .flat_map(|n| n.values())
        .filter_map(|network| network["IPAddress"].as_str())
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    addresses.dedup();
    addresses
}

struct Docker;

impl Driver for Docker {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "docker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["docker".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let (resource, engine) = engine(&request.target)?;
        let name = container_name(&request.instance_id);
        let existing = match engine.get(&format!("/containers/{name}/json")) {
            Ok(inspect) => Some(container_id(&inspect)?),
            Err(ApiError::Status { status: 404, .. }) => None,
            Err(error) => return Err(error.into_plugin_error(&format!("inspecting {name}"))),
        };
        let id = match existing {
            Some(id) => id,
            None => {
                ensure_image(&engine, &resource)?;
                let config = container_config(&resource, &request)?;
                match engine.post(&format!("/containers/create?name={name}"), Some(&config)) {
                    Ok(created) => container_id(&created)?,
                    // Another create of the same instance won the race.
                    Err(ApiError::Status { status: 409, .. }) => container_id(
                        &engine
                            .get(&format!("/containers/{name}/json"))
                            .map_err(|e| e.into_plugin_error(&format!("inspecting {name}")))?,
                    )?,
                    Err(error) => {
                        return Err(error.into_plugin_error(&format!("creating container {name}")));
                    }
                }
            }
        };
        start(&engine, &id)?;
        Ok(id)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let (_, engine) = engine(&target)?;
        let inspect = engine
            .get(&format!("/containers/{cloud_id}/json"))
            .map_err(|e| e.into_plugin_error(&format!("inspecting container {cloud_id}")))?;
        let (state, detail) = state_of(&inspect);
        Ok(InstanceStatus {
            state,
            public_addresses: Vec::new(),
            private_addresses: addresses_of(&inspect),
            detail: Some(detail),
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        let (_, engine) = engine(&target)?;
        match engine.delete(&format!("/containers/{cloud_id}?force=true&v=true")) {
            Ok(()) | Err(ApiError::Status { status: 404, .. }) => Ok(()),
            Err(error) => Err(error.into_plugin_error(&format!("removing container {cloud_id}"))),
        }
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let (_, engine) = engine(&target)?;
        let filters = json!({"label": [format!("{LABEL_INFRA_ID}={infra_id}")]}).to_string();
        let path = format!(
            "/containers/json?all=true&filters={}",
            percent_encode(&filters)
        );
        let listed = engine
            .get(&path)
            .map_err(|e| e.into_plugin_error("listing containers"))?;
        let containers = listed.as_array().cloned().unwrap_or_default();
        containers
            .iter()
            .map(|container| {
                let label = |key: &str| {
                    container["Labels"][key]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                let state = contract_state(container["State"].as_str().unwrap_or_default());
                Ok(ListedInstance {
                    cloud_id: container_id(container)?,
                    instance_id: label(LABEL_INSTANCE_ID),
                    tags: InstanceTags {
                        infra_id: label(LABEL_INFRA_ID),
                        infra_name: label(LABEL_INFRA_NAME),
                        node_name: label(LABEL_NODE_NAME),
                    },
                    state,
                })
            })
            .collect()
    }
}

export_driver!(Docker);
