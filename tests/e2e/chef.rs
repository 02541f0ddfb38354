//! The `chef` config manager end to end, through the `occopus` binary and
//! the local cloud, against a real Chef server: Debian's goiardi (Chef 11's
//! API), started here on 127.0.0.1 with its own keys. What occopus registers
//! is read back through the server's API by `tests/support/chef_api.py`
//! (test scaffolding signing its requests on its own).
//!
//! Debian has no chef-client (nor cinc, chef-solo or chef-zero), so nothing
//! here can run a node's real chef-client: the test plays each node's first
//! chef-client report through the server's API instead, saving the node
//! with the `ohai_time` attribute a chef-client run reports, which is what
//! occopus (as Occopus) waits for.

use crate::common::{KillOnDrop, Occopus, address, free_port, instances, run_ok};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A goiardi of this test, in a temp directory, its admin client's key
/// written there by goiardi itself.
struct Goiardi {
    _server: KillOnDrop,
    endpoint: String,
    conf: tempfile::TempDir,
}

impl Goiardi {
    fn start() -> Goiardi {
        let conf = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = Command::new("goiardi")
            .args([
                "-A",
                "-I",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "-H",
                "127.0.0.1",
            ])
            .arg("--conf-root")
            .arg(conf.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run goiardi (scripts/setup --test installs it)");
        let server = KillOnDrop(server);
        crate::common::wait_for_port(port, "goiardi");
        Goiardi {
            _server: server,
            endpoint: format!("http://127.0.0.1:{port}"),
            conf,
        }
    }

    fn admin_key(&self) -> PathBuf {
        self.conf.path().join("admin.pem")
    }

    /// A call as goiardi's admin client: `{"status": N, "body": ...}`.
    fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let out = run_ok(
            Command::new("python3")
                .arg(crate::common::repository().join("tests/support/chef_api.py"))
                .args([&self.endpoint, "admin"])
                .arg(self.admin_key())
                .args([method, path])
                .args(body.map(Value::to_string)),
        );
        serde_json::from_str(&out).unwrap()
    }

    /// The body of a GET that must succeed.
    fn get(&self, path: &str) -> Value {
        let answer = self.api("GET", path, None);
        assert_eq!(answer["status"], 200, "GET {path}: {answer}");
        answer["body"].clone()
    }

    /// The names of a listing (`/nodes`, `/roles`, `/environments`).
    fn names(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .get(path)
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// What a node's first chef-client run does to it on the server: saves
    /// it with the attributes ohai found, `ohai_time` among them.
    fn report_chef_client_run(&self, node: &str) {
        let path = format!("/nodes/{node}");
        let mut saved = self.get(&path);
        saved["automatic"] = json!({"ohai_time": 1_796_227_200.5, "hostname": node});
        let answer = self.api("PUT", &path, Some(&saved));
        assert_eq!(answer["status"], 200, "{answer}");
    }

    /// Waits until `path` lists `count` names.
    fn wait_for(&self, path: &str, count: usize, build: &mut Child) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let names = self.names(path);
            if names.len() >= count {
                return names;
            }
            if let Some(status) = build.try_wait().unwrap() {
                panic!("the build ended ({status}) before {path} listed {count}: {names:?}");
            }
            assert!(Instant::now() < deadline, "{path} lists {names:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

const INFRA: &str = "infra_id: shop\ninfra_name: shop\nuser_id: someone@example.org\nnodes:\n  - &W {name: web, type: web}\n  - &A {name: app, type: app}\ndependencies:\n  - connection: [*A, *W]\n    mappings:\n      - attributes: [fqdn, app.web_fqdn]\n        synch: true\n";

fn nodes(endpoint: &str) -> String {
    let cloud_config = "\"#cloud-config\\nruncmd:\\n  - exec sleep 600\\n\"";
    format!(
        "'node_def:web':\n  - resource: {{type: local}}\n    contextualisation:\n      type: cloudinit\n      context_template: {cloud_config}\n      attributes:\n        apache.listen_ports: [80, 8080]\n        apache.owner: \"{{{{ infra_name }}}}\"\n    config_management:\n      type: chef\n      endpoint: {endpoint}\n      run_list: [\"recipe[apache2]\"]\n    health_check: {{ping: false}}\n\
         'node_def:app':\n  - resource: {{type: local}}\n    contextualisation:\n      type: cloudinit\n      context_template: {cloud_config}\n      attributes:\n        app.web_address: \"{{{{ getip('web') }}}}\"\n    config_management:\n      type: chef\n      endpoint: {endpoint}\n      run_list: [\"recipe[app]\", \"role[base]\"]\n      sign_version: \"1.3\"\n    health_check: {{ping: false}}\n"
    )
}

fn auth_data(occopus: &Occopus, key: &std::path::Path) -> String {
    let path = occopus.dir.path().join("auth_data.yaml");
    std::fs::write(
        &path,
        format!(
            "config_management:\n  - type: chef\n    auth_data:\n      client_name: admin\n      client_key: !text_import {{url: 'file://{}'}}\n",
            key.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// A two-node infra: the environment, each node's role and the nodes with
/// their run lists and attributes (Occopus's `connections` from the
/// dependency's `mappings` among them) are on the server before the
/// instances are made; a node is ready only once its chef-client run reported in (its
/// dependent is not even registered before); destroy leaves nothing on the
/// server. The web node signs with protocol 1.0, the app node with 1.3.
#[test]
fn a_chef_infra_registers_waits_for_reports_and_leaves_nothing() {
    let goiardi = Goiardi::start();
    let occopus = Occopus::new(109);
    let [infra, nodes] = occopus.describe(INFRA, &nodes(&goiardi.endpoint));
    let auth = auth_data(&occopus, &goiardi.admin_key());
    occopus.ok(&["validate", &infra, "--nodes", &nodes, "--auth-data", &auth]);
    let mut build = occopus
        .command(&["build", &infra, "--nodes", &nodes, "--auth-data", &auth])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let registered = goiardi.wait_for("/nodes", 1, &mut build);
    let web = &registered[0];
    assert!(web.starts_with("web-"), "{registered:?}");
    assert_eq!(goiardi.names("/environments"), ["_default", "shop"]);
    assert_eq!(goiardi.names("/roles"), ["shop_web"]);
    let node = goiardi.get(&format!("/nodes/{web}"));
    assert_eq!(node["chef_environment"], "shop");
    assert_eq!(
        node["run_list"],
        json!(["role[shop_web]", "recipe[connect]", "recipe[apache2]"])
    );
    assert_eq!(
        node["normal"],
        json!({"apache": {"listen_ports": [80, 8080], "owner": "shop"}, "connections": []})
    );
    // Running, but not ready: its chef-client has not reported, so its
    // dependent is not registered and the build goes on waiting.
    std::thread::sleep(Duration::from_secs(2));
    assert!(build.try_wait().unwrap().is_none());
    assert_eq!(goiardi.names("/nodes"), std::slice::from_ref(web));
    let report = occopus.report("shop");
    assert_ne!(instances(&report, "web")[0]["state"], "ready", "{report}");

    goiardi.report_chef_client_run(web);
    let registered = goiardi.wait_for("/nodes", 2, &mut build);
    let app = registered.iter().find(|n| n.starts_with("app-")).unwrap();
    assert_eq!(goiardi.names("/roles"), ["shop_app", "shop_web"]);
    let node = goiardi.get(&format!("/nodes/{app}"));
    assert_eq!(
        node["run_list"],
        json!([
            "role[shop_app]",
            "recipe[connect]",
            "recipe[app]",
            "role[base]"
        ])
    );
    let web_address = address(&instances(&occopus.report("shop"), "web")[0]);
    assert_eq!(
        node["normal"],
        json!({
            "app": {"web_address": web_address},
            // Occopus's attribute for its `connect` cookbook, from the
            // dependency's `mappings`.
            "connections": [{
                "source_role": "shop_web",
                "source_attribute": "fqdn",
                "destination_attribute": "app.web_fqdn",
            }],
        })
    );
    goiardi.report_chef_client_run(app);
    let output = build.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    occopus.ok(&["destroy", "-i", "shop", "--auth-data", &auth]);
    assert!(goiardi.names("/nodes").is_empty());
    assert!(goiardi.names("/roles").is_empty());
    assert_eq!(goiardi.names("/environments"), ["_default"]);
}

/// A key the server does not know for the client: `unauthorized`, naming
/// the auth_data keys to check; the key's text is never printed, and
/// nothing is left on the local cloud.
#[test]
fn a_wrong_key_is_unauthorized_and_never_printed() {
    let goiardi = Goiardi::start();
    let occopus = Occopus::new(110);
    let [infra, nodes] = occopus.describe(
        "infra_name: wrong\nnodes:\n  - {name: web, type: web}\n",
        &nodes(&goiardi.endpoint),
    );
    let wrong = occopus.dir.path().join("wrong.pem");
    let key = run_ok(Command::new("openssl").args(["genrsa", "-traditional", "2048"]));
    std::fs::write(&wrong, &key).unwrap();
    let auth = auth_data(&occopus, &wrong);
    let output = occopus.run(&["build", &infra, "--nodes", &nodes, "--auth-data", &auth]);
    assert!(!output.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("unauthorized"), "{printed}");
    assert!(printed.contains("client_key"), "{printed}");
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!printed.contains(secret_line), "{printed}");
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
    assert!(goiardi.names("/nodes").is_empty());
}
