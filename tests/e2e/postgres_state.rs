//! The state store on PostgreSQL, through the binary: `--state
//! postgres://...` (or the config file's `state`) builds, reports and
//! destroys as the file does, another process sees the same
//! infrastructures, and the password is never printed.
//! The cluster is the one `scripts/test` starts (`OCCOPUS_TEST_POSTGRES`).

use crate::common::{Database, Occopus, instances};

#[test]
fn an_infrastructure_lives_in_a_shared_postgres_database() {
    let database = Database::new("e2e_state");
    let occopus = Occopus::new(112);
    let [infra, nodes] = occopus.describe(
        "infra_name: shared\nnodes:\n  - {name: sim, type: sim, scaling: {min: 2}}\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    let url = database.url.as_str();
    occopus.ok(&[
        "build", &infra, "--nodes", &nodes, "-i", "pg-1", "--state", url,
    ]);
    // Another process, the same database: it sees the infra and its instances.
    let report: serde_json::Value =
        serde_json::from_str(&occopus.ok(&["info", "-i", "pg-1", "--json", "--state", url]))
            .unwrap();
    assert_eq!(instances(&report, "sim").len(), 2, "{report}");
    // The default state file does not know it.
    assert!(!occopus.run(&["info", "-i", "pg-1"]).status.success());
    // The config file's `state` names it too (`--state` and
    // `$OCCOPUS_STATE` would win).
    let config = occopus.dir.path().join("occopus.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("state: {url}\n"));
    std::fs::write(&config, text).unwrap();
    let output = occopus
        .command(&["info", "-i", "pg-1"])
        .env_remove("OCCOPUS_STATE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    occopus.ok(&["destroy", "-i", "pg-1", "--state", url]);
    let listed = occopus.ok(&["info", "--json", "--state", url]);
    assert!(!listed.contains("pg-1"), "{listed}");

    // A wrong password: refused, the URL shown with its password masked.
    let wrong = url.replace(":occopus-test@", ":wrong-secret@");
    let output = occopus.run(&["info", "--state", &wrong]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("occopus:***@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("wrong-secret"), "{stderr}");
}

/// `occopus state copy`: a built infra goes from the state file to
/// PostgreSQL and back into a new file with nothing lost (every command
/// reports it alike, and it can be destroyed from the copy); a copy into a
/// database that is not empty is refused.
#[test]
fn a_built_infrastructure_round_trips_file_postgres_file() {
    let database = Database::new("e2e_copy");
    let occopus = Occopus::new(113);
    let [infra, nodes] = occopus.describe(
        "infra_name: moving\nnodes:\n  - {name: sim, type: sim, scaling: {min: 3, max: 5}}\n",
        "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n",
    );
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "mv-1"]);
    occopus.ok(&["scale", "-i", "mv-1", "-n", "sim", "--changescale", "1"]);
    let file = occopus.dir.path().join("state.db").display().to_string();
    let back = occopus.dir.path().join("back.db").display().to_string();
    let url = database.url.as_str();
    let copied = occopus.run(&["state", "copy", "--from", &file, "--to", url]);
    let said = String::from_utf8_lossy(&copied.stderr);
    assert!(copied.status.success(), "{said}");
    assert!(said.contains("instances 3"), "{said}");
    assert!(
        !said.contains("occopus-test"),
        "the password is masked: {said}"
    );
    occopus.ok(&[
        "state",
        "copy",
        "--from",
        url,
        "--to",
        &format!("sqlite:{back}"),
    ]);
    let report = |state: &str| occopus.ok(&["info", "-i", "mv-1", "--json", "--state", state]);
    let original = report(&file);
    assert_eq!(report(url), original);
    assert_eq!(report(&back), original);
    let events = |state: &str| {
        let shown = occopus.ok(&["info", "-i", "mv-1", "--state", state]);
        shown
            .lines()
            .filter(|l| l.contains("scaling request"))
            .count()
    };
    assert_eq!(events(&back), events(&file));

    let refused = occopus.run(&["state", "copy", "--from", &file, "--to", url]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("copy into an empty database"), "{said}");

    occopus.ok(&["destroy", "-i", "mv-1", "--state", &back]);
}
