//! End to end: the `local` driver (a sandboxed component) drives the local
//! cloud service (a separate `occopus local-cloud serve` process) over HTTP;
//! the nodes outlive that process being SIGKILLed.

use crate::common::{
    DestroyNodesOnDrop, KillOnDrop, http_get, processes_naming, settings, target, web_node,
};
use occopus::plugin_host::{DriverPlugin, PluginCatalog, PluginRuntime};
use occopus::types::{CloudState, CloudTarget, CreateRequest, InstanceTags, Payload};
use occopus_builtin_plugins::BUILTINS;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `occopus local-cloud serve` on a free loopback port; returns it and its URL.
fn serve(root: &Path) -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_occopus"))
        .args(["local-cloud", "--root"])
        .arg(root)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "{line}");
    (KillOnDrop(child), line.trim().to_owned())
}

/// The built-in `local` driver.
async fn local_driver() -> DriverPlugin {
    let settings = settings(&crate::common::shared_cache_dir());
    let runtime = PluginRuntime::new(&settings).unwrap();
    let catalog = PluginCatalog::discover(&runtime, &settings, BUILTINS)
        .await
        .unwrap();
    catalog.driver("local").unwrap().clone()
}

fn local(endpoint: &str) -> CloudTarget {
    target(serde_json::json!({"type": "local", "endpoint": endpoint}))
}

async fn create(driver: &DriverPlugin, endpoint: &str, node: &str, user_data: String) -> String {
    driver
        .create(&CreateRequest {
            instance_id: format!("{node}-1"),
            target: local(endpoint),
            payload: Payload::UserData(user_data),
            tags: InstanceTags {
                infra_id: "e2e-infra".into(),
                infra_name: "e2e".into(),
                node_name: node.into(),
            },
        })
        .await
        .unwrap()
}

/// Waits until the node runs and returns its address.
async fn running_address(driver: &DriverPlugin, endpoint: &str, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = driver.status(&local(endpoint), id).await.unwrap();
        if status.state == CloudState::Running {
            return status.public_addresses[0].clone();
        }
        assert!(Instant::now() < deadline, "{id} never ran: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nodes_made_through_the_driver_outlive_the_service_and_leave_nothing() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let (service, endpoint) = serve(root.path());
    let driver = local_driver().await;
    let driver = &driver;

    let first = create(driver, &endpoint, "first", web_node("first node", 8081)).await;
    let first_address = running_address(driver, &endpoint, &first).await;
    let second = create(
        driver,
        &endpoint,
        "second",
        web_node(&format!("second node; first is {first_address}"), 8081),
    )
    .await;
    let second_address = running_address(driver, &endpoint, &second).await;
    assert!(http_get(&first_address, 8081).ends_with("first node"));
    assert!(
        http_get(&second_address, 8081).ends_with(&format!("first is {first_address}")),
        "the second node's user-data holds the first's address"
    );

    // SIGKILL the process that created them: the nodes keep running.
    drop(service);
    let (_service, endpoint) = serve(root.path());
    let listed = driver.list(&local(&endpoint), "e2e-infra").await.unwrap();
    let mut names: Vec<(&str, CloudState)> = listed
        .iter()
        .map(|l| (l.tags.node_name.as_str(), l.state))
        .collect();
    names.sort_by_key(|(name, _)| *name);
    assert_eq!(
        names,
        [
            ("first", CloudState::Running),
            ("second", CloudState::Running)
        ]
    );
    assert!(http_get(&second_address, 8081).contains("second node"));

    for listed in &listed {
        driver
            .destroy(&local(&endpoint), &listed.cloud_id)
            .await
            .unwrap();
        // Gone counts as destroyed.
        driver
            .destroy(&local(&endpoint), &listed.cloud_id)
            .await
            .unwrap();
    }
    assert!(
        driver
            .list(&local(&endpoint), "e2e-infra")
            .await
            .unwrap()
            .is_empty()
    );
    let after = driver.status(&local(&endpoint), &first).await.unwrap();
    assert_eq!(after.state, CloudState::Shutdown);
    let control = root.path().join("control");
    assert!(processes_naming(&control).is_empty());
    assert!(std::net::TcpStream::connect((first_address.as_str(), 8081)).is_err());
    assert_eq!(
        std::fs::read_dir(root.path().join("nodes"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read_dir(&control).unwrap().count(), 0);
}

#[tokio::test]
async fn the_driver_reports_the_local_clouds_errors_in_contract_terms() {
    let root = tempfile::tempdir().unwrap();
    let _cleanup = DestroyNodesOnDrop(root.path().to_owned());
    let (_service, endpoint) = serve(root.path());
    let driver = local_driver().await;
    let driver = &driver;
    let error = driver
        .status(&local(&endpoint), "local-999")
        .await
        .unwrap_err();
    assert_eq!(
        error.contract_error().unwrap().kind,
        occopus::types::ContractErrorKind::NotFound
    );
    let error = driver
        .status(&target(serde_json::json!({"type": "local"})), "local-1")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no `endpoint`"), "{error}");
}
