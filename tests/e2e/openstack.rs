//! The `nova` driver end to end against a real OpenStack that this test
//! brings up on 127.0.0.1 from an empty state (Debian's Zed: Keystone,
//! Placement, Glance, Neutron, Nova with the fake virt driver; see
//! `tests/support/openstack/stack`) and stops, by PID, when it ends.
//!
//! One test function runs every scenario in turn: the stack takes over a
//! minute to come up and owns fixed ports, so it is brought up once.
//!
//! What this stack cannot show: the fake hypervisor runs nothing (no
//! cloud-init, no data plane: the addresses are loopback ones that answer for
//! the host), floating IPs stay DOWN (no L3 agent), and there is no Cinder
//! (boot from volume is tested up to the driver's refusal).

use crate::common::{Occopus, fill_placeholders, instances, repository};
use occopus::plugin_host::{DriverPlugin, RuntimeError};
use occopus::types::{
    CloudState, CloudTarget, ContractErrorKind, CreateRequest, Credentials, InstanceTags, Payload,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KEYSTONE: &str = "http://127.0.0.1:15000";
const NOVA: &str = "http://127.0.0.1:18774/v2.1";
const NEUTRON: &str = "http://127.0.0.1:19696";
const GLANCE: &str = "http://127.0.0.1:19292";

/// The OpenStack of this test, stopped when dropped.
struct Stack {
    dir: tempfile::TempDir,
    /// What the seed made: the application credential, project and networks.
    seeded: Value,
}

fn stack_script() -> PathBuf {
    repository().join("tests/support/openstack/stack")
}

impl Stack {
    fn up() -> Stack {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", 15000)).is_err(),
            "something already listens on 127.0.0.1:15000 (a stack left by an earlier run?); \
             stop it with tests/support/openstack/stack down DIR"
        );
        let dir = tempfile::Builder::new()
            .prefix("occ-os")
            .tempdir_in("/tmp")
            .unwrap();
        // Made before `up`, so that a failed `up` is stopped too.
        let mut stack = Stack {
            seeded: Value::Null,
            dir,
        };
        let log = stack.dir.path().join("up.log");
        let output = Command::new(stack_script())
            .arg("up")
            .arg(stack.dir.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(stack.dir.path().join("up.err")).unwrap())
            .status()
            .unwrap();
        let tail = |file: &str| {
            let text = std::fs::read_to_string(stack.dir.path().join(file)).unwrap_or_default();
            text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        };
        assert!(
            output.success(),
            "the OpenStack did not come up (scripts/setup --test installs it):\n{}\n{}",
            tail("up.log"),
            tail("up.err")
        );
        let seeded = std::fs::read_to_string(stack.dir.path().join("app-credential.json")).unwrap();
        stack.seeded = serde_json::from_str(&seeded).unwrap();
        stack
    }

    /// How many requests a service's access log holds whose request line
    /// contains `needle` (the stack logs Keystone's and Nova's).
    fn requests(&self, service: &str, needle: &str) -> usize {
        let log = self.dir.path().join(format!("log/{service}-access.log"));
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }

    fn seeded(&self, key: &str) -> String {
        self.seeded[key].as_str().unwrap().to_owned()
    }

    /// The tutorials' placeholders, filled for this stack.
    fn placeholders(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            (
                "replace_with_endpoint_of_nova_interface_of_your_cloud",
                endpoint.into(),
            ),
            ("replace_with_projectid_to_use", self.seeded("project_id")),
            (
                "replace_with_id_of_your_image_on_your_target_cloud",
                "cirros".into(),
            ),
            (
                "replace_with_id_of_network_on_your_target_cloud",
                self.seeded("private_network"),
            ),
            (
                "replace_with_id_of_the_flavor_on_your_target_cloud",
                "m1.tiny".into(),
            ),
            (
                "replace_with_name_of_keypair_or_remove",
                "occopus-key".into(),
            ),
            (
                "replace_with_security_group_to_add_or_remove_section",
                "occopus-sg".into(),
            ),
            ("add_yes_if_you_need_floating_ip_or_remove", "yes".into()),
            (
                "replace_with_name_of_floating_ip_pool_or_remove",
                "public".into(),
            ),
        ]
    }

    /// The application credential as auth_data entries.
    fn application_credential(&self) -> Vec<(String, String)> {
        vec![
            ("type".into(), "application_credential".into()),
            ("id".into(), self.seeded("id")),
            ("secret".into(), self.seeded("secret")),
        ]
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new(stack_script())
            .arg("down")
            .arg(self.dir.path())
            .status();
    }
}

/// The cloud as its administrator sees it, to check what the driver did.
struct Admin {
    http: reqwest::Client,
    token: String,
}

impl Admin {
    async fn sign_in() -> Admin {
        let http = reqwest::Client::new();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": "admin"}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
        let answer = http
            .post(format!("{KEYSTONE}/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{answer:?}");
        let token = answer.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_owned();
        Admin { http, token }
    }

    async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("x-auth-token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        assert!(answer.status().is_success(), "{method} {url}: {answer:?}");
        answer.json().await.unwrap_or(Value::Null)
    }

    async fn get(&self, url: &str) -> Value {
        self.call(reqwest::Method::GET, url, None).await
    }

    /// The servers (not deleted) whose occopus metadata `key` passes `test`.
    async fn servers_where(&self, key: &str, test: impl Fn(&str) -> bool) -> Vec<Value> {
        let all = self
            .get(&format!("{NOVA}/servers/detail?all_tenants=1"))
            .await;
        all["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["metadata"][key].as_str().is_some_and(&test) && s["status"] != "DELETED")
            .cloned()
            .collect()
    }

    /// The servers (not deleted) whose occopus metadata has `key` = `value`.
    async fn servers(&self, key: &str, value: &str) -> Vec<Value> {
        self.servers_where(key, |v| v == value).await
    }

    async fn servers_of_infra(&self, infra_id: &str) -> Vec<Value> {
        self.servers("occopus:infra-id", infra_id).await
    }

    /// Waits until Nova has deleted every server of the infra (a delete is
    /// asynchronous: the server goes away a moment after the answer).
    async fn wait_until_gone(&self, infra_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = self.servers_of_infra(infra_id).await;
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "servers left behind: {left:#?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn floating_ips(&self) -> Vec<Value> {
        self.get(&format!("{NEUTRON}/v2.0/floatingips")).await["floatingips"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn floating_ips_occopus_allocated(&self) -> Vec<Value> {
        self.floating_ips()
            .await
            .into_iter()
            .filter(|ip| {
                ip["description"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("occopus: allocated")
            })
            .collect()
    }

    async fn id_of(&self, url: &str, list: &str, name: &str) -> String {
        let all = self.get(url).await;
        let found = all[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name);
        found.unwrap()["id"].as_str().unwrap().to_owned()
    }
}

/// An auth_data file of nova entries, each `(selector lines, entries)`.
fn auth_file(dir: &Path, name: &str, entries: &[(&str, Vec<(String, String)>)]) -> String {
    let mut text = String::from("resource:\n");
    for (selector, auth) in entries {
        text.push_str("  - type: nova\n");
        if !selector.is_empty() {
            text.push_str(&format!("    {selector}\n"));
        }
        text.push_str("    auth_data:\n");
        for (key, value) in auth {
            text.push_str(&format!("      {key}: {value}\n"));
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn password(password: &str) -> Vec<(String, String)> {
    vec![
        ("username".into(), "admin".into()),
        ("password".into(), password.into()),
    ]
}

fn infra_id(build_output: &str) -> String {
    build_output.lines().last().unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nova_driver_against_a_real_openstack() {
    let stack = Stack::up();
    let admin = Admin::sign_in().await;
    let occopus = Occopus::new(97);
    let floating_before = admin.floating_ips().await.len();

    the_tutorials_build_and_destroy(&stack, &admin, &occopus).await;
    every_key_and_a_killed_build(&stack, &admin, &occopus).await;
    the_driver_keeps_its_promises(&stack, &admin).await;
    plugins_check_passes(&stack, &admin, &occopus).await;

    assert!(admin.floating_ips_occopus_allocated().await.is_empty());
    assert_eq!(admin.floating_ips().await.len(), floating_before);
}

/// nova-helloworld with a password and the Keystone URL without /v3;
/// nova-ping with the application credential and /v3. Only the tutorials'
/// placeholders are filled.
async fn the_tutorials_build_and_destroy(stack: &Stack, admin: &Admin, occopus: &Occopus) {
    let dir = occopus.dir.path();
    let corpus = repository().join("tests/compat/occopus-tutorials");
    let by_password = auth_file(dir, "password.yaml", &[("", password("admin"))]);
    let by_credential = auth_file(
        dir,
        "credential.yaml",
        &[("", stack.application_credential())],
    );
    for (tutorial, endpoint, auth, nodes) in [
        (
            "nova-helloworld",
            KEYSTONE.to_owned(),
            &by_password,
            vec!["helloworld"],
        ),
        (
            "nova-ping",
            format!("{KEYSTONE}/v3"),
            &by_credential,
            vec!["ping-receiver", "ping-sender"],
        ),
    ] {
        fill_placeholders(
            &corpus.join(tutorial),
            &dir.join(tutorial),
            &stack.placeholders(&endpoint),
        );
        let infra = dir.join(tutorial).join(format!("infra-{tutorial}.yaml"));
        let sign_ins = stack.requests("keystone", "POST /v3/auth/tokens");
        let id = infra_id(&occopus.ok(&["build", infra.to_str().unwrap(), "--auth-data", auth]));
        let sign_ins = stack.requests("keystone", "POST /v3/auth/tokens") - sign_ins;
        let report = occopus.report(&id);
        // The token is kept between calls: one sign-in serves the build's
        // creates and every status poll after (two when the first calls
        // race), however many polls there were.
        let polls: usize = nodes
            .iter()
            .map(|node| {
                let cloud_id = instances(&report, node)[0]["cloud_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                stack.requests("nova-api", &format!("GET /v2.1/servers/{cloud_id} "))
            })
            .sum();
        assert!(
            (1..=2).contains(&sign_ins) && polls > sign_ins,
            "{tutorial}: {sign_ins} sign-ins for {polls} status polls"
        );
        let servers = admin.servers_of_infra(&id).await;
        assert_eq!(servers.len(), nodes.len(), "{tutorial}: {servers:#?}");
        for node in &nodes {
            let instance = &instances(&report, node)[0];
            assert_eq!(instance["state"], "ready", "{tutorial}: {instance}");
            // The floating address is the public one, the fixed one private.
            let public = instance["resource_address"].as_str().unwrap();
            let private = instance["private_address"].as_str().unwrap();
            assert!(public.starts_with("127.213.100."), "{tutorial}: {instance}");
            assert!(private.starts_with("127.214.0."), "{tutorial}: {instance}");
            let server = servers
                .iter()
                .find(|s| s["id"] == instance["cloud_id"])
                .unwrap();
            assert_eq!(server["status"], "ACTIVE");
            assert_eq!(server["metadata"]["occopus:node-name"], *node);
            assert_eq!(server["key_name"], "occopus-key");
        }
        assert_eq!(
            admin.floating_ips_occopus_allocated().await.len(),
            nodes.len(),
            "{tutorial}: one floating IP allocated per server"
        );
        occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
        admin.wait_until_gone(&id).await;
        assert!(
            admin.floating_ips_occopus_allocated().await.is_empty(),
            "{tutorial}: the floating IPs occopus allocated are released"
        );
    }
}

/// A node definition with every resource key (but the volume ones: no
/// Cinder here), two instances of one `server_name`, auth_data selected by
/// `name`; then a build killed with SIGKILL while its server boots, whose
/// server `destroy` still finds (through `list`) and removes.
async fn every_key_and_a_killed_build(stack: &Stack, admin: &Admin, occopus: &Occopus) {
    let dir = occopus.dir.path().join("every-key");
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    let image = admin
        .id_of(&format!("{GLANCE}/v2/images"), "images", "cirros")
        .await;
    let flavor = admin
        .id_of(&format!("{NOVA}/flavors"), "flavors", "m1.small")
        .await;
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: every-key\nnodes:\n  - name: node\n    type: every_key\n    scaling: {min: 2}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nodes/node_definitions.yaml"),
        format!(
            "'node_def:every_key':\n  - resource:\n      type: nova\n      \
             endpoint: {KEYSTONE}/v3/\n      project_id: {project}\n      \
             user_domain_name: Default\n      region_name: RegionOne\n      \
             tenant_name: admin\n      name: every-key\n      image_id: {image}\n      \
             flavor_name: {flavor}\n      server_name: every-key-server\n      \
             key_name: occopus-key\n      security_groups: [occopus-sg, default]\n      \
             network_id: {network}\n      floating_ip: true\n      \
             floating_ip_pool: {pool}\n    contextualisation:\n      type: cloudinit\n      \
             context_template: |\n        #cloud-config\n        runcmd: [echo hello]\n",
            project = stack.seeded("project_id"),
            network = stack.seeded("private_network"),
            pool = stack.seeded("public_network"),
        ),
    )
    .unwrap();
    // The entry named like the resource is the one used: the other one has
    // a wrong password.
    let auth = auth_file(
        occopus.dir.path(),
        "every-key-auth.yaml",
        &[
            ("name: another", password("wrong")),
            ("name: every-key", password("admin")),
        ],
    );
    let infra = dir.join("infra.yaml").display().to_string();
    let id = infra_id(&occopus.ok(&["build", &infra, "--auth-data", &auth]));
    let servers = admin.servers_of_infra(&id).await;
    assert_eq!(servers.len(), 2, "{servers:#?}");
    for server in &servers {
        assert_eq!(server["name"], "every-key-server");
        assert_eq!(server["flavor"]["id"], flavor.as_str());
        assert_eq!(server["image"]["id"], image.as_str());
        let groups: Vec<&str> = server["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert!(
            groups.contains(&"occopus-sg") && groups.contains(&"default"),
            "{groups:?}"
        );
    }
    for instance in instances(&occopus.report(&id), "node") {
        assert_eq!(instance["state"], "ready", "{instance}");
        assert!(
            instance["resource_address"]
                .as_str()
                .unwrap()
                .starts_with("127.213.100.")
        );
    }
    occopus.ok(&["destroy", "-i", &id, "--auth-data", &auth]);
    admin.wait_until_gone(&id).await;

    // Killed while its first server exists and boots.
    let mut build = occopus.command(&["build", &infra, "--auth-data", &auth]);
    let mut child = crate::common::KillOnDrop(
        build
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_infra = loop {
        let made = admin.servers("occopus:infra-name", "every-key").await;
        if let Some(server) = made.first() {
            child.0.kill().unwrap(); // SIGKILL
            break server["metadata"]["occopus:infra-id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert!(Instant::now() < deadline, "the build made no server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.0.wait();
    occopus.ok(&["destroy", "-i", &killed_infra, "--auth-data", &auth]);
    admin.wait_until_gone(&killed_infra).await;
}

fn driver_target(
    stack: &Stack,
    resource: Value,
    credentials: Vec<(String, String)>,
) -> CloudTarget {
    let mut section = json!({
        "type": "nova",
        "endpoint": KEYSTONE,
        "project_id": stack.seeded("project_id"),
        "image_id": "cirros",
        "flavor_name": "m1.tiny",
        "network_id": stack.seeded("private_network"),
    });
    section
        .as_object_mut()
        .unwrap()
        .extend(resource.as_object().unwrap().clone());
    let mut target = crate::common::target(section);
    target.credentials = Credentials::new(credentials);
    target
}

fn request(target: &CloudTarget, instance_id: &str, infra_id: &str) -> CreateRequest {
    CreateRequest {
        instance_id: instance_id.into(),
        target: target.clone(),
        payload: Payload::UserData("#cloud-config\n{}\n".into()),
        tags: InstanceTags {
            infra_id: infra_id.into(),
            infra_name: "promises".into(),
            node_name: "web".into(),
        },
    }
}

fn refused(error: RuntimeError, kind: ContractErrorKind, says: &str) {
    let contract = error.contract_error().unwrap_or_else(|| panic!("{error}"));
    assert_eq!(contract.kind, kind, "{error}");
    assert!(contract.message.contains(says), "{error}");
}

async fn wait_for_state(
    nova: &DriverPlugin,
    target: &CloudTarget,
    id: &str,
    state: CloudState,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = nova.status(target, id).await.unwrap();
        if status.state == state {
            return status.detail;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never {state:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The contract's promises, call by call through the plugin host.
async fn the_driver_keeps_its_promises(stack: &Stack, admin: &Admin) {
    let nova = &crate::common::builtin_driver("nova").await;
    let target = driver_target(stack, json!({}), password("admin"));
    let infra = "promises-1";

    // A retried create makes no second server; list finds it; destroy twice.
    let first = nova
        .create(&request(&target, "web-1-0123abcd", infra))
        .await
        .unwrap();
    let second = nova
        .create(&request(&target, "web-1-0123abcd", infra))
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(admin.servers_of_infra(infra).await.len(), 1);
    let listed = nova.list(&target, infra).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id, "web-1-0123abcd");
    assert_eq!(listed[0].tags.node_name, "web");
    assert_eq!(listed[0].cloud_id, first);
    wait_for_state(nova, &target, &first, CloudState::Running).await;
    nova.destroy(&target, &first).await.unwrap();
    nova.destroy(&target, &first).await.unwrap();
    wait_for_state(nova, &target, &first, CloudState::Shutdown).await;
    assert!(nova.list(&target, infra).await.unwrap().is_empty());

    // A flavor too big for the host: failed, with Nova's fault.
    let huge = driver_target(stack, json!({"flavor_name": "m1.huge"}), password("admin"));
    let id = nova
        .create(&request(&huge, "big-1-0123abcd", infra))
        .await
        .unwrap();
    let detail = wait_for_state(nova, &huge, &id, CloudState::Failed).await;
    assert!(
        detail
            .as_deref()
            .unwrap_or_default()
            .contains("No valid host was found"),
        "{detail:?}"
    );
    nova.destroy(&huge, &id).await.unwrap();
    admin.wait_until_gone(infra).await;

    // A free address of the pool is reused, and left to the project on destroy.
    let free = admin
        .call(
            reqwest::Method::POST,
            &format!("{NEUTRON}/v2.0/floatingips"),
            Some(json!({"floatingip": {
                "floating_network_id": stack.seeded("public_network"),
                "project_id": stack.seeded("project_id"),
            }})),
        )
        .await["floatingip"]
        .clone();
    let floating = driver_target(
        stack,
        json!({"floating_ip_pool": "public"}),
        password("admin"),
    );
    let id = nova
        .create(&request(&floating, "fip-1-0123abcd", infra))
        .await
        .unwrap();
    wait_for_state(nova, &floating, &id, CloudState::Running).await;
    let status = nova.status(&floating, &id).await.unwrap();
    assert_eq!(
        status.public_addresses,
        [free["floating_ip_address"].as_str().unwrap()]
    );
    nova.destroy(&floating, &id).await.unwrap();
    admin.wait_until_gone(infra).await;
    let kept = admin
        .get(&format!(
            "{NEUTRON}/v2.0/floatingips/{}",
            free["id"].as_str().unwrap()
        ))
        .await;
    assert!(kept["floatingip"]["port_id"].is_null(), "{kept}");
    admin
        .call(
            reqwest::Method::DELETE,
            &format!(
                "{NEUTRON}/v2.0/floatingips/{}",
                free["id"].as_str().unwrap()
            ),
            None,
        )
        .await;

    // Refusals name what to change, and leave nothing behind.
    let wrong = driver_target(stack, json!({}), password("not-the-password"));
    let error = nova
        .create(&request(&wrong, "web-2-0123abcd", infra))
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("not-the-password"), "{error}");
    refused(
        error,
        ContractErrorKind::Unauthorized,
        "check auth_data.yaml",
    );
    for (resource, key) in [
        (
            json!({"key_name": "no-such-key"}),
            "resource key `key_name`",
        ),
        (
            json!({"security_groups": ["no-such-group"]}),
            "resource key `security_groups`",
        ),
        (
            json!({"network_id": "00000000-0000-0000-0000-000000000000"}),
            "resource key `network_id`",
        ),
        (json!({"flavor_name": "m9.none"}), "flavor_name `m9.none`"),
        (
            json!({"image_id": "no-such-image"}),
            "image_id `no-such-image`",
        ),
        (json!({"volume_size": 1, "volume_persist": true}), "Cinder"),
    ] {
        let bad = driver_target(stack, resource, password("admin"));
        let error = nova
            .create(&request(&bad, "web-3-0123abcd", infra))
            .await
            .unwrap_err();
        refused(error, ContractErrorKind::InvalidConfig, key);
        assert!(
            admin.servers_of_infra(infra).await.is_empty(),
            "{key}: a server was left"
        );
    }
    let voms = driver_target(stack, json!({}), vec![("type".into(), "voms".into())]);
    let error = nova
        .create(&request(&voms, "web-4-0123abcd", infra))
        .await
        .unwrap_err();
    refused(error, ContractErrorKind::Unauthorized, "1.10");
}

/// `occopus plugins check` of the nova driver: every promise holds.
async fn plugins_check_passes(stack: &Stack, admin: &Admin, occopus: &Occopus) {
    let auth = auth_file(
        occopus.dir.path(),
        "check-auth.yaml",
        &[("", stack.application_credential())],
    );
    let resource = json!({
        "type": "nova",
        "endpoint": KEYSTONE,
        "project_id": stack.seeded("project_id"),
        "image_id": "cirros",
        "flavor_name": "m1.tiny",
        "network_id": stack.seeded("private_network"),
        "floating_ip_pool": "public",
    });
    occopus.plugins_check("occopus_driver_nova.wasm", &resource, &auth);
    let checked = admin
        .servers_where("occopus:infra-id", |id| id.starts_with("occopus-check"))
        .await;
    assert!(
        checked.is_empty(),
        "the check removed what it made: {checked:#?}"
    );
}
