//! The `docker` driver end to end, through the `occopus` binary, against a
//! real `dockerd` of this test: its own data directories, its own bridge on
//! 10.231.1.0/24, no iptables, forwarding or masquerading. The image is built
//! here from Debian's static busybox with `docker import` (no registry).

use crate::common::{Occopus, fill_placeholders, free_port, run_ok};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bridge and subnet of this test's dockerd.
const BRIDGE: &str = "occbr1";
const BRIDGE_ADDRESS: &str = "10.231.1.1/24";

/// What the images' `/root/start.sh` does: what the Occopus tutorials' images
/// do (keep the message, ping `target_ip` if given), then stay up.
const START_SH: &str = "#!/bin/sh\n\
    echo \"$message\" > /tmp/message.txt\n\
    if [ -n \"$target_ip\" ]; then ping -c 3 \"$target_ip\" > /tmp/ping-result.txt 2>&1; fi\n\
    exec sleep 2147483647\n";

/// A dockerd started by this test, stopped (SIGTERM, by PID) when dropped.
struct Dockerd {
    process: Child,
    dir: tempfile::TempDir,
    tcp_port: u16,
}

impl Dockerd {
    fn start() -> Dockerd {
        let ip = |args: &[&str]| run_ok(Command::new("ip").args(args));
        // A bridge left by a killed run goes first.
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
        ip(&["link", "add", BRIDGE, "type", "bridge"]);
        ip(&["addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE]);
        ip(&["link", "set", BRIDGE, "up"]);
        // Short paths: a unix socket path is at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("occ-dockerd")
            .tempdir_in("/tmp")
            .unwrap();
        let tcp_port = free_port();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let process = Command::new("dockerd")
            .arg(format!("--host=unix://{}", path("docker.sock")))
            .arg(format!("--host=tcp://127.0.0.1:{tcp_port}"))
            .arg(format!("--data-root={}", path("data")))
            .arg(format!("--exec-root={}", path("exec")))
            .arg(format!("--pidfile={}", path("docker.pid")))
            .args([
                "--bridge",
                BRIDGE,
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd is missing: run scripts/setup --test");
        let dockerd = Dockerd {
            process,
            dir,
            tcp_port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dockerd.socket().exists()
            || std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start:\n{}",
                std::fs::read_to_string(dockerd.dir.path().join("dockerd.log")).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dockerd
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The docker CLI against this daemon.
    fn docker(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("docker")
                .args(args)
                .env("DOCKER_HOST", format!("unix://{}", self.socket().display())),
        )
    }

    fn inspect(&self, container: &str) -> Value {
        let text = self.docker(&["inspect", container]);
        serde_json::from_str::<Value>(&text).unwrap()[0].clone()
    }

    /// The ids of the containers (any state) of an infra.
    fn containers_of(&self, infra_id: &str) -> Vec<String> {
        self.docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=occopus.infra-id={infra_id}"),
        ])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg("docker rm -f $(docker ps -aq) >/dev/null 2>&1")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .status();
        crate::common::signal(self.process.id(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.process.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }
}

/// A root filesystem tarball: static busybox with its applets, and START_SH.
fn busybox_tarball(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for sub in ["bin", "root", "tmp", "www"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox is missing: run scripts/setup --test (Debian's busybox-static)");
    for applet in ["sh", "echo", "sleep", "ping", "httpd", "mkdir", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let start = root.join("root/start.sh");
    std::fs::write(&start, START_SH).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&start, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tarball = dir.join("www/busybox.tar");
    std::fs::create_dir_all(tarball.parent().unwrap()).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    tarball
}

fn infra_id(build_output: &str) -> String {
    build_output.lines().last().unwrap().trim().to_owned()
}

/// The one container of a node of an infra, inspected.
fn container_of_node(dockerd: &Dockerd, infra_id: &str, node: &str) -> Value {
    let found: Vec<Value> = dockerd
        .containers_of(infra_id)
        .iter()
        .map(|id| dockerd.inspect(id))
        .filter(|c| c["Config"]["Labels"]["occopus.node-name"] == node)
        .collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].clone()
}

fn env_of(container: &Value) -> Vec<&str> {
    container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect()
}

fn address_of(container: &Value) -> String {
    container["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Everything docker in one test: one dockerd serves it all (a daemon takes
/// seconds to start, and two cannot share the machine's bridge setup).
#[test]
fn docker_examples_and_tutorials_run_on_a_real_dockerd() {
    let dockerd = Dockerd::start();
    let occopus = Occopus::new(41);
    let dir = occopus.dir.path();
    let tarball = busybox_tarball(dir);
    let tcp_endpoint = format!("tcp://127.0.0.1:{}", dockerd.tcp_port);
    let unix_endpoint = format!("unix://{}", dockerd.socket().display());

    // The tarball served over HTTP, for `origin` to import from.
    let www_port = free_port();
    let _www = crate::common::KillOnDrop(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &www_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(tarball.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    crate::common::wait_for_port(www_port, "the tarball server");

    docker_hello_imports_its_image_and_serves_its_page(
        &dockerd,
        &occopus,
        &tcp_endpoint,
        &format!("http://127.0.0.1:{www_port}/busybox.tar"),
    );

    // The tutorials' images are on the host already (their origin is a
    // public URL this machine cannot reach): the driver does not pull.
    for image in ["busybox_helloworld:latest", "busybox_ping:latest"] {
        dockerd.docker(&["import", tarball.to_str().unwrap(), image]);
    }
    corpus_docker_tutorials_run_over_the_unix_socket(&dockerd, &occopus, &unix_endpoint);
    a_missing_local_image_is_a_clear_error(&occopus, &tcp_endpoint);
    the_docker_driver_keeps_the_contract(&dockerd, &occopus, &tarball, &unix_endpoint);
}

/// `occopus plugins check` of the docker driver over the unix socket: every
/// promise holds and no container is left. The check hands the driver no
/// payload, so its image has a command of its own.
fn the_docker_driver_keeps_the_contract(
    dockerd: &Dockerd,
    occopus: &Occopus,
    tarball: &Path,
    endpoint: &str,
) {
    dockerd.docker(&[
        "import",
        "--change",
        "CMD [\"/bin/sleep\", \"3600\"]",
        tarball.to_str().unwrap(),
        "occopus-check:latest",
    ]);
    let resource = occopus.dir.path().join("docker-resource.yaml");
    std::fs::write(
        &resource,
        format!("type: docker\nendpoint: '{endpoint}'\nimage: occopus-check\ntag: latest\n"),
    )
    .unwrap();
    let output = occopus.run(&[
        "plugins",
        "check",
        crate::common::wasm("occopus_driver_docker.wasm")
            .to_str()
            .unwrap(),
        "--resource",
        resource.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(
        report.ends_with("12 passed, 0 failed, 1 not applicable, 0 skipped\n"),
        "{report}"
    );
    let left = dockerd.docker(&["ps", "-aq", "--filter", "label=occopus.node-name=probe"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
}

fn docker_hello_imports_its_image_and_serves_its_page(
    dockerd: &Dockerd,
    occopus: &Occopus,
    endpoint: &str,
    tarball_url: &str,
) {
    let dir = occopus.dir.path().join("docker-hello");
    fill_placeholders(
        Path::new(&crate::common::example("docker-hello")),
        &dir,
        &[
            ("replace_with_your_docker_endpoint", endpoint.to_owned()),
            ("origin: dockerhub", format!("origin: {tarball_url}")),
        ],
    );
    let infra = dir.join("infra.yaml").display().to_string();
    let id = infra_id(&occopus.ok(&["build", &infra]));
    // Imported from the tarball through `origin`.
    dockerd.docker(&["image", "inspect", "busybox:1.36"]);

    let container = container_of_node(dockerd, &id, "hello");
    assert_eq!(container["State"]["Status"], "running");
    let message = "Hello! I am a container created by occopus.";
    let env = env_of(&container);
    assert!(
        env.contains(&format!("MESSAGE={message}").as_str()),
        "{env:?}"
    );
    let node_env = env.iter().find(|e| e.starts_with("NODE=")).unwrap();
    assert!(node_env.starts_with("NODE=hello-1-"), "{node_env}");
    assert_eq!(container["Config"]["Cmd"][0], "sh");
    assert_eq!(container["Config"]["Cmd"][1], "-c");
    assert!(
        container["Config"]["Cmd"][2]
            .as_str()
            .unwrap()
            .contains("exec httpd -f -p 8080 -h /www")
    );
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["occopus.infra-id"], id.as_str());
    assert_eq!(labels["occopus.infra-name"], "docker-hello");
    assert_eq!(
        container["Name"].as_str().unwrap(),
        format!(
            "/occopus-{}",
            labels["occopus.instance-id"].as_str().unwrap()
        )
    );

    // The address occopus reports is the container's, and its port answers.
    let address = address_of(&container);
    assert!(address.starts_with("10.231.1."), "{address}");
    let report = occopus.report(&id);
    let instance = &crate::common::instances(&report, "hello")[0];
    assert_eq!(instance["state"], "ready", "{report:#}");
    assert_eq!(instance["private_address"], address.as_str());
    let page = crate::common::http_get_path(&address, 8080, "/index.html");
    assert!(
        page.contains(&format!("{message} ({})", &node_env[5..])),
        "{page}"
    );

    occopus.ok(&["destroy", "-i", &id]);
    assert_eq!(dockerd.containers_of(&id), Vec::<String>::new());
}

fn corpus_docker_tutorials_run_over_the_unix_socket(
    dockerd: &Dockerd,
    occopus: &Occopus,
    endpoint: &str,
) {
    let corpus = crate::common::repository().join("tests/compat/occopus-tutorials");
    let values = [("replace_with_your_docker_endpoint", endpoint.to_owned())];

    let dir = occopus.dir.path().join("docker-helloworld");
    fill_placeholders(&corpus.join("docker-helloworld"), &dir, &values);
    let infra = dir
        .join("infra-docker-helloworld.yaml")
        .display()
        .to_string();
    let id = infra_id(&occopus.ok(&["build", &infra]));
    let hello = container_of_node(dockerd, &id, "helloworld");
    assert!(env_of(&hello).contains(&"message=Hello World! I have been created by Occopus."));
    let kept = dockerd.docker(&[
        "exec",
        hello["Id"].as_str().unwrap(),
        "cat",
        "/tmp/message.txt",
    ]);
    assert_eq!(kept.trim(), "Hello World! I have been created by Occopus.");
    occopus.ok(&["destroy", "-i", &id]);
    assert_eq!(dockerd.containers_of(&id), Vec::<String>::new());

    let dir = occopus.dir.path().join("docker-ping");
    fill_placeholders(&corpus.join("docker-ping"), &dir, &values);
    let infra = dir.join("infra-docker-ping.yaml").display().to_string();
    let id = infra_id(&occopus.ok(&["build", &infra]));
    let receiver = container_of_node(dockerd, &id, "ping-receiver");
    let sender = container_of_node(dockerd, &id, "ping-sender");
    let receiver_ip = address_of(&receiver);
    assert!(
        env_of(&sender).contains(&format!("target_ip={receiver_ip}").as_str()),
        "{:?}",
        env_of(&sender)
    );
    // The sender really pinged the receiver over the test bridge.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sender_id = sender["Id"].as_str().unwrap();
    loop {
        let result = Command::new("docker")
            .args(["exec", sender_id, "cat", "/tmp/ping-result.txt"])
            .env(
                "DOCKER_HOST",
                format!("unix://{}", dockerd.socket().display()),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&result.stdout);
        if text.contains("3 packets received") {
            break;
        }
        assert!(Instant::now() < deadline, "the sender's ping: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    occopus.ok(&["destroy", "-i", &id]);
    assert_eq!(dockerd.containers_of(&id), Vec::<String>::new());
}

fn a_missing_local_image_is_a_clear_error(occopus: &Occopus, endpoint: &str) {
    let dir = occopus.dir.path().join("missing-image");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("infra.yaml"),
        "infra_name: missing\nnodes:\n  - {name: app, type: app}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nodes.yaml"),
        format!(
            "'node_def:app':\n  - resource: {{type: docker, endpoint: '{endpoint}', origin: local, \
             image: not-here, tag: '1'}}\n    contextualisation: {{type: docker, env: [], \
             command: 'sh'}}\n    health_check: {{ping: false}}\n"
        ),
    )
    .unwrap();
    let output = occopus.run(&[
        "build",
        dir.join("infra.yaml").to_str().unwrap(),
        "--nodes",
        dir.join("nodes.yaml").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("image not-here:1 is not on the Docker host and origin is `local`"),
        "{stderr}"
    );
}

/// The unix bridge is the docker driver's alone unless configured: with
/// `unix_endpoints: false` its requests to a `unix://` endpoint are refused
/// by the sandbox, naming the setting.
#[tokio::test]
async fn unix_endpoints_are_bridged_only_for_allowed_plugins() {
    use occopus::plugin_host::PluginOverrides;
    let cache = crate::common::shared_cache_dir();
    let socket = tempfile::tempdir().unwrap();
    let target = crate::common::target(serde_json::json!({
        "type": "docker",
        "endpoint": format!("unix://{}/no-daemon.sock", socket.path().display()),
        "image": "busybox",
    }));

    // The docker driver's answer to a status call on `target` under
    // `settings`, with the first-party defaults occopus applies.
    let status_error = async |settings: occopus::plugin_host::PluginSettings| {
        let catalog = occopus::plugins::load_plugins(&settings).await.unwrap();
        catalog
            .driver("docker")
            .unwrap()
            .status(&target, "c1")
            .await
            .unwrap_err()
            .to_string()
    };

    // Allowed (the default): the host tries the socket, which has no daemon.
    let error = status_error(crate::common::settings(&cache)).await;
    assert!(error.contains("ConnectionRefused"), "{error}");

    // Refused by configuration.
    let mut settings = crate::common::settings(&cache);
    settings.settings.insert(
        "docker".into(),
        PluginOverrides {
            unix_endpoints: Some(false),
            ..PluginOverrides::default()
        },
    );
    let error = status_error(settings).await;
    assert!(error.contains("[rule: unix-endpoints]"), "{error}");
    assert!(error.contains("unix_endpoints: true"), "{error}");
}
