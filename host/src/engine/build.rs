//! Building an infrastructure: one task per node instance, each starting the
//! moment every node it depends on has all its instances ready.
//!
//! An instance goes: wait for dependencies -> render its templates ->
//! contextualise -> write the intent -> create (bounded per endpoint, transient
//! errors retried) -> record the cloud id -> poll until running (interval
//! growing with the time waited, so a fast node is seen fast) -> health checks
//! until they pass -> ready. Every step is recorded, so running the build again
//! resumes: instances with a cloud id are followed, not re-created; an
//! instance whose create may not have finished gets the create again with the
//! same idempotency key (the cloud returns, or completes, the one it made); and
//! the driver's `list` by infra tag finds any instance the store does not know
//! at all, which is destroyed.
//!
//! When an instance fails, no new creation starts; calls under way finish and
//! are recorded, and the report says what is up, what failed and why.

use super::plan::{self, Plan, PlanInput};
use super::{EngineError, Orchestrator, Phase, StopSignal, polling};
use crate::health::Probes;
use crate::model::check::{self, RenderedSections, Strictness};
use crate::model::{Diagnostics, Model, NodeSpec};
use crate::plugin::{
    CreateRequest, DriverPlugin, InstanceState as CloudState, InstanceTags, NodeFacts, Payload,
    Target,
};
use crate::store::{InfraSnapshot, InstanceRecord, InstanceState, NodeSnapshot, now_ms};
use crate::template::{AddressBook, InstanceAddresses};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How a build runs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The infra id: resume or update this one. Default: the description's
    /// `infra_id`, else a new UUID.
    pub infra_id: Option<String>,
    /// On failure or stop, destroy the instances this run created.
    pub rollback: bool,
    /// Stops the build gracefully when fired.
    pub stop: StopSignal,
}

/// What a build did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    /// The infra id.
    pub infra_id: String,
    /// Every instance's outcome, by node and number.
    pub instances: Vec<InstanceOutcome>,
    /// Whether a stop was asked for.
    pub stopped: bool,
    /// Whether this run's instances were destroyed because of a failure.
    pub rolled_back: bool,
    /// Wall time of the build.
    pub elapsed_ms: u64,
}

/// One instance's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceOutcome {
    /// Its node.
    pub node: String,
    /// Its instance id.
    pub instance_id: String,
    /// Where it ended.
    pub phase: Phase,
    /// Its addresses, when known.
    pub addresses: InstanceAddresses,
    /// Why it failed or stopped.
    pub detail: Option<String>,
}

impl BuildReport {
    /// Whether every instance is ready.
    pub fn succeeded(&self) -> bool {
        !self.stopped && self.instances.iter().all(|i| i.phase == Phase::Ready)
    }

    /// The failed instances.
    pub fn failures(&self) -> impl Iterator<Item = &InstanceOutcome> {
        self.instances.iter().filter(|i| i.phase == Phase::Failed)
    }
}

/// Addresses of the instances that are up, for `getip()` and friends.
struct Book {
    nodes: RwLock<HashMap<String, BTreeMap<u32, InstanceAddresses>>>,
}

impl AddressBook for Book {
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
        let nodes = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        nodes
            .get(node)
            .map(|instances| instances.values().cloned().collect())
    }
}

impl Book {
    fn add(&self, node: &str, seq: u32, addresses: InstanceAddresses) {
        let mut nodes = self
            .nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        nodes
            .entry(node.to_string())
            .or_default()
            .insert(seq, addresses);
    }
}

/// A node's progress: how many of its instances are ready, of how many.
struct NodeTracker {
    target: usize,
    ready: watch::Sender<usize>,
    /// The node's fingerprint, recorded on each new instance (computed once
    /// per node, not per instance).
    fingerprint: String,
}

/// What one build shares between its instance tasks.
struct Run {
    infra_id: String,
    model: Arc<Model>,
    book: Arc<Book>,
    nodes: HashMap<String, NodeTracker>,
    /// Set on the first failure or a stop: no new creation starts.
    halt: watch::Sender<bool>,
    stop: StopSignal,
}

impl Run {
    fn halted(&self) -> bool {
        *self.halt.borrow() || self.stop.is_stopped()
    }

    /// Waits until every instance of `node` is ready; false if halted first.
    async fn wait_ready(&self, node: &str) -> bool {
        let Some(tracker) = self.nodes.get(node) else {
            return true;
        };
        let mut ready = tracker.ready.subscribe();
        let mut halt = self.halt.subscribe();
        let mut stop = self.stop.clone();
        tokio::select! {
            result = ready.wait_for(|n| *n >= tracker.target) => result.is_ok(),
            _ = halt.wait_for(|h| *h) => false,
            () = stop.stopped() => false,
        }
    }
}

/// An instance a build follows.
enum Planned {
    /// One the store knows (from an earlier run).
    Recorded(Box<InstanceRecord>),
    /// A new one: its number among the node's instances and its id.
    New(u32, String),
}

/// How an instance task ended, short of success.
enum Halted {
    /// Failed: the reason.
    Failed(String),
    /// Stopped (by a stop or another instance's failure) at this phase.
    Stopped(&'static str),
}

/// How [`Orchestrator::converge`] treats the instances already recorded.
pub(super) struct Converge<'a> {
    /// What the infra was last built from, for the plan's reasons.
    pub previous: Option<&'a InfraSnapshot>,
    /// Follow every recorded instance until it is ready (a build); else only
    /// those whose creation had not finished (a maintenance pass, which
    /// observes the others itself).
    pub follow_all: bool,
    /// Instances asked to go, with why.
    pub removals: &'a [(String, String)],
    /// Nodes that get no new instance now (backing off after failures).
    pub held: &'a HashSet<String>,
    /// Stops it gracefully.
    pub stop: StopSignal,
}

/// What [`Orchestrator::converge`] did.
pub(super) struct Converged {
    /// The plan it carried out.
    pub plan: Plan,
    /// The outcome of every instance it followed or created.
    pub instances: Vec<InstanceOutcome>,
}

impl Orchestrator {
    /// Builds (or resumes, or completes, or reconfigures) the infrastructure
    /// of `model`.
    pub async fn build(
        &self,
        model: Model,
        options: BuildOptions,
    ) -> Result<BuildReport, EngineError> {
        let started = Instant::now();
        self.check_buildable(&model).await?;
        let infra_id = options
            .infra_id
            .clone()
            .or_else(|| model.infra.id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let store = &self.inner.store;
        let previous = store.infra(&infra_id)?.map(|i| i.snapshot);
        let before: HashSet<String> = store
            .instances(&infra_id)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        store.upsert_infra(&infra_id, &model.infra.name, "building", &snapshot(&model))?;
        store.log_event(&infra_id, None, "build started")?;
        let model = Arc::new(model);
        let converged = self
            .converge(
                &model,
                &infra_id,
                Converge {
                    previous: previous.as_ref(),
                    follow_all: true,
                    removals: &[],
                    held: &HashSet::new(),
                    stop: options.stop.clone(),
                },
            )
            .await?;
        let mut report = BuildReport {
            infra_id: infra_id.clone(),
            instances: converged.instances,
            stopped: options.stop.is_stopped(),
            rolled_back: false,
            elapsed_ms: 0,
        };
        let status = if report.succeeded() {
            "ready"
        } else if report.failures().next().is_some() {
            "failed"
        } else {
            "interrupted"
        };
        store.set_infra_status(&infra_id, status)?;
        store.log_event(&infra_id, None, &format!("build ended: {status}"))?;
        if !report.succeeded() && options.rollback {
            let mine: HashSet<String> = report
                .instances
                .iter()
                .map(|i| i.instance_id.clone())
                .filter(|id| !before.contains(id))
                .collect();
            self.destroy_instances(
                &infra_id,
                &model.auth,
                |r| mine.contains(&r.id),
                StopSignal::never(),
            )
            .await?;
            report.rolled_back = true;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The plan that `build` of `model` on `infra_id` would carry out, from
    /// the store alone (no cloud is asked).
    pub fn plan(&self, model: &Model, infra_id: &str) -> Result<Plan, EngineError> {
        let store = &self.inner.store;
        let previous = store.infra(infra_id)?.map(|i| i.snapshot);
        Ok(plan::plan(&PlanInput {
            model,
            records: &store.instances(infra_id)?,
            previous: previous.as_ref(),
            targets: &store.node_targets(infra_id)?,
            removals: &[],
        }))
    }

    /// Brings the instances of `infra_id` in line with `model`: adopts or
    /// destroys what only the clouds know, destroys what the plan says
    /// (dependents first), then creates what is missing, each instance the
    /// moment its dependencies are ready.
    pub(super) async fn converge(
        &self,
        model: &Arc<Model>,
        infra_id: &str,
        how: Converge<'_>,
    ) -> Result<Converged, EngineError> {
        let store = &self.inner.store;
        let (halt, _) = watch::channel(false);
        let mut run = Run {
            infra_id: infra_id.to_string(),
            book: Arc::new(Book {
                nodes: RwLock::new(
                    model
                        .infra
                        .nodes
                        .iter()
                        .map(|n| (n.name.clone(), BTreeMap::new()))
                        .collect(),
                ),
            }),
            model: model.clone(),
            nodes: HashMap::new(),
            halt,
            stop: how.stop.clone(),
        };
        self.destroy_unknown(&run).await?;

        let plan = plan::plan(&PlanInput {
            model,
            records: &store.instances(infra_id)?,
            previous: how.previous,
            targets: &store.node_targets(infra_id)?,
            removals: how.removals,
        });
        let events: Vec<(Option<&str>, String)> = plan
            .changes
            .iter()
            .map(|change| {
                let instance = change.instance_id.as_deref();
                let message = format!(
                    "{} {} {}: {}",
                    change.action.sign(),
                    change.node,
                    instance.unwrap_or("(new)"),
                    change.reason
                );
                (instance, message)
            })
            .collect();
        store.log_events(infra_id, &events)?;
        let victims: HashSet<&str> = plan.victims().collect();
        if !victims.is_empty() {
            self.destroy_instances(
                infra_id,
                &model.auth,
                |r| victims.contains(r.id.as_str()),
                how.stop.clone(),
            )
            .await?;
        }

        // Every live instance left is kept (followed, if asked); new ones
        // fill each node up to its target.
        let records = store.instances(infra_id)?;
        let mut tasks: Vec<(String, Planned)> = Vec::new();
        for node in &model.infra.nodes {
            let live: Vec<InstanceRecord> = records
                .iter()
                .filter(|r| r.node_name == node.name && r.state.is_live())
                .cloned()
                .collect();
            let target = plan.targets.get(&node.name).copied().unwrap_or_default() as usize;
            let missing = if how.held.contains(&node.name) {
                0
            } else {
                target.saturating_sub(live.len())
            };
            let mut followed = 0;
            for record in live {
                if record.state == InstanceState::Ready {
                    run.book
                        .add(&node.name, record.seq, record.addresses.clone());
                }
                if how.follow_all
                    || record.cloud_id.is_none()
                    || record.state == InstanceState::Pending
                {
                    followed += 1;
                    tasks.push((node.name.clone(), Planned::Recorded(Box::new(record))));
                }
            }
            run.nodes.insert(
                node.name.clone(),
                NodeTracker {
                    target: followed + missing,
                    ready: watch::channel(0).0,
                    fingerprint: model.fingerprint(node),
                },
            );
            let first = store.next_seq(infra_id, &node.name)?;
            for seq in (first..).take(missing) {
                let id = format!(
                    "{}-{seq}-{}",
                    node.name,
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                );
                tasks.push((node.name.clone(), Planned::New(seq, id)));
            }
        }
        let run = Arc::new(run);
        let handles: Vec<_> = tasks
            .into_iter()
            .map(|(node, record)| {
                let this = self.clone();
                let run = run.clone();
                tokio::spawn(async move { this.instance_task(&run, &node, record).await })
            })
            .collect();
        let mut instances = Vec::with_capacity(handles.len());
        for handle in handles {
            match handle.await {
                Ok(outcome) => instances.push(outcome),
                Err(e) => tracing::error!(error = %e, "an instance task panicked"),
            }
        }
        instances.sort_by(|a, b| (&a.node, &a.instance_id).cmp(&(&b.node, &b.instance_id)));
        Ok(Converged { plan, instances })
    }

    /// The checks `build` insists on beyond `validate`'s.
    async fn check_buildable(&self, model: &Model) -> Result<(), EngineError> {
        let mut diagnostics = Diagnostics::default();
        check::check_with_plugins(
            model,
            self.catalog(),
            &self.inner.renderer,
            Strictness::Build,
            &mut diagnostics,
        )
        .await;
        for node in &model.infra.nodes {
            let Some(implementation) = model.implementation(&node.name) else {
                continue;
            };
            if let Some(cm) = &implementation.config_management
                && cm.get("type").and_then(crate::model::Yaml::as_str) == Some("chef")
            {
                diagnostics.error(
                    &cm.location,
                    format!(
                        "node `{}`: `chef` config management is not supported by this occopus yet",
                        node.name
                    ),
                    "put the bootstrap steps in the node's cloud-init instead",
                );
            }
        }
        if diagnostics.has_errors() {
            return Err(EngineError::Invalid(diagnostics));
        }
        Ok(())
    }

    /// Asks each cloud the infra uses for the instances tagged with its id
    /// and destroys any the store does not know at all (its intent was lost).
    /// One the store knows without a cloud id is left to its task: its create
    /// is called again with the same idempotency key, which completes it.
    async fn destroy_unknown(&self, run: &Run) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let records = store.instances(&run.infra_id)?;
        let mut resources: Vec<serde_json::Map<String, serde_json::Value>> =
            records.iter().map(|r| r.resource.clone()).collect();
        for node in &run.model.infra.nodes {
            if let Some(implementation) = run.model.implementation(&node.name) {
                resources.push(implementation.resource_json());
            }
        }
        for (resource, listed) in self
            .list_tagged(&run.infra_id, &resources, &run.model.auth)
            .await
        {
            if records.iter().any(|r| r.id == listed.instance_id)
                || matches!(listed.state, CloudState::Shutdown)
            {
                continue;
            }
            let message = format!(
                "destroying {} (instance {}): tagged with this infra but not in the store",
                listed.cloud_id, listed.instance_id
            );
            tracing::warn!("{message}");
            store.log_event(&run.infra_id, None, &message)?;
            if let Ok(target) = self.inner.targets.target(&resource, &run.model.auth).await
                && let Ok(driver) = self.catalog().driver(resource_type(&resource))
                && let Err(e) = driver.destroy(&target, &listed.cloud_id).await
            {
                store.log_event(
                    &run.infra_id,
                    None,
                    &format!("could not destroy {}: {e}", listed.cloud_id),
                )?;
            }
        }
        Ok(())
    }

    /// One instance, from waiting for its dependencies to ready.
    async fn instance_task(&self, run: &Run, node: &str, record: Planned) -> InstanceOutcome {
        let mut outcome = InstanceOutcome {
            node: node.to_string(),
            instance_id: match &record {
                Planned::Recorded(r) => r.id.clone(),
                Planned::New(_, id) => id.clone(),
            },
            phase: Phase::Failed,
            addresses: InstanceAddresses::default(),
            detail: None,
        };
        match self.bring_up(run, node, record, &mut outcome).await {
            Ok(()) => {
                outcome.phase = Phase::Ready;
                if let Some(tracker) = run.nodes.get(node) {
                    tracker.ready.send_modify(|n| *n += 1);
                }
            }
            Err(Halted::Failed(reason)) => {
                run.halt.send_replace(true);
                // A no-op when it failed before its intent was written.
                let _ = self
                    .inner
                    .store
                    .record_state(
                        &outcome.instance_id,
                        InstanceState::Failed,
                        None,
                        Some(&reason),
                    )
                    .await;
                self.emit(
                    &run.infra_id,
                    node,
                    &outcome.instance_id,
                    Phase::Failed,
                    Some(reason.clone()),
                );
                outcome.phase = Phase::Failed;
                outcome.detail = Some(reason);
            }
            Err(Halted::Stopped(at)) => {
                outcome.phase = Phase::Stopped;
                outcome.detail = Some(format!("stopped while {at}"));
                self.emit(
                    &run.infra_id,
                    node,
                    &outcome.instance_id,
                    Phase::Stopped,
                    outcome.detail.clone(),
                );
            }
        }
        outcome
    }

    async fn bring_up(
        &self,
        run: &Run,
        node_name: &str,
        record: Planned,
        outcome: &mut InstanceOutcome,
    ) -> Result<(), Halted> {
        let store = &self.inner.store;
        let failed = |what: &str| {
            let what = what.to_string();
            move |e: crate::store::StoreError| Halted::Failed(format!("{what}: {e}"))
        };
        let model = &run.model;
        let node = model
            .infra
            .node(node_name)
            .ok_or(Halted::Failed("node vanished from the model".into()))?;
        let implementation = model
            .implementation(node_name)
            .ok_or(Halted::Failed("no implementation chosen".into()))?;
        self.emit(
            &run.infra_id,
            node_name,
            &outcome.instance_id,
            Phase::Waiting,
            None,
        );
        let dependencies: Vec<&str> = model.infra.dependencies_of(node_name).collect();
        for dependency in dependencies {
            if !run.wait_ready(dependency).await {
                return Err(Halted::Stopped("waiting for dependencies"));
            }
        }
        let (mut record, fresh) = match record {
            Planned::Recorded(record) => (*record, false),
            Planned::New(seq, id) => {
                if run.halted() {
                    return Err(Halted::Stopped("waiting to be created"));
                }
                let record = InstanceRecord {
                    id,
                    infra_id: run.infra_id.clone(),
                    node_name: node_name.to_string(),
                    seq,
                    resource: implementation.resource_json(),
                    cloud_id: None,
                    state: InstanceState::Creating,
                    addresses: InstanceAddresses::default(),
                    error: None,
                    created_ms: now_ms(),
                    updated_ms: now_ms(),
                    fingerprint: run.nodes.get(node_name).map(|n| n.fingerprint.clone()),
                    health: Default::default(),
                };
                (record, true)
            }
        };
        outcome.instance_id = record.id.clone();
        let context = check::node_context(model, node, implementation, &run.infra_id, &record.id);
        let book: Arc<dyn AddressBook> = run.book.clone();

        // An instance without a cloud id is (re)created: render, then record
        // the intent of a new one before any cloud call.
        let payload = if record.cloud_id.is_none() {
            let rendered =
                check::render_sections(&self.inner.renderer, implementation, &context, &book)
                    .map_err(|e| Halted::Failed(e.to_string()))?;
            let payload = self
                .contextualise(
                    &rendered,
                    implementation.resource_type.as_str(),
                    &run.infra_id,
                    node,
                    &record.id,
                )
                .await?;
            record.resource = rendered.resource;
            if fresh {
                if run.halted() {
                    return Err(Halted::Stopped("waiting to be created"));
                }
                store
                    .insert_intent(&record)
                    .await
                    .map_err(failed("record the intent"))?;
            }
            Some(payload)
        } else {
            None
        };
        let driver = self
            .catalog()
            .driver(record.resource_type())
            .map_err(|e| Halted::Failed(e.to_string()))?;
        let target = self
            .inner
            .targets
            .target(&record.resource, &model.auth)
            .await
            .map_err(Halted::Failed)?;
        if let Some(payload) = payload {
            let cloud_id = self
                .create(run, node, &record, driver, &target, payload)
                .await?;
            store
                .record_cloud_id(&record.id, &cloud_id)
                .await
                .map_err(failed("record the cloud id"))?;
            record.cloud_id = Some(cloud_id);
        }
        // Another instance's failure stops new creations only: one the cloud
        // has made is followed to the end, so the report says what is up.
        if run.stop.is_stopped() {
            return Err(Halted::Stopped("booting"));
        }
        let cloud_id = record.cloud_id.clone().unwrap_or_default();
        let addresses = self
            .wait_running(run, node_name, &record.id, driver, &target, &cloud_id)
            .await?;
        outcome.addresses = addresses.clone();
        run.book.add(node_name, record.seq, addresses.clone());
        let probes = self
            .probes(implementation, &context, &book, &addresses)
            .map_err(Halted::Failed)?;
        if !probes.is_empty() {
            // Health checks may take long: record the addresses meanwhile.
            store
                .record_state(&record.id, InstanceState::Running, Some(&addresses), None)
                .await
                .map_err(failed("record the state"))?;
            self.emit(
                &run.infra_id,
                node_name,
                &record.id,
                Phase::Checking,
                addresses.primary().map(str::to_string),
            );
            self.wait_healthy(run, &probes, implementation.health_check.timeout)
                .await?;
            store
                .record_health(&record.id, true, None)
                .await
                .map_err(failed("record the health"))?;
        }
        store
            .record_state(&record.id, InstanceState::Ready, Some(&addresses), None)
            .await
            .map_err(failed("record the state"))?;
        self.emit(
            &run.infra_id,
            node_name,
            &record.id,
            Phase::Ready,
            addresses.primary().map(str::to_string),
        );
        Ok(())
    }

    async fn contextualise(
        &self,
        rendered: &RenderedSections,
        resource_type: &str,
        infra_id: &str,
        node: &NodeSpec,
        instance_id: &str,
    ) -> Result<Payload, Halted> {
        let Some(section) = &rendered.contextualisation else {
            return Ok(Payload::None);
        };
        let kind = section
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let plugin = self
            .catalog()
            .contextualiser(kind)
            .map_err(|e| Halted::Failed(e.to_string()))?;
        let facts = NodeFacts {
            infra_id: infra_id.to_string(),
            infra_name: String::new(),
            node_name: node.name.clone(),
            instance_id: instance_id.to_string(),
            resource_type: resource_type.to_string(),
        };
        plugin
            .contextualise(section, &facts)
            .await
            .map_err(|e| Halted::Failed(format!("contextualisation failed: {e}")))
    }

    /// The create call, bounded per endpoint and retried when transient.
    async fn create(
        &self,
        run: &Run,
        node: &NodeSpec,
        record: &InstanceRecord,
        driver: &DriverPlugin,
        target: &Target,
        payload: Payload,
    ) -> Result<String, Halted> {
        let endpoint = target.resource.get("endpoint").and_then(|e| e.as_str());
        let limit = self.endpoint_limit(&driver.info().name, endpoint);
        let _permit = limit
            .acquire()
            .await
            .map_err(|_| Halted::Stopped("waiting for the endpoint"))?;
        self.emit(&run.infra_id, &node.name, &record.id, Phase::Creating, None);
        let request = CreateRequest {
            instance_id: record.id.clone(),
            target: target.clone(),
            payload,
            tags: InstanceTags {
                infra_id: run.infra_id.clone(),
                infra_name: run.model.infra.name.clone(),
                node_name: node.name.clone(),
            },
        };
        self.with_retries(|| driver.create(&request))
            .await
            .map_err(|e| Halted::Failed(format!("create failed: {e}")))
    }

    /// Polls the instance's status until it runs, when [`polling`] says.
    async fn wait_running(
        &self,
        run: &Run,
        node: &str,
        instance_id: &str,
        driver: &DriverPlugin,
        target: &Target,
        cloud_id: &str,
    ) -> Result<InstanceAddresses, Halted> {
        let started = Instant::now();
        let timeout = Duration::from_secs(self.inner.config.boot_timeout_secs);
        let estimates = &self.inner.boot_estimates;
        let resource = serde_json::Value::Object(target.resource.clone()).to_string();
        let mut announced = false;
        let mut stop = run.stop.clone();
        loop {
            match self.with_retries(|| driver.status(target, cloud_id)).await {
                Ok(status) => match status.state {
                    CloudState::Running => {
                        if announced {
                            estimates.observe(&resource, started.elapsed());
                        }
                        return Ok(InstanceAddresses {
                            public: status.public_addresses,
                            private: status.private_addresses,
                        });
                    }
                    CloudState::Failed | CloudState::Shutdown => {
                        let state = if matches!(status.state, CloudState::Failed) {
                            "failed"
                        } else {
                            "shut down"
                        };
                        return Err(Halted::Failed(format!(
                            "the cloud reports it {state}{}",
                            status.detail.map(|d| format!(": {d}")).unwrap_or_default()
                        )));
                    }
                    CloudState::Pending | CloudState::Unknown => {
                        if !announced {
                            self.emit(&run.infra_id, node, instance_id, Phase::Pending, None);
                            announced = true;
                        }
                    }
                },
                Err(e) => return Err(Halted::Failed(format!("status failed: {e}"))),
            }
            let waited = started.elapsed();
            if waited > timeout {
                return Err(Halted::Failed(format!(
                    "still not running after {}s (engine.boot_timeout_secs)",
                    timeout.as_secs()
                )));
            }
            let interval = polling::next_poll(waited, estimates.get(&resource));
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.stopped() => return Err(Halted::Stopped("booting")),
            }
        }
    }

    pub(super) fn probes(
        &self,
        implementation: &crate::model::Implementation,
        context: &crate::template::NodeContext,
        book: &Arc<dyn AddressBook>,
        addresses: &InstanceAddresses,
    ) -> Result<Probes, String> {
        let address = addresses.primary().unwrap_or_default().to_string();
        let ip = [("ip", serde_json::Value::from(address.clone()))];
        // The `urls` and `mysqldbs` strings are templates (with `ip`).
        let render = |key: &str| -> Result<serde_json::Value, String> {
            match implementation
                .health_check_yaml
                .as_ref()
                .and_then(|h| h.get(key))
            {
                Some(section) => self
                    .inner
                    .renderer
                    .render_yaml(section, context, book.clone(), &ip)
                    .map_err(|e| e.to_string()),
                None => Ok(serde_json::Value::Null),
            }
        };
        let text = |value: &serde_json::Value, key: &str| {
            value[key].as_str().unwrap_or_default().to_string()
        };
        let urls = render("urls")?
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mysqldbs = render("mysqldbs")?
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|db| crate::health::mysql::Login {
                        name: text(db, "name"),
                        user: text(db, "user"),
                        pass: text(db, "pass"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Probes {
            address,
            ports: implementation.health_check.ports.clone(),
            urls,
            ping: implementation.health_check.ping,
            mysqldbs,
        })
    }

    /// Runs the health checks until they pass, or until they have failed
    /// continuously for `timeout`.
    async fn wait_healthy(
        &self,
        run: &Run,
        probes: &Probes,
        timeout: Duration,
    ) -> Result<(), Halted> {
        let started = Instant::now();
        let mut stop = run.stop.clone();
        loop {
            let last = match self.inner.health.check(probes).await {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            let waited = started.elapsed();
            if waited > timeout {
                return Err(Halted::Failed(format!(
                    "health checks failing for {}s (health_check.timeout): {last}",
                    waited.as_secs()
                )));
            }
            let interval = (waited / 10).clamp(Duration::from_millis(20), Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.stopped() => return Err(Halted::Stopped("health checking")),
            }
        }
    }

    /// Every instance the clouds of `resources` list under `infra_id`, with the
    /// resource it was listed through. A cloud that cannot list is logged.
    pub(super) async fn list_tagged(
        &self,
        infra_id: &str,
        resources: &[serde_json::Map<String, serde_json::Value>],
        auth: &crate::model::AuthData,
    ) -> Vec<(
        serde_json::Map<String, serde_json::Value>,
        crate::plugin::ListedInstance,
    )> {
        let mut seen_targets = HashSet::new();
        let mut found = Vec::new();
        let mut seen_instances = HashSet::new();
        for resource in resources {
            // One list per cloud: same type and endpoint.
            let key = (
                resource_type(resource).to_string(),
                resource.get("endpoint").map(|e| e.to_string()),
            );
            if !seen_targets.insert(key) {
                continue;
            }
            let Ok(driver) = self.catalog().driver(resource_type(resource)) else {
                continue;
            };
            let target = match self.inner.targets.target(resource, auth).await {
                Ok(target) => target,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the cloud's instances");
                    continue;
                }
            };
            match self.with_retries(|| driver.list(&target, infra_id)).await {
                Ok(listed) => {
                    for instance in listed {
                        if seen_instances.insert(instance.cloud_id.clone()) {
                            found.push((resource.clone(), instance));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list the cloud's instances"),
            }
        }
        found
    }
}

/// `type` of a resource section.
pub(super) fn resource_type(resource: &serde_json::Map<String, serde_json::Value>) -> &str {
    resource
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
}

fn snapshot(model: &Model) -> InfraSnapshot {
    InfraSnapshot {
        user_id: model.infra.user_id.clone(),
        nodes: model
            .infra
            .nodes
            .iter()
            .map(|node| NodeSnapshot {
                basis: Some(model.node_basis(node)),
                name: node.name.clone(),
                node_type: node.node_type.clone(),
                scaling: node.scaling,
                dependencies: model
                    .infra
                    .dependencies_of(&node.name)
                    .map(str::to_string)
                    .collect(),
            })
            .collect(),
        description: Some(model.to_stored()),
    }
}
