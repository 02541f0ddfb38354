//! The local cloud with real node processes on loopback addresses.

use crate::common::{DestroyNodesOnDrop, http_get, local_cloud_with, web_node};
use occopus::local_cloud::{
    CreateNode, LocalCloud, LocalCloudConfig, LocalCloudError, NodeState, NodeView,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A local cloud in a temp dir whose nodes use addresses from `range`.
fn open_cloud(root: &Path, range: &str, max_nodes: usize) -> LocalCloud {
    let config = LocalCloudConfig {
        root: None,
        address_range: range.into(),
        max_nodes,
    };
    local_cloud_with(root, &config).unwrap()
}

fn request(token: &str, infra: &str, node: &str, user_data: &str) -> CreateNode {
    CreateNode {
        client_token: token.into(),
        user_data: user_data.into(),
        infra_id: infra.into(),
        infra_name: "demo".into(),
        node_name: node.into(),
    }
}

/// Polls until the node leaves `pending` (or 30 s pass).
fn settle(cloud: &LocalCloud, id: &str) -> NodeView {
    wait_until(cloud, id, |state| state != NodeState::Pending)
}

/// The node once `done` says its state is final (or after 30 s).
fn wait_until(cloud: &LocalCloud, id: &str, done: impl Fn(NodeState) -> bool) -> NodeView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let node = cloud.status(id).unwrap();
        if done(node.state) || Instant::now() > deadline {
            return node;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Running members of a process group: a zombie (ended, not yet reaped by
/// PID 1) runs nothing and holds nothing but its pid.
fn processes_in_group(pgid: i32) -> usize {
    occopus_process::processes()
        .into_iter()
        .filter(|p| p.group == pgid && !p.is_zombie())
        .count()
}

#[test]
fn two_nodes_serve_over_tcp_are_seen_by_another_process_and_leave_nothing() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let cloud = open_cloud(root.path(), "127.77.1.0/24", 8);
    let first = cloud
        .create(&request(
            "web-1",
            "infra-a",
            "first",
            &web_node("hello from first", 8080),
        ))
        .unwrap();
    let address = first.record.address.clone();
    let second = cloud
        .create(&request(
            "web-2",
            "infra-a",
            "second",
            &web_node(&format!("second knows first at {address}"), 8080),
        ))
        .unwrap();
    assert_ne!(second.record.address, address);
    assert_eq!(settle(&cloud, &first.record.id).state, NodeState::Running);
    assert_eq!(settle(&cloud, &second.record.id).state, NodeState::Running);

    assert!(http_get(&address, 8080).ends_with("hello from first"));
    let answer = http_get(&second.record.address, 8080);
    assert!(
        answer.ends_with(&format!("second knows first at {address}")),
        "{answer}"
    );

    // Another process sees both by infra tag (the records are in the database).
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_occopus"))
        .args(["local-cloud", "--root"])
        .arg(root.path())
        .args(["ls", "--infra", "infra-a", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert!(
        listed["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "running")
    );

    for node in [&first, &second] {
        let pid = node.record.pid.unwrap();
        cloud.destroy(&node.record.id).unwrap();
        // Destroying what is gone succeeds.
        cloud.destroy(&node.record.id).unwrap();
        assert_eq!(processes_in_group(pid), 0, "the process group is gone");
        assert!(!root.path().join("nodes").join(&node.record.id).exists());
    }
    assert!(cloud.list(None).unwrap().is_empty());
    assert_eq!(
        cloud.status(&first.record.id).unwrap().state,
        NodeState::Shutdown
    );
    assert!(matches!(
        cloud.status("local-999"),
        Err(LocalCloudError::NotFound(_))
    ));
}

#[test]
fn a_repeated_create_returns_the_same_node() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let cloud = open_cloud(root.path(), "127.77.2.0/24", 8);
    let first = cloud.create(&request("same", "infra-b", "n", "")).unwrap();
    let again = cloud.create(&request("same", "infra-b", "n", "")).unwrap();
    assert_eq!(first.record, again.record);
    assert_eq!(cloud.list(Some("infra-b")).unwrap().len(), 1);
    cloud.destroy(&first.record.id).unwrap();
}

#[test]
fn failing_boot_steps_fail_the_node() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let cloud = open_cloud(root.path(), "127.77.3.0/24", 8);
    let cases = [
        (
            "#cloud-config\nbootcmd: [exit 3]\n",
            "boot step bootcmd `sh -c exit 3` exited with code 3",
        ),
        (
            "#cloud-config\nruncmd: [exit 4]\n",
            "the node's service (runcmd `sh -c exit 4`) exited with code 4",
        ),
        (
            "#cloud-config\nruncmd: ['kill -9 $$']\n",
            "was killed by signal 9 (SIGKILL)",
        ),
        (
            "#cloud-config\nwrite_files: [{path: ../../escape.txt, content: x}]\n",
            "escape",
        ),
    ];
    for (i, (user_data, detail)) in cases.iter().enumerate() {
        let node = cloud
            .create(&request(&format!("t{i}"), "infra-c", "n", user_data))
            .unwrap();
        // A service that fails at once fails the node before it is ever
        // running (only one that fails later was running first).
        let seen = std::cell::RefCell::new(Vec::new());
        let node = wait_until(&cloud, &node.record.id, |state| {
            seen.borrow_mut().push(state);
            state == NodeState::Failed
        });
        assert_eq!(node.state, NodeState::Failed, "{user_data}");
        assert!(
            !seen.borrow().contains(&NodeState::Running),
            "{user_data}: {:?}",
            seen.borrow()
        );
        assert!(node.detail.as_deref().unwrap().contains(detail), "{node:?}");
        cloud.destroy(&node.record.id).unwrap();
    }
    assert!(!root.path().join("escape.txt").exists());
}

#[test]
fn the_log_says_what_was_not_applied() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let cloud = open_cloud(root.path(), "127.77.4.0/24", 8);
    let node = cloud
        .create(&request(
            "l",
            "infra-d",
            "n",
            "#cloud-config\npackages: [nginx]\nruncmd: [echo booted]\n",
        ))
        .unwrap();
    assert_eq!(settle(&cloud, &node.record.id).state, NodeState::Running);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = cloud.logs(&node.record.id).unwrap();
        if logs.contains("booted") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        logs.contains("`packages` is not applied on local nodes"),
        "{logs}"
    );
    assert!(logs.contains("booted"), "{logs}");
    cloud.destroy(&node.record.id).unwrap();
}

#[test]
fn the_node_limit_and_the_address_range_are_enforced() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let cloud = open_cloud(root.path(), "127.77.5.0/30", 2);
    let a = cloud.create(&request("a", "i", "n", "")).unwrap();
    let b = cloud.create(&request("b", "i", "n", "")).unwrap();
    let error = cloud.create(&request("c", "i", "n", "")).unwrap_err();
    assert!(
        matches!(error, LocalCloudError::TooManyNodes { max: 2 }),
        "{error}"
    );
    cloud.destroy(&a.record.id).unwrap();
    cloud.destroy(&b.record.id).unwrap();

    // 127.77.6.0/30 has three usable addresses (.1, .2, .3).
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let cloud = open_cloud(root.path(), "127.77.6.0/30", 10);
    let nodes: Vec<NodeView> = (0..3)
        .map(|i| {
            cloud
                .create(&request(&format!("x{i}"), "i", "n", ""))
                .unwrap()
        })
        .collect();
    let error = cloud.create(&request("x3", "i", "n", "")).unwrap_err();
    assert!(
        matches!(error, LocalCloudError::AddressesExhausted { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("127.77.6.0/30"), "{error}");
    for node in nodes {
        cloud.destroy(&node.record.id).unwrap();
    }
}
