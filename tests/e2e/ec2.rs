//! The `ec2` driver end to end, through the `occopus` binary, against a real
//! `moto_server` with SigV4 signature checking on. Every instance address
//! answers from a network namespace standing for the cloud's subnet, so the
//! default ping health check passes as it would on a real cloud.

use crate::common::{CloudNetwork, KillOnDrop, Occopus, fill_placeholders, free_port, run_ok};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn support(file: &str) -> PathBuf {
    crate::common::repository().join("tests/support").join(file)
}

/// A `moto_server` of this test, prepared by `support/ec2_fixture.py`: an IAM
/// user and key, a subnet, two security groups, a key pair; then signatures on.
struct Moto {
    _server: KillOnDrop,
    endpoint: String,
    fixture: Value,
}

impl Moto {
    fn start(cidr: &str) -> Moto {
        let port = free_port();
        // `python3 -m`, not the `moto_server` script: it needs no PATH set-up.
        let server = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run python3");
        let server = KillOnDrop(server);
        crate::common::wait_for_port(port, "moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let fixture = run_ok(
            Command::new("python3")
                .arg(support("ec2_fixture.py"))
                .args(["prepare", &endpoint, cidr]),
        );
        Moto {
            _server: server,
            endpoint,
            fixture: serde_json::from_str(&fixture).unwrap(),
        }
    }

    fn value(&self, key: &str) -> String {
        self.fixture[key].as_str().unwrap().to_owned()
    }

    /// Every instance moto has, in any state, read back through boto3.
    fn instances(&self) -> Vec<Value> {
        let described = run_ok(
            Command::new("python3")
                .arg(support("ec2_fixture.py"))
                .args([
                    "describe",
                    &self.endpoint,
                    &self.value("accesskey"),
                    &self.value("secretkey"),
                ]),
        );
        serde_json::from_str(&described).unwrap()
    }

    /// The values of the tutorials' `replace_with_...` placeholders, with the
    /// EC2 API at `endpoint` (moto, or a proxy in front of it).
    fn placeholders(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let groups = &self.fixture["security_group_ids"];
        vec![
            (
                "replace_with_endpoint_of_ec2_interface_of_your_cloud",
                endpoint.to_owned(),
            ),
            (
                "replace_with_regionname_of_your_ec2_interface",
                self.value("region"),
            ),
            (
                "replace_with_id_of_your_image_on_your_target_cloud",
                self.value("image_id"),
            ),
            (
                "replace_with_instance_type_of_your_image_on_your_target_cloud",
                self.value("instance_type"),
            ),
            (
                "replace_with_key_name_on_your_target_cloud",
                self.value("key_name"),
            ),
            (
                "replace_with_security_group_id1_on_your_target_cloud",
                groups[0].as_str().unwrap().into(),
            ),
            (
                "replace_with_security_group_id2_on_your_target_cloud",
                groups[1].as_str().unwrap().into(),
            ),
            (
                "replace_with_subnet_id_on_your_target_cloud",
                self.value("subnet_id"),
            ),
        ]
    }

    /// An auth_data file with this key, or with a wrong secret.
    fn auth_data(&self, dir: &Path, secret: &str) -> PathBuf {
        let path = dir.join("auth_data.yaml");
        std::fs::write(
            &path,
            format!(
                "resource:\n  - type: ec2\n    auth_data:\n      accesskey: {}\n      secretkey: \"{secret}\"\n",
                self.value("accesskey")
            ),
        )
        .unwrap();
        path
    }
}

/// Copies an Occopus infra directory with its placeholders filled in and
/// returns the infra file in the copy.
fn prepared(source: &Path, infra_file: &str, into: &Path, values: &[(&str, String)]) -> String {
    fill_placeholders(source, into, values);
    into.join(infra_file).display().to_string()
}

fn infra_id(build_output: &str) -> String {
    build_output.lines().last().unwrap().trim().to_owned()
}

fn by_node<'a>(instances: &'a [Value], node: &str) -> Vec<&'a Value> {
    instances
        .iter()
        .filter(|i| i["tags"]["occopus:node-name"] == node)
        .collect()
}

/// The `ec2-ping` example prepared against a moto of its own, answering
/// from network namespace `network` (subnet 10.213.`network`.0/24), for an
/// occopus on subnet `subnet`.
struct PingOnMoto {
    infra: String,
    occopus: Occopus,
    moto: Moto,
    _network: CloudNetwork,
}

impl PingOnMoto {
    fn start(network: u8, subnet: u8) -> PingOnMoto {
        let cidr = format!("10.213.{network}.0/24");
        let network = CloudNetwork::new(network, &cidr);
        let moto = Moto::start(&cidr);
        let occopus = Occopus::new(subnet);
        let infra = prepared(
            Path::new(&crate::common::example("ec2-ping")),
            "infra.yaml",
            &occopus.dir.path().join("ec2-ping"),
            &moto.placeholders(&moto.endpoint),
        );
        PingOnMoto {
            infra,
            occopus,
            moto,
            _network: network,
        }
    }
}

#[test]
fn ec2_ping_example_builds_and_destroys_against_moto() {
    let PingOnMoto {
        infra,
        occopus,
        moto,
        ..
    } = &PingOnMoto::start(1, 31);
    let dir = occopus.dir.path();
    let auth = moto.auth_data(dir, &moto.value("secretkey"));
    let auth = auth.to_str().unwrap();

    let id = infra_id(&occopus.ok(&["build", infra, "--auth-data", auth]));
    let report = occopus.report(&id);
    for node in ["receiver", "sender"] {
        assert_eq!(report[node]["scaling"]["actual"], 1, "{report:#}");
        let instances = report[node]["instances"].as_object().unwrap();
        assert!(
            instances
                .values()
                .all(|i| i["state"] == "ready" && i["health"]["status"] == "healthy"),
            "{report:#}"
        );
    }

    let instances = moto.instances();
    assert_eq!(instances.len(), 2, "{instances:#?}");
    let groups: Vec<&str> = {
        let mut g: Vec<&str> = moto.fixture["security_group_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        g.sort();
        g
    };
    for instance in &instances {
        assert_eq!(instance["state"], "running", "{instance:#}");
        assert_eq!(instance["tags"]["occopus:infra-id"], id.as_str());
        assert_eq!(instance["tags"]["occopus:infra-name"], "ec2-ping");
        assert_eq!(instance["tags"]["project"], "occopus-example");
        assert_eq!(instance["subnet_id"], moto.value("subnet_id").as_str());
        assert_eq!(instance["key_name"], "occopus-test");
        let instance_groups: Vec<&str> = instance["security_group_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(instance_groups, groups);
    }
    let receiver = by_node(&instances, "receiver")[0];
    let sender = by_node(&instances, "sender")[0];
    assert_eq!(receiver["tags"]["Name"], "ec2-ping-receiver");
    assert_eq!(sender["tags"]["role"], "ping-sender");
    let receiver_ip = receiver["private_ip"].as_str().unwrap();
    assert!(receiver_ip.starts_with("10.213.1."), "{receiver_ip}");
    let sender_data = sender["user_data"].as_str().unwrap();
    assert!(
        sender_data.contains(&format!("ping -c 5 {receiver_ip} >")),
        "the sender's user-data does not ping the receiver's address {receiver_ip}:\n{sender_data}"
    );
    assert!(
        receiver["user_data"]
            .as_str()
            .unwrap()
            .contains("Hello! I am the receiver")
    );

    // The user-data occopus generated is valid for the real cloud-init.
    for instance in &instances {
        let file = dir.join(format!("{}.user-data", instance["id"].as_str().unwrap()));
        std::fs::write(&file, instance["user_data"].as_str().unwrap()).unwrap();
        let checked = run_ok(
            Command::new("cloud-init")
                .args(["schema", "--config-file"])
                .arg(&file),
        );
        assert!(checked.contains("Valid cloud-config"), "{checked}");
    }

    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    let after = moto.instances();
    assert!(
        after.iter().all(|i| i["state"] == "terminated"),
        "instances left after destroy: {after:#?}"
    );
}

#[test]
fn a_wrong_secret_is_unauthorized_and_creates_nothing() {
    let PingOnMoto {
        infra,
        occopus,
        moto,
        ..
    } = &PingOnMoto::start(2, 32);
    let dir = occopus.dir.path();
    let wrong_secret = "not-the-secret-0123456789";
    let auth = moto.auth_data(dir, wrong_secret);
    let output = occopus.run(&["build", infra, "--auth-data", auth.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(stderr.contains("AuthFailure"), "{stderr}");
    assert!(stderr.contains("auth_data"), "{stderr}");
    assert!(
        !stderr.contains(wrong_secret),
        "the secret was printed:\n{stderr}"
    );
    assert_eq!(moto.instances().len(), 0);
}

/// With no auth_data entry for the resource, ec2 takes its credentials where
/// the AWS tools do (moto checks every signature): the variables
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` build and destroy; a profile
/// of a shared credentials file with a wrong secret is refused, the secret
/// never printed and nothing left behind.
#[test]
fn ec2_credentials_come_from_the_aws_sources_when_auth_data_has_none() {
    let PingOnMoto {
        infra,
        occopus,
        moto,
        ..
    } = &PingOnMoto::start(7, 124);
    let dir = occopus.dir.path();
    let with_keys = |args: &[&str]| {
        let output = occopus
            .command(args)
            .env("AWS_ACCESS_KEY_ID", moto.value("accesskey"))
            .env("AWS_SECRET_ACCESS_KEY", moto.value("secretkey"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "occopus {args:?}: {stderr}");
        assert!(!stderr.contains(&moto.value("secretkey")), "{stderr}");
        String::from_utf8(output.stdout).unwrap()
    };
    let id = infra_id(&with_keys(&["build", infra, "-vv"]));
    assert_eq!(moto.instances().len(), 2);
    with_keys(&["destroy", "-i", &id]);
    assert!(moto.instances().iter().all(|i| i["state"] == "terminated"));

    let wrong_secret = "not-the-secret-from-a-profile-42";
    let credentials = dir.join("aws-credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = unused\naws_secret_access_key = unused\n\
             [ci]\naws_access_key_id = {}\naws_secret_access_key = {wrong_secret}\n",
            moto.value("accesskey")
        ),
    )
    .unwrap();
    let output = occopus
        .command(&["build", infra, "-vv"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_PROFILE", "ci")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unauthorized"), "{stderr}");
    // `-vv` says where the credentials came from, never what they are.
    assert!(stderr.contains("profile `ci` of"), "{stderr}");
    assert!(
        !stderr.contains(wrong_secret),
        "the secret was printed:\n{stderr}"
    );
    assert!(
        moto.instances().iter().all(|i| i["state"] == "terminated"),
        "nothing new was created"
    );
}

/// The crash this guards against: occopus dies after EC2 made the instance but
/// before the cloud id was recorded, and the resumed build creates it again.
#[tokio::test]
async fn a_retried_create_makes_no_second_instance() {
    use occopus::types::{CreateRequest, Credentials, InstanceTags, Payload};
    let moto = Moto::start("10.213.3.0/24");
    let ec2 = crate::common::builtin_driver("ec2").await;
    let groups = moto.fixture["security_group_ids"].clone();
    let mut target = crate::common::target(serde_json::json!({
        "type": "ec2",
        "endpoint": moto.endpoint,
        "regionname": "us-east-1",
        "image_id": moto.value("image_id"),
        "instance_type": "t3.micro",
        "subnet_id": moto.value("subnet_id"),
        "security_group_ids": groups,
    }));
    target.credentials = Credentials::new([
        ("accesskey".to_owned(), moto.value("accesskey")),
        ("secretkey".to_owned(), moto.value("secretkey")),
    ]);
    let request = CreateRequest {
        instance_id: "web-1-0123abcd".into(),
        target: target.clone(),
        payload: Payload::UserData("#cloud-config\n{}\n".into()),
        tags: InstanceTags {
            infra_id: "infra-1".into(),
            infra_name: "retry".into(),
            node_name: "web".into(),
        },
    };
    let first = ec2.create(&request).await.unwrap();
    let second = ec2.create(&request).await.unwrap();
    assert_eq!(first, second);
    let instances = moto.instances();
    assert_eq!(instances.len(), 1, "{instances:#?}");

    // list finds it by its infra tag; destroy twice is fine; then list is empty.
    let listed = ec2.list(&target, "infra-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instance_id, "web-1-0123abcd");
    assert_eq!(listed[0].cloud_id, first);
    ec2.destroy(&target, &first).await.unwrap();
    ec2.destroy(&target, &first).await.unwrap();
    assert!(ec2.list(&target, "infra-1").await.unwrap().is_empty());
    let error = ec2
        .status(&target, "i-00000000000000000")
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
}

/// `occopus plugins check` of the ec2 driver against moto with signatures
/// checked: every promise holds, wrong credentials included, and nothing is
/// left running.
#[test]
fn the_ec2_driver_keeps_the_contract_against_moto() {
    let moto = Moto::start("10.213.6.0/24");
    let occopus = Occopus::new(36);
    let dir = occopus.dir.path();
    let groups = moto.fixture["security_group_ids"].as_array().unwrap();
    let resource = dir.join("resource.yaml");
    std::fs::write(
        &resource,
        format!(
            "type: ec2\nendpoint: {}\nregionname: {}\nimage_id: {}\ninstance_type: {}\n\
             key_name: {}\nsubnet_id: {}\nsecurity_group_ids: [{}]\n",
            moto.endpoint,
            moto.value("region"),
            moto.value("image_id"),
            moto.value("instance_type"),
            moto.value("key_name"),
            moto.value("subnet_id"),
            groups[0].as_str().unwrap()
        ),
    )
    .unwrap();
    let auth = moto.auth_data(dir, &moto.value("secretkey"));
    let output = occopus.run(&[
        "plugins",
        "check",
        crate::common::wasm("occopus_driver_ec2.wasm")
            .to_str()
            .unwrap(),
        "--resource",
        resource.to_str().unwrap(),
        "--auth-data",
        auth.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(
        report.ends_with("13 passed, 0 failed, 0 not applicable, 0 skipped\n"),
        "{report}"
    );
    assert!(
        moto.instances().iter().all(|i| i["state"] == "terminated"),
        "the check terminated what it made: {:#?}",
        moto.instances()
    );
}

/// moto reports every instance running at once; through a proxy that answers
/// `pending` for the first seconds after each RunInstances, the build waits.
#[test]
fn a_slow_booting_instance_is_waited_for() {
    let _network = CloudNetwork::new(4, "10.213.4.0/24");
    let moto = Moto::start("10.213.4.0/24");
    let proxy_port = free_port();
    let _proxy = KillOnDrop(
        Command::new("python3")
            .arg(support("pending_proxy.py"))
            .args([&proxy_port.to_string(), &moto.endpoint, "2.5"])
            .spawn()
            .unwrap(),
    );
    crate::common::wait_for_port(proxy_port, "the pending proxy");
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let occopus = Occopus::new(34);
    let dir = occopus.dir.path();
    let corpus = crate::common::repository().join("tests/compat/occopus-tutorials");
    let infra = prepared(
        &corpus.join("ec2-helloworld"),
        "infra-ec2-helloworld.yaml",
        &dir.join("ec2-helloworld"),
        &moto.placeholders(&proxy),
    );
    let auth = moto.auth_data(dir, &moto.value("secretkey"));
    let output = occopus.run(&["build", &infra, "--auth-data", auth.to_str().unwrap()]);
    let progress = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{progress}");
    let pending_answers: u32 =
        crate::common::http_get_path("127.0.0.1", proxy_port, "/pending-answers")
            .rsplit("\r\n\r\n")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    assert!(
        pending_answers >= 1,
        "the build never saw the instance pending"
    );
    // The instance went through `pending` before it was checked and ready.
    let phases: Vec<&str> = progress
        .lines()
        .filter(|l| l.contains("helloworld-1-"))
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    let position = |phase: &str| phases.iter().position(|p| *p == phase);
    assert!(
        position("pending") < position("checking") && position("checking") < position("ready"),
        "{progress}"
    );
    let output = String::from_utf8(output.stdout).unwrap();
    let id = infra_id(&output);
    occopus.ok(&["destroy", "-i", &id, "--auth-data", auth.to_str().unwrap()]);
    assert!(moto.instances().iter().all(|i| i["state"] == "terminated"));
}

#[test]
fn corpus_ec2_tutorials_build_against_moto() {
    let _network = CloudNetwork::new(5, "10.213.5.0/24");
    let moto = Moto::start("10.213.5.0/24");
    let occopus = Occopus::new(35);
    let dir = occopus.dir.path();
    let auth = moto.auth_data(dir, &moto.value("secretkey"));
    let auth = auth.to_str().unwrap();
    let corpus = crate::common::repository().join("tests/compat/occopus-tutorials");
    for (tutorial, infra_file, nodes) in [
        ("ec2-helloworld", "infra-ec2-helloworld.yaml", 1),
        ("ec2-ping", "infra-ec2-ping.yaml", 2),
    ] {
        let infra = prepared(
            &corpus.join(tutorial),
            infra_file,
            &dir.join(tutorial),
            &moto.placeholders(&moto.endpoint),
        );
        let id = infra_id(&occopus.ok(&["build", &infra, "--auth-data", auth]));
        let running: Vec<Value> = moto
            .instances()
            .into_iter()
            .filter(|i| i["tags"]["occopus:infra-id"] == id.as_str() && i["state"] == "running")
            .collect();
        assert_eq!(running.len(), nodes, "{tutorial}: {running:#?}");
        occopus.ok(&["destroy", "-i", &id, "--auth-data", auth]);
    }
    assert!(moto.instances().iter().all(|i| i["state"] == "terminated"));
}
