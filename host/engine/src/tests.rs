//! The engine against an in-memory cloud (`memory_cloud.rs`), on paused
//! tokio time: dependencies, retries, timeouts, failure and rollback, stop
//! and resume, crash recovery, maintenance, scaling, plans and destroy.
//!
//! Paused time makes boots and timeouts cost nothing, but tokio advances the
//! paused clock whenever every task waits, which includes waiting for the
//! store's writer thread: so the tests assert orders and bounds (an app is
//! created at least 2 s after db), never exact instants.

use crate::destroy::DestroyOptions;
use crate::memory_cloud::{Call, MemoryCloud, ScriptedProber};
use crate::{
    Action, BuildOptions, BuildReport, EngineConfig, EngineError, ErrorPolicy, Lease, LeasePolicy,
    NoEndpoints, Orchestrator, Phase, ScaleBy, ScaleError, StopHandle, StopSignal, Upkeep, Wiring,
};
use occopus_model::{Model, Renderer, Sources};
use occopus_store::{InstanceRecord, InstanceState, StateStore};
use occopus_types::{CloudTarget, CreateRequest, InstanceTags, Payload, now_ms};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const INFRA: &str = "
infra_name: shop
nodes:
  - &db {name: db, type: db}
  - &app {name: app, type: app, scaling: {min: 2, max: 4}}
dependencies:
  - [*app, *db]
";

/// `db` boots in 2 s; `app` in 1 s and renders db's address into its user-data.
const NODES: &str = "
'node_def:db':
  - resource: {type: memory, boot: 2}
    health_check: {ping: false}
'node_def:app':
  - resource: {type: memory, boot: 1}
    contextualisation:
      type: cloudinit
      context_template: \"db at {{ getip('db') }} for {{ variables.shop }}\"
    health_check: {ping: false}
";

struct Harness {
    dir: tempfile::TempDir,
    cloud: Arc<MemoryCloud>,
    prober: Arc<ScriptedProber>,
    engine: Orchestrator,
}

impl Harness {
    fn new() -> Self {
        Harness::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Arc::new(MemoryCloud::new());
        let prober = Arc::new(ScriptedProber::default());
        let engine = Orchestrator::new(
            Wiring {
                plugins: cloud.clone(),
                store: Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap()),
                prober: prober.clone(),
                endpoints: Arc::new(NoEndpoints),
                ambient_credentials: Default::default(),
            },
            config,
            Renderer::new(false),
        );
        Harness {
            dir,
            cloud,
            prober,
            engine,
        }
    }

    /// The model of `infra` with the definitions `nodes` (and a `shop`
    /// variable of `version`).
    fn model(&self, infra: &str, nodes: &str, version: &str) -> Model {
        let infra = format!("{infra}\nvariables: {{shop: {version}}}\n");
        std::fs::write(self.dir.path().join("infra.yaml"), infra).unwrap();
        std::fs::write(self.dir.path().join("nodes.yaml"), nodes).unwrap();
        let sources = Sources {
            infra: self.dir.path().join("infra.yaml"),
            nodes: vec![self.dir.path().join("nodes.yaml")],
            ..Sources::default()
        };
        let (model, diagnostics) = Model::load(&sources, Default::default(), Default::default());
        assert!(!diagnostics.has_errors(), "{diagnostics}");
        model.unwrap()
    }

    async fn build(&self, model: &Model, options: BuildOptions) -> BuildReport {
        self.engine.build(model.clone(), options).await.unwrap()
    }

    /// Builds "i1" with `--rollback` where `failing`'s instances (db boots
    /// in 2 s, app in 1 s) fail.
    async fn build_failing_with_rollback(&self, failing: &str) -> BuildReport {
        let boot = if failing == "db" { 2 } else { 1 };
        let nodes = NODES.replace(
            &format!("{{type: memory, boot: {boot}}}"),
            &format!("{{type: memory, boot: {boot}, fail: true}}"),
        );
        let model = self.model(INFRA, &nodes, "v1");
        let options = BuildOptions {
            rollback: true,
            ..options("i1")
        };
        self.build(&model, options).await
    }

    fn records(&self, infra_id: &str) -> Vec<InstanceRecord> {
        self.engine.store().instances(infra_id).unwrap()
    }

    /// The lease on `infra_id`, for a test that writes to the store itself.
    async fn lease(&self, infra_id: &str) -> Lease {
        self.engine
            .take_lease(
                infra_id,
                &LeasePolicy::no_wait("test"),
                &StopSignal::never(),
            )
            .await
            .unwrap()
    }
}

fn options(infra_id: &str) -> BuildOptions {
    BuildOptions {
        infra_id: Some(infra_id.into()),
        rollback: false,
        stop: StopSignal::never(),
        lease: LeasePolicy::no_wait("occopus build"),
    }
}

fn upkeep(stop: StopSignal) -> Upkeep {
    Upkeep {
        interval: Duration::from_secs(10),
        policy: ErrorPolicy::default(),
        stop,
        lease: LeasePolicy::no_wait("occopus maintain"),
    }
}

fn destroying() -> DestroyOptions {
    DestroyOptions {
        stop: StopSignal::never(),
        lease: LeasePolicy::no_wait("occopus destroy"),
    }
}

fn live_of<'a>(
    cloud: &'a MemoryCloud,
    node: &'a str,
) -> impl Iterator<Item = crate::memory_cloud::MemoryInstance> + 'a {
    cloud
        .driver
        .live()
        .into_iter()
        .filter(move |i| i.tags.node_name == node)
}

#[tokio::test(start_paused = true)]
async fn a_node_starts_once_its_dependencies_are_ready_and_renders_their_addresses() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    let report = harness.build(&model, options("i1")).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.instances.len(), 3);

    let db: Vec<_> = live_of(&harness.cloud, "db").collect();
    let apps: Vec<_> = live_of(&harness.cloud, "app").collect();
    assert_eq!((db.len(), apps.len()), (1, 2));
    for app in &apps {
        assert!(
            app.created >= db[0].created + Duration::from_secs(2),
            "an app was created before db had booted"
        );
        assert_eq!(
            app.user_data.as_deref(),
            Some(format!("db at {} for v1", db[0].address).as_str())
        );
    }
    let records = harness.records("i1");
    assert!(records.iter().all(|r| r.state == InstanceState::Ready));
    assert!(records.iter().all(|r| r.cloud_id.is_some()));
}

#[tokio::test(start_paused = true)]
async fn transient_create_errors_are_retried_with_backoff_up_to_the_configured_attempts() {
    let nodes = "'node_def:db': [{resource: {type: memory, transient_creates: 2}, health_check: {ping: false}}]\n'node_def:app': [{resource: {type: memory}, health_check: {ping: false}}]\n";
    let harness = Harness::new();
    let model = harness.model(INFRA, nodes, "v1");
    let started = Instant::now();
    let report = harness.build(&model, options("i1")).await;
    assert!(report.succeeded(), "{report:?}");
    let db_creates = harness
        .cloud
        .driver
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Create(id) if id.starts_with("db-")))
        .count();
    assert_eq!(db_creates, 3, "two throttled tries, then the create");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "backoff of 0.5 s then 1 s"
    );

    let harness = Harness::with(EngineConfig {
        call_attempts: 2,
        ..EngineConfig::default()
    });
    let model = harness.model(INFRA, nodes, "v1");
    let report = harness.build(&model, options("i2")).await;
    let failure = report.failures().next().expect("db fails");
    assert_eq!(failure.node, "db");
    let detail = failure.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("create failed:") && detail.contains("throttled"),
        "{detail}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_instance_pending_too_long_fails_at_the_boot_timeout() {
    let nodes = "'node_def:db': [{resource: {type: memory, never_runs: true}, health_check: {ping: false}}]\n'node_def:app': [{resource: {type: memory}, health_check: {ping: false}}]\n";
    let harness = Harness::with(EngineConfig {
        boot_timeout_secs: 60,
        ..EngineConfig::default()
    });
    let model = harness.model(INFRA, nodes, "v1");
    let started = Instant::now();
    let report = harness.build(&model, options("i1")).await;
    assert!(started.elapsed() >= Duration::from_secs(60));
    let failure = report.failures().next().unwrap();
    assert_eq!(
        failure.detail.as_deref(),
        Some("still not running after 60s (engine.boot_timeout_secs)")
    );
    let db = &harness.records("i1")[0];
    assert_eq!(db.state, InstanceState::Failed);
    assert_eq!(db.error, failure.detail);
}

#[tokio::test(start_paused = true)]
async fn failing_health_checks_fail_the_instance_after_its_timeout() {
    let nodes = "'node_def:db': [{resource: {type: memory}, health_check: {ping: true, timeout: 30}}]\n'node_def:app': [{resource: {type: memory}, health_check: {ping: false}}]\n";
    let harness = Harness::new();
    // The first instance of the memory cloud gets 10.9.0.2.
    harness.prober.set_failing("10.9.0.2", true);
    let model = harness.model(INFRA, nodes, "v1");
    let report = harness.build(&model, options("i1")).await;
    let failure = report.failures().next().unwrap();
    let detail = failure.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("health checks failing for ")
            && detail.contains("(health_check.timeout): ping 10.9.0.2: no echo reply"),
        "{detail}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_stops_new_creations_and_rollback_destroys_what_the_run_made() {
    let harness = Harness::new();
    let report = harness.build_failing_with_rollback("db").await;
    assert!(!report.succeeded());
    assert!(report.rolled_back);
    let db = report.instances.iter().find(|i| i.node == "db").unwrap();
    assert_eq!(db.phase, Phase::Failed);
    assert_eq!(
        db.detail.as_deref(),
        Some("the cloud reports it failed: it broke")
    );
    for app in report.instances.iter().filter(|i| i.node == "app") {
        assert_eq!(app.phase, Phase::Stopped);
        assert_eq!(
            app.detail.as_deref(),
            Some("stopped while waiting for dependencies")
        );
    }
    let calls = harness.cloud.driver.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Create(id) if id.starts_with("app-"))),
        "no app is created once db failed: {calls:?}"
    );
    assert!(harness.cloud.driver.live().is_empty(), "rolled back");
    assert!(harness.records("i1").is_empty());
}

/// What --rollback destroyed is reported destroyed, not as it was before.
#[tokio::test(start_paused = true)]
async fn rolled_back_instances_are_reported_destroyed() {
    let harness = Harness::new();
    let report = harness.build_failing_with_rollback("app").await;
    assert!(report.rolled_back);
    let db = report.instances.iter().find(|i| i.node == "db").unwrap();
    assert_eq!(db.phase, Phase::Destroyed);
    assert_eq!(db.detail.as_deref(), Some("destroyed by --rollback"));
    assert!(
        report
            .instances
            .iter()
            .filter(|i| i.node == "app")
            .all(|app| app.phase == Phase::Failed),
        "{:?}",
        report.instances
    );
    assert!(harness.cloud.driver.live().is_empty(), "rolled back");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_build_resumes_without_making_anything_twice() {
    let nodes = NODES.replace("boot: 2", "boot: 50");
    let harness = Harness::new();
    let model = harness.model(INFRA, &nodes, "v1");
    let (stop, signal) = StopHandle::new();
    let build = harness.build(
        &model,
        BuildOptions {
            stop: signal,
            ..options("i1")
        },
    );
    let stopper = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop.stop();
    };
    let (report, ()) = tokio::join!(build, stopper);
    assert!(report.stopped && !report.succeeded());
    assert_eq!(
        harness.cloud.driver.live().len(),
        1,
        "db was made, apps not yet"
    );

    let report = harness.build(&model, options("i1")).await;
    assert!(report.succeeded(), "{report:?}");
    let made = harness.cloud.driver.instances();
    assert_eq!(made.len(), 3, "{made:?}");
    let mut ids: Vec<&str> = made.iter().map(|(_, i)| i.instance_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "no instance id was created twice");
}

#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_was_lost_is_completed_with_the_same_idempotency_key() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    let first = harness.build(&model, options("i1")).await;
    assert!(first.succeeded());
    // As if a run crashed between writing a new db instance's intent and
    // recording what its create answered: the intent is stored, the
    // instance exists, the store has no cloud id for it.
    let store = harness.engine.store();
    let intent = InstanceRecord {
        id: "db-2-lost".into(),
        infra_id: "i1".into(),
        node_name: "db".into(),
        seq: 2,
        resource: serde_json::json!({"type": "memory"})
            .as_object()
            .unwrap()
            .clone(),
        state: InstanceState::Creating,
        created_ms: now_ms(),
        fingerprint: store.instances("i1").unwrap()[0].fingerprint.clone(),
        ..InstanceRecord::default()
    };
    let lease = harness.lease("i1").await;
    store.insert_intent(&intent).await.unwrap();
    drop(lease);
    let planted = harness.cloud.driver.plant(&CreateRequest {
        instance_id: "db-2-lost".into(),
        target: CloudTarget::new(intent.resource.clone()),
        payload: Payload::None,
        tags: InstanceTags {
            infra_id: "i1".into(),
            infra_name: "shop".into(),
            node_name: "db".into(),
        },
    });
    let report = harness.build(&model, options("i1")).await;
    assert!(report.succeeded(), "{report:?}");
    let record = store
        .instances("i1")
        .unwrap()
        .into_iter()
        .find(|r| r.id == "db-2-lost");
    // The plan keeps db at its target of 1: the extra one goes, but only
    // after its create was completed and recorded, so nothing leaks.
    assert!(record.is_none() || record.unwrap().cloud_id.as_deref() == Some(&planted));
    let made_for_it = harness
        .cloud
        .driver
        .instances()
        .into_iter()
        .filter(|(_, i)| i.instance_id == "db-2-lost")
        .count();
    assert_eq!(made_for_it, 1, "the retried create made no second instance");
}

#[tokio::test(start_paused = true)]
async fn an_instance_only_the_cloud_knows_is_destroyed_by_the_next_build() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    let orphan = harness.cloud.driver.plant(&CreateRequest {
        instance_id: "app-9-forgotten".into(),
        target: CloudTarget::new(
            serde_json::json!({"type": "memory"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        payload: Payload::None,
        tags: InstanceTags {
            infra_id: "i1".into(),
            infra_name: "shop".into(),
            node_name: "app".into(),
        },
    });
    let report = harness.build(&model, options("i1")).await;
    assert!(report.succeeded());
    assert!(
        harness
            .cloud
            .driver
            .calls()
            .contains(&Call::Destroy(orphan.clone())),
        "the orphan {orphan} is destroyed"
    );
    assert_eq!(harness.cloud.driver.live().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn maintenance_replaces_a_failed_instance_and_leaves_the_others_alone() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let before = harness.records("i1");
    let victim = before.iter().find(|r| r.node_name == "app").unwrap();
    // The instance dies behind occopus's back.
    let target = CloudTarget::new(victim.resource.clone());
    let cloud_id = victim.cloud_id.clone().unwrap();
    occopus_types::Driver::destroy(&harness.cloud.driver, &target, &cloud_id)
        .await
        .unwrap();

    let auth = Default::default();
    let pass = harness
        .engine
        .maintain_pass("i1", &auth, &upkeep(StopSignal::never()))
        .await
        .unwrap();
    assert_eq!(pass.found_failed.len(), 1);
    assert_eq!(pass.found_failed[0].0, victim.id);
    assert_eq!(pass.found_failed[0].1, "the cloud reports it shut down");
    assert_eq!(pass.instances.len(), 1, "one replacement");
    assert_eq!(pass.instances[0].phase, Phase::Ready);
    let after = harness.records("i1");
    assert_eq!(after.len(), 3);
    for kept in before.iter().filter(|r| r.id != victim.id) {
        assert!(after.iter().any(|r| r.id == kept.id), "{} kept", kept.id);
    }
    assert!(!after.iter().any(|r| r.id == victim.id));
    let next = harness
        .engine
        .maintain_pass("i1", &auth, &upkeep(StopSignal::never()))
        .await
        .unwrap();
    assert!(next.plan.is_empty() && next.found_failed.is_empty());
}

#[tokio::test(start_paused = true)]
async fn scaling_requests_are_checked_against_the_limits_and_applied_by_the_next_pass() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let queued = harness
        .engine
        .request_scale("i1", "app", ScaleBy::Change(1), None)
        .unwrap();
    assert_eq!(queued.target, 3);
    let refused = harness
        .engine
        .request_scale("i1", "app", ScaleBy::Change(2), None)
        .unwrap_err();
    assert!(
        matches!(
            refused,
            EngineError::ScaleRefused(ScaleError::OutsideLimits {
                current: 3,
                wanted: 5,
                ..
            })
        ),
        "{refused}"
    );
    let unknown = harness
        .engine
        .request_scale("i1", "cache", ScaleBy::Change(1), None)
        .unwrap_err();
    assert!(matches!(
        unknown,
        EngineError::ScaleRefused(ScaleError::UnknownNode { .. })
    ));
    let pass = harness
        .engine
        .maintain_pass("i1", &Default::default(), &upkeep(StopSignal::never()))
        .await
        .unwrap();
    assert_eq!(pass.scaling.len(), 1, "{:?}", pass.scaling);
    assert_eq!(live_of(&harness.cloud, "app").count(), 3);
}

#[tokio::test(start_paused = true)]
async fn plans_say_what_a_changed_description_changes_and_build_carries_them_out() {
    let harness = Harness::new();
    let fresh = harness
        .engine
        .plan(&harness.model(INFRA, NODES, "v1"), "i1")
        .await
        .unwrap();
    assert_eq!(
        fresh
            .changes
            .iter()
            .filter(|c| c.action == Action::Create)
            .count(),
        3
    );
    assert_eq!(fresh.targets["app"], 2);

    let v1 = harness.model(INFRA, NODES, "v1");
    assert!(harness.build(&v1, options("i1")).await.succeeded());
    assert!(harness.engine.plan(&v1, "i1").await.unwrap().is_empty());

    // `shop` is read by app's template only: db stays.
    let v2 = harness.model(INFRA, NODES, "v2");
    let plan = harness.engine.plan(&v2, "i1").await.unwrap();
    assert_eq!(plan.changes.len(), 2, "{}", plan.render());
    for change in &plan.changes {
        assert_eq!(
            (change.action, change.node.as_str()),
            (Action::Replace, "app")
        );
        assert_eq!(change.reason, "changed: variables.shop");
    }
    assert!(harness.build(&v2, options("i1")).await.succeeded());
    assert!(harness.engine.plan(&v2, "i1").await.unwrap().is_empty());
    let apps: Vec<_> = live_of(&harness.cloud, "app").collect();
    assert!(
        apps.iter()
            .all(|a| a.user_data.as_deref().unwrap().ends_with("for v2"))
    );

    let only_db = "infra_name: shop\nnodes:\n  - {name: db, type: db}\n";
    let smaller = harness.model(only_db, NODES, "v2");
    let plan = harness.engine.plan(&smaller, "i1").await.unwrap();
    let destroys: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Destroy)
        .collect();
    assert_eq!(destroys.len(), 2);
    assert!(
        destroys
            .iter()
            .all(|c| c.reason == "node `app` is no longer in the description")
    );
}

#[tokio::test(start_paused = true)]
async fn destroy_takes_dependents_first_and_forgets_the_infra() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let report = harness
        .engine
        .destroy("i1", &Default::default(), destroying())
        .await
        .unwrap();
    assert_eq!((report.destroyed, report.failed.len()), (3, 0));
    let db_cloud_id = harness
        .cloud
        .driver
        .instances()
        .into_iter()
        .find(|(_, i)| i.tags.node_name == "db")
        .unwrap()
        .0;
    let calls = harness.cloud.driver.calls();
    let destroys: Vec<&String> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Destroy(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(
        destroys.last(),
        Some(&&db_cloud_id),
        "db goes last: {destroys:?}"
    );
    assert!(harness.cloud.driver.live().is_empty());
    assert!(harness.engine.store().infra("i1").unwrap().is_none());
    let again = harness
        .engine
        .destroy("i1", &Default::default(), destroying())
        .await
        .unwrap_err();
    assert!(matches!(again, EngineError::UnknownInfra(_)));
}

#[tokio::test(start_paused = true)]
async fn the_maintenance_loop_ends_on_a_permanent_error_and_on_stop() {
    let harness = Harness::new();
    let ended = harness
        .engine
        .maintain(
            "nowhere",
            &Default::default(),
            upkeep(StopSignal::never()),
            |_| {},
        )
        .await;
    assert!(matches!(ended, Err(EngineError::UnknownInfra(_))));
    // An infra recorded by an occopus that kept no description.
    let lease = harness.lease("old").await;
    let store = harness.engine.store();
    store
        .upsert_infra("old", "old", "ready", &Default::default())
        .unwrap();
    drop(lease);
    let mut passes = 0;
    let ended = harness
        .engine
        .maintain(
            "old",
            &Default::default(),
            upkeep(StopSignal::never()),
            |_| passes += 1,
        )
        .await;
    assert!(
        matches!(ended, Err(EngineError::NoDescription(_))),
        "{ended:?}"
    );
    assert_eq!(passes, 1, "no retry of what no retry mends");

    let model = harness.model(INFRA, NODES, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let (stop, signal) = StopHandle::new();
    let mut reports = 0;
    let auth = Default::default();
    let maintained = harness
        .engine
        .maintain("i1", &auth, upkeep(signal), |pass| {
            assert!(pass.is_ok());
            reports += 1;
        });
    let stopper = async {
        tokio::time::sleep(Duration::from_secs(35)).await;
        stop.stop();
    };
    let (ended, ()) = tokio::join!(maintained, stopper);
    assert!(ended.is_ok(), "a stop ends the loop without error");
    assert!(reports >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_writer_is_refused_naming_the_holder_or_waits_for_it() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    let first = harness.engine.build(model.clone(), options("i1"));
    let second = async {
        // Once the first build holds the lease (it is taken before any create).
        tokio::time::sleep(Duration::from_millis(500)).await;
        harness.engine.build(model.clone(), options("i1")).await
    };
    let (first, second) = tokio::join!(first, second);
    assert!(first.unwrap().succeeded());
    let refused = second.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, EngineError::Held { .. }), "{message}");
    assert!(message.contains("occopus build (pid "), "{message}");
    assert!(message.contains("occopus unlock -i i1"), "{message}");
    assert_eq!(harness.cloud.driver.live().len(), 3);

    // Waiting instead: the destroy runs once the maintenance pass ends.
    let auth = Default::default();
    let maintaining = upkeep(StopSignal::never());
    let pass = harness.engine.maintain_pass("i1", &auth, &maintaining);
    let destroy = async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let options = DestroyOptions {
            lease: LeasePolicy {
                command: "occopus destroy".into(),
                wait: Duration::MAX,
            },
            ..destroying()
        };
        harness.engine.destroy("i1", &auth, options).await
    };
    let (pass, destroyed) = tokio::join!(pass, destroy);
    pass.unwrap();
    assert_eq!(destroyed.unwrap().destroyed, 3);
    assert!(harness.cloud.driver.live().is_empty());
    assert!(harness.engine.store().lease("i1").unwrap().is_none());
}

/// A holder whose lease is broken (or taken over) starts nothing more: the
/// store refuses its writes, so no intent is recorded and no create goes out.
#[tokio::test(start_paused = true)]
async fn a_build_that_loses_its_lease_stops_creating_and_says_so() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    let build = harness.engine.build(model, options("i1"));
    let breaker = async {
        // Once db is created: it boots for 2 s, and app waits for it. (Not
        // a fixed sleep: the paused clock jumps ahead while the build waits
        // for the store's committer thread, so a timer may fire first.)
        let db_created = || {
            let calls = harness.cloud.driver.calls();
            calls.iter().any(|c| matches!(c, Call::Create(_)))
        };
        while !db_created() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        crate::lease::unlock(harness.engine.store(), "i1", true)
            .unwrap()
            .unwrap()
    };
    let (built, (broken, liveness)) = tokio::join!(build, breaker);
    assert_eq!(broken.holder.command, "occopus build");
    assert_eq!(liveness, occopus_store::Liveness::Alive);
    let lost = built.unwrap_err();
    assert!(matches!(lost, EngineError::LeaseLost { .. }), "{lost}");
    let creates = harness
        .cloud
        .driver
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Create(_)))
        .count();
    assert_eq!(creates, 1, "only db, created before the lease was broken");
    assert!(
        harness.records("i1").iter().all(|r| r.node_name == "db"),
        "no app intent was recorded"
    );
}

#[tokio::test(start_paused = true)]
async fn the_maintenance_loop_ends_when_its_lease_is_taken() {
    let harness = Harness::new();
    let model = harness.model(INFRA, NODES, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let auth = Default::default();
    let maintained = harness
        .engine
        .maintain("i1", &auth, upkeep(StopSignal::never()), |_| {});
    let breaker = async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        let refused = crate::lease::unlock(harness.engine.store(), "i1", false).unwrap_err();
        assert!(refused.to_string().contains("still running"), "{refused}");
        crate::lease::unlock(harness.engine.store(), "i1", true).unwrap();
    };
    let (ended, ()) = tokio::join!(maintained, breaker);
    let lost = ended.unwrap_err();
    assert!(matches!(lost, EngineError::LeaseLost { .. }), "{lost}");
}

/// The app instances' creates (`+`) and destroys (`-`) in the calls the cloud
/// got since `since`, with how many were live after each.
fn app_calls(harness: &Harness, since: usize) -> (String, Vec<usize>) {
    let node_of: HashMap<String, String> = harness
        .cloud
        .driver
        .instances()
        .into_iter()
        .map(|(cloud_id, i)| (cloud_id, i.tags.node_name))
        .collect();
    let mut live = live_of(&harness.cloud, "app").count();
    let calls = harness.cloud.driver.calls();
    // Count back from now to the live count before `since`.
    for call in &calls[since..] {
        match call {
            Call::Create(id) if id.starts_with("app-") => live -= 1,
            Call::Destroy(cloud_id) if node_of[cloud_id] == "app" => live += 1,
            _ => {}
        }
    }
    let (mut order, mut counts) = (String::new(), Vec::new());
    for call in &calls[since..] {
        match call {
            Call::Create(id) if id.starts_with("app-") => {
                live += 1;
                order.push('+');
            }
            Call::Destroy(cloud_id) if node_of[cloud_id] == "app" => {
                live -= 1;
                order.push('-');
            }
            _ => continue,
        }
        counts.push(live);
    }
    (order, counts)
}

/// A changed node is replaced rolling: one instance at a time, the new one
/// ready before the old goes where `max` leaves room, else old first; the
/// batch size is settable.
#[tokio::test(start_paused = true)]
async fn a_changed_node_is_replaced_rolling() {
    for (scaling, batch, order, counts) in [
        ("{min: 2, max: 4}", 1, "+-+-", vec![3, 2, 3, 2]),
        ("{min: 2, max: 2}", 1, "-+-+", vec![1, 2, 1, 2]),
        ("{min: 2, max: 4}", 2, "++--", vec![3, 4, 3, 2]),
    ] {
        let harness = Harness::with(EngineConfig {
            replace_batch: batch,
            ..EngineConfig::default()
        });
        let infra = INFRA.replace("{min: 2, max: 4}", scaling);
        let v1 = harness.model(&infra, NODES, "v1");
        assert!(harness.build(&v1, options("i1")).await.succeeded());
        let old: Vec<String> = harness.records("i1").into_iter().map(|r| r.id).collect();
        let since = harness.cloud.driver.calls().len();

        let v2 = harness.model(&infra, NODES, "v2");
        let plan = harness.engine.plan(&v2, "i1").await.unwrap();
        assert!(plan.render().contains("changed: variables.shop (rolling)"));
        let report = harness.build(&v2, options("i1")).await;
        assert!(report.succeeded(), "{:?}", report.instances);
        let apps: Vec<_> = report
            .instances
            .iter()
            .filter(|i| i.node == "app")
            .collect();
        assert_eq!(apps.len(), 2);
        assert!(
            apps.iter().all(|a| !old.contains(&a.instance_id)),
            "{apps:?}"
        );
        assert_eq!(
            app_calls(&harness, since),
            (order.to_string(), counts),
            "{scaling}, batch {batch}"
        );
        assert!(
            live_of(&harness.cloud, "app").all(|a| a
                .user_data
                .as_deref()
                .unwrap()
                .ends_with("for v2"))
        );
    }
}

/// A load balancer listing app's addresses with `getipall`.
const LB_INFRA: &str = "
infra_name: shop
nodes:
  - &db {name: db, type: db}
  - &app {name: app, type: app, scaling: {min: 2, max: 4}}
  - &lb {name: lb, type: lb, reconfigure: RECONFIGURE}
dependencies:
  - [*app, *db]
  - [*lb, *app]
";

const LB_NODE: &str = "'node_def:lb':
  - resource: {type: memory, boot: 1}
    contextualisation:
      type: cloudinit
      context_template: \"backends {{ getipall('app') | join(',') }}\"
    health_check: {ping: false}
";

/// The backends the live lb instance was made with.
fn lb_backends(harness: &Harness) -> (String, Vec<String>) {
    let lb = live_of(&harness.cloud, "lb").next().unwrap();
    let backends = lb
        .user_data
        .unwrap()
        .trim_start_matches("backends ")
        .to_string();
    (
        lb.instance_id,
        backends.split(',').map(str::to_string).collect(),
    )
}

/// After app scales, lb's templates would render otherwise: `plan` says so
/// (`reconfigure: keep`, the default), or lb is replaced, rolling, with the
/// addresses of the app instances there are (`reconfigure: replace`).
#[tokio::test(start_paused = true)]
async fn dependents_whose_templates_would_render_otherwise_are_shown_or_replaced() {
    for reconfigure in ["keep", "replace"] {
        let harness = Harness::new();
        let infra = LB_INFRA.replace("RECONFIGURE", reconfigure);
        let model = harness.model(&infra, &format!("{NODES}{LB_NODE}"), "v1");
        assert!(harness.build(&model, options("i1")).await.succeeded());
        let (first_lb, backends) = lb_backends(&harness);
        assert_eq!(backends.len(), 2);
        let pass = || async {
            harness
                .engine
                .maintain_pass("i1", &Default::default(), &upkeep(StopSignal::never()))
                .await
                .unwrap()
        };

        // Up to 3 apps, then back to 2: the youngest goes.
        for change in [1, -1] {
            let (lb_before, _) = lb_backends(&harness);
            harness
                .engine
                .request_scale("i1", "app", ScaleBy::Change(change), None)
                .unwrap();
            pass().await;
            let plan = harness.engine.plan(&model, "i1").await.unwrap();
            let apps: Vec<String> = live_of(&harness.cloud, "app").map(|a| a.address).collect();
            match reconfigure {
                // Kept as made: out of date with 3 apps, current again with
                // the 2 it was made with.
                "keep" if change == 1 => {
                    assert!(plan.is_empty(), "{}", plan.render());
                    assert_eq!(plan.outdated.len(), 1, "{}", plan.render());
                    assert!(
                        plan.render().contains(&format!(
                            "! lb {first_lb}: its templates read the addresses of `app`, which changed since it was made"
                        )),
                        "{}",
                        plan.render()
                    );
                }
                "keep" => assert!(plan.outdated.is_empty(), "{}", plan.render()),
                // A new app shows once it is there: the next pass replaces
                // lb. A removed one is known gone before the pass removes
                // it: that same pass replaces lb.
                _ => {
                    if change == 1 {
                        assert_eq!(plan.changes.len(), 1, "{}", plan.render());
                        assert!(plan.changes[0].rolling && plan.changes[0].node == "lb");
                        pass().await;
                    }
                    let (lb, backends) = lb_backends(&harness);
                    assert_ne!(lb, lb_before, "lb was replaced");
                    let mut backends = backends;
                    backends.sort();
                    let mut apps = apps;
                    apps.sort();
                    assert_eq!(backends, apps, "lb lists the apps there are");
                    let plan = harness.engine.plan(&model, "i1").await.unwrap();
                    assert!(
                        plan.is_empty() && plan.outdated.is_empty(),
                        "{}",
                        plan.render()
                    );
                }
            }
        }
        if reconfigure == "keep" {
            assert_eq!(lb_backends(&harness).0, first_lb, "kept as made");
        }
    }
}

/// `db` has a config manager that reports it pending for three polls; `app`
/// reads what the config manager resolved for it.
const CONFIGURED: &str = "
'node_def:db':
  - resource: {type: memory, boot: 1}
    config_management: {type: memory, pending_polls: 3, greeting: hi}
    health_check: {ping: false}
'node_def:app':
  - resource: {type: memory}
    contextualisation:
      type: cloudinit
      context_template: \"{{ memo.greeting }} from {{ memo.node }}, db at {{ getip('db') }}\"
    config_management: {type: memory, greeting: \"{{ variables.shop }}\"}
    health_check: {ping: false}
";

/// The config manager is asked where Occopus asks it: the infra prepared
/// once, each node registered after its intent and before its create, its
/// state polled until configured before its dependents start, its names in
/// its templates; on destroy each node dropped after its instance, the
/// infra last.
#[tokio::test(start_paused = true)]
async fn a_config_manager_is_asked_at_each_point_of_a_nodes_life() {
    let harness = Harness::new();
    let model = harness.model(INFRA, CONFIGURED, "v1");
    let report = harness.build(&model, options("i1")).await;
    assert!(report.succeeded(), "{report:?}");
    let calls = harness.cloud.driver.calls();
    let position = |call: &Call| calls.iter().position(|c| c == call).unwrap();
    let records = harness.records("i1");
    let db = records.iter().find(|r| r.node_name == "db").unwrap();
    assert_eq!(calls[0], Call::Prepare("i1".into()), "{calls:?}");
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, Call::Prepare(_)))
            .count(),
        1,
        "prepared once per run: {calls:?}"
    );
    for record in &records {
        assert!(
            position(&Call::Register(record.id.clone()))
                < position(&Call::Create(record.id.clone())),
            "{calls:?}"
        );
    }
    let db_address = &live_of(&harness.cloud, "db").next().unwrap().address;
    for app in live_of(&harness.cloud, "app") {
        assert_eq!(
            app.user_data.as_deref(),
            Some(format!("v1 from {}, db at {db_address}", app.instance_id).as_str())
        );
    }
    // db answered pending three times, then ready; only then were the apps
    // registered.
    let db_states: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == Call::State(db.id.clone()))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(db_states.len(), 4, "{calls:?}");
    let first_app = calls
        .iter()
        .position(|c| matches!(c, Call::Register(id) if id.starts_with("app-")))
        .unwrap();
    assert!(db_states[3] < first_app, "{calls:?}");

    let destroyed = harness
        .engine
        .destroy("i1", &Default::default(), destroying())
        .await
        .unwrap();
    assert_eq!(destroyed.destroyed, 3);
    let calls = harness.cloud.driver.calls();
    let position = |call: &Call| calls.iter().position(|c| c == call).unwrap();
    for record in &records {
        let cloud_id = record.cloud_id.clone().unwrap();
        assert!(
            position(&Call::Destroy(cloud_id)) < position(&Call::DropNode(record.id.clone())),
            "{calls:?}"
        );
    }
    assert_eq!(
        calls.last(),
        Some(&Call::DropInfra("i1".into())),
        "{calls:?}"
    );
}

/// A node whose configuration fails fails, saying so; its dependents are
/// never registered.
#[tokio::test(start_paused = true)]
async fn a_failed_configuration_fails_the_node() {
    let harness = Harness::new();
    let nodes = CONFIGURED.replace("pending_polls: 3,", "fail: true,");
    let model = harness.model(INFRA, &nodes, "v1");
    let report = harness.build(&model, options("i1")).await;
    assert!(!report.succeeded());
    let db = report.instances.iter().find(|i| i.node == "db").unwrap();
    assert_eq!(
        db.detail.as_deref(),
        Some("its config manager reports that configuring it failed")
    );
    let calls = harness.cloud.driver.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Register(id) if id.starts_with("app-"))),
        "{calls:?}"
    );
}

/// A maintenance pass asks the config manager too, as Occopus's state query
/// does: an instance whose configuration failed is replaced (dropped from
/// the config manager, a new one registered).
#[tokio::test(start_paused = true)]
async fn a_maintenance_pass_replaces_an_instance_whose_configuration_failed() {
    let harness = Harness::new();
    let model = harness.model(INFRA, CONFIGURED, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let db = harness
        .records("i1")
        .into_iter()
        .find(|r| r.node_name == "db")
        .unwrap();
    harness.cloud.config.fail(&db.id);
    let pass = harness
        .engine
        .maintain_pass("i1", &Default::default(), &upkeep(StopSignal::never()))
        .await
        .unwrap();
    assert_eq!(
        pass.found_failed,
        [(
            db.id.clone(),
            "its config manager reports that configuring it failed".to_string()
        )]
    );
    let replacement = harness
        .records("i1")
        .into_iter()
        .find(|r| r.node_name == "db")
        .unwrap();
    assert_ne!(replacement.id, db.id);
    assert_eq!(replacement.state, InstanceState::Ready);
    let calls = harness.cloud.driver.calls();
    assert!(calls.contains(&Call::DropNode(db.id.clone())), "{calls:?}");
    assert!(
        calls.contains(&Call::Register(replacement.id.clone())),
        "{calls:?}"
    );
}

/// A node removed from the description: its instances are destroyed and
/// dropped from their config manager as the previous description configured
/// them (the new one no longer has their section).
#[tokio::test(start_paused = true)]
async fn a_node_removed_from_the_description_is_dropped_from_its_config_manager() {
    let harness = Harness::new();
    let model = harness.model(INFRA, CONFIGURED, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    let apps: Vec<String> = harness
        .records("i1")
        .into_iter()
        .filter(|r| r.node_name == "app")
        .map(|r| r.id)
        .collect();
    assert_eq!(apps.len(), 2);
    let without_app = "\ninfra_name: shop\nnodes:\n  - {name: db, type: db}\n";
    let smaller = harness.model(without_app, CONFIGURED, "v1");
    assert!(harness.build(&smaller, options("i1")).await.succeeded());
    assert!(harness.records("i1").iter().all(|r| r.node_name == "db"));
    let calls = harness.cloud.driver.calls();
    for app in &apps {
        assert!(
            calls.contains(&Call::DropNode(app.clone())),
            "{app}: {calls:?}"
        );
    }
}

/// A kept instance whose templates read another node's address and its
/// config manager's names is rendered again by `plan` with the names its
/// config manager resolves now: when db is replaced (a new address), both
/// apps are shown out of date (without the names their templates would not
/// render, and the plan could not tell).
#[tokio::test(start_paused = true)]
async fn plan_renders_kept_instances_with_their_config_managers_names() {
    let harness = Harness::new();
    let model = harness.model(INFRA, CONFIGURED, "v1");
    assert!(harness.build(&model, options("i1")).await.succeeded());
    assert!(
        harness
            .engine
            .plan(&model, "i1")
            .await
            .unwrap()
            .outdated
            .is_empty()
    );
    let db = harness
        .records("i1")
        .into_iter()
        .find(|r| r.node_name == "db")
        .unwrap();
    let target = CloudTarget::new(db.resource.clone());
    occopus_types::Driver::destroy(&harness.cloud.driver, &target, &db.cloud_id.unwrap())
        .await
        .unwrap();
    harness
        .engine
        .maintain_pass("i1", &Default::default(), &upkeep(StopSignal::never()))
        .await
        .unwrap();
    let plan = harness.engine.plan(&model, "i1").await.unwrap();
    assert_eq!(plan.outdated.len(), 2, "{}", plan.render());
    assert!(
        plan.outdated.iter().all(|o| o.node == "app"),
        "{}",
        plan.render()
    );
}
