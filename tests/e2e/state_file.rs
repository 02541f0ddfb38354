//! The state file under races and faults, through the binary: many first
//! opens at once, a schema newer than the binary, a read-only mount.

use crate::common::{Occopus, wrapped};
use std::process::Stdio;

const DUMMY_NODES: &str =
    "'node_def:sim':\n  - resource: {type: dummy}\n    health_check: {ping: false}\n";

fn dummy_infra(occopus: &Occopus) -> [String; 2] {
    occopus.describe(
        "infra_name: sim\nnodes:\n  - {name: sim, type: sim, scaling: {min: 2}}\n",
        DUMMY_NODES,
    )
}

#[test]
fn twenty_commands_opening_a_new_state_file_at_once_all_succeed() {
    let occopus = Occopus::new(83);
    let [infra, nodes] = dummy_infra(&occopus);
    let ids: Vec<String> = (0..20).map(|i| format!("first-open-{i}")).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            occopus
                .command(&["build", &infra, "--nodes", &nodes, "-i", id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let failures: Vec<String> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 20 failed: {failures:#?}",
        failures.len()
    );
    for id in &ids {
        let report = occopus.report(id);
        assert_eq!(crate::common::instances(&report, "sim").len(), 2, "{id}");
    }
}

#[test]
fn a_state_file_of_a_newer_schema_is_refused_naming_both_versions() {
    let occopus = Occopus::new(84);
    let [infra, nodes] = dummy_infra(&occopus);
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "newer"]);
    let state = occopus.dir.path().join("state.db");
    let db = rusqlite::Connection::open(&state).unwrap();
    let known: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    db.execute_batch("PRAGMA user_version = 999").unwrap();
    drop(db);
    for args in [
        vec!["info", "-i", "newer"],
        vec!["build", &infra, "--nodes", &nodes, "-i", "newer"],
        vec!["destroy", "-i", "newer"],
    ] {
        let output = occopus.run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("999") && stderr.contains(&known.to_string()),
            "{args:?} does not name both versions: {stderr}"
        );
    }
    // Nothing was changed: the file still says 999 and holds the infra.
    let db = rusqlite::Connection::open(&state).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 999);
}

/// The reading commands work on a state file on a read-only mount (made in
/// a private mount namespace, so nothing outside the command sees it); the
/// changing ones say the file is read-only.
#[test]
fn reading_commands_work_on_a_read_only_mount() {
    let occopus = Occopus::new(85);
    let [infra, nodes] = dummy_infra(&occopus);
    occopus.ok(&["build", &infra, "--nodes", &nodes, "-i", "ro"]);
    // Checkpoint the WAL so the file alone holds everything.
    occopus.ok(&["info", "-i", "ro"]);
    let dir = occopus.dir.path().display().to_string();
    let remount =
        format!("mount --bind {dir} {dir} && mount -o remount,bind,ro {dir} && exec \"$0\" \"$@\"");
    let under_ro_mount = |args: &[&str]| {
        wrapped(
            &[
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &remount,
            ],
            &occopus.command(args),
        )
        .output()
        .unwrap()
    };
    for args in [
        vec!["info", "-i", "ro"],
        vec!["info"],
        vec!["plan", &infra, "--nodes", &nodes, "-i", "ro"],
        vec!["validate", &infra, "--nodes", &nodes],
        vec!["graph", &infra, "--nodes", &nodes],
    ] {
        let output = under_ro_mount(&args);
        assert!(
            output.status.success(),
            "{args:?} on a read-only mount: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let destroy = under_ro_mount(&["destroy", "-i", "ro"]);
    let stderr = String::from_utf8_lossy(&destroy.stderr);
    assert!(!destroy.status.success());
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Still intact and writable outside the namespace.
    occopus.ok(&["destroy", "-i", "ro"]);
}
