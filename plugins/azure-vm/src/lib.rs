//! `azure_vm`: the driver of Azure virtual machines, with the resource keys
//! of Occopus's `azure_vm` resource handler.
//!
//! A create makes, in the resource group (made when missing, never removed),
//! what the VM needs and was not named: a virtual network (unless
//! `vnet_name`), a subnet (unless `subnet_name`), a public IP (when
//! `public_ip_needed`) and a NIC, each followed to the end of its operation;
//! then the VM from the marketplace image (`publisher`, `offer`, `sku`,
//! `version`) with the user-data as `customData` and the `username` with a
//! `password` or `ssh_public_key`. Everything is named after the occopus
//! instance id (`occopus-<id>`, `-vnet`, `-subnet`, `-pubip`, `-nic`) and
//! the VM is tagged with its infra, node and instance: a repeated create
//! finds the VM, and one interrupted half-way reuses what it had made.
//! Destroy removes the VM, its disks and what occopus made for it.

use base64::Engine as _;
use occopus_azure_arm::{Access, Arm, Keys, Provisioning, listed, resource_name, tags};
use occopus_plugin_sdk::driver::*;
use occopus_plugin_sdk::parse_section;
use serde::Deserialize;
use serde_json::{Value, json};

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "azure_vm resource",
  "type": "object",
  "required": ["type", "endpoint", "resource_group", "location", "vm_size", "publisher", "offer", "sku", "version", "username"],
  "anyOf": [{"required": ["password"]}, {"required": ["ssh_public_key"]}],
  "additionalProperties": false,
  "properties": {
    "type": {"const": "azure_vm"},
    "endpoint": {"type": "string", "description": "Azure Resource Manager's URL: https://management.azure.com"},
    "resource_group": {"type": "string", "description": "made when missing, never removed"},
    "location": {"type": "string", "description": "an Azure region, such as westeurope"},
    "vm_size": {"type": "string", "description": "such as Standard_B1s"},
    "publisher": {"type": "string", "description": "of the marketplace image, such as Canonical"},
    "offer": {"type": "string", "description": "such as 0001-com-ubuntu-server-jammy"},
    "sku": {"type": "string", "description": "such as 22_04-lts"},
    "version": {"type": "string", "description": "such as latest"},
    "username": {"type": "string", "description": "the administrator's user name"},
    "password": {"type": "string", "description": "the administrator's password"},
    "ssh_public_key": {"type": "string", "description": "an OpenSSH public key for the administrator (Linux images; instead of or besides password)"},
    "public_ip_needed": {"type": "boolean", "description": "give the VM a public IP (default false)"},
    "vnet_name": {"type": "string", "description": "an existing virtual network to use"},
    "subnet_name": {"type": "string", "description": "an existing subnet to use"},
    "customdata": {"description": "accepted and unused, as by Occopus: the contextualisation gives customData"},
    "login_endpoint": {"type": "string", "description": "the OAuth2 login URL; default: the one the endpoint's metadata names (Microsoft's)"},
    "poll_interval": {"type": "number", "exclusiveMinimum": 0, "description": "seconds between polls of an operation that gives no Retry-After (default 5)"},
    "name": {"type": "string", "description": "selects auth_data entries"}
  }
}"#;

/// The API versions occopus speaks (those of Microsoft's recordings).
const COMPUTE_API: &str = "2021-07-01";
const DISKS_API: &str = "2021-04-01";
const NETWORK_API: &str = "2020-04-01";

/// Azure's limit on `customData` (bytes, before base64).
const CUSTOM_DATA_LIMIT: usize = 65_535;

/// Words of ARM's errors -> the resource key they are about.
const KEYS: Keys = &[
    ("vmSize", "vm_size"),
    ("SkuNotAvailable", "vm_size"),
    ("PlatformImage", "publisher, offer, sku and version"),
    ("imageReference", "publisher, offer, sku and version"),
    ("adminPassword", "password"),
    ("adminUsername", "username"),
    ("ssh", "ssh_public_key"),
    ("customData", "the contextualisation's user-data"),
    ("ResourceGroup", "resource_group"),
    ("location", "location"),
    ("virtualNetwork", "vnet_name"),
    ("subnet", "subnet_name"),
    ("publicIP", "public_ip_needed"),
];

#[derive(Deserialize)]
struct Resource {
    #[serde(flatten)]
    access: Access,
    resource_group: String,
    location: String,
    vm_size: String,
    publisher: String,
    offer: String,
    sku: String,
    version: String,
    username: String,
    password: Option<String>,
    ssh_public_key: Option<String>,
    #[serde(default)]
    public_ip_needed: bool,
    vnet_name: Option<String>,
    subnet_name: Option<String>,
}

impl Resource {
    fn parse(json: &str) -> Result<Resource, PluginError> {
        let resource: Resource = parse_section(json)?;
        if resource.password.is_none() && resource.ssh_public_key.is_none() {
            return Err(PluginError::InvalidConfig(
                "give the administrator a `password` or an `ssh_public_key`".into(),
            ));
        }
        Ok(resource)
    }
}

/// The paths of one instance's VM and of what occopus makes for it.
struct Paths {
    vm: String,
    vnet: String,
    subnet: String,
    public_ip: String,
    nic: String,
    /// The VM's name (its cloud id).
    name: String,
}

impl Paths {
    fn of(arm: &Arm, resource: &Resource, name: &str) -> Paths {
        let network =
            |path: String| arm.resource_path(&resource.resource_group, "Microsoft.Network", &path);
        let vnet_name = resource
            .vnet_name
            .clone()
            .unwrap_or_else(|| format!("{name}-vnet"));
        let subnet_name = resource
            .subnet_name
            .clone()
            .unwrap_or_else(|| format!("{name}-subnet"));
        let vnet = network(format!("virtualNetworks/{vnet_name}"));
        Paths {
            vm: arm.resource_path(
                &resource.resource_group,
                "Microsoft.Compute",
                &format!("virtualMachines/{name}"),
            ),
            subnet: format!("{vnet}/subnets/{subnet_name}"),
            vnet,
            public_ip: network(format!("publicIPAddresses/{name}-pubip")),
            nic: network(format!("networkInterfaces/{name}-nic")),
            name: name.to_owned(),
        }
    }
}

/// The network the VM's NIC sits on: made unless named; the NIC's id.
fn network(
    arm: &Arm,
    resource: &Resource,
    paths: &Paths,
    tags: &Value,
) -> Result<String, PluginError> {
    if resource.vnet_name.is_none() && arm.get(&paths.vnet, NETWORK_API, KEYS)?.is_none() {
        arm.put_and_wait(
            &paths.vnet,
            NETWORK_API,
            &json!({"location": resource.location, "tags": tags,
                "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}}),
            KEYS,
        )?;
    }
    let subnet =
        if resource.subnet_name.is_none() {
            arm.put_and_wait(
                &paths.subnet,
                NETWORK_API,
                &json!({"properties": {"addressPrefix": "10.0.0.0/24"}}),
                KEYS,
            )?
        } else {
            arm.get(&paths.subnet, NETWORK_API, KEYS)?.ok_or_else(|| {
            PluginError::InvalidConfig(format!(
                "subnet_name `{}` is not a subnet of the virtual network{} in resource_group `{}`",
                occopus_azure_arm::last_segment(&paths.subnet),
                resource.vnet_name.as_deref().map(|v| format!(" `{v}`")).unwrap_or_default(),
                resource.resource_group
            ))
        })?
        };
    let mut ip_configuration = json!({"name": format!("{}-ipconfig", paths.name),
        "properties": {"subnet": {"id": subnet["id"]}}});
    if resource.public_ip_needed {
        let public_ip = arm.put_and_wait(
            &paths.public_ip,
            NETWORK_API,
            &json!({"location": resource.location, "tags": tags,
                "properties": {"publicIPAllocationMethod": "Dynamic", "publicIPAddressVersion": "IPv4"}}),
            KEYS,
        )?;
        ip_configuration["properties"]["publicIPAddress"] = json!({"id": public_ip["id"]});
    }
    let nic = arm.put_and_wait(
        &paths.nic,
        NETWORK_API,
        &json!({"location": resource.location, "tags": tags,
            "properties": {"ipConfigurations": [ip_configuration]}}),
        KEYS,
    )?;
    nic["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PluginError::Internal("ARM made a NIC without an id".into()))
}

/// Removes what occopus made for the VM, last made first; what is gone
/// already is skipped.
fn remove_network(arm: &Arm, resource: &Resource, paths: &Paths) -> Result<(), PluginError> {
    arm.delete_and_wait(&paths.nic, NETWORK_API, KEYS)?;
    if resource.public_ip_needed {
        arm.delete_and_wait(&paths.public_ip, NETWORK_API, KEYS)?;
    }
    if resource.subnet_name.is_none() {
        arm.delete_and_wait(&paths.subnet, NETWORK_API, KEYS)?;
    }
    if resource.vnet_name.is_none() {
        arm.delete_and_wait(&paths.vnet, NETWORK_API, KEYS)?;
    }
    Ok(())
}

/// The computer name: the node's name, as Occopus gave it (letters, digits
/// and dashes; Windows allows 15 characters, Linux 64).
fn computer_name(node: &str, resource: &Resource) -> String {
    let mut name: String = node
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let limit = if resource.publisher.to_ascii_lowercase().contains("windows") {
        15
    } else {
        64
    };
    name.truncate(limit);
    let name = name.trim_matches('-');
    if name.is_empty() {
        "occopus".into()
    } else {
        name.to_owned()
    }
}

fn vm_body(
    resource: &Resource,
    request: &CreateRequest,
    nic: &str,
    tags: &Value,
) -> Result<Value, PluginError> {
    let mut os_profile = json!({
        "computerName": computer_name(&request.tags.node_name, resource),
        "adminUsername": resource.username,
    });
    if let Some(password) = &resource.password {
        os_profile["adminPassword"] = json!(password);
    }
    if let Some(key) = &resource.ssh_public_key {
        os_profile["linuxConfiguration"] = json!({
            "disablePasswordAuthentication": resource.password.is_none(),
            "ssh": {"publicKeys": [{"path": format!("/home/{}/.ssh/authorized_keys", resource.username), "keyData": key}]},
        });
    }
    match &request.payload {
        Payload::None => {}
        Payload::UserData(user_data) if user_data.len() > CUSTOM_DATA_LIMIT => {
            return Err(PluginError::InvalidConfig(format!(
                "the contextualisation's user-data is {} bytes; Azure takes at most {CUSTOM_DATA_LIMIT} as customData",
                user_data.len()
            )));
        }
        Payload::UserData(user_data) => {
            os_profile["customData"] =
                json!(base64::engine::general_purpose::STANDARD.encode(user_data));
        }
        Payload::Container(_) => {
            return Err(PluginError::InvalidConfig(
                "Azure VMs take cloud-init user-data (contextualisation type `cloudinit`), not a container spec; \
                 use azure_aci for containers"
                    .into(),
            ));
        }
    }
    Ok(json!({
        "location": resource.location,
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": resource.vm_size},
            "storageProfile": {"imageReference": {
                "publisher": resource.publisher, "offer": resource.offer,
                "sku": resource.sku, "version": resource.version}},
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": true}}]},
        }
    }))
}

/// The contract's state of a VM's provisioning state.
fn state_of(vm: &Value) -> InstanceState {
    match Provisioning::parse(
        vm["properties"]["provisioningState"]
            .as_str()
            .unwrap_or_default(),
    ) {
        Provisioning::InProgress => InstanceState::Pending,
        Provisioning::Succeeded => InstanceState::Running,
        Provisioning::Failed => InstanceState::Failed,
        Provisioning::Deleting => InstanceState::Shutdown,
        Provisioning::Unknown => InstanceState::Unknown,
    }
}

/// The VM's addresses: the private IPs of its NICs' configurations, and the
/// public IPs they point at.
fn addresses(arm: &Arm, vm: &Value) -> Result<(Vec<String>, Vec<String>), PluginError> {
    let (mut public, mut private) = (vec![], vec![]);
    let nics = vm["properties"]["networkProfile"]["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for nic in nics {
        let Some(nic) = nic["id"].as_str() else {
            continue;
        };
        let Some(nic) = arm.get(nic, NETWORK_API, KEYS)? else {
            continue;
        };
        for configuration in nic["properties"]["ipConfigurations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let properties = &configuration["properties"];
            private.extend(properties["privateIPAddress"].as_str().map(str::to_owned));
            if let Some(id) = properties["publicIPAddress"]["id"].as_str()
                && let Some(ip) = arm.get(id, NETWORK_API, KEYS)?
            {
                public.extend(ip["properties"]["ipAddress"].as_str().map(str::to_owned));
            }
        }
    }
    Ok((public, private))
}

/// The managed disks a VM has (OS and data).
fn disks(vm: &Value) -> Vec<String> {
    let storage = &vm["properties"]["storageProfile"];
    std::iter::once(&storage["osDisk"])
        .chain(storage["dataDisks"].as_array().into_iter().flatten())
        .filter_map(|disk| disk["managedDisk"]["id"].as_str().map(str::to_owned))
        .collect()
}

struct AzureVm;

impl Driver for AzureVm {
    fn describe() -> DriverInfo {
        DriverInfo {
            name: "azure_vm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            resource_types: vec!["azure_vm".into()],
            resource_schema: SCHEMA.into(),
        }
    }

    fn validate(resource: String) -> Result<(), PluginError> {
        Resource::parse(&resource).map(drop)
    }

    fn create(request: CreateRequest) -> Result<String, PluginError> {
        let resource = Resource::parse(&request.target.resource)?;
        let arm = resource.access.connect(&request.target.credentials)?;
        let paths = Paths::of(&arm, &resource, &resource_name(&request.instance_id));
        // A VM an interrupted create made is adopted.
        if arm.get(&paths.vm, COMPUTE_API, KEYS)?.is_some() {
            return Ok(paths.name);
        }
        arm.make_group(&resource.resource_group, &resource.location, KEYS)?;
        let t = &request.tags;
        let tags = tags(
            &t.infra_id,
            &t.infra_name,
            &t.node_name,
            &request.instance_id,
        );
        let nic = network(&arm, &resource, &paths, &tags)?;
        let body = vm_body(&resource, &request, &nic, &tags)?;
        // The VM's provisioning state is what `status` reports: no need to wait.
        if let Err(refused) = arm.call("PUT", &paths.vm, COMPUTE_API, Some(&body), KEYS) {
            // Nothing left behind by a VM Azure refused.
            if !matches!(refused, PluginError::Transient(_)) {
                remove_network(&arm, &resource, &paths)?;
            }
            return Err(refused);
        }
        Ok(paths.name)
    }

    fn status(target: Target, cloud_id: String) -> Result<InstanceStatus, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let arm = resource.access.connect(&target.credentials)?;
        let paths = Paths::of(&arm, &resource, &cloud_id);
        let Some(vm) = arm.get(&paths.vm, COMPUTE_API, KEYS)? else {
            return Ok(InstanceStatus {
                state: InstanceState::Shutdown,
                public_addresses: vec![],
                private_addresses: vec![],
                detail: Some("gone: ARM no longer knows the VM".into()),
            });
        };
        let state = state_of(&vm);
        let (public_addresses, private_addresses) = match state {
            InstanceState::Running => addresses(&arm, &vm)?,
            _ => (vec![], vec![]),
        };
        Ok(InstanceStatus {
            state,
            public_addresses,
            private_addresses,
            detail: vm["properties"]["provisioningState"]
                .as_str()
                .map(str::to_owned),
        })
    }

    fn destroy(target: Target, cloud_id: String) -> Result<(), PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let arm = resource.access.connect(&target.credentials)?;
        let paths = Paths::of(&arm, &resource, &cloud_id);
        if let Some(vm) = arm.get(&paths.vm, COMPUTE_API, KEYS)? {
            arm.delete_and_wait(&paths.vm, COMPUTE_API, KEYS)?;
            for disk in disks(&vm) {
                arm.delete_and_wait(&disk, DISKS_API, KEYS)?;
            }
        }
        remove_network(&arm, &resource, &paths)
    }

    fn list(target: Target, infra_id: String) -> Result<Vec<ListedInstance>, PluginError> {
        let resource = Resource::parse(&target.resource)?;
        let arm = resource.access.connect(&target.credentials)?;
        let path = arm.resource_path(
            &resource.resource_group,
            "Microsoft.Compute",
            "virtualMachines",
        );
        let Some(listing) = arm.get(&path, COMPUTE_API, KEYS)? else {
            return Ok(vec![]);
        };
        Ok(listed(&listing, &infra_id, state_of))
    }
}

export_driver!(AzureVm);

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(extra: Value) -> Resource {
        let mut section = json!({"type": "azure_vm", "endpoint": "https://management.azure.com",
            "resource_group": "rg", "location": "westeurope", "vm_size": "Standard_B1s",
            "publisher": "Canonical", "offer": "ubuntu", "sku": "22_04-lts", "version": "latest",
            "username": "occopus", "password": "S3cret!pass"});
        section
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Resource::parse(&section.to_string()).unwrap()
    }

    fn request(payload: Payload) -> CreateRequest {
        example_request("receiver-1-ab12cd34", "ping_receiver", payload)
    }

    #[test]
    fn the_vm_carries_the_user_data_the_image_and_the_nic() {
        let body = vm_body(
            &resource(json!({})),
            &request(Payload::UserData("#cloud-config\n".into())),
            "/nic",
            &json!({}),
        )
        .unwrap();
        let properties = &body["properties"];
        assert_eq!(
            properties["osProfile"]["customData"],
            "I2Nsb3VkLWNvbmZpZwo="
        );
        assert_eq!(properties["osProfile"]["computerName"], "ping-receiver");
        assert_eq!(properties["osProfile"]["adminPassword"], "S3cret!pass");
        assert_eq!(
            properties["storageProfile"]["imageReference"]["offer"],
            "ubuntu"
        );
        assert_eq!(properties["hardwareProfile"]["vmSize"], "Standard_B1s");
        assert_eq!(
            properties["networkProfile"]["networkInterfaces"][0]["id"],
            "/nic"
        );
    }

    #[test]
    fn an_ssh_key_may_replace_the_password() {
        let mut section = json!({"type": "azure_vm", "endpoint": "https://management.azure.com",
            "resource_group": "rg", "location": "l", "vm_size": "s", "publisher": "p", "offer": "o",
            "sku": "s", "version": "latest", "username": "u", "ssh_public_key": "ssh-ed25519 AAAA"});
        let keyed = Resource::parse(&section.to_string()).unwrap();
        let body = vm_body(&keyed, &request(Payload::None), "/nic", &json!({})).unwrap();
        let linux = &body["properties"]["osProfile"]["linuxConfiguration"];
        assert_eq!(linux["disablePasswordAuthentication"], true);
        assert_eq!(
            linux["ssh"]["publicKeys"][0]["path"],
            "/home/u/.ssh/authorized_keys"
        );
        section.as_object_mut().unwrap().remove("ssh_public_key");
        assert!(
            matches!(Resource::parse(&section.to_string()), Err(PluginError::InvalidConfig(m)) if m.contains("password"))
        );
    }

    #[test]
    fn too_much_user_data_and_containers_are_refused() {
        let big = Payload::UserData("x".repeat(CUSTOM_DATA_LIMIT + 1));
        assert!(matches!(
            vm_body(&resource(json!({})), &request(big), "/n", &json!({})),
            Err(PluginError::InvalidConfig(_))
        ));
        let container = Payload::Container(ContainerSpec {
            env: vec![],
            command: None,
        });
        assert!(vm_body(&resource(json!({})), &request(container), "/n", &json!({})).is_err());
    }

    #[test]
    fn windows_computer_names_are_short() {
        let windows = resource(json!({"publisher": "MicrosoftWindowsServer"}));
        assert_eq!(
            computer_name("a-very-long-node-name", &windows),
            "a-very-long-nod"
        );
        assert_eq!(computer_name("__", &resource(json!({}))), "occopus");
    }

    #[test]
    fn states_and_disks() {
        for (state, expected) in [
            ("Creating", InstanceState::Pending),
            ("Updating", InstanceState::Pending),
            ("Succeeded", InstanceState::Running),
            ("succeeded", InstanceState::Running),
            ("Failed", InstanceState::Failed),
            ("Deleting", InstanceState::Shutdown),
        ] {
            assert_eq!(
                state_of(&json!({"properties": {"provisioningState": state}})),
                expected,
                "{state}"
            );
        }
        let vm = json!({"properties": {"storageProfile": {"osDisk": {"managedDisk": {"id": "/d/os"}},
            "dataDisks": [{"managedDisk": {"id": "/d/1"}}, {"lun": 2}]}}});
        assert_eq!(disks(&vm), ["/d/os", "/d/1"]);
    }
}
