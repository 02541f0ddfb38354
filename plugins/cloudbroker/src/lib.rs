//! `cloudbroker`: the driver of the CloudBroker Platform's XML REST API, with
//! the resource keys of Occopus's `cloudbroker` resource handler.
//!
//! `POST /instances.xml` starts an instance of `description.deployment_id` on
//! `description.instance_type_id` with the user-data (`cloud-init`, base64);
//! `GET /instances/ID.xml` gives its status and addresses; `PUT
//! /instances/ID/stop.xml` stops it. The description's keys are sent as the
//! element names of CloudBroker's own Java client (`deployment-id`,
//! `instance-type-id`, ...: dashes), where Occopus's plugin sent underscores.
//!
//! CloudBroker keeps no tags, so occopus names each instance
//! `occopus:<infra id>:<node name>:<instance id>:<infra name>`: a repeated
//! create finds the instance by that name, and `list` by its infra id (a node
//! name with `:` in it would not be read back).

use base64::Engine as _;
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::http::{Request, Response};
use occopus_plugin_sdk::{basic_authorization, parse_section, require_http_endpoint};
use serde::Deserialize;
use serde_json::{Map, Value};

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "cloudbroker resource",
  "type": "object",
  "required": ["type", "endpoint", "description"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "cloudbroker"},
    "endpoint": {"type": "string", "description": "the platform's API URL, such as https://cola-prototype.cloudbroker.com"},
    "description": {
      "type": "object",
      "description": "the instance to start: deployment_id and instance_type_id, and optionally key_pair_id, opened_port, disable_autostop (default true), isolated (default true), ...",
      "required": ["deployment_id", "instance_type_id"],
      "additionalProperties": {"type": ["string", "number", "boolean"]}
    },
    "start_in_vpc": {"type": ["string", "boolean"], "description": "start the instance in a VPC"},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// The prefix of the names occopus gives its instances.
const NAME_PREFIX: &str = "occopus:";

#[derive(Deserialize)]
struct Resource {
    endpoint: String,
    description: Map<String, Value>,
    start_in_vpc: Option<Value>,
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        require_http_endpoint(
            &resource.endpoint,
            "the platform's API URL, such as https://cola-prototype.cloudbroker.com",
        )?;
        Ok(resource)
    }
}

/// One instance as the platform describes it (`<instance>`).
#[derive(Debug, Default, PartialEq)]
struct Instance {
    fields: Vec<(String, String)>,
}

impl Instance {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    fn state(&self) -> InstanceState {
        match self.get("status") {
            "starting" | "initializing" | "preparing" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" | "halted" | "stopped" => InstanceState::Shutdown,
            "failed" | "error" => InstanceState::Failed,
            _ => InstanceState::Unknown,
        }
    }

    /// The tags and instance id an occopus name carries.
    fn occopus_name(&self) -> Option<(InstanceTags, String)> {
        let mut parts = self.get("name").strip_prefix(NAME_PREFIX)?.splitn(4, ':');
        let (infra_id, node_name, instance_id) = (parts.next()?, parts.next()?, parts.next()?);
        let tags = InstanceTags {
            infra_id: infra_id.to_owned(),
            node_name: node_name.to_owned(),
            infra_name: parts.next().unwrap_or_default().to_owned(),
        };
        Some((tags, instance_id.to_owned()))
    }

    fn addresses(&self, kinds: [&str; 2]) -> Vec<String> {
        kinds
            .iter()
            .map(|k| self.get(k))
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Every `<instance>` element of an answer (one, or a list's).
fn instances(xml: &str) -> Result<Vec<Instance>, PluginError> {
    let document = roxmltree::Document::parse(xml).map_err(|e| {
        PluginError::Internal(format!("CloudBroker answered XML that does not parse: {e}"))
    })?;
    Ok(document
        .descendants()
        .filter(|n| n.has_tag_name("instance"))
        .map(|n| Instance {
            fields: n
                .children()
                .filter(roxmltree::Node::is_element)
                .map(|c| {
                    (
                        c.tag_name().name().to_owned(),
                        c.text().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        })
        .collect())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `<instance>` document of a create.
fn instance_xml(resource: &Resource, name: &str, user_data: Option<&str>) -> String {
    let mut fields: Vec<(String, String)> = resource
        .description
        .iter()
        .map(|(k, v)| {
            (
                k.replace('_', "-"),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    let mut set_default = |key: &str, value: &str| {
        if !fields.iter().any(|(k, _)| k == key) {
            fields.push((key.to_owned(), value.to_owned()));
        }
    };
    set_default("disable-autostop", "true");
    set_default("isolated", "true");
    fields.push(("name".into(), name.to_owned()));
    if let Some(user_data) = user_data {
        fields.push((
            "cloud-init".into(),
            base64::engine::general_purpose::STANDARD.encode(user_data),
        ));
        fields.push(("cloud-init-b64".into(), "true".into()));
    }
    if let Some(vpc) = &resource.start_in_vpc {
        fields.push((
            "start-in-vpc".into(),
            vpc.as_str().map_or_else(|| vpc.to_string(), str::to_owned),
        ));
    }
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("<{k}>{}</{k}>", escape(v)))
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><instance>{body}</instance>")
}

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

    fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<String, PluginError> {
        let mut request = Request::new(method, &format!("{}{path}", self.base))
            .header("authorization", &self.authorization)
            .header("accept", "application/xml");
        if let Some(body) = body {
            request = request.header("content-type", "application/xml").body(body);
        }
        let response = request.send()?;
        if (200..300).contains(&response.status) {
            Ok(response.text())
        } else {
            Err(error_of(method, path, &response))
        }
    }

    fn all(&self) -> Result<Vec<Instance>, PluginError> {
        instances(&self.call("GET", "/instances.xml", None)?)
    }
}

/// The platform's errors (`<errors><error>...</error></errors>`, as its Rails
/// API answers) with the contract's case: 401/403 unauthorized, 402 quota,
/// 404 not-found, 409/429/5xx transient, other 4xx (422: a bad attribute)
/// invalid-config naming the description.
fn error_of(method: &str, path: &str, response: &Response) -> PluginError {
    let text = response.text();
    let messages: Vec<String> = roxmltree::Document::parse(&text)
        .map(|d| {
            d.descendants()
                .filter(|n| n.has_tag_name("error"))
                .filter_map(|n| n.text().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let message = if messages.is_empty() {
        text.trim().chars().take(300).collect()
    } else {
        messages.join("; ")
    };
    let said = format!(
        "CloudBroker answered {method} {path} with {}: {message}",
        response.status
    );
    match response.status {
        401 | 403 => PluginError::Unauthorized(format!(
            "{said}; check email and password in auth_data.yaml"
        )),
        402 => PluginError::Quota(said),
        404 => PluginError::NotFound(said),
        409 | 429 | 500..=599 => PluginError::Transient(said),
        _ => PluginError::InvalidConfig(format!("resource `description`: {said}")),
    }
}

struct CloudBroker;

impl Driver for CloudBroker {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "cloudbroker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["cloudbroker".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let resource = Resource::parse(&request.target.resource)?;
        let api = Api::new(&resource, &request.target.credentials)?;
        let tags = &request.tags;
        let name = format!(
            "{NAME_PREFIX}{}:{}:{}:{}",
            tags.infra_id, tags.node_name, request.instance_id, tags.infra_name
        );
        if let Some(existing) = api.all()?.into_iter().find(|i| i.get("name") == name) {
            return Ok(existing.get("id").to_owned());
        }
        let user_data = match &request.payload {
            Payload::None => None,
            Payload::UserData(text) => Some(text.as_str()),
            Payload::Container(_) => {
                return Err(PluginError::InvalidConfig(
                    "CloudBroker instances take cloud-init user-data (contextualisation type \
                     `cloudinit`), not a container spec"
                        .into(),
                ));
            }
        };
        let answer = api.call(
            "POST",
            "/instances.xml",
            Some(instance_xml(&resource, &name, user_data)),
        )?;
        let made = instances(&answer)?
            .into_iter()
            .next()
            .map(|i| i.get("id").to_owned());
        made.filter(|id| !id.is_empty()).ok_or_else(|| {
            PluginError::Internal(
                "CloudBroker answered POST /instances.xml without an instance id".into(),
            )
        })
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let api = Api::new(&resource, &target.credentials)?;
        let instance = match api.call("GET", &format!("/instances/{cloud_id}.xml"), None) {
            Ok(xml) => instances(&xml)?.into_iter().next().unwrap_or_default(),
            Err(PluginError::NotFound(_)) => {
                return Ok(InstanceStatus {
                    state: InstanceState::Shutdown,
                    public_addresses: vec![],
                    private_addresses: vec![],
                    detail: Some("gone: CloudBroker no longer knows the instance".into()),
                });
            }
            Err(error) => return Err(error),
        };
        Ok(InstanceStatus {
            state: instance.state(),
            public_addresses: instance.addresses(["external-ip-address", "external-hostname"]),
            private_addresses: instance.addresses(["internal-ip-address", "internal-hostname"]),
            detail: Some(instance.get("status").to_owned()),
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let api = Api::new(&resource, &target.credentials)?;
        match api.call("GET", &format!("/instances/{cloud_id}.xml"), None) {
            Err(PluginError::NotFound(_)) => return Ok(()),
            Err(error) => return Err(error),
            Ok(xml) => {
                let state = instances(&xml)?
                    .into_iter()
                    .next()
                    .unwrap_or_default()
                    .state();
                if state == InstanceState::Shutdown {
                    return Ok(());
                }
            }
        }
        match api.call(
            "PUT",
            &format!("/instances/{cloud_id}/stop.xml"),
            Some(String::new()),
        ) {
            Ok(_) | Err(PluginError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let api = Api::new(&resource, &target.credentials)?;
        Ok(api
            .all()?
            .into_iter()
            .filter(|i| i.state() != InstanceState::Shutdown)
            .filter_map(|i| {
                let (tags, instance_id) = i.occopus_name()?;
                (tags.infra_id == infra_id).then(|| ListedInstance {
                    cloud_id: i.get("id").to_owned(),
                    instance_id,
                    tags,
                    state: i.state(),
                })
            })
            .collect())
    }
}

export_driver!(CloudBroker);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_document_uses_the_java_clients_names() {
        let resource = Resource::parse(
            &serde_json::json!({"type": "cloudbroker", "endpoint": "https://cb.example.org",
                "description": {"deployment_id": "d-1", "instance_type_id": "t-1", "opened_port": "22,80"}})
            .to_string(),
        )
        .unwrap();
        let xml = instance_xml(&resource, "occopus:i:web:web-1-ab", Some("#cloud-config\n"));
        for part in [
            "<deployment-id>d-1</deployment-id>",
            "<instance-type-id>t-1</instance-type-id>",
            "<opened-port>22,80</opened-port>",
            "<disable-autostop>true</disable-autostop>",
            "<isolated>true</isolated>",
            "<name>occopus:i:web:web-1-ab</name>",
            "<cloud-init>I2Nsb3VkLWNvbmZpZwo=</cloud-init><cloud-init-b64>true</cloud-init-b64>",
        ] {
            assert!(xml.contains(part), "{part} not in {xml}");
        }
    }

    #[test]
    fn instances_states_and_names() {
        let xml = "<instances><instance><id>7</id><name>occopus:inf:web:web-1-ab:my:infra</name>\
                   <status>running</status><external-ip-address>127.216.0.7</external-ip-address>\
                   <internal-ip-address>10.0.0.7</internal-ip-address></instance></instances>";
        let found = instances(xml).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].state(), InstanceState::Running);
        let (tags, instance_id) = found[0].occopus_name().unwrap();
        assert_eq!(
            (tags.infra_id.as_str(), tags.node_name.as_str()),
            ("inf", "web")
        );
        assert_eq!(
            (instance_id.as_str(), tags.infra_name.as_str()),
            ("web-1-ab", "my:infra")
        );
        assert_eq!(
            found[0].addresses(["external-ip-address", "external-hostname"]),
            ["127.216.0.7"]
        );
        let error = error_of(
            "POST",
            "/instances.xml",
            &Response::new(422, "<errors><error>Deployment not found</error></errors>"),
        );
        let PluginError::InvalidConfig(message) = error else {
            panic!("422 is invalid-config")
        };
        assert!(
            message.contains("Deployment not found") && message.contains("description"),
            "{message}"
        );
    }
}
