//! Keeping infrastructures alive, through the binary on the local cloud:
//! healing (`maintain`), scaling (`scale`), and reconfiguration (`plan`,
//! `build -i` with a changed description).

use crate::common::{Occopus, WEB_NODE_DEFINITION, http_get_path};
use std::time::{Duration, Instant};

/// Writes `infra.yaml` and `nodes/node_definitions.yaml` into the test's
/// directory; returns the infra file's path.
fn write_infra(occopus: &Occopus, name: &str, infra: &str, definitions: &str) -> String {
    let dir = occopus.dir.path().join(name);
    std::fs::create_dir_all(dir.join("nodes")).unwrap();
    std::fs::write(dir.join("infra.yaml"), infra).unwrap();
    std::fs::write(dir.join("nodes/node_definitions.yaml"), definitions).unwrap();
    dir.join("infra.yaml").display().to_string()
}

/// `(instance id, state, address)` of each instance of `node`, by id.
fn instances(report: &serde_json::Value, node: &str) -> Vec<(String, String, String)> {
    let mut all: Vec<_> = report[node]["instances"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(id, i)| {
                    (
                        id.clone(),
                        i["state"].as_str().unwrap_or_default().to_string(),
                        i["resource_address"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

/// One `maintain --once --json` pass; its report.
fn pass(occopus: &Occopus, infra_id: &str) -> serde_json::Value {
    let stdout = occopus.ok(&["maintain", "-i", infra_id, "--once", "--json"]);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The directory of the local node that runs `instance_id`.
fn node_dir(occopus: &Occopus, instance_id: &str) -> std::path::PathBuf {
    let node = occopus
        .local_cloud()
        .list(None)
        .unwrap()
        .into_iter()
        .find(|n| n.record.client_token == instance_id)
        .unwrap();
    occopus
        .dir
        .path()
        .join("local-cloud/nodes")
        .join(node.record.id)
}

const HEAL_INFRA: &str = "infra_name: heal
nodes:
  - &DB {name: db, type: db}
  - &APP {name: app, type: app}
dependencies:
  - [*APP, *DB]
";

/// `db` serves on 8080 from a background process (killing it leaves the node
/// running but unhealthy); `app` serves a page naming the db's address.
const HEAL_NODES: &str = r#"'node_def:db':
  - resource: {type: local}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        write_files:
          - {path: /www/index.html, content: 'db of {{ infra_id }}'}
        runcmd:
          - python3 -m http.server 8080 --bind "$OCCOPUS_NODE_ADDRESS" --directory www >/dev/null 2>&1 & echo $! > server.pid
    health_check: {ping: false, ports: [8080], timeout: 2}
'node_def:app':
  - resource: {type: local}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        write_files:
          - {path: /www/index.html, content: 'app using db at {{ getip("db") }}'}
        runcmd:
          - cd www && exec python3 -m http.server 8080 --bind "$OCCOPUS_NODE_ADDRESS"
    health_check: {ping: false, urls: ['http://{{ip}}:8080/'], timeout: 30}
"#;

#[test]
fn maintain_replaces_a_failed_node_and_leaves_its_dependents_alone() {
    let occopus = Occopus::new(6);
    let infra = write_infra(&occopus, "heal", HEAL_INFRA, HEAL_NODES);
    occopus.ok(&["build", &infra, "-i", "heal"]);
    let report = occopus.report("heal");
    let [(db, _, db_address)] = &instances(&report, "db")[..] else {
        panic!("{report:#}")
    };
    let [(app, _, app_address)] = &instances(&report, "app")[..] else {
        panic!("{report:#}")
    };
    assert_eq!(report["db"]["instances"][db]["health"]["status"], "healthy");

    // A healthy infra: a pass observes both and changes nothing.
    let quiet = pass(&occopus, "heal");
    assert_eq!(quiet["observed"], 2, "{quiet:#}");
    assert!(quiet["plan"]["changes"].as_array().unwrap().is_empty());

    // Kill the db's server: the node still runs, its health check fails.
    let pid = std::fs::read_to_string(node_dir(&occopus, db).join("server.pid")).unwrap();
    crate::common::signal(pid.trim().parse().unwrap(), rustix::process::Signal::KILL);
    let first = pass(&occopus, "heal");
    assert!(
        first["found_failed"].as_array().unwrap().is_empty(),
        "failing for less than the timeout is not failed yet: {first:#}"
    );
    let report = occopus.report("heal");
    let health = &report["db"]["instances"][db]["health"];
    assert_eq!(health["status"], "failing", "{report:#}");
    assert!(health["detail"].as_str().unwrap().contains("port 8080"));

    // Once the checks have failed for the node's timeout (2 s), the next pass
    // replaces it; the app is not touched and keeps answering.
    std::thread::sleep(Duration::from_millis(2100));
    let second = pass(&occopus, "heal");
    let failed = second["found_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{second:#}");
    assert_eq!(failed[0][0], db.as_str());
    assert!(
        failed[0][1]
            .as_str()
            .unwrap()
            .contains("health checks failing for"),
        "{second:#}"
    );
    let changes = second["plan"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{second:#}");
    assert_eq!(changes[0]["action"], "replace");
    let report = occopus.report("heal");
    let [(new_db, state, new_db_address)] = &instances(&report, "db")[..] else {
        panic!("{report:#}")
    };
    assert_ne!(new_db, db);
    assert_eq!(state, "ready");
    assert!(http_get_path(new_db_address, 8080, "/").contains("db of heal"));
    assert_eq!(
        instances(&report, "app"),
        [(app.clone(), "ready".into(), app_address.clone())]
    );
    let page = http_get_path(app_address, 8080, "/");
    assert!(
        page.contains(&format!("app using db at {db_address}")),
        "{page}"
    );

    // The whole node dies: the cloud reports it failed; replaced at once.
    let node = occopus
        .local_cloud()
        .list(Some("heal"))
        .unwrap()
        .into_iter()
        .find(|n| n.record.client_token == *new_db)
        .unwrap();
    crate::common::kill_group(node.record.pid.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while occopus
        .local_cloud()
        .list(Some("heal"))
        .unwrap()
        .iter()
        .all(|n| n.state != occopus::local_cloud::NodeState::Failed)
    {
        assert!(
            Instant::now() < deadline,
            "the killed node never showed as failed: {:#?}",
            occopus.local_cloud().list(Some("heal")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let third = pass(&occopus, "heal");
    let failed = third["found_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{third:#}");
    assert!(
        failed[0][1]
            .as_str()
            .unwrap()
            .contains("the cloud reports it failed")
    );
    let report = occopus.report("heal");
    assert_eq!(instances(&report, "db").len(), 1);
    assert_eq!(instances(&report, "db")[0].1, "ready");
    assert_eq!(instances(&report, "app")[0].0, *app);

    occopus.ok(&["destroy", "-i", "heal"]);
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
    assert!(crate::common::processes_naming(occopus.dir.path()).is_empty());
}

const SCALE_INFRA: &str = "infra_name: scaling
nodes:
  - {name: web, type: web, scaling: {min: 1, max: 3}}
";

const SCALE_NODES: &str = WEB_NODE_DEFINITION;

fn ready_ids(occopus: &Occopus, infra_id: &str) -> Vec<String> {
    instances(&occopus.report(infra_id), "web")
        .into_iter()
        .filter(|(_, state, _)| state == "ready")
        .map(|(id, _, _)| id)
        .collect()
}

fn refused(occopus: &Occopus, args: &[&str]) -> String {
    let output = occopus.run(args);
    assert!(!output.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn scaling_up_down_and_a_chosen_instance_within_the_limits() {
    let occopus = Occopus::new(7);
    let infra = write_infra(&occopus, "scaling", SCALE_INFRA, SCALE_NODES);
    occopus.ok(&["build", &infra, "-i", "sc"]);
    assert_eq!(ready_ids(&occopus, "sc").len(), 1);

    // Up by 2: queued, then applied by a pass.
    occopus.ok(&["scale", "-i", "sc", "-n", "web", "-c", "+2"]);
    let why = refused(&occopus, &["scale", "-i", "sc", "-n", "web", "-c", "+1"]);
    assert!(
        why.contains("node `web` may have between 1 and 3 instances")
            && why.contains(
                "its target is 3 (counting queued requests of +2 that maintain has not applied \
                 yet), so +1 would make 4"
            ),
        "{why}"
    );
    // A count is said as a count.
    let why = refused(&occopus, &["scale", "-i", "sc", "-n", "web", "-s", "4"]);
    assert!(why.ends_with("4 is not between them\n"), "{why}");
    let report = occopus.report("sc");
    assert_eq!(
        report["web"]["scaling"]["target"], 1,
        "not applied before a pass"
    );
    let applied = pass(&occopus, "sc");
    assert_eq!(
        applied["scaling"].as_array().unwrap().len(),
        1,
        "{applied:#}"
    );
    let ids = ready_ids(&occopus, "sc");
    assert_eq!(ids.len(), 3);
    let report = occopus.report("sc");
    assert_eq!(report["web"]["scaling"]["target"], 3);
    assert_eq!(report["web"]["scaling"]["actual"], 3);
    // Instance ids name their number: web-1-…, web-2-…, web-3-….
    let by_number = |n: u32| {
        ids.iter()
            .find(|id| id.starts_with(&format!("web-{n}-")))
            .unwrap()
            .clone()
    };
    let (first, second, third) = (by_number(1), by_number(2), by_number(3));

    // Down by one: the youngest goes.
    occopus.ok(&["scale", "-i", "sc", "-n", "web", "-c", "-1"]);
    pass(&occopus, "sc");
    assert_eq!(ready_ids(&occopus, "sc"), [first.clone(), second.clone()]);
    assert!(!ready_ids(&occopus, "sc").contains(&third));

    // Down by a chosen instance (by its address): that one goes.
    let address = instances(&occopus.report("sc"), "web")
        .into_iter()
        .find(|(id, _, _)| *id == first)
        .unwrap()
        .2;
    let why = refused(
        &occopus,
        &["scale", "-i", "sc", "-n", "web", "-f", "no-such-instance"],
    );
    assert!(
        why.contains("no live instance with the id or address `no-such-instance`"),
        "{why}"
    );
    occopus.ok(&["scale", "-i", "sc", "-n", "web", "-f", &address]);
    let why = refused(&occopus, &["scale", "-i", "sc", "-n", "web", "-c", "-1"]);
    assert!(
        why.contains("its target is 1 (counting queued requests of -1 "),
        "{why}"
    );
    assert!(why.contains("so -1 would make 0"), "{why}");
    pass(&occopus, "sc");
    assert_eq!(ready_ids(&occopus, "sc"), [second]);
    // At the minimum, an instance that is not there is still the answer.
    let why = refused(
        &occopus,
        &["scale", "-i", "sc", "-n", "web", "-f", "no-such-instance"],
    );
    assert!(why.contains("no live instance"), "{why}");
    let why = refused(&occopus, &["scale", "-i", "sc", "-n", "nope", "-c", "+1"]);
    assert!(why.contains("has no node `nope`; its nodes: web"), "{why}");

    // The loop: `maintain` running in the background applies a request made
    // while it runs; Ctrl-C stops it gracefully.
    let mut maintain = crate::common::KillOnDrop(
        occopus
            .command(&["maintain", "-i", "sc", "--interval", "0.3"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    occopus.ok(&["scale", "-i", "sc", "-n", "web", "-s", "2"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready_ids(&occopus, "sc").len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the maintenance loop never scaled to 2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::common::signal(maintain.0.id(), rustix::process::Signal::INT);
    let status = maintain.0.wait().unwrap();
    assert_eq!(status.code(), Some(130));

    occopus.ok(&["destroy", "-i", "sc"]);
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
}

const RECONF_NODES: &str = r#"'node_def:plain':
  - resource: {type: local}
    contextualisation:
      type: cloudinit
      context_template: |
        #cloud-config
        write_files:
          - {path: /version, content: '{{ variables.version }}'}
    health_check: {ping: false}
"#;

#[test]
fn a_changed_description_is_planned_then_applied() {
    let occopus = Occopus::new(8);
    let v1 = "infra_name: reconf
nodes:
  - &A {name: a, type: plain, variables: {version: 1}}
  - &B {name: b, type: plain, variables: {version: 1}}
dependencies:
  - [*B, *A]
";
    let infra = write_infra(&occopus, "v1", v1, RECONF_NODES);
    let plan = occopus.ok(&["plan", &infra, "-i", "rc"]);
    assert_eq!(
        plan,
        "+ a (new instance): new node, 1 instance(s) (scaling [1, 1])\n\
         + b (new instance): new node, 1 instance(s) (scaling [1, 1])\n\
         Plan: 2 to create, 0 to destroy, 0 to replace.\n"
    );
    occopus.ok(&["build", &infra, "-i", "rc"]);
    assert_eq!(
        occopus.ok(&["plan", &infra, "-i", "rc"]),
        "No changes: the infrastructure matches the description.\n"
    );
    let report = occopus.report("rc");
    let (a, b) = (
        instances(&report, "a")[0].0.clone(),
        instances(&report, "b")[0].0.clone(),
    );

    // v2: a's variable changes, b goes, c comes (depending on a).
    let v2 = "infra_name: reconf
nodes:
  - &A {name: a, type: plain, variables: {version: 2}}
  - &C {name: c, type: plain, variables: {version: 1}, scaling: {min: 2, max: 2}}
dependencies:
  - [*C, *A]
";
    let infra = write_infra(&occopus, "v2", v2, RECONF_NODES);
    let plan = occopus.ok(&["plan", &infra, "-i", "rc"]);
    assert_eq!(
        plan,
        format!(
            "- b {b}: node `b` is no longer in the description\n\
             ~ a {a}: changed: variables.version (rolling)\n\
             + c (new instance): new node, 2 instance(s) (scaling [2, 2])\n\
             + c (new instance): new node, 2 instance(s) (scaling [2, 2])\n\
             Plan: 2 to create, 1 to destroy, 1 to replace.\n"
        )
    );
    let json: serde_json::Value =
        serde_json::from_str(&occopus.ok(&["plan", &infra, "-i", "rc", "--json"])).unwrap();
    assert_eq!(json["targets"], serde_json::json!({"a": 1, "c": 2}));
    // Planning touched nothing.
    assert_eq!(instances(&occopus.report("rc"), "b").len(), 1);

    occopus.ok(&["build", &infra, "-i", "rc"]);
    let report = occopus.report("rc");
    assert!(report.get("b").is_none(), "{report:#}");
    let new_a = &instances(&report, "a")[0].0;
    assert_ne!(*new_a, a);
    let version = std::fs::read_to_string(node_dir(&occopus, new_a).join("version")).unwrap();
    assert_eq!(version, "2");
    assert_eq!(instances(&report, "c").len(), 2);
    assert!(
        instances(&report, "c")
            .iter()
            .all(|(_, state, _)| state == "ready")
    );
    assert_eq!(occopus.local_cloud().list(Some("rc")).unwrap().len(), 3);
    assert_eq!(
        occopus.ok(&["plan", &infra, "-i", "rc"]),
        "No changes: the infrastructure matches the description.\n"
    );

    // v3: an infra variable no template reads changes nothing.
    let v3 = format!("{v2}variables: {{colour: blue}}\n");
    let infra = write_infra(&occopus, "v3", &v3, RECONF_NODES);
    assert_eq!(
        occopus.ok(&["plan", &infra, "-i", "rc"]),
        "No changes: the infrastructure matches the description.\n"
    );
    occopus.ok(&["destroy", "-i", "rc"]);
    assert!(occopus.local_cloud().list(None).unwrap().is_empty());
}
