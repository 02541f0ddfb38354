//! Loading plugins: contract versions, the compiled cache, discovery and
//! plugins written in another language.

use crate::common::{load_driver, python_plugin, settings, target, wasm};
use occopus::plugin_host::cache::CacheOutcome;
use occopus::plugin_host::{
    CONTRACT_VERSION, Plugin, PluginCatalog, PluginOrigin, PluginRuntime, RuntimeError,
};
use occopus::types::CloudState;
use occopus_builtin_plugins::BUILTINS;
use serde_json::json;

/// The contract's minor versions add interfaces without breaking plugins
/// built against an earlier one (0.1.0 has no `session`, 0.1.1 no
/// `config-manager`).
#[tokio::test]
async fn a_plugin_of_the_previous_minor_contract_version_loads_and_answers() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let driver = load_driver(&runtime, occopus_test_plugins::contract_previous()).await;
    assert_eq!(driver.info().name, "previous");
    assert_eq!(driver.load_report().contract_version, "0.1.0");
    let status = driver
        .status(&target(json!({"type": "previous"})), "vm-1")
        .await
        .unwrap();
    assert_eq!(status.state, CloudState::Running);
    assert_eq!(
        status.detail.as_deref(),
        Some("vm-1 answered by contract 0.1.0")
    );
}

/// A driver built against 0.1.1 (importing that version's `session`) loads
/// under the current contract and keeps its session between calls; without
/// `status-batch` (0.1.3) it is asked instance by instance.
#[tokio::test]
async fn a_plugin_of_contract_0_1_1_with_a_session_loads_and_answers() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let driver = load_driver(&runtime, occopus_test_plugins::contract_0_1_1()).await;
    assert_eq!(driver.load_report().contract_version, "0.1.1");
    assert!(!driver.batches_status());
    let target = target(json!({"type": "kept", "endpoint": "http://127.0.0.1:9"}));
    for call in 1..=2 {
        let status = driver.status(&target, "vm-1").await.unwrap();
        assert_eq!(
            status.detail.as_deref(),
            Some(format!("vm-1: call {call} of a 0.1.1 plugin").as_str())
        );
    }
}

/// A driver of contract 0.1.3 that exports `status-batch` (the `dummy`)
/// answers for many instances in one call, each as `status` would alone: a
/// cloud id it cannot read is that instance's `not-found`, not the call's.
#[tokio::test]
async fn a_driver_with_status_batch_answers_for_many_instances_in_one_call() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let driver = load_driver(&runtime, wasm("occopus_driver_dummy.wasm")).await;
    assert!(driver.batches_status());
    let booting = target(json!({"type": "dummy", "boot_time": 3600}));
    let ids = ["web-1@1".to_string(), "garbage".into(), "web-2@1".into()];
    let answers = driver.status_many(&booting, &ids).await.unwrap();
    assert_eq!(answers.len(), 3);
    for (id, answer) in ids.iter().zip(&answers) {
        match (id.as_str(), answer) {
            ("garbage", Err(error)) => {
                let error = error.to_call_error();
                assert!(error.is_not_found(), "{error}");
            }
            (_, Ok(status)) => {
                let alone = driver.status(&booting, id).await.unwrap();
                assert_eq!(status, &alone, "as `status` answers it alone");
            }
            (id, other) => panic!("{id}: {other:?}"),
        }
    }
    // A wrong resource section spoils the whole call.
    let broken = target(json!({"type": "dummy", "boot_time": -1}));
    assert!(driver.status_many(&broken, &ids).await.is_err());
}

/// A plugin of the next major version (a driver and a config manager) is
/// refused, naming both versions and the file.
#[tokio::test]
async fn a_plugin_of_another_contract_major_version_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let error = runtime
        .load_file(occopus_test_plugins::contract_next())
        .await
        .err()
        .expect("a 1.0.0 plugin must be refused");
    assert!(
        matches!(&error, RuntimeError::ContractMismatch { found, supported, .. }
            if found == "1.0.0" && *supported == CONTRACT_VERSION),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("occopus:plugin@1.0.0"), "{message}");
    assert!(
        message.contains(&format!("occopus:plugin@{CONTRACT_VERSION}")),
        "{message}"
    );
    assert!(
        message.contains("occopus_test_contract_next.wasm"),
        "{message}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused_clearly() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let error = runtime
        .load(
            PluginOrigin::File("junk.wasm".into()),
            b"\0asm junk".to_vec(),
        )
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, RuntimeError::InvalidComponent { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("junk.wasm"), "{error}");
}

async fn load_dummy(runtime: &PluginRuntime) -> Plugin {
    let bytes = std::fs::read(wasm("occopus_driver_dummy.wasm")).unwrap();
    runtime
        .load(PluginOrigin::Builtin("dummy"), bytes)
        .await
        .unwrap()
}

/// Loads the dummy driver and says where its compiled form came from.
async fn cache_outcome(runtime: &PluginRuntime) -> CacheOutcome {
    load_dummy(runtime).await.load_report().cache
}

#[tokio::test]
async fn the_cache_is_used_and_a_corrupt_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let bytes = std::fs::read(wasm("occopus_driver_dummy.wasm")).unwrap();
    let entry = runtime.cache().unwrap().entry_path(&bytes);

    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Miss);
    assert!(entry.is_file());
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Hit);

    // Flip bytes in the middle of the compiled code.
    let mut corrupt = std::fs::read(&entry).unwrap();
    let middle = corrupt.len() / 2;
    for byte in &mut corrupt[middle..middle + 64] {
        *byte ^= 0xff;
    }
    std::fs::write(&entry, &corrupt).unwrap();
    let reloaded = load_dummy(&runtime).await;
    assert_eq!(reloaded.load_report().cache, CacheOutcome::Replaced);
    assert_eq!(reloaded.name(), "dummy");

    // Truncated, then emptied: recompiled each time, never fatal.
    let good = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &good[..good.len() / 3]).unwrap();
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Replaced);
    std::fs::write(&entry, b"").unwrap();
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Replaced);
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Hit);
}

#[tokio::test]
async fn a_stale_entry_with_a_valid_checksum_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = PluginRuntime::new(&settings(cache.path())).unwrap();
    let bytes = std::fs::read(wasm("occopus_driver_dummy.wasm")).unwrap();
    let entry = runtime.cache().unwrap().entry_path(&bytes);
    // An entry whose checksum is right but whose artifact is not wasmtime's.
    let artifact = b"not a compiled component of this engine".to_vec();
    let mut stale = blake3::hash(&artifact).as_bytes().to_vec();
    stale.extend_from_slice(&artifact);
    std::fs::write(&entry, stale).unwrap();
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Replaced);
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Hit);
}

#[tokio::test]
async fn an_unwritable_cache_only_costs_time() {
    let cache = tempfile::tempdir().unwrap();
    let mut settings = settings(cache.path());
    // A file where the cache directory should be.
    let blocker = cache.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    settings.cache_dir = Some(blocker);
    let runtime = PluginRuntime::new(&settings).unwrap();
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Miss);
    assert_eq!(cache_outcome(&runtime).await, CacheOutcome::Miss);
}

#[tokio::test]
async fn the_python_example_driver_works_in_the_sandbox() {
    let settings = settings(&crate::common::shared_cache_dir());
    let runtime = PluginRuntime::new(&settings).unwrap();
    let driver = load_driver(&runtime, python_plugin()).await;
    assert_eq!(driver.info().name, "static");
    assert_eq!(driver.info().resource_types, ["static"]);

    let resource = json!({"type": "static", "addresses": ["127.102.0.10", "127.102.0.11"]});
    driver
        .validate(resource.as_object().unwrap())
        .await
        .unwrap();
    let error = driver
        .validate(
            json!({"type": "static", "addresses": []})
                .as_object()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("non-empty list"), "{error}");

    let request = occopus::types::CreateRequest {
        instance_id: "node-a-1".into(),
        target: target(resource.clone()),
        payload: occopus::types::Payload::None,
        tags: occopus::types::InstanceTags {
            infra_id: "infra-1".into(),
            infra_name: "demo".into(),
            node_name: "node-a".into(),
        },
    };
    let cloud_id = driver.create(&request).await.unwrap();
    let status = driver.status(&target(resource), &cloud_id).await.unwrap();
    assert_eq!(status.state, CloudState::Running);
    assert!(
        cloud_id.ends_with(&status.public_addresses[0]),
        "{cloud_id}"
    );
}

#[tokio::test]
async fn a_broken_file_in_the_plugin_dir_does_not_stop_the_others() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        occopus_test_plugins::contract_next(),
        dir.path().join("a-next.wasm"),
    )
    .unwrap();
    std::fs::copy(
        occopus_test_plugins::hostile(),
        dir.path().join("b-hostile.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a plugin").unwrap();
    let mut settings = settings(cache.path());
    settings.dir = Some(dir.path().to_owned());
    let runtime = PluginRuntime::new(&settings).unwrap();
    let catalog = PluginCatalog::discover(&runtime, &settings, BUILTINS)
        .await
        .unwrap();

    assert_eq!(catalog.driver("hostile").unwrap().info().name, "hostile");
    assert_eq!(catalog.driver("dummy").unwrap().info().name, "dummy");
    assert_eq!(catalog.failures().len(), 1);
    assert!(catalog.failures()[0].path.ends_with("a-next.wasm"));

    // Asking for a type nobody serves names what is installed and what failed.
    let error = catalog.driver("moon").unwrap_err().to_string();
    assert!(error.contains("no driver serves type `moon`"), "{error}");
    assert!(error.contains("dummy, ec2, hostile"), "{error}");
    assert!(error.contains("a-next.wasm was not loaded"), "{error}");
}

#[tokio::test]
async fn an_explicit_mapping_replaces_a_built_in_driver() {
    let cache = tempfile::tempdir().unwrap();
    let mut settings = settings(cache.path());
    settings
        .drivers
        .insert("dummy".into(), occopus_test_plugins::hostile());
    let runtime = PluginRuntime::new(&settings).unwrap();
    let catalog = PluginCatalog::discover(&runtime, &settings, BUILTINS)
        .await
        .unwrap();
    assert_eq!(catalog.driver("dummy").unwrap().info().name, "hostile");
    let builtin = catalog
        .plugins()
        .iter()
        .find(|p| p.name() == "dummy")
        .unwrap();
    assert!(!catalog.is_active(builtin));
}

/// A file the lock file pins loads only with its pinned digest; pinned and
/// gone, or altered, the types its entry names are served by nothing (not by
/// the built-in plugin of the same type) and asking for one says why.
#[tokio::test]
async fn a_pinned_plugin_loads_only_with_its_digest_and_is_never_replaced_silently() {
    use occopus::plugin_host::lock::{LockedPlugin, PluginLock, digest_of};
    use occopus::types::PluginKind;
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).unwrap();
    let component = std::fs::read(wasm("occopus_driver_dummy.wasm")).unwrap();
    std::fs::write(plugin_dir.join("dummy.wasm"), &component).unwrap();
    let entry = |file_digest: String| LockedPlugin {
        name: "dummy".into(),
        kind: PluginKind::Driver,
        types: vec!["dummy".into()],
        version: "0.1.0".into(),
        contract: CONTRACT_VERSION.into(),
        source: "oci://127.0.0.1:5000/occopus/dummy:1".into(),
        manifest: digest_of(b"manifest"),
        digest: file_digest,
    };
    let lock_file = dir.path().join("occopus-plugins.lock");
    let mut lock = PluginLock::empty();
    lock.plugins
        .insert("dummy.wasm".into(), entry(digest_of(&component)));
    lock.plugins.insert(
        "gone.wasm".into(),
        LockedPlugin {
            name: "gone".into(),
            types: vec!["gone".into()],
            ..entry(digest_of(b"gone"))
        },
    );
    lock.write(&lock_file).unwrap();
    let mut settings = settings(&crate::common::shared_cache_dir());
    settings.dir = Some(plugin_dir.clone());
    settings.lock_file = Some(lock_file.clone());
    let runtime = PluginRuntime::new(&settings).unwrap();
    let catalog = PluginCatalog::discover(&runtime, &settings, BUILTINS)
        .await
        .unwrap();
    let serving = catalog.driver("dummy").unwrap();
    assert_eq!(
        serving.load_report().origin,
        PluginOrigin::File(plugin_dir.join("dummy.wasm"))
    );
    let gone = catalog.driver("gone").err().unwrap().to_string();
    assert!(
        gone.contains("is missing") && gone.contains("gone.wasm"),
        "{gone}"
    );

    // Pinned at another digest: refused, and the built-in dummy does not step in.
    lock.plugins
        .insert("dummy.wasm".into(), entry(digest_of(b"other")));
    lock.write(&lock_file).unwrap();
    let catalog = PluginCatalog::discover(&runtime, &settings, BUILTINS)
        .await
        .unwrap();
    let refused = catalog.driver("dummy").err().unwrap().to_string();
    assert!(refused.contains(&digest_of(b"other")), "{refused}");
    assert!(refused.contains(&digest_of(&component)), "{refused}");

    // A damaged lock file stops the load: nothing runs unchecked.
    std::fs::write(&lock_file, "version: 1\nplugins: [").unwrap();
    let damaged = PluginCatalog::discover(&runtime, &settings, BUILTINS).await;
    assert!(matches!(damaged, Err(RuntimeError::Lock(_))));
}
