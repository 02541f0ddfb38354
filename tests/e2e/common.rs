//! Helpers shared by the end-to-end tests.

use occopus::local_cloud::{LocalCloud, LocalCloudConfig, LocalCloudSettings, NodeRunner};
use occopus::plugin_host::{DriverPlugin, Plugin, PluginOrigin, PluginRuntime, PluginSettings};
use occopus::types::CloudTarget;
use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A first-party plugin's component file.
pub fn wasm(file: &str) -> PathBuf {
    occopus_builtin_plugins::wasm_dir().join(file)
}

/// The Python example plugin, built by `scripts/test` (componentize-py).
pub fn python_plugin() -> PathBuf {
    let path = repository().join("plugins/target/python/static.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test (it builds the Python example with componentize-py)",
        path.display()
    );
    path
}

/// A compiled-plugin cache shared by the tests of this build: compiling the
/// 18 MB Python component once instead of per test saves tens of seconds.
/// Entries are content-addressed and written atomically, so sharing is safe.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// Plugin settings for tests: the given cache and a small pool.
/// The first-party driver serving `resource_type`, loaded as occopus loads
/// it (the built-in catalog), with the shared compiled cache.
pub async fn builtin_driver(resource_type: &str) -> DriverPlugin {
    let settings = settings(&shared_cache_dir());
    let runtime = PluginRuntime::new(&settings).unwrap();
    let catalog = occopus::plugin_host::PluginCatalog::discover(
        &runtime,
        &settings,
        occopus_builtin_plugins::BUILTINS,
    )
    .await
    .unwrap();
    catalog.driver(resource_type).unwrap().clone()
}

pub fn settings(cache_dir: &Path) -> PluginSettings {
    let mut settings = PluginSettings {
        cache_dir: Some(cache_dir.to_owned()),
        ..PluginSettings::default()
    };
    settings.limits.max_concurrent_calls = 32;
    settings
}

/// Loads a driver component file.
pub async fn load_driver(runtime: &PluginRuntime, file: PathBuf) -> DriverPlugin {
    match runtime
        .load(
            PluginOrigin::File(file.clone()),
            std::fs::read(&file).unwrap(),
        )
        .await
    {
        Ok(Plugin::Driver(driver)) => driver,
        Ok(_) => panic!("{} is not a driver", file.display()),
        Err(e) => panic!("loading {}: {e}", file.display()),
    }
}

/// A target with the given resource JSON object.
pub fn target(resource: serde_json::Value) -> CloudTarget {
    match resource {
        serde_json::Value::Object(map) => CloudTarget::new(map),
        other => panic!("not an object: {other}"),
    }
}

/// The local cloud in `root` with the limits of `config`, its nodes
/// supervised by the binary under test.
pub fn local_cloud_with(
    root: &Path,
    config: &LocalCloudConfig,
) -> Result<LocalCloud, occopus::local_cloud::LocalCloudError> {
    let runner = NodeRunner {
        program: PathBuf::from(env!("CARGO_BIN_EXE_occopus")),
        args: vec!["local-cloud".into(), "boot-node".into()],
    };
    LocalCloud::open(LocalCloudSettings::new(root.to_owned(), config, runner))
}

/// The local cloud in `root`, with the default limits.
pub fn open_local_cloud(root: &Path) -> Result<LocalCloud, occopus::local_cloud::LocalCloudError> {
    local_cloud_with(root, &LocalCloudConfig::default())
}

/// Destroys every node of the local cloud at `root` when dropped, so that a
/// failing test leaves no process behind.
pub struct DestroyNodesOnDrop(pub PathBuf);

impl Drop for DestroyNodesOnDrop {
    fn drop(&mut self) {
        if let Ok(cloud) = open_local_cloud(&self.0) {
            for node in cloud.list(None).unwrap_or_default() {
                let _ = cloud.destroy(&node.record.id);
            }
        }
    }
}

/// A child process killed (by PID) and reaped when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET /` over a real TCP connection, retried until the server answers (30 s).
pub fn http_get(address: &str, port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect((address, port)) {
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: node\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{address}:{port} never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The node definitions of type `sleeper`: a local node that only sleeps
/// (alive until killed), ready once running.
pub const SLEEPER_NODE_DEFINITION: &str = "'node_def:sleeper':
  - resource: {type: local}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        runcmd:
          - exec sleep 600
    health_check: {ping: false}
";

/// The node definitions of type `web`: a local node serving HTTP on port
/// 8080 of its address, ready once the port answers.
pub const WEB_NODE_DEFINITION: &str = r#"'node_def:web':
  - resource: {type: local}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        runcmd:
          - exec python3 -m http.server 8080 --bind "$OCCOPUS_NODE_ADDRESS"
    health_check: {ping: false, ports: [8080], timeout: 30}
"#;

/// User-data of a local node serving one page on its own address and `port`.
pub fn web_node(page: &str, port: u16) -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /www/index.html\n    content: '{page}'\n\
         runcmd:\n  - exec python3 -m http.server {port} --bind \"$OCCOPUS_NODE_ADDRESS\" --directory www\n"
    )
}

/// An isolated occopus for tests through the binary: its own state database,
/// local cloud directory and address range, the shared compiled-plugin cache,
/// and no user config. Destroys its local nodes when dropped.
pub struct Occopus {
    // Fields drop in order: the nodes must go while their directory exists.
    _nodes: DestroyNodesOnDrop,
    pub dir: tempfile::TempDir,
    /// The state database: `state.db` in `dir`, or a PostgreSQL URL.
    pub state: String,
}

impl Occopus {
    /// `subnet` picks the local cloud's addresses: 127.80.SUBNET.0/24.
    pub fn new(subnet: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("occopus.yaml"),
            format!(
                "local_cloud:\n  root: {}\n  address_range: 127.80.{subnet}.0/24\n  max_nodes: 64\n",
                dir.path().join("local-cloud").display()
            ),
        )
        .unwrap();
        let nodes = DestroyNodesOnDrop(dir.path().join("local-cloud"));
        let state = dir.path().join("state.db").display().to_string();
        Occopus {
            dir,
            _nodes: nodes,
            state,
        }
    }

    /// Like [`Occopus::new`], its state in `database` (PostgreSQL).
    pub fn on_postgres(subnet: u8, database: &Database) -> Self {
        Occopus {
            state: database.url.clone(),
            ..Occopus::new(subnet)
        }
    }

    /// Its state database, as a command opens it.
    pub fn store(&self) -> occopus::store::StateStore {
        occopus::info::open_state(Some(self.state.clone().into()), true).unwrap()
    }

    /// The binary with this environment.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_occopus"));
        command
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("occopus.yaml"))
            .env("OCCOPUS_STATE", &self.state)
            .env("OCCOPUS_CACHE_DIR", shared_cache_dir())
            .env("OCCOPUS_PLUGIN_DIR", self.dir.path().join("plugins"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("HOME", self.dir.path())
            .env_remove("OCCOPUS_LOCAL_CLOUD_DIR")
            .env_remove("OCCOPUS_AUTH_DATA_PATH")
            .env_remove("OCCOPUS_CONFIG")
            // Registry logins come from $HOME/.docker unless a test says.
            .env_remove("DOCKER_CONFIG");
        // ec2 credentials come from these where auth_data has none: a test
        // names its own.
        for aws in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
        ] {
            command.env_remove(aws);
        }
        command
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    /// Runs the binary, asserts success and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "occopus {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Writes `infra.yaml` and `nodes.yaml` into the test's directory;
    /// returns their paths.
    pub fn describe(&self, infra: &str, nodes: &str) -> [String; 2] {
        let dir = self.dir.path();
        std::fs::write(dir.join("infra.yaml"), infra).unwrap();
        std::fs::write(dir.join("nodes.yaml"), nodes).unwrap();
        ["infra.yaml", "nodes.yaml"].map(|f| dir.join(f).display().to_string())
    }

    /// The local cloud these runs use.
    pub fn local_cloud(&self) -> LocalCloud {
        open_local_cloud(&self.dir.path().join("local-cloud")).unwrap()
    }

    /// `occopus info -i ID --json`.
    /// Runs `occopus plugins check` of the first-party driver `wasm_name` on
    /// `resource` and asserts every promise held; returns the report.
    pub fn plugins_check(
        &self,
        wasm_name: &str,
        resource: &serde_json::Value,
        auth: &str,
    ) -> String {
        let file = self.dir.path().join("check-resource.yaml");
        std::fs::write(&file, serde_yaml::to_string(resource).unwrap()).unwrap();
        let wasm = wasm(wasm_name);
        let report = run_ok(&mut self.command(&[
            "plugins",
            "check",
            wasm.to_str().unwrap(),
            "--resource",
            file.to_str().unwrap(),
            "--auth-data",
            auth,
        ]));
        assert!(
            report.contains(" 0 failed") && !report.contains("FAILED"),
            "{report}"
        );
        report
    }

    pub fn report(&self, infra_id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["info", "-i", infra_id, "--json"])).unwrap()
    }
}

/// An instance's address in an Occopus-shaped report.
pub fn address(instance: &serde_json::Value) -> String {
    instance["resource_address"].as_str().unwrap().to_string()
}

/// The instances of `node` in an Occopus-shaped report (`occopus info
/// --json`, the REST service's).
pub fn instances(report: &serde_json::Value, node: &str) -> Vec<serde_json::Value> {
    report[node]["instances"]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect()
}

/// The path of a file under the repository's `examples/`.
pub fn example(path: &str) -> String {
    repository()
        .join("examples")
        .join(path)
        .display()
        .to_string()
}

/// Every client token (instance id) the local cloud ever created a node for,
/// live or destroyed, with how many times.
pub fn created_tokens(occopus: &Occopus) -> std::collections::BTreeMap<String, usize> {
    let db =
        rusqlite::Connection::open(occopus.dir.path().join("local-cloud/local-cloud.db")).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    let mut statement = db
        .prepare("SELECT client_token FROM nodes UNION ALL SELECT client_token FROM destroyed")
        .unwrap();
    for token in statement.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        *counts.entry(token.unwrap()).or_insert(0) += 1;
    }
    counts
}

/// `GET path` over a real TCP connection; the whole answer, headers included.
pub fn http_get_path(address: &str, port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((address, port)).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: node\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

/// SIGKILLs the process group `pgid`.
pub fn kill_group(pgid: i32) {
    let pgid = rustix::process::Pid::from_raw(pgid).unwrap();
    rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL).unwrap();
}

/// The live processes whose command line names `dir` (a local cloud's node
/// supervisors name their control directory under it).
pub fn processes_naming(dir: &Path) -> Vec<u32> {
    occopus_process::processes_naming(dir)
        .into_iter()
        .map(|pid| pid as u32)
        .collect()
}

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port` (30 s).
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never listened on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Copies the directory `from` to `to`, replacing in every YAML file each
/// `replace_with_...` placeholder of `values` (an Occopus tutorial made ready
/// for this machine), and fails if a placeholder is left over.
pub fn fill_placeholders(from: &Path, to: &Path, values: &[(&str, String)]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            fill_placeholders(&entry.path(), &target, values);
            continue;
        }
        if entry.path().extension().is_none_or(|e| e != "yaml") {
            std::fs::copy(entry.path(), target).unwrap();
            continue;
        }
        let mut text = std::fs::read_to_string(entry.path()).unwrap();
        for (placeholder, value) in values {
            text = text.replace(placeholder, value);
        }
        assert!(
            !text.contains("replace_with_"),
            "{} has a placeholder the test did not fill:\n{text}",
            entry.path().display()
        );
        std::fs::write(target, text).unwrap();
    }
}

/// `wrapper...` running `command` (its program, arguments and environment
/// appended), e.g. under `unshare` or a shell that pipes it.
pub fn wrapped(wrapper: &[&str], command: &std::process::Command) -> std::process::Command {
    let mut outer = std::process::Command::new(wrapper[0]);
    outer
        .args(&wrapper[1..])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => outer.env(key, value),
            None => outer.env_remove(key),
        };
    }
    outer
}

/// Runs a command, asserts it succeeded and returns its stdout.
pub fn run_ok(command: &mut std::process::Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A network namespace standing for a cloud's network: every address of
/// `cidr` answers (ping, and TCP with a refusal) from inside it, reached from
/// this machine through a veth pair. Removed when dropped.
pub struct CloudNetwork {
    name: String,
    host_end: String,
}

impl CloudNetwork {
    /// `index` (1..=250) keeps concurrent tests apart: the namespace is
    /// `occ-cloud-INDEX` and the link between 10.214.INDEX.0/30.
    pub fn new(index: u8, cidr: &str) -> CloudNetwork {
        let name = format!("occ-cloud-{index}");
        let host_end = format!("occvh{index}");
        let cloud_end = format!("occvn{index}");
        // What a killed run of this test left goes first. Deleting a namespace
        // tears its veth pair down asynchronously (after the call returns),
        // so the host end is deleted explicitly: a leftover one made the
        // `link add` below fail with "File exists".
        remove_network(&name, &host_end);
        let network = CloudNetwork {
            name: name.clone(),
            host_end: host_end.clone(),
        };
        let ip = |args: &[&str]| run_ok(std::process::Command::new("ip").args(args));
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", &cloud_end, "netns", &name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("10.214.{index}.1/30"),
            "dev",
            &host_end,
        ]);
        ip(&["link", "set", &host_end, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", name.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&[
            "addr",
            "add",
            &format!("10.214.{index}.2/30"),
            "dev",
            &cloud_end,
        ]);
        inside(&["link", "set", &cloud_end, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "local", cidr, "dev", "lo"]);
        ip(&["route", "add", cidr, "via", &format!("10.214.{index}.2")]);
        network
    }
}

impl Drop for CloudNetwork {
    fn drop(&mut self) {
        remove_network(&self.name, &self.host_end);
    }
}

/// Deletes the veth pair (synchronously; its route goes with it), then the
/// namespace. Either may be absent.
fn remove_network(namespace: &str, host_end: &str) {
    for args in [["link", "del", host_end], ["netns", "del", namespace]] {
        let _ = std::process::Command::new("ip").args(args).output();
    }
}

/// Serves `app` on a free port of 127.0.0.1 from a thread of its own (so
/// that synchronous tests can use it) until the returned sender is dropped.
pub fn serve_in_thread(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    (url, stop)
}

/// An auth_data file in `dir` with one entry for `resource_type`, its
/// `auth_data` written as a YAML flow mapping (`{email: ..., password: ...}`).
pub fn auth_data_file(dir: &Path, resource_type: &str, auth_data: &str) -> String {
    let path = dir.join("auth_data.yaml");
    std::fs::write(
        &path,
        format!("resource:\n  - type: {resource_type}\n    auth_data: {auth_data}\n"),
    )
    .unwrap();
    path.display().to_string()
}

/// A fresh database on the test cluster, dropped with the value.
pub struct Database {
    admin: String,
    name: String,
    /// Its URL, password included.
    pub url: String,
}

impl Database {
    pub fn new(name: &str) -> Database {
        let admin = std::env::var("OCCOPUS_TEST_POSTGRES")
            .expect("OCCOPUS_TEST_POSTGRES is not set: run scripts/test, which starts PostgreSQL");
        let name = format!("{name}_{}", std::process::id());
        run_ok(std::process::Command::new("psql").args([
            &admin,
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ]));
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Database { admin, name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Starts `occopus serve` as `command` says (with `--port 0`) and waits for
/// the address it listens on; killed (SIGKILL) when dropped.
pub fn serve(mut command: std::process::Command) -> (KillOnDrop, String) {
    use std::io::BufRead;
    let mut process = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(process.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("the service ended").unwrap();
        if let Some(address) = line.strip_prefix("occopus REST service listening on ") {
            break address.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (KillOnDrop(process), base)
}

/// One request, answered 200; its JSON answer.
pub fn http(method: &str, url: &str, body: Option<String>) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    })
}
