//! The `cloudsigma` driver against the strict replay server (`replay.rs`,
//! test scaffolding) serving libcloud's recorded CloudSigma API 2.0 answers:
//! a build and destroy through the binary, wrong credentials, and the
//! strictness of the replay itself.

use crate::common::{Occopus, instances};
use crate::replay::{Cassette, Replay};
use occopus::types::{ContractErrorKind, CreateRequest, Credentials, InstanceTags, Payload};
use serde_json::json;

const LIBDRIVE: &str = "6eca8d96-44bc-4637-af97-77ccd7ba4144";
const EMAIL: &str = "user@example.org";
const PASSWORD: &str = "replay-password";

fn resource(replay: &Replay, libdrive: &str) -> serde_json::Value {
    json!({
        "type": "cloudsigma",
        "endpoint": format!("{}/api/2.0", replay.url),
        "libdrive_id": libdrive,
        "description": {"cpu": 2000, "mem": 1073741824, "vnc_password": "secret",
            "nics": [{"ip_v4_conf": {"conf": "dhcp"}}]},
        "poll_interval": 0.05,
    })
}

#[test]
fn a_node_builds_and_is_destroyed_through_every_recorded_state() {
    let replay = Replay::start(Cassette::load("cloudsigma-create-destroy.json"));
    let occopus = Occopus::new(98);
    let dir = occopus.dir.path();
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: sigma\nnodes:\n  - name: node\n    type: sigma_node\n",
    )
    .unwrap();
    let definition = json!({"node_def:sigma_node": [{
        "resource": resource(&replay, LIBDRIVE),
        "contextualisation": {"type": "cloudinit", "context_template": "#cloud-config\nruncmd: [echo hello]\n"},
    }]});
    std::fs::write(
        dir.join("nodes/node_definitions.yaml"),
        serde_yaml::to_string(&definition).unwrap(),
    )
    .unwrap();
    let auth = &auth_file(dir);
    let infra = dir.join("infra.yaml");
    let out = occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", auth]);
    let id = out.lines().last().unwrap().trim().to_owned();
    let instance = &instances(&occopus.report(&id), "node")[0];
    assert_eq!(instance["state"], "ready", "{instance}");
    assert_eq!(instance["cloud_id"], "9de75ed6_fd33_45e2_963f_d405f31fd911");
    assert_eq!(instance["resource_address"], "127.215.0.2");
    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    replay.assert_complete();
}

fn request(target: occopus::types::CloudTarget, payload: Payload) -> CreateRequest {
    CreateRequest {
        instance_id: "node-1-0123abcd".into(),
        target,
        payload,
        tags: InstanceTags {
            infra_id: "infra-1".into(),
            infra_name: "sigma".into(),
            node_name: "node".into(),
        },
    }
}

fn target(replay: &Replay, libdrive: &str, password: &str) -> occopus::types::CloudTarget {
    let mut target = crate::common::target(resource(replay, libdrive));
    target.credentials = Credentials::new([
        ("email".to_owned(), EMAIL.to_owned()),
        ("password".to_owned(), password.to_owned()),
    ]);
    target
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_and_never_shown() {
    let replay = Replay::start(Cassette::load("cloudsigma-create-destroy.json"));
    let driver = crate::common::builtin_driver("cloudsigma").await;
    let error = driver
        .create(&request(
            target(&replay, LIBDRIVE, "not-the-password"),
            Payload::None,
        ))
        .await
        .unwrap_err();
    let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(contract.kind, ContractErrorKind::Unauthorized, "{error}");
    assert!(
        contract.message.contains("Authentication credentials"),
        "{error}"
    );
    assert!(!error.to_string().contains("not-the-password"), "{error}");
}

/// A request the recording does not have fails the replay: a missing body
/// key (no user-data), or another path (another library drive).
#[tokio::test]
async fn a_changed_request_fails_the_replay() {
    let driver = crate::common::builtin_driver("cloudsigma").await;

    let replay = Replay::start(Cassette::load("cloudsigma-create-destroy.json"));
    let error = driver
        .create(&request(target(&replay, LIBDRIVE, PASSWORD), Payload::None))
        .await
        .unwrap_err();
    let mismatches = replay.mismatches();
    assert!(
        mismatches[0].contains("cloudinit-user-data"),
        "{mismatches:?}"
    );
    assert!(
        error.to_string().contains("not in the recording"),
        "{error}"
    );

    let replay = Replay::start(Cassette::load("cloudsigma-create-destroy.json"));
    let user_data = Payload::UserData("#cloud-config\n".into());
    driver
        .create(&request(
            target(&replay, "another-drive", PASSWORD),
            user_data,
        ))
        .await
        .unwrap_err();
    let mismatches = replay.mismatches();
    assert!(
        mismatches[0].contains("/libdrives/another-drive/"),
        "{mismatches:?}"
    );
}

/// A create retried after the first made its server adopts that server: the
/// listing is all it asks, no drive is cloned, no second server made.
#[tokio::test]
async fn a_retried_create_makes_no_second_server() {
    let replay = Replay::start(Cassette::load("cloudsigma-retried-create.json"));
    let driver = crate::common::builtin_driver("cloudsigma").await;
    let user_data = Payload::UserData("#cloud-config\n".into());
    let id = driver
        .create(&request(target(&replay, LIBDRIVE, PASSWORD), user_data))
        .await
        .unwrap();
    assert_eq!(id, "9414bbeb-e908-4e55-ae3f-2eb61adc50d8");
    replay.assert_complete();
}

/// A server CloudSigma refuses names the key at fault, and the drive cloned
/// for it is deleted.
#[tokio::test]
async fn a_refused_server_names_the_key_and_leaves_no_drive() {
    let replay = Replay::start(Cassette::load("cloudsigma-refused-server.json"));
    let driver = crate::common::builtin_driver("cloudsigma").await;
    let user_data = Payload::UserData("#cloud-config\n".into());
    let error = driver
        .create(&request(target(&replay, LIBDRIVE, PASSWORD), user_data))
        .await
        .unwrap_err();
    let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(contract.kind, ContractErrorKind::InvalidConfig, "{error}");
    assert!(contract.message.contains("description.mem"), "{error}");
    assert!(contract.message.contains("below the minimum"), "{error}");
    replay.assert_complete();
}

/// Occopus's cloudsigma-ping tutorial, only its placeholders filled: the
/// receiver, then the sender that depends on it, are built and destroyed
/// (sender first) through the binary, every exchange in its recorded order.
#[test]
fn the_cloudsigma_ping_tutorial_builds_and_destroys() {
    let replay = Replay::start(Cassette::load("cloudsigma-ping.json"));
    let occopus = Occopus::new(99);
    let dir = occopus.dir.path();
    let corpus = crate::common::repository().join("tests/compat/occopus-tutorials");
    crate::common::fill_placeholders(
        &corpus.join("cloudsigma-ping"),
        &dir.join("cloudsigma-ping"),
        &[
            (
                "replace_with_endpoint_of_cloudsigma_interface_of_your_cloud",
                format!("{}/api/2.0", replay.url),
            ),
            (
                "replace_with_id_of_your_library_drive_on_your_target_cloud",
                LIBDRIVE.into(),
            ),
            (
                "replace_with_id_of_your_pubkey_on_your_target_cloud",
                "d7c0f1ee-40df-4029-8d95-ec35b34dae1e".into(),
            ),
            (
                "replace_with_id_of_your_network_policy_on_your_target_cloud",
                "0e339282-0cb5-41ac-a9db-727fb62ff2dc".into(),
            ),
        ],
    );
    let auth = &auth_file(dir);
    let infra = dir.join("cloudsigma-ping/infra-cloudsigma-ping.yaml");
    let out = occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", auth]);
    let id = out.lines().last().unwrap().trim().to_owned();
    let report = occopus.report(&id);
    let receiver = &instances(&report, "ping-receiver")[0];
    let sender = &instances(&report, "ping-sender")[0];
    assert_eq!(receiver["resource_address"], "127.215.0.2", "{receiver}");
    assert_eq!(sender["resource_address"], "127.215.0.4", "{sender}");
    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    replay.assert_complete();
}

/// `occopus plugins check` of the cloudsigma driver against the replay:
/// every promise holds, each call in the recorded order.
#[test]
fn plugins_check_passes_against_the_replay() {
    let replay = Replay::start(Cassette::load("cloudsigma-plugins-check.json"));
    let occopus = Occopus::new(100);
    let auth = auth_file(occopus.dir.path());
    occopus.plugins_check(
        "occopus_driver_cloudsigma.wasm",
        &resource(&replay, LIBDRIVE),
        &auth,
    );
    replay.assert_complete();
}

fn auth_file(dir: &std::path::Path) -> String {
    crate::common::auth_data_file(
        dir,
        "cloudsigma",
        &format!("{{email: {EMAIL}, password: {PASSWORD}}}"),
    )
}
