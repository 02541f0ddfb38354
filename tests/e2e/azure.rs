//! The `azure_vm` and `azure_aci` drivers against the strict replay server
//! (`replay.rs`, test scaffolding) serving Microsoft's own recordings of its
//! Python SDK's tests against Azure Resource Manager (azure-mgmt-compute,
//! -network and -containerinstance, fetched by `scripts/fetch-recordings`),
//! with stubs, named as such in the cassettes, for what no recording has
//! (the sign-in, a resource group PUT, 404s, disk and group deletes).
//! Builds and destroys through the binary, Occopus's azure-ping and
//! azure-aci-nginx tutorials, the driver's promises call by call, and the
//! strictness of the replay for recorded exchanges.

use crate::common::{Occopus, instances};
use crate::replay::{Cassette, Replay};
use occopus::types::{
    CloudTarget, ContractErrorKind, CreateRequest, Credentials, InstanceTags, Payload,
};
use serde_json::{Value, json};
use std::path::Path;

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";
const SECRET: &str = "replay-secret";
/// The resource group of Microsoft's container-instance recording.
const ACI_GROUP: &str = "test_mgmt_containerinstance_test_container_instance26441510";

fn auth_data(secret: &str) -> Vec<(String, String)> {
    [
        ("tenant_id", "00000000-0000-0000-0000-000000000001"),
        ("client_id", "replay-client"),
        ("client_secret", secret),
        ("subscription_id", SUBSCRIPTION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn auth_file(dir: &Path, resource_type: &str) -> String {
    let pairs: Vec<String> = auth_data(SECRET)
        .into_iter()
        .map(|(k, v)| format!("{k}: \"{v}\""))
        .collect();
    crate::common::auth_data_file(dir, resource_type, &format!("{{{}}}", pairs.join(", ")))
}

fn vm_resource(replay: &Replay) -> Value {
    json!({
        "type": "azure_vm", "endpoint": replay.url, "resource_group": "rgname",
        "location": "eastus", "vm_size": "Standard_D2_v2", "publisher": "Canonical",
        "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts", "version": "latest",
        "username": "occopus", "password": "Replay-Passw0rd", "poll_interval": 0.05,
    })
}

fn aci_resource(replay: &Replay, image: &str) -> Value {
    json!({
        "type": "azure_aci", "endpoint": replay.url, "resource_group": ACI_GROUP,
        "location": "westus", "cpu_cores": 1, "memory": 1.0, "image": image,
        "os_type": "linux", "network_type": "Public", "ports": [80], "poll_interval": 0.05,
    })
}

fn target(resource: Value, secret: &str) -> CloudTarget {
    let mut target = crate::common::target(resource);
    target.credentials = Credentials::new(auth_data(secret));
    target
}

fn request(target: CloudTarget, payload: Payload) -> CreateRequest {
    CreateRequest {
        instance_id: "node-1-0123abcd".into(),
        target,
        payload,
        tags: InstanceTags {
            infra_id: "infra-1".into(),
            infra_name: "azure".into(),
            node_name: "node".into(),
        },
    }
}

fn user_data() -> Payload {
    Payload::UserData("#cloud-config\nruncmd: [echo hello]\n".into())
}

/// Builds `definition` as the one node of an infra, checks it is ready at
/// `address`, destroys it, and checks every recorded exchange was asked.
fn build_and_destroy(
    replay: &Replay,
    subnet: u8,
    resource_type: &str,
    definition: Value,
    address: &str,
) {
    let occopus = Occopus::new(subnet);
    let dir = occopus.dir.path();
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: azure\nnodes:\n  - name: node\n    type: azure_node\n",
    )
    .unwrap();
    let definitions = json!({"node_def:azure_node": [definition]});
    std::fs::write(
        dir.join("nodes/node_definitions.yaml"),
        serde_yaml::to_string(&definitions).unwrap(),
    )
    .unwrap();
    let auth = &auth_file(dir, resource_type);
    let infra = dir.join("infra.yaml");
    let out = occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", auth]);
    assert!(!out.contains(SECRET), "{out}");
    let id = out.lines().last().unwrap().trim().to_owned();
    let instance = &instances(&occopus.report(&id), "node")[0];
    assert_eq!(instance["state"], "ready", "{instance}");
    assert_eq!(instance["resource_address"], address, "{instance}");
    assert!(
        instance["cloud_id"]
            .as_str()
            .unwrap()
            .starts_with("occopus-node-1-"),
        "{instance}"
    );
    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    replay.assert_complete();
}

#[test]
fn an_azure_vm_builds_and_is_destroyed_through_every_recorded_state() {
    let replay = Replay::start(Cassette::load("azure-vm-create-destroy.json"));
    let definition = json!({
        "resource": vm_resource(&replay),
        "contextualisation": {"type": "cloudinit", "context_template": "#cloud-config\nruncmd: [echo hello]\n"},
    });
    build_and_destroy(&replay, 103, "azure_vm", definition, "127.215.0.31");
}

#[test]
fn an_azure_container_group_builds_and_is_destroyed_with_its_environment_and_command() {
    let replay = Replay::start(Cassette::load("azure-aci-contextualised.json"));
    let definition = json!({
        "resource": aci_resource(&replay, "alpine:latest"),
        "contextualisation": {"type": "docker", "env": ["message=hello"],
            "command": ["sh", "-c", "echo $message; sleep 1000"]},
    });
    build_and_destroy(&replay, 104, "azure_aci", definition, "127.215.0.21");
}

/// Copies a corpus tutorial with its placeholders filled and each node
/// definition's `endpoint` (Microsoft's ARM URL, not a placeholder) pointed
/// at its own replay server, in the order the definitions are written.
fn tutorial(name: &str, to: &Path, values: &[(&str, String)], replays: &[&Replay]) {
    let corpus = crate::common::repository().join("tests/compat/occopus-tutorials");
    crate::common::fill_placeholders(&corpus.join(name), to, values);
    let definitions = to.join("nodes/node_definitions.yaml");
    let mut text = std::fs::read_to_string(&definitions).unwrap();
    for replay in replays {
        text = text.replacen("https://management.azure.com", &replay.url, 1);
    }
    assert!(!text.contains("management.azure.com"), "{text}");
    std::fs::write(&definitions, text).unwrap();
}

/// Occopus's azure-ping tutorial, only its placeholders filled and its
/// endpoints pointed at the replays: the receiver, then the sender, built
/// and destroyed through the binary.
#[test]
fn the_azure_ping_tutorial_builds_and_destroys() {
    let receiver = Replay::start(Cassette::load("azure-vm-create-destroy.json"));
    let sender = Replay::start(Cassette::load("azure-vm-create-destroy.json"));
    let occopus = Occopus::new(105);
    let dir = occopus.dir.path();
    let values = [
        ("replace_with_resource_group_name", "rgname".to_owned()),
        ("replace_with_location", "eastus".to_owned()),
        ("replace_with_vm_size", "Standard_D2_v2".to_owned()),
        ("replace_with_publisher_name", "Canonical".to_owned()),
        (
            "replace_with_offer",
            "0001-com-ubuntu-server-jammy".to_owned(),
        ),
        ("replace_with_sku", "22_04-lts".to_owned()),
        ("replace_with_version", "latest".to_owned()),
        ("replace_with_admin_username", "occopus".to_owned()),
        ("replace_with_admin_password", "Replay-Passw0rd".to_owned()),
        // In comments of the tutorial (optional keys), filled all the same.
        ("replace_with_virtual_network_name", "unused".to_owned()),
        ("replace_with_nic_name", "unused".to_owned()),
        ("replace_with_subnet_name", "unused".to_owned()),
    ];
    tutorial(
        "azure-ping",
        &dir.join("azure-ping"),
        &values,
        &[&receiver, &sender],
    );
    let auth = &auth_file(dir, "azure_vm");
    let infra = dir.join("azure-ping/infra-azure-ping.yaml");
    let out = occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", auth]);
    let id = out.lines().last().unwrap().trim().to_owned();
    let report = occopus.report(&id);
    for node in ["ping-receiver", "ping-sender"] {
        let instance = &instances(&report, node)[0];
        assert_eq!(instance["state"], "ready", "{instance}");
        assert_eq!(instance["resource_address"], "127.215.0.31", "{instance}");
    }
    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    receiver.assert_complete();
    sender.assert_complete();
}

/// Occopus's azure-aci-nginx tutorial, only its placeholders filled and its
/// endpoints pointed at the replays: the nginx server passes its port-80
/// health check (a listener of this test on the replayed address), then the
/// client gets its address in its command.
#[test]
fn the_azure_aci_nginx_tutorial_builds_and_destroys() {
    let server = Replay::start(Cassette::load("azure-aci-create-destroy.json"));
    let client = Replay::start(Cassette::load("azure-aci-contextualised.json"));
    let nginx =
        std::net::TcpListener::bind("127.215.0.21:80").expect("port 80 (the tests run as root)");
    let occopus = Occopus::new(106);
    let dir = occopus.dir.path();
    let values = [
        ("replace_with_resource_group_name", ACI_GROUP.to_owned()),
        ("replace_with_location", "westus".to_owned()),
        ("replace_with_memory", "1.5".to_owned()),
        ("replace_with_cpu_cores", "1".to_owned()),
    ];
    tutorial(
        "azure-aci-nginx",
        &dir.join("aci"),
        &values,
        &[&server, &client],
    );
    let auth = &auth_file(dir, "azure_aci");
    let infra = dir.join("aci/infra-azure-aci-nginx.yaml");
    let out = occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", auth]);
    let id = out.lines().last().unwrap().trim().to_owned();
    let report = occopus.report(&id);
    for node in ["nginx-server", "nginx-client"] {
        let instance = &instances(&report, node)[0];
        assert_eq!(instance["state"], "ready", "{instance}");
        assert_eq!(instance["resource_address"], "127.215.0.21", "{instance}");
    }
    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    drop(nginx);
    server.assert_complete();
    client.assert_complete();
}

/// A wrong client secret is `unauthorized`, names the key, never shows the
/// secret, and makes nothing.
#[tokio::test]
async fn wrong_credentials_are_unauthorized_and_never_shown() {
    for (driver, cassette) in [
        ("azure_vm", "azure-vm-create-destroy.json"),
        ("azure_aci", "azure-aci-create-destroy.json"),
    ] {
        let replay = Replay::start(Cassette::load(cassette));
        let resource = match driver {
            "azure_vm" => vm_resource(&replay),
            _ => aci_resource(&replay, "alpine:latest"),
        };
        let plugin = crate::common::builtin_driver(driver).await;
        let error = plugin
            .create(&request(target(resource, "not-the-secret"), Payload::None))
            .await
            .unwrap_err();
        let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
        assert_eq!(
            contract.kind,
            ContractErrorKind::Unauthorized,
            "{driver}: {error}"
        );
        assert!(contract.message.contains("AADSTS7000215"), "{error}");
        assert!(contract.message.contains("check client_secret"), "{error}");
        assert!(!error.to_string().contains("not-the-secret"), "{error}");
        assert!(replay.mismatches().is_empty(), "{:?}", replay.mismatches());
    }
}

/// A create retried after the first made its VM or group adopts it: one
/// GET, nothing made.
#[tokio::test]
async fn a_retried_create_makes_no_second_resource() {
    let replay = Replay::start(Cassette::load("azure-vm-retried-create.json"));
    let plugin = crate::common::builtin_driver("azure_vm").await;
    let id = plugin
        .create(&request(target(vm_resource(&replay), SECRET), user_data()))
        .await
        .unwrap();
    assert_eq!(id, "occopus-node-1-0123abcd");
    replay.assert_complete();

    let replay = Replay::start(Cassette::load("azure-aci-retried-create.json"));
    let plugin = crate::common::builtin_driver("azure_aci").await;
    let target = target(aci_resource(&replay, "alpine:latest"), SECRET);
    let first = plugin
        .create(&request(target.clone(), Payload::None))
        .await
        .unwrap();
    let second = plugin
        .create(&request(target, Payload::None))
        .await
        .unwrap();
    assert_eq!(first, second);
    replay.assert_complete();
}

/// A VM Azure refuses names the resource key at fault and leaves nothing:
/// the NIC, subnet and virtual network made for it are deleted.
#[tokio::test]
async fn a_refused_vm_names_the_key_and_leaves_nothing() {
    let replay = Replay::start(Cassette::load("azure-vm-refused.json"));
    let plugin = crate::common::builtin_driver("azure_vm").await;
    let error = plugin
        .create(&request(target(vm_resource(&replay), SECRET), user_data()))
        .await
        .unwrap_err();
    let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(contract.kind, ContractErrorKind::InvalidConfig, "{error}");
    assert!(contract.message.contains("(check `password`)"), "{error}");
    assert!(!contract.message.contains("Replay-Passw0rd"), "{error}");
    replay.assert_complete();
}

/// A container group Azure refuses names the key (`image`).
#[tokio::test]
async fn a_refused_container_group_names_the_key() {
    let replay = Replay::start(Cassette::load("azure-aci-refused.json"));
    let plugin = crate::common::builtin_driver("azure_aci").await;
    let error = plugin
        .create(&request(
            target(aci_resource(&replay, "nginx:no-such-tag"), SECRET),
            Payload::None,
        ))
        .await
        .unwrap_err();
    let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(contract.kind, ContractErrorKind::InvalidConfig, "{error}");
    assert!(contract.message.contains("InaccessibleImage"), "{error}");
    assert!(contract.message.contains("(check `image`)"), "{error}");
    replay.assert_complete();
}

/// `occopus plugins check` of each driver against its replay (the VM with
/// a public IP): every promise holds, each call in the recorded order.
#[test]
fn plugins_check_passes_against_the_replays() {
    let replay = Replay::start(Cassette::load("azure-vm-plugins-check.json"));
    let occopus = Occopus::new(107);
    let mut resource = vm_resource(&replay);
    resource["public_ip_needed"] = json!(true);
    let auth = auth_file(occopus.dir.path(), "azure_vm");
    occopus.plugins_check("occopus_driver_azure_vm.wasm", &resource, &auth);
    replay.assert_complete();

    let replay = Replay::start(Cassette::load("azure-aci-plugins-check.json"));
    let auth = auth_file(occopus.dir.path(), "azure_aci");
    occopus.plugins_check(
        "occopus_driver_azure_aci.wasm",
        &aci_resource(&replay, "alpine:latest"),
        &auth,
    );
    replay.assert_complete();
}

/// The replay refuses a recorded request that was changed: a body key the
/// SDK sent left out, another api-version.
#[tokio::test]
async fn a_changed_request_fails_the_replay_of_a_recording() {
    let put = |replay: &Replay, api_version: &str, body: Value| {
        let url = format!(
            "{}/subscriptions/{SUBSCRIPTION}/resourceGroups/{ACI_GROUP}/providers/\
             Microsoft.ContainerInstance/containerGroups/occopus-x?api-version={api_version}",
            replay.url
        );
        async move {
            reqwest::Client::new()
                .put(url)
                .bearer_auth("replay-token")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let body = json!({"location": "westus", "properties": {"osType": "Linux", "containers": [
        {"name": "occopus-x", "properties": {"image": "alpine", "resources": {"requests": {"memoryInGB": 1.0, "cpu": 1.0}},
         "environmentVariables": [{"name": "a", "value": "b"}], "command": ["sh"], "ports": [{"port": 80}]}}],
        "ipAddress": {"ports": [{"port": 80}]}}});
    let cassette = || {
        let mut cassette = Cassette::load("azure-aci-create-destroy.json");
        // Straight to the recorded PUT of the group.
        cassette.exchanges.drain(3..5);
        cassette
    };

    let replay = Replay::start(cassette());
    let status = put(&replay, "2018-10-01", body.clone()).await;
    assert!(replay.mismatches().is_empty(), "{:?}", replay.mismatches());
    assert!(status.is_success(), "{status}");

    let replay = Replay::start(cassette());
    let mut without_os = body.clone();
    without_os["properties"]
        .as_object_mut()
        .unwrap()
        .remove("osType");
    assert_eq!(put(&replay, "2018-10-01", without_os).await.as_u16(), 599);
    assert!(
        replay.mismatches()[0].contains("/properties/osType"),
        "{:?}",
        replay.mismatches()
    );

    let replay = Replay::start(cassette());
    assert_eq!(put(&replay, "2023-05-01", body).await.as_u16(), 599);
    assert!(
        replay.mismatches()[0].contains("api-version"),
        "{:?}",
        replay.mismatches()
    );
}
