//! Plugins from an OCI registry: `plugins push`, `install` (by tag, by
//! digest, from the lock file), `verify` and `remove`, against a real
//! registry: Debian's `docker-registry` (the CNCF Distribution registry),
//! started by each test on 127.0.0.1 with its storage in the test's
//! directory, and stopped with it.

use crate::common::{KillOnDrop, Occopus, free_port, wait_for_port, wasm};
use occopus::plugin_host::lock::{PluginLock, digest_of};
use serde_json::Value;
use std::path::PathBuf;

/// A `docker-registry` of the test's own.
struct TestRegistry {
    // Fields drop in order: the process goes before its storage.
    _process: KillOnDrop,
    _dir: tempfile::TempDir,
    address: String,
}

impl TestRegistry {
    /// Starts a registry; with `login`, one that wants that user and
    /// password (htpasswd, bcrypt), as a private registry does.
    fn start(login: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}}}\n\
             http: {{addr: '127.0.0.1:{port}', secret: occopus-test}}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt::hash(password, 4).unwrap();
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: occopus-test, path: {}}}}}\n",
                htpasswd.display()
            ));
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let process = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry is missing: run scripts/setup --test");
        let process = KillOnDrop(process);
        wait_for_port(port, "docker-registry");
        TestRegistry {
            _process: process,
            _dir: dir,
            address: format!("127.0.0.1:{port}"),
        }
    }

    /// `oci://` this registry `/path`.
    fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.address)
    }
}

fn dummy_driver() -> PathBuf {
    wasm("occopus_driver_dummy.wasm")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a one-node infrastructure of the `dummy` driver; returns the
/// arguments that build it (printing its report as JSON).
fn describe_small(occopus: &Occopus, name: &str) -> Vec<String> {
    let [infra, nodes] = occopus.describe(
        &format!("infra_name: {name}\nnodes:\n  - {{name: a, type: sim}}\n"),
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    ["build", &infra, "--nodes", &nodes, "--json"]
        .map(str::to_owned)
        .to_vec()
}

/// Builds what `describe_small` wrote; returns the infrastructure's id.
fn build(occopus: &Occopus, build_args: &[String]) -> String {
    let args: Vec<&str> = build_args.iter().map(String::as_str).collect();
    let report = json(&occopus.ok(&args));
    report["infra_id"].as_str().unwrap().to_owned()
}

/// The issue's acceptance: push a built driver to a registry, install it by
/// tag into a fresh plugin directory (pinned in the lock file next to the
/// config), build with it; tamper with the stored file and see the load
/// refused naming the digests (no built-in plugin takes its place), `verify`
/// fail, and `install` without a source fetch the pinned one back.
#[test]
fn a_pushed_driver_installs_pinned_and_a_tampered_file_is_refused() {
    let registry = TestRegistry::start(None);
    let occopus = Occopus::new(127);
    let source = registry.reference("occopus/dummy:1.0");
    let file = dummy_driver().display().to_string();

    let pushed = json(&occopus.ok(&["plugins", "push", &file, &source, "--json"]));
    assert_eq!(pushed["schema"], "occopus.plugins.push.v1");
    assert_eq!(pushed["name"], "dummy");
    assert_eq!(pushed["kind"], "driver");
    let component_digest = digest_of(&std::fs::read(dummy_driver()).unwrap());
    assert_eq!(pushed["digest"], component_digest.as_str());
    let manifest = pushed["manifest"].as_str().unwrap().to_owned();
    assert!(manifest.starts_with("sha256:"), "{pushed}");

    let installed = json(&occopus.ok(&["plugins", "install", &source, "--json"]));
    assert_eq!(installed["schema"], "occopus.plugins.install.v1");
    let entry = &installed["installed"][0];
    assert_eq!(entry["action"], "installed");
    assert_eq!(entry["digest"], component_digest.as_str());
    assert_eq!(entry["manifest"], manifest.as_str());
    assert_eq!(
        entry["contract"],
        occopus::plugin_host::contract::CONTRACT_VERSION
    );
    let stored = occopus.dir.path().join("plugins/dummy.wasm");
    assert_eq!(entry["file"], stored.display().to_string());
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(dummy_driver()).unwrap()
    );
    let lock_file = occopus.dir.path().join("occopus-plugins.lock");
    let lock = PluginLock::read(&lock_file).unwrap();
    let pinned = &lock.plugins["dummy.wasm"];
    assert_eq!(
        (
            pinned.source.as_str(),
            pinned.digest.as_str(),
            pinned.types.as_slice()
        ),
        (
            source.as_str(),
            component_digest.as_str(),
            ["dummy".to_owned()].as_slice()
        )
    );

    // The installed file, not the built-in dummy, serves `dummy`.
    let listed = json(&occopus.ok(&["plugins", "list", "--json"]));
    let active: Vec<&Value> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "dummy" && p["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{listed}");
    assert_eq!(active[0]["source"], stored.display().to_string());
    let first = build(&occopus, &describe_small(&occopus, "first"));
    let verified = json(&occopus.ok(&["plugins", "verify", "--json"]));
    assert_eq!(verified["passed"], true, "{verified}");
    assert_eq!(verified["pinned"][0]["status"], "verified");

    // Tampered with: refused at every load, by name and digest.
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes.extend_from_slice(b"\0tampered");
    std::fs::write(&stored, &bytes).unwrap();
    let found = digest_of(&bytes);
    let second = describe_small(&occopus, "second");
    let second_args: Vec<&str> = second.iter().map(String::as_str).collect();
    let refused = occopus.run(&second_args);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    for expected in ["was refused", &found, &component_digest, &source] {
        assert!(message.contains(expected), "no {expected} in: {message}");
    }
    let recorded = json(&occopus.ok(&["info", "--json"]));
    let recorded = recorded["infrastructures"].as_array().map(Vec::len);
    assert_eq!(recorded, Some(1), "only the first is recorded");
    let listed = occopus.ok(&["plugins", "list"]);
    assert!(
        listed.contains("builtin:dummy (not serving: ") && listed.contains("is pinned and refused"),
        "{listed}"
    );
    let verify = occopus.run(&["plugins", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        report.contains("ALTERED") && report.contains(&found),
        "{report}"
    );

    // `install` without a source fetches what the lock pins.
    let restored = json(&occopus.ok(&["plugins", "install", "--json"]));
    assert_eq!(restored["installed"][0]["action"], "replaced");
    assert_eq!(
        digest_of(&std::fs::read(&stored).unwrap()),
        component_digest
    );
    occopus.ok(&["plugins", "verify"]);
    let second = build(&occopus, &second);
    for infra in [first, second] {
        occopus.ok(&["destroy", "-i", &infra]);
    }
}

/// By digest, into a directory holding a file of the same name, and the
/// failures a user meets: no such tag, a file that is not a plugin, a file
/// in the way; `remove` unpins.
#[test]
fn installs_by_digest_refuse_what_is_not_theirs_and_remove_unpins() {
    let registry = TestRegistry::start(None);
    let occopus = Occopus::new(128);
    let file = dummy_driver().display().to_string();
    let pushed = json(&occopus.ok(&[
        "plugins",
        "push",
        &file,
        &registry.reference("team/dummy:stable"),
        "--json",
    ]));
    let by_digest = pushed["pinned_reference"].as_str().unwrap().to_owned();
    assert!(by_digest.ends_with(pushed["manifest"].as_str().unwrap()));

    let missing = occopus.run(&["plugins", "install", &registry.reference("team/none:1")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("the registry has no"),
        "{}",
        stderr(&missing)
    );

    let not_a_plugin = occopus.dir.path().join("occopus.yaml");
    let refused = occopus.run(&[
        "plugins",
        "push",
        not_a_plugin.to_str().unwrap(),
        &registry.reference("team/junk:1"),
    ]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("not a valid WebAssembly component"));
    let never_pushed = occopus.run(&["plugins", "install", &registry.reference("team/junk:1")]);
    assert!(stderr(&never_pushed).contains("the registry has no"));

    // A file of the same name dropped in by hand is not replaced silently.
    let plugins = occopus.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(dummy_driver(), plugins.join("dummy.wasm")).unwrap();
    let in_the_way = occopus.run(&["plugins", "install", &by_digest]);
    assert_eq!(in_the_way.status.code(), Some(1));
    assert!(
        stderr(&in_the_way).contains("--force"),
        "{}",
        stderr(&in_the_way)
    );
    let verified = json(&occopus.ok(&["plugins", "verify", "--json"]));
    assert_eq!(
        verified["unpinned"][0],
        plugins.join("dummy.wasm").display().to_string()
    );

    let forced = json(&occopus.ok(&["plugins", "install", &by_digest, "--force", "--json"]));
    assert_eq!(forced["installed"][0]["source"], by_digest.as_str());
    assert_eq!(forced["installed"][0]["action"], "up-to-date");
    let verified = json(&occopus.ok(&["plugins", "verify", "--json"]));
    assert_eq!(verified["passed"], true);
    assert_eq!(verified["unpinned"], Value::Array(Vec::new()));

    let removed = json(&occopus.ok(&["plugins", "remove", "dummy", "--json"]));
    assert_eq!(removed["removed"]["name"], "dummy");
    assert!(!plugins.join("dummy.wasm").exists());
    let lock = PluginLock::read(&occopus.dir.path().join("occopus-plugins.lock")).unwrap();
    assert!(lock.plugins.is_empty());
    let again = occopus.run(&["plugins", "remove", "dummy"]);
    assert!(stderr(&again).contains("no installed plugin is named `dummy`"));
}

/// A registry that wants a login gets the one `docker login` keeps in
/// `~/.docker/config.json`; without one, or with a wrong one, the message
/// says how to log in, and never shows the password.
#[test]
fn a_private_registry_gets_the_docker_login() {
    use base64::Engine;
    let registry = TestRegistry::start(Some(("ann", "s3cret-pw")));
    let occopus = Occopus::new(129);
    let source = registry.reference("private/dummy:1");
    let file = dummy_driver().display().to_string();

    let anonymous = occopus.run(&["plugins", "push", &file, &source]);
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(
        stderr(&anonymous).contains("docker login"),
        "{}",
        stderr(&anonymous)
    );

    let docker = occopus.dir.path().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    let login = |password: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("ann:{password}"));
        let config = format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.address
        );
        std::fs::write(docker.join("config.json"), config).unwrap();
    };
    login("wrong-pw");
    let wrong = occopus.run(&["plugins", "push", &file, &source]);
    assert_eq!(wrong.status.code(), Some(1));
    let message = stderr(&wrong);
    assert!(message.contains("log in again"), "{message}");
    assert!(!message.contains("wrong-pw"), "{message}");

    login("s3cret-pw");
    occopus.ok(&["plugins", "push", &file, &source]);
    let installed = json(&occopus.ok(&["plugins", "install", &source, "--json"]));
    assert_eq!(installed["installed"][0]["action"], "installed");
}
