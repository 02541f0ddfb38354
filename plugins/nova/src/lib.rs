//! `nova`: the driver of OpenStack clouds, with the resource keys of
//! Occopus's `nova` resource handler.
//!
//! It signs in to Keystone (Identity v3, password or application credential;
//! `identity.rs`), finds Nova, Neutron and Glance in the catalog, and makes
//! servers through Compute 2.1 (`servers.rs`), with floating IPs through
//! Neutron (`floating.rs`). Every server carries `occopus:*` metadata (infra
//! id and name, node name, instance id), set in the create request itself:
//! that is how `list` finds servers after a crash and how a repeated `create`
//! finds the server an interrupted one made instead of making a second.

mod api;
mod floating;
mod identity;
mod servers;

use api::Service;
use base64::Engine as _;
use identity::{Cloud, Credentials};
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::parse_section;
use serde::Deserialize;
use serde_json::{Map, Value};
use servers::{
    META_INFRA_ID, META_INFRA_NAME, META_INSTANCE_ID, META_NODE_NAME, NewServer, Server,
};

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "nova resource",
  "type": "object",
  "required": ["type", "endpoint", "image_id", "flavor_name", "project_id"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "nova"},
    "endpoint": {"type": "string", "description": "the Keystone (Identity) URL; /v3 is appended when it names no version"},
    "project_id": {"type": "string", "description": "the project the servers belong to"},
    "image_id": {"type": "string", "description": "the image to boot, by id or name"},
    "flavor_name": {"type": "string", "description": "the flavor, by name or id"},
    "server_name": {"type": "string", "description": "the servers' name (default: <infra name>-<instance id>)"},
    "key_name": {"type": "string", "description": "the key pair to install"},
    "security_groups": {"type": "array", "items": {"type": "string"}},
    "network_id": {"type": "string", "description": "the network to attach; without it Nova picks the project's only network or says why it cannot"},
    "floating_ip": {"description": "present (any value but false): give the server a floating IP"},
    "floating_ip_pool": {"type": "string", "description": "the external network to take floating IPs from (name or id)"},
    "user_domain_name": {"type": "string", "description": "the domain of the user of a password sign-in (default Default)"},
    "region_name": {"type": "string", "description": "the region of the catalog's endpoints"},
    "tenant_name": {"type": "string", "description": "accepted and unused, as in Occopus"},
    "volume_size": {"type": "integer", "minimum": 0, "description": "boot from a new volume of this many GB made from the image (0: the flavor's disk size)"},
    "volume_persist": {"type": "boolean", "description": "keep that volume when the server is destroyed (default false)"},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// Nova refuses user-data longer than this once base64-encoded.
const MAX_USER_DATA_BASE64: usize = 65_535;

/// The `resource` section.
#[derive(Deserialize)]
pub struct Resource {
    endpoint: String,
    project_id: String,
    image_id: String,
    flavor_name: String,
    server_name: Option<String>,
    key_name: Option<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    network_id: Option<String>,
    /// `Some` when the key is present at all (Occopus's meaning), even empty.
    #[serde(default, deserialize_with = "present")]
    floating_ip: Option<Value>,
    floating_ip_pool: Option<String>,
    #[serde(default = "default_domain")]
    user_domain_name: String,
    region_name: Option<String>,
    volume_size: Option<u64>,
    #[serde(default)]
    volume_persist: bool,
}

fn default_domain() -> String {
    "Default".into()
}

/// Keeps a present key's value, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        occopus_plugin_sdk::require_http_endpoint(
            &resource.endpoint,
            "the Keystone URL of the cloud, such as https://keystone.example.org:5000/v3",
        )?;
        identity::identity_url(&resource.endpoint)?;
        Ok(resource)
    }

    /// Whether the server gets a floating IP: `floating_ip` present (and not
    /// `false`), or a pool named.
    fn wants_floating_ip(&self) -> bool {
        let asked = self
            .floating_ip
            .as_ref()
            .is_some_and(|v| v != &Value::Bool(false));
        asked || self.floating_ip_pool.is_some()
    }
}

/// Runs `work` signed in; when a kept token is refused, signs in afresh and
/// runs it once more.
fn signed_in<T>(
    target: &Target,
    work: impl Fn(&Resource, &Cloud) -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    let resource = Resource::parse(&target.resource)?;
    let credentials = Credentials::from_auth_data(&target.credentials)?;
    let cloud = Cloud::connect(&resource, &credentials)?;
    match work(&resource, &cloud) {
        Err(PluginError::Unauthorized(_)) if cloud.was_cached() => {
            Cloud::forget(&resource);
            work(&resource, &Cloud::connect(&resource, &credentials)?)
        }
        outcome => outcome,
    }
}

/// The flavor's id and disk size (GB), by name or id.
fn flavor(nova: &Service, wanted: &str) -> Result<(String, u64), PluginError> {
    let answer = nova.call("GET", "/flavors/detail?limit=1000", None)?;
    let flavors = answer
        .get("flavors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |f: &Value, key: &str| {
        f.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    if let Some(found) = flavors
        .iter()
        .find(|f| text(f, "id") == wanted || text(f, "name") == wanted)
    {
        return Ok((
            text(found, "id"),
            found.get("disk").and_then(Value::as_u64).unwrap_or(0),
        ));
    }
    let names: Vec<String> = flavors.iter().map(|f| text(f, "name")).collect();
    Err(PluginError::InvalidConfig(format!(
        "flavor_name `{wanted}`: Nova has no flavor of that name or id; it has: {}",
        names.join(", ")
    )))
}

/// The image's id, by id or name, when the catalog has Glance (else the
/// value goes to Nova as it is).
fn image(cloud: &Cloud, wanted: &str) -> Result<String, PluginError> {
    let Some(glance) = cloud.glance() else {
        return Ok(wanted.to_owned());
    };
    let encoded = occopus_plugin_sdk::http::percent_encode(wanted);
    match glance.call("GET", &format!("/v2/images/{encoded}"), None) {
        Ok(image) => return Ok(image["id"].as_str().unwrap_or(wanted).to_owned()),
        // Glance answers 404 for an unknown id and 400 for a name it cannot take as one.
        Err(PluginError::NotFound(_) | PluginError::InvalidConfig(_)) => {}
        Err(error) => return Err(error),
    }
    let by_name = glance.call("GET", &format!("/v2/images?name={encoded}"), None)?;
    if let Some(id) = by_name["images"].get(0).and_then(|i| i["id"].as_str()) {
        return Ok(id.to_owned());
    }
    let some = glance.call("GET", "/v2/images?limit=20", None)?;
    let names: Vec<&str> = some["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str())
        .collect();
    Err(PluginError::InvalidConfig(format!(
        "image_id `{wanted}`: Glance has no image of that id or name; images: {}",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )))
}

/// Names the resource key a refused create is about, so the user knows what
/// to change (Nova's own message is kept).
fn name_the_key(error: PluginError, resource: &Resource) -> PluginError {
    let message = match &error {
        PluginError::InvalidConfig(m) | PluginError::NotFound(m) => m.clone(),
        // A network Nova cannot choose (409) is no passing trouble.
        PluginError::Transient(m) if m.contains("Multiple possible networks") => m.clone(),
        _ => return error,
    };
    let lower = message.to_ascii_lowercase();
    let key =
        if lower.contains("key_name") || lower.contains("keypair") || lower.contains("key pair") {
            "key_name"
        } else if lower.contains("security group") || lower.contains("security_group") {
            "security_groups"
        } else if lower.contains("network") {
            "network_id"
        } else if lower.contains("flavor") {
            "flavor_name"
        } else if lower.contains("block device") || lower.contains("volume") {
            "volume_size"
        } else if lower.contains("image") {
            "image_id"
        } else {
            return error;
        };
    let hint = match key {
        "network_id" if resource.network_id.is_none() => {
            "; Nova could not choose a network by itself: set network_id"
        }
        _ => "",
    };
    PluginError::InvalidConfig(format!("resource key `{key}`: {message}{hint}"))
}

/// The `occopus:*` metadata of a new server.
fn metadata(request: &CreateRequest) -> Map<String, Value> {
    let tags = &request.tags;
    [
        (META_INFRA_ID, &tags.infra_id),
        (META_INFRA_NAME, &tags.infra_name),
        (META_NODE_NAME, &tags.node_name),
        (META_INSTANCE_ID, &request.instance_id),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Value::from(v.as_str())))
    .collect()
}

fn user_data(payload: &Payload) -> Result<Option<String>, PluginError> {
    let text = match payload {
        Payload::None => return Ok(None),
        Payload::UserData(text) => text,
        Payload::Container(_) => {
            return Err(PluginError::InvalidConfig(
                "OpenStack servers take cloud-init user-data (contextualisation type \
                 `cloudinit`), not a container spec"
                    .into(),
            ));
        }
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    if encoded.len() > MAX_USER_DATA_BASE64 {
        return Err(PluginError::InvalidConfig(format!(
            "the rendered user-data is {} bytes, {} in base64; Nova takes at most \
             {MAX_USER_DATA_BASE64}: shorten the context_template, or have it download the rest",
            text.len(),
            encoded.len()
        )));
    }
    Ok(Some(encoded))
}

struct Nova;

impl Driver for Nova {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "nova".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["nova".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let user_data = user_data(&request.payload)?;
        signed_in(&request.target, |resource, cloud| {
            let nova = cloud.nova();
            let name = resource
                .server_name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", request.tags.infra_name, request.instance_id));
            // An earlier create of this instance may have made its server
            // before occopus could record it: adopt that one.
            if let Some(existing) =
                servers::find(&nova, Some(&name), META_INSTANCE_ID, &request.instance_id)?.first()
            {
                return Ok(existing.id());
            }
            let (flavor, flavor_disk) = flavor(&nova, &resource.flavor_name)?;
            if resource.volume_size.is_some() && cloud.volume.is_none() {
                return Err(PluginError::InvalidConfig(
                    "volume_size: booting from a volume needs Block Storage (Cinder), and                      Keystone's catalog names no volumev3 endpoint; remove volume_size and                      volume_persist"
                        .into(),
                ));
            }
            let volume = match resource.volume_size {
                None => None,
                Some(0) if flavor_disk == 0 => {
                    return Err(PluginError::InvalidConfig(format!(
                        "volume_size 0 means the flavor's disk size, and flavor `{}` has none; \
                         give volume_size in GB",
                        resource.flavor_name
                    )));
                }
                Some(0) => Some((flavor_disk, resource.volume_persist)),
                Some(size) => Some((size, resource.volume_persist)),
            };
            let server = NewServer {
                name: &name,
                image: &image(cloud, &resource.image_id)?,
                flavor: &flavor,
                user_data: user_data.clone(),
                key_name: resource.key_name.as_deref(),
                security_groups: &resource.security_groups,
                network_id: resource.network_id.as_deref(),
                metadata: metadata(&request),
                volume,
            };
            let made = nova
                .call("POST", "/servers", Some(&server.body()))
                .map_err(|e| name_the_key(e, resource))?;
            made["server"]["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    PluginError::Internal(format!(
                        "Nova answered POST /servers without a server id: {made}"
                    ))
                })
        })
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        signed_in(&target, |resource, cloud| {
            let Some(server) = servers::get(&cloud.nova(), &cloud_id)? else {
                return Ok(InstanceStatus {
                    state: InstanceState::Shutdown,
                    public_addresses: vec![],
                    private_addresses: vec![],
                    detail: Some("gone: Nova no longer knows the server".into()),
                });
            };
            let (mut state, mut detail) = server.state();
            let mut public = server.public_addresses();
            if state == InstanceState::Running
                && resource.wants_floating_ip()
                && !server.has_floating_address()
            {
                // Nova learns of a Neutron association late (or never, without
                // Neutron's notifications): Neutron is asked directly.
                let neutron = cloud.neutron()?;
                let mut floating = floating::addresses(&neutron, &cloud_id)?;
                if floating.is_empty() {
                    floating.extend(floating::attach(
                        &neutron,
                        &cloud_id,
                        resource.floating_ip_pool.as_deref(),
                    )?);
                }
                if floating.is_empty() {
                    state = InstanceState::Pending;
                    detail = "ACTIVE; waiting for a port to attach a floating IP to".into();
                } else {
                    public = floating;
                }
            }
            Ok(InstanceStatus {
                state,
                public_addresses: public,
                private_addresses: server.private_addresses(),
                detail: Some(detail),
            })
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        signed_in(&target, |resource, cloud| {
            if resource.wants_floating_ip() {
                floating::release(&cloud.neutron()?, &cloud_id)?;
            }
            match cloud
                .nova()
                .call("DELETE", &format!("/servers/{cloud_id}"), None)
            {
                Ok(_) | Err(PluginError::NotFound(_)) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        signed_in(&target, |_, cloud| {
            Ok(
                servers::find(&cloud.nova(), None, META_INFRA_ID, &infra_id)?
                    .into_iter()
                    .map(|server: Server| ListedInstance {
                        state: server.state().0,
                        tags: server.tags(),
                        instance_id: server.meta(META_INSTANCE_ID).unwrap_or_default().to_owned(),
                        cloud_id: server.id(),
                    })
                    .collect(),
            )
        })
    }
}

export_driver!(Nova);

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(extra: Value) -> Result<Resource, PluginError> {
        let mut section = serde_json::json!({
            "type": "nova", "endpoint": "http://127.0.0.1:15000", "project_id": "p",
            "image_id": "cirros", "flavor_name": "m1.tiny"});
        section
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Resource::parse(&section.to_string())
    }

    #[test]
    fn floating_ip_follows_the_originals_meaning() {
        let wants = |extra| resource(extra).unwrap().wants_floating_ip();
        assert!(!wants(serde_json::json!({})));
        assert!(wants(
            serde_json::json!({"floating_ip": "add_yes_if_you_need_floating_ip_or_remove"})
        ));
        assert!(wants(serde_json::json!({"floating_ip": null})));
        assert!(!wants(serde_json::json!({"floating_ip": false})));
        assert!(wants(serde_json::json!({"floating_ip_pool": "public"})));
    }

    #[test]
    fn defaults_and_bad_endpoints() {
        assert_eq!(
            resource(serde_json::json!({})).unwrap().user_domain_name,
            "Default"
        );
        let Err(PluginError::InvalidConfig(message)) =
            resource(serde_json::json!({"endpoint": "replace_with_endpoint"}))
        else {
            panic!("a placeholder endpoint must be refused");
        };
        assert!(message.contains("Keystone URL"), "{message}");
    }

    #[test]
    fn refusals_name_the_key() {
        let r = resource(serde_json::json!({})).unwrap();
        let named =
            |message: &str| match name_the_key(PluginError::InvalidConfig(message.into()), &r) {
                PluginError::InvalidConfig(m) => m,
                _ => panic!("stays invalid-config"),
            };
        assert!(
            named("Nova answered POST /servers with 400: Invalid key_name provided.")
                .starts_with("resource key `key_name`")
        );
        assert!(
            named("Unable to find security_group with name or id 'x'")
                .starts_with("resource key `security_groups`")
        );
        let network =
            named("Multiple possible networks found, use a Network ID to be more specific.");
        assert!(network.contains("set network_id"), "{network}");
        assert_eq!(named("something else"), "something else");
    }
}
