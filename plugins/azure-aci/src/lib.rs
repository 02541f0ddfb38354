//! `azure_aci`: the driver of Azure Container Instances, with the resource
//! keys of Occopus's `azure_aci` resource handler.
//!
//! Each instance is one container group named after the occopus instance id
//! (`occopus-<id>`) and tagged with its infra, node and instance, holding one
//! container: `image`, `cpu_cores`, `memory` (GB), the GPU keys, `ports`, and
//! the environment and command of the `docker` contextualisation (as in
//! Occopus's azure-aci-nginx tutorial). `network_type: Public` gives the
//! group a public address and a DNS label (its name); `Private` puts it in a
//! subnet delegated to Azure Container Instances through a network profile,
//! making the virtual network and subnet unless `vnet_name` / `subnet_name`
//! name existing ones. The resource group is made when missing, as Occopus
//! did, and never removed. A repeated create finds the group by its name.
//! Destroy removes the group and what occopus made for it.

use occopus_azure_arm::{Access, Arm, Keys, Provisioning, listed, resource_name, tags};
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::{clock, parse_section};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "azure_aci resource",
  "type": "object",
  "required": ["type", "endpoint", "resource_group", "location", "cpu_cores", "memory", "image", "os_type", "network_type"],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "azure_aci"},
    "endpoint": {"type": "string", "description": "Azure Resource Manager's URL: https://management.azure.com"},
    "resource_group": {"type": "string", "description": "made when missing, never removed"},
    "location": {"type": "string", "description": "an Azure region, such as westeurope"},
    "cpu_cores": {"type": "number", "exclusiveMinimum": 0},
    "memory": {"type": "number", "exclusiveMinimum": 0, "description": "GB"},
    "image": {"type": "string", "description": "a container image, such as nginx:alpine"},
    "os_type": {"enum": ["linux", "Linux", "windows", "Windows"]},
    "network_type": {"enum": ["public", "Public", "private", "Private"]},
    "gpu_type": {"type": "string", "description": "K80, P100 or V100"},
    "gpu_count": {"type": "integer", "minimum": 1, "description": "default 1 when gpu_type is set"},
    "ports": {"type": "array", "items": {"oneOf": [
      {"type": "integer", "minimum": 1, "maximum": 65535},
      {"type": "string", "pattern": "^[0-9]+(/(TCP|UDP|tcp|udp))?$"}]}, "description": "80 or \"53/UDP\""},
    "vnet_name": {"type": "string", "description": "an existing virtual network (Private)"},
    "subnet_name": {"type": "string", "description": "an existing subnet delegated to Microsoft.ContainerInstance/containerGroups (Private)"},
    "login_endpoint": {"type": "string", "description": "the OAuth2 login URL; default: the one the endpoint's metadata names (Microsoft's)"},
    "poll_interval": {"type": "number", "exclusiveMinimum": 0, "description": "seconds between polls of an operation that gives no Retry-After (default 5)"},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// The API versions occopus speaks (those of Microsoft's recordings).
const ACI_API: &str = "2018-10-01";
const NETWORK_API: &str = "2020-04-01";
const PROVIDER: &str = "Microsoft.ContainerInstance";

/// Words of ARM's errors -> the resource key they are about.
const KEYS: Keys = &[
    ("memoryInGB", "memory"),
    ("gpu", "gpu_type"),
    ("cpu", "cpu_cores"),
    ("InaccessibleImage", "image"),
    ("image", "image"),
    ("osType", "os_type"),
    ("location", "location"),
    ("ResourceGroup", "resource_group"),
    ("port", "ports"),
    ("virtualNetwork", "vnet_name"),
    ("subnet", "subnet_name"),
    ("dnsNameLabel", "network_type"),
    ("ipAddress", "network_type"),
];

#[derive(Deserialize)]
struct Resource {
    #[serde(flatten)]
    access: Access,
    resource_group: String,
    location: String,
    cpu_cores: f64,
    memory: f64,
    image: String,
    os_type: String,
    network_type: String,
    gpu_type: Option<String>,
    gpu_count: Option<u32>,
    #[serde(default)]
    ports: Vec<Value>,
    vnet_name: Option<String>,
    subnet_name: Option<String>,
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        resource.ports()?;
        Ok(resource)
    }

    fn private(&self) -> bool {
        self.network_type.eq_ignore_ascii_case("private")
    }

    /// `(port, protocol)` of each `ports` entry (`80` or `"53/UDP"`).
    fn ports(&self) -> Result<Vec<(u16, String)>, PluginError> {
        self.ports
            .iter()
            .map(|entry| {
                let text = match entry {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let (port, protocol) = text.split_once('/').unwrap_or((&text, "TCP"));
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .map(|p| (p, protocol.to_ascii_uppercase()))
                    .ok_or_else(|| {
                        PluginError::InvalidConfig(format!(
                            "ports: `{text}` is not a port; write 80 or \"53/UDP\""
                        ))
                    })
            })
            .collect()
    }
}

/// The names of what occopus makes for one container group.
struct Names {
    vnet: String,
    subnet: String,
    profile: String,
}

impl Names {
    fn of(resource: &Resource, group: &str) -> Names {
        Names {
            vnet: resource
                .vnet_name
                .clone()
                .unwrap_or_else(|| format!("{group}-vnet")),
            subnet: resource
                .subnet_name
                .clone()
                .unwrap_or_else(|| format!("{group}-subnet")),
            profile: format!("{group}-netprofile"),
        }
    }
}

fn group_path(arm: &Arm, resource: &Resource, name: &str) -> String {
    arm.resource_path(
        &resource.resource_group,
        PROVIDER,
        &format!("containerGroups/{name}"),
    )
}

fn network_path(arm: &Arm, resource: &Resource, path: &str) -> String {
    arm.resource_path(&resource.resource_group, "Microsoft.Network", path)
}

/// The container group's body.
fn group_body(
    resource: &Resource,
    request: &CreateRequest,
    name: &str,
    network_profile: Option<&str>,
) -> Result<Value, PluginError> {
    let (env, command) = match &request.payload {
        Payload::Container(spec) => (
            spec.env
                .iter()
                .map(|kv| json!({"name": kv.key, "value": kv.value}))
                .collect::<Vec<_>>(),
            spec.command.clone(),
        ),
        Payload::None => (vec![], None),
        Payload::UserData(_) => {
            return Err(PluginError::InvalidConfig(
                "Azure Container Instances take a container's environment and command \
                 (contextualisation type `docker`), not cloud-init user-data"
                    .into(),
            ));
        }
    };
    let ports = resource.ports()?;
    let mut requests = json!({"memoryInGB": resource.memory, "cpu": resource.cpu_cores});
    if let Some(sku) = &resource.gpu_type {
        requests["gpu"] = json!({"count": resource.gpu_count.unwrap_or(1), "sku": sku});
    }
    let mut container = json!({
        "name": name,
        "properties": {
            "image": resource.image,
            "resources": {"requests": requests},
            "ports": ports.iter().map(|(port, protocol)| json!({"port": port, "protocol": protocol})).collect::<Vec<_>>(),
            "environmentVariables": env,
        }
    });
    if let Some(command) = command {
        container["properties"]["command"] = json!(command);
    }
    let os_type = if resource.os_type.eq_ignore_ascii_case("windows") {
        "Windows"
    } else {
        "Linux"
    };
    let mut properties = json!({"containers": [container], "osType": os_type});
    let group_ports: Vec<Value> = ports
        .iter()
        .map(|(port, protocol)| json!({"port": port, "protocol": protocol}))
        .collect();
    if resource.private() {
        if !group_ports.is_empty() {
            properties["ipAddress"] = json!({"type": "Private", "ports": group_ports});
        }
        if let Some(id) = network_profile {
            properties["networkProfile"] = json!({"id": id});
        }
    } else if !group_ports.is_empty() {
        properties["ipAddress"] =
            json!({"type": "Public", "ports": group_ports, "dnsNameLabel": name});
    }
    let t = &request.tags;
    Ok(json!({
        "location": resource.location,
        "tags": tags(&t.infra_id, &t.infra_name, &t.node_name, &request.instance_id),
        "properties": properties,
    }))
}

/// The private network of a group: the virtual network and subnet (made
/// unless named) and a network profile; its id.
fn private_network(arm: &Arm, resource: &Resource, names: &Names) -> Result<String, PluginError> {
    let vnet_path = network_path(arm, resource, &format!("virtualNetworks/{}", names.vnet));
    if resource.vnet_name.is_none() && arm.get(&vnet_path, NETWORK_API, KEYS)?.is_none() {
        arm.put_and_wait(
            &vnet_path,
            NETWORK_API,
            &json!({"location": resource.location,
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
            KEYS,
        )?;
    }
    let subnet_path = format!("{vnet_path}/subnets/{}", names.subnet);
    let subnet = if resource.subnet_name.is_none() {
        let delegation = "Microsoft.ContainerInstance/containerGroups";
        arm.put_and_wait(
            &subnet_path,
            NETWORK_API,
            &json!({"properties": {"addressPrefix": "10.0.0.0/24",
                "delegations": [{"name": delegation, "properties": {"serviceName": delegation}}]}}),
            KEYS,
        )?
    } else {
        arm.get(&subnet_path, NETWORK_API, KEYS)?.ok_or_else(|| {
            PluginError::InvalidConfig(format!(
                "subnet_name `{}` is not a subnet of vnet_name `{}` in resource_group `{}`",
                names.subnet, names.vnet, resource.resource_group
            ))
        })?
    };
    let profile = arm.put_and_wait(
        &network_path(arm, resource, &format!("networkProfiles/{}", names.profile)),
        NETWORK_API,
        &json!({"location": resource.location, "properties": {"containerNetworkInterfaceConfigurations": [{
            "name": "eth0",
            "properties": {"ipConfigurations": [{"name": "ipconfigprofile",
                "properties": {"subnet": {"id": subnet["id"]}}}]}}]}}),
        KEYS,
    )?;
    profile["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PluginError::Internal("ARM made a network profile without an id".into()))
}

/// Whether ARM refused because the resource is still in use.
fn still_in_use(error: &PluginError) -> bool {
    matches!(error, PluginError::InvalidConfig(m) | PluginError::Transient(m) if m.contains("InUse"))
}

/// The contract's status of a container group.
fn status_of(group: &Value, private: bool) -> InstanceStatus {
    let properties = &group["properties"];
    let provisioning = properties["provisioningState"].as_str().unwrap_or_default();
    let running = properties["instanceView"]["state"]
        .as_str()
        .unwrap_or_default();
    let state = match (Provisioning::parse(provisioning), running) {
        (Provisioning::Succeeded, "Stopped") => InstanceState::Shutdown,
        (_, "Failed") | (Provisioning::Failed, _) => InstanceState::Failed,
        (Provisioning::Succeeded, _) => InstanceState::Running,
        (Provisioning::InProgress, _) => InstanceState::Pending,
        (Provisioning::Deleting, _) => InstanceState::Shutdown,
        (Provisioning::Unknown, _) => InstanceState::Unknown,
    };
    let address = &properties["ipAddress"];
    let ip = address["ip"].as_str().map(str::to_owned);
    let fqdn = address["fqdn"].as_str().map(str::to_owned);
    let (public_addresses, private_addresses) = if private {
        (vec![], ip.into_iter().collect())
    } else {
        (ip.into_iter().chain(fqdn).collect(), vec![])
    };
    let detail = match running {
        "" => provisioning.to_owned(),
        running => format!("{provisioning}, {running}"),
    };
    InstanceStatus {
        state,
        public_addresses,
        private_addresses,
        detail: Some(detail),
    }
}

struct AzureAci;

impl Driver for AzureAci {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "azure_aci".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["azure_aci".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let resource = Resource::parse(&request.target.resource)?;
        let arm = resource.access.connect(&request.target.credentials)?;
        let name = resource_name(&request.instance_id);
        let path = group_path(&arm, &resource, &name);
        // A group an interrupted create made is adopted.
        if arm.get(&path, ACI_API, KEYS)?.is_some() {
            return Ok(name);
        }
        arm.make_group(&resource.resource_group, &resource.location, KEYS)?;
        let profile = if resource.private() {
            Some(private_network(
                &arm,
                &resource,
                &Names::of(&resource, &name),
            )?)
        } else {
            None
        };
        let body = group_body(&resource, &request, &name, profile.as_deref())?;
        // The group's state is what `status` reports: no need to wait here.
        arm.call("PUT", &path, ACI_API, Some(&body), KEYS)?;
        Ok(name)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let arm = resource.access.connect(&target.credentials)?;
        match arm.get(&group_path(&arm, &resource, &cloud_id), ACI_API, KEYS)? {
            Some(group) => Ok(status_of(&group, resource.private())),
            None => Ok(InstanceStatus {
                state: InstanceState::Shutdown,
                public_addresses: vec![],
                private_addresses: vec![],
                detail: Some("gone: ARM no longer knows the container group".into()),
            }),
        }
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let arm = resource.access.connect(&target.credentials)?;
        arm.delete_and_wait(&group_path(&arm, &resource, &cloud_id), ACI_API, KEYS)?;
        if resource.private() {
            let names = Names::of(&resource, &cloud_id);
            let vnet = format!("virtualNetworks/{}", names.vnet);
            let profile = network_path(
                &arm,
                &resource,
                &format!("networkProfiles/{}", names.profile),
            );
            // A profile stays in use a while after its group went (ARM
            // refuses with an `InUse...` code): asked again, as Occopus did,
            // up to ten times five seconds apart.
            let mut tries = 1;
            loop {
                match arm.delete_and_wait(&profile, NETWORK_API, KEYS) {
                    Err(error) if tries < 10 && still_in_use(&error) => {
                        tries += 1;
                        clock::sleep(Duration::from_secs(5));
                    }
                    done => break done?,
                }
            }
            if resource.subnet_name.is_none() {
                let subnet = format!("{vnet}/subnets/{}", names.subnet);
                arm.delete_and_wait(&network_path(&arm, &resource, &subnet), NETWORK_API, KEYS)?;
            }
            if resource.vnet_name.is_none() {
                arm.delete_and_wait(&network_path(&arm, &resource, &vnet), NETWORK_API, KEYS)?;
            }
        }
        Ok(())
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let arm = resource.access.connect(&target.credentials)?;
        let path = arm.resource_path(&resource.resource_group, PROVIDER, "containerGroups");
        let Some(listing) = arm.get(&path, ACI_API, KEYS)? else {
            return Ok(vec![]);
        };
        Ok(listed(&listing, &infra_id, |group| {
            status_of(group, resource.private()).state
        }))
    }
}

export_driver!(AzureAci);

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(extra: Value) -> Resource {
        let mut section = json!({"type": "azure_aci", "endpoint": "https://management.azure.com",
            "resource_group": "rg", "location": "westeurope", "cpu_cores": 1, "memory": 1.5,
            "image": "nginx:alpine", "os_type": "linux", "network_type": "Public", "ports": [80, "53/udp"]});
        section
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Resource::parse(&section.to_string()).unwrap()
    }

    fn request(payload: Payload) -> CreateRequest {
        example_request("client-1-ab12cd34", "client", payload)
    }

    #[test]
    fn a_public_group_carries_the_docker_contextualisation() {
        let spec = ContainerSpec {
            env: vec![KeyValue {
                key: "message".into(),
                value: "hi".into(),
            }],
            command: Some(vec!["sh".into(), "-c".into(), "echo".into()]),
        };
        let body = group_body(
            &resource(json!({})),
            &request(Payload::Container(spec)),
            "occopus-client-1",
            None,
        )
        .unwrap();
        let container = &body["properties"]["containers"][0]["properties"];
        assert_eq!(container["image"], "nginx:alpine");
        assert_eq!(
            container["resources"]["requests"],
            json!({"memoryInGB": 1.5, "cpu": 1.0})
        );
        assert_eq!(
            container["environmentVariables"],
            json!([{"name": "message", "value": "hi"}])
        );
        assert_eq!(container["command"], json!(["sh", "-c", "echo"]));
        assert_eq!(
            container["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
        assert_eq!(body["properties"]["osType"], "Linux");
        assert_eq!(body["properties"]["ipAddress"]["type"], "Public");
        assert_eq!(
            body["properties"]["ipAddress"]["dnsNameLabel"],
            "occopus-client-1"
        );
        assert_eq!(body["tags"]["occopus-instance-id"], "client-1-ab12cd34");
    }

    #[test]
    fn gpus_and_private_networks() {
        let private = resource(json!({"network_type": "Private", "gpu_type": "K80"}));
        let body = group_body(&private, &request(Payload::None), "g", Some("/profile")).unwrap();
        assert_eq!(
            body["properties"]["containers"][0]["properties"]["resources"]["requests"]["gpu"],
            json!({"count": 1, "sku": "K80"})
        );
        assert_eq!(body["properties"]["ipAddress"]["type"], "Private");
        assert_eq!(body["properties"]["networkProfile"]["id"], "/profile");
        let names = Names::of(&private, "g");
        assert_eq!(
            (
                names.vnet.as_str(),
                names.subnet.as_str(),
                names.profile.as_str()
            ),
            ("g-vnet", "g-subnet", "g-netprofile")
        );
        assert!(
            group_body(
                &private,
                &request(Payload::UserData("#!".into())),
                "g",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn a_profile_in_use_is_told_apart() {
        let in_use = "ARM answered DELETE /p with 400 InUseNetworkProfileCannotBeDeleted: in use";
        assert!(still_in_use(&PluginError::InvalidConfig(in_use.into())));
        assert!(!still_in_use(&PluginError::InvalidConfig(
            "InvalidParameter".into()
        )));
        assert!(!still_in_use(&PluginError::Unauthorized("InUse".into())));
    }

    #[test]
    fn bad_ports_are_refused_naming_the_key() {
        let section = json!({"type": "azure_aci", "endpoint": "https://management.azure.com",
            "resource_group": "rg", "location": "l", "cpu_cores": 1, "memory": 1,
            "image": "i", "os_type": "linux", "network_type": "Public", "ports": ["http"]});
        let Err(PluginError::InvalidConfig(message)) = Resource::parse(&section.to_string()) else {
            panic!("a port that is not a number is refused");
        };
        assert!(message.starts_with("ports: `http`"), "{message}");
    }

    #[test]
    fn states_and_addresses() {
        let group = json!({"properties": {"provisioningState": "Succeeded", "instanceView": {"state": "Running"},
            "ipAddress": {"ip": "127.215.0.9", "fqdn": "g.westeurope.azurecontainer.io"}}});
        let status = status_of(&group, false);
        assert_eq!(status.state, InstanceState::Running);
        assert_eq!(
            status.public_addresses,
            ["127.215.0.9", "g.westeurope.azurecontainer.io"]
        );
        assert_eq!(status_of(&group, true).private_addresses, ["127.215.0.9"]);
        let pending = json!({"properties": {"provisioningState": "Pending"}});
        assert_eq!(status_of(&pending, false).state, InstanceState::Pending);
        let failed = json!({"properties": {"provisioningState": "Succeeded", "instanceView": {"state": "Failed"}}});
        assert_eq!(status_of(&failed, false).state, InstanceState::Failed);
        let stopped = json!({"properties": {"provisioningState": "succeeded", "instanceView": {"state": "Stopped"}}});
        assert_eq!(status_of(&stopped, false).state, InstanceState::Shutdown);
    }
}
