//! `cloudsigma`: the driver of CloudSigma's API 2.0, with the resource keys
//! of Occopus's `cloudsigma` resource handler.
//!
//! A create clones the library drive `libdrive_id` into a drive named
//! `occopus-<instance id>`, waits until the clone is `unmounted`, creates the
//! server from `description` with that drive, the user-data in `meta`
//! (`cloudinit-user-data`, listed in `base64_fields`) and `occopus_*` meta
//! keys, and starts it. A repeated create finds the server by its
//! `occopus_instance_id` meta, or the cloned drive by its name, instead of
//! making a second. Destroy stops the server, waits until it is stopped and
//! deletes it with its drives (`recurse=all_drives`).

use base64::Engine as _;
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::http::{Request, Response};
use occopus_plugin_sdk::{basic_authorization, clock, parse_section, require_http_endpoint};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "cloudsigma resource",
  "type": "object",
  "required": ["type", "endpoint", "libdrive_id", "description"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "cloudsigma"},
    "endpoint": {"type": "string", "description": "the API's URL, such as https://zrh.cloudsigma.com/api/2.0"},
    "libdrive_id": {"type": "string", "description": "the library drive cloned as each server's boot drive"},
    "description": {
      "type": "object",
      "description": "the server definition sent to CloudSigma (cpu in MHz, mem in bytes, vnc_password, nics, pubkeys, ...)",
      "required": ["cpu", "mem", "vnc_password"],
      "properties": {
        "cpu": {"type": "integer", "minimum": 1},
        "mem": {"type": "integer", "minimum": 1},
        "vnc_password": {"type": "string"}
      }
    },
    "poll_interval": {"type": "number", "exclusiveMinimum": 0, "description": "seconds between polls while a drive clones or a server stops (default 6, as Occopus waited)"},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// Meta keys occopus puts on every server.
const META_INFRA_ID: &str = "occopus_infra_id";
const META_INFRA_NAME: &str = "occopus_infra_name";
const META_NODE_NAME: &str = "occopus_node_name";
const META_INSTANCE_ID: &str = "occopus_instance_id";

#[derive(Deserialize)]
struct Resource {
    endpoint: String,
    libdrive_id: String,
    description: Map<String, Value>,
    poll_interval: Option<f64>,
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        require_http_endpoint(
            &resource.endpoint,
            "the API's URL, such as https://zrh.cloudsigma.com/api/2.0",
        )?;
        Ok(resource)
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_secs_f64(self.poll_interval.unwrap_or(6.0))
    }
}

/// The API at one endpoint, with the account's basic credentials.
struct Api {
    base: String,
    authorization: String,
}

impl Api {
    fn new(resource: &Resource, credentials: &[KeyValue]) -> Result<Api, PluginError> {
        Ok(Api {
            base: resource.endpoint.trim_end_matches('/').to_owned(),
            authorization: basic_authorization(credentials, "email", "password")?,
        })
    }

    /// `method path`; a 2xx answer's JSON (`null` when empty), else the
    /// contract's error with CloudSigma's message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, PluginError> {
        let request = Request::new(method, &format!("{}{path}", self.base))
            .header("authorization", &self.authorization)
            .header("accept", "application/json")
            .json_body(body);
        let response = request.send()?;
        if !(200..300).contains(&response.status) {
            return Err(error_of(method, path, &response));
        }
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            PluginError::Internal(format!(
                "CloudSigma answered {method} {path} with invalid JSON: {e}"
            ))
        })
    }

    /// Every object of a listing (`limit=0`: all pages at once).
    fn objects(&self, path: &str) -> Result<Vec<Value>, PluginError> {
        let answer = self.call("GET", &format!("{path}?limit=0"), None)?;
        Ok(answer["objects"].as_array().cloned().unwrap_or_default())
    }

    fn server(&self, uuid: &str) -> Result<Option<Value>, PluginError> {
        match self.call("GET", &format!("/servers/{uuid}/"), None) {
            Ok(server) => Ok(Some(server)),
            Err(PluginError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// CloudSigma's errors are a list of `{error_type, error_point, error_message}`;
/// `error_point` names the field at fault. 401/403 unauthorized, 402 (no
/// funds) quota, 404 not-found, 409/423/429/5xx transient, other 4xx
/// invalid-config.
fn error_of(method: &str, path: &str, response: &Response) -> PluginError {
    let text = response.text();
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    let first = parsed.as_ref().and_then(|v| match v {
        Value::Array(items) => items.first().cloned(),
        other => Some(other.clone()),
    });
    let field = |key: &str| {
        first
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = field("error_message").unwrap_or_else(|| text.trim().chars().take(300).collect());
    let point = field("error_point")
        .map(|p| format!(" (at `description.{p}`)"))
        .unwrap_or_default();
    let said = format!(
        "CloudSigma answered {method} {} with {}: {message}{point}",
        path.split('?').next().unwrap_or(path),
        response.status
    );
    match response.status {
        401 | 403 => PluginError::Unauthorized(format!(
            "{said}; check email and password in auth_data.yaml"
        )),
        402 => PluginError::Quota(said),
        404 => PluginError::NotFound(said),
        409 | 423 | 429 | 500..=599 => PluginError::Transient(said),
        _ => PluginError::InvalidConfig(said),
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn meta<'a>(server: &'a Value, key: &str) -> &'a str {
    server.get("meta").map(|m| text(m, key)).unwrap_or_default()
}

/// The server's addresses: each NIC's runtime IPv4 (CloudSigma's are public;
/// Occopus used the same address as the private one).
fn addresses(server: &Value) -> Vec<String> {
    server["runtime"]["nics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|nic| nic["ip_v4"]["uuid"].as_str().map(str::to_owned))
        .collect()
}

/// The contract's state of a server status.
fn state_of(status: &str) -> InstanceState {
    match status {
        "running" => InstanceState::Running,
        "starting" | "paused" => InstanceState::Pending,
        "stopping" | "stopped" => InstanceState::Shutdown,
        // `unavailable`, `unknown` and anything new: occopus asks again.
        _ => InstanceState::Unknown,
    }
}

/// The drive cloned for this instance: found by name, else cloned now.
fn cloned_drive(api: &Api, resource: &Resource, instance_id: &str) -> Result<String, PluginError> {
    let name = format!("occopus-{instance_id}");
    if let Some(drive) = api
        .objects("/drives/detail/")?
        .iter()
        .find(|d| text(d, "name") == name)
    {
        return Ok(text(drive, "uuid").to_owned());
    }
    let answer = api
        .call(
            "POST",
            &format!("/libdrives/{}/action/?do=clone", resource.libdrive_id),
            Some(&json!({"name": name})),
        )
        .map_err(|e| match e {
            PluginError::NotFound(m) => {
                PluginError::InvalidConfig(format!("libdrive_id `{}`: {m}", resource.libdrive_id))
            }
            other => other,
        })?;
    let uuid = text(&answer["objects"][0], "uuid");
    if uuid.is_empty() {
        return Err(PluginError::Internal(format!(
            "CloudSigma cloned libdrive_id `{}` without a drive uuid",
            resource.libdrive_id
        )));
    }
    Ok(uuid.to_owned())
}

/// Waits until the drive is `unmounted` (the clone is done).
fn wait_unmounted(api: &Api, resource: &Resource, drive: &str) -> Result<(), PluginError> {
    loop {
        let status = api.call("GET", &format!("/drives/{drive}/"), None)?["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match status.as_str() {
            "unmounted" => return Ok(()),
            "unavailable" => {
                return Err(PluginError::Transient(format!(
                    "the clone of libdrive_id `{}` ({drive}) is unavailable",
                    resource.libdrive_id
                )));
            }
            _ => clock::sleep(resource.poll_interval()),
        }
    }
}

fn server_body(
    resource: &Resource,
    request: &CreateRequest,
    drive: &str,
) -> Result<Value, PluginError> {
    let mut server = resource.description.clone();
    let tags = &request.tags;
    server
        .entry("name")
        .or_insert_with(|| format!("{}-{}", tags.infra_name, request.instance_id).into());
    let mut meta = server
        .remove("meta")
        .and_then(|m| m.as_object().cloned())
        .unwrap_or_default();
    for (key, value) in [
        (META_INFRA_ID, &tags.infra_id),
        (META_INFRA_NAME, &tags.infra_name),
        (META_NODE_NAME, &tags.node_name),
        (META_INSTANCE_ID, &request.instance_id),
    ] {
        meta.insert(key.into(), value.as_str().into());
    }
    match &request.payload {
        Payload::None => {}
        Payload::UserData(user_data) => {
            meta.insert("base64_fields".into(), "cloudinit-user-data".into());
            meta.insert(
                "cloudinit-user-data".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(user_data)
                    .into(),
            );
        }
        Payload::Container(_) => {
            return Err(PluginError::InvalidConfig(
                "CloudSigma servers take cloud-init user-data (contextualisation type \
                 `cloudinit`), not a container spec"
                    .into(),
            ));
        }
    }
    server.insert("meta".into(), Value::Object(meta));
    let mut drives = server
        .remove("drives")
        .and_then(|d| d.as_array().cloned())
        .unwrap_or_default();
    drives.push(json!({"boot_order": 1, "dev_channel": "0:0", "device": "virtio", "drive": drive}));
    server.insert("drives".into(), drives.into());
    Ok(json!({"objects": [server]}))
}

struct CloudSigma;

impl Driver for CloudSigma {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "cloudsigma".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["cloudsigma".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let resource = Resource::parse(&request.target.resource)?;
        let api = Api::new(&resource, &request.target.credentials)?;
        // A server an interrupted create made is adopted.
        if let Some(server) = api
            .objects("/servers/detail/")?
            .iter()
            .find(|s| meta(s, META_INSTANCE_ID) == request.instance_id)
        {
            return Ok(text(server, "uuid").to_owned());
        }
        let drive = cloned_drive(&api, &resource, &request.instance_id)?;
        wait_unmounted(&api, &resource, &drive)?;
        let body = server_body(&resource, &request, &drive)?;
        let created = match api.call("POST", "/servers/", Some(&body)) {
            Ok(created) => created,
            Err(error) => {
                // Nothing left behind: the drive goes with the refused server.
                let _ = api.call("DELETE", &format!("/drives/{drive}/"), None);
                return Err(error);
            }
        };
        let server = &created["objects"][0];
        let uuid = text(server, "uuid").to_owned();
        if !matches!(text(server, "status"), "running" | "starting") {
            api.call("POST", &format!("/servers/{uuid}/action/?do=start"), None)?;
        }
        Ok(uuid)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let api = Api::new(&resource, &target.credentials)?;
        let Some(server) = api.server(&cloud_id)? else {
            return Ok(InstanceStatus {
                state: InstanceState::Shutdown,
                public_addresses: vec![],
                private_addresses: vec![],
                detail: Some("gone: CloudSigma no longer knows the server".into()),
            });
        };
        let status = text(&server, "status");
        let addresses = addresses(&server);
        Ok(InstanceStatus {
            state: state_of(status),
            public_addresses: addresses.clone(),
            private_addresses: addresses,
            detail: Some(status.to_owned()),
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let api = Api::new(&resource, &target.credentials)?;
        loop {
            let Some(server) = api.server(&cloud_id)? else {
                return Ok(());
            };
            match text(&server, "status") {
                "stopped" => break,
                "stopping" => {}
                _ => {
                    api.call(
                        "POST",
                        &format!("/servers/{cloud_id}/action/?do=stop"),
                        None,
                    )?;
                }
            }
            clock::sleep(resource.poll_interval());
        }
        match api.call(
            "DELETE",
            &format!("/servers/{cloud_id}/?recurse=all_drives"),
            None,
        ) {
            Ok(_) | Err(PluginError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let api = Api::new(&resource, &target.credentials)?;
        Ok(api
            .objects("/servers/detail/")?
            .iter()
            .filter(|s| meta(s, META_INFRA_ID) == infra_id)
            .map(|s| ListedInstance {
                cloud_id: text(s, "uuid").to_owned(),
                instance_id: meta(s, META_INSTANCE_ID).to_owned(),
                tags: InstanceTags {
                    infra_id: infra_id.clone(),
                    infra_name: meta(s, META_INFRA_NAME).to_owned(),
                    node_name: meta(s, META_NODE_NAME).to_owned(),
                },
                state: state_of(text(s, "status")),
            })
            .collect())
    }
}

export_driver!(CloudSigma);

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response::new(status, body)
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let body = r#"[{"error_point": "mem", "error_type": "validation", "error_message": "Memory below minimum"}]"#;
        let PluginError::InvalidConfig(message) =
            error_of("POST", "/servers/", &response(400, body))
        else {
            panic!("a validation error is invalid-config");
        };
        assert_eq!(
            message,
            "CloudSigma answered POST /servers/ with 400: Memory below minimum (at `description.mem`)"
        );
        assert!(matches!(
            error_of("GET", "/servers/", &response(401, "")),
            PluginError::Unauthorized(_)
        ));
        assert!(matches!(
            error_of("POST", "/servers/", &response(402, "")),
            PluginError::Quota(_)
        ));
        assert!(matches!(
            error_of("GET", "/servers/x/", &response(404, "")),
            PluginError::NotFound(_)
        ));
        assert!(matches!(
            error_of("GET", "/servers/", &response(503, "")),
            PluginError::Transient(_)
        ));
    }

    #[test]
    fn states_and_addresses() {
        assert_eq!(state_of("running"), InstanceState::Running);
        assert_eq!(state_of("starting"), InstanceState::Pending);
        assert_eq!(state_of("stopped"), InstanceState::Shutdown);
        assert_eq!(state_of("unavailable"), InstanceState::Unknown);
        let server =
            json!({"runtime": {"nics": [{"ip_v4": {"uuid": "127.215.0.2"}}, {"ip_v4": null}]}});
        assert_eq!(addresses(&server), ["127.215.0.2"]);
        assert!(addresses(&json!({"runtime": null})).is_empty());
    }

    #[test]
    fn the_server_body_carries_the_user_data_and_the_drive() {
        let resource = Resource::parse(
            &json!({"type": "cloudsigma", "endpoint": "https://zrh.cloudsigma.com/api/2.0",
                "libdrive_id": "lib", "description": {"cpu": 2000, "mem": 1073741824, "vnc_password": "secret"}})
            .to_string(),
        )
        .unwrap();
        let request = example_request(
            "web-1-abcd",
            "web",
            Payload::UserData("#cloud-config\n".into()),
        );
        let body = server_body(&resource, &request, "drive-1").unwrap();
        let server = &body["objects"][0];
        assert_eq!(server["name"], "demo-web-1-abcd");
        assert_eq!(server["cpu"], 2000);
        assert_eq!(server["meta"]["base64_fields"], "cloudinit-user-data");
        assert_eq!(
            server["meta"]["cloudinit-user-data"],
            "I2Nsb3VkLWNvbmZpZwo="
        );
        assert_eq!(server["meta"][META_INSTANCE_ID], "web-1-abcd");
        assert_eq!(server["drives"][0]["drive"], "drive-1");
        assert_eq!(resource.poll_interval(), Duration::from_secs(6));
    }
}
