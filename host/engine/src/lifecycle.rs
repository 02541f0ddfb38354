//! One instance's life in a build or a converge: wait for the nodes it
//! depends on -> render its templates (the config-management section first,
//! see `config_management.rs`) -> contextualise -> write the intent ->
//! register it with its config manager -> create (bounded per endpoint,
//! transient errors retried) -> record the cloud id -> poll until running
//! (see `polling.rs`) -> its config manager reports it configured -> health
//! checks until they pass -> ready. Every step is recorded before the next, so running the
//! operation again resumes where it stopped.

use crate::error::InstanceFailure;
use crate::events::Phase;
use crate::orchestrator::Orchestrator;
use crate::polling::{self, Cadence};
use crate::report::InstanceOutcome;
use crate::run::{Planned, Run};
use crate::status_batches::Poll;
use occopus_model::render::{self, RenderedSections};
use occopus_model::{AddressBook, NodeSpec};
use occopus_store::{InstanceRecord, InstanceState};
use occopus_types::{
    CloudState, CloudTarget, CreateRequest, Driver, InstanceAddresses, InstanceTags, NodeFacts,
    Payload, now_ms, resource_type,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How an instance task ended, short of success.
pub(crate) enum Halted {
    /// Failed, and why.
    Failed(InstanceFailure),
    /// Stopped (by a stop or another instance's failure) at this phase.
    Stopped(&'static str),
}

impl<E: Into<InstanceFailure>> From<E> for Halted {
    fn from(failure: E) -> Self {
        Halted::Failed(failure.into())
    }
}

impl Orchestrator {
    /// One instance, from waiting for its dependencies to ready.
    pub(crate) async fn instance_task(
        &self,
        run: &Run,
        node: &str,
        record: Planned,
    ) -> InstanceOutcome {
        let mut outcome = InstanceOutcome {
            node: node.to_string(),
            instance_id: record.id().to_string(),
            phase: Phase::Failed,
            addresses: InstanceAddresses::default(),
            detail: None,
        };
        match self.bring_up(run, node, record, &mut outcome).await {
            Ok(()) => {
                outcome.phase = Phase::Ready;
                if let Some(tracker) = run.nodes.get(node) {
                    tracker.ready_one();
                }
            }
            Err(Halted::Failed(failure)) => {
                run.halt.send_replace(true);
                let reason = failure.to_string();
                // A no-op when it failed before its intent was written.
                let _ = self
                    .inner
                    .store
                    .record_state(
                        &run.infra_id,
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
        let model = &run.model;
        let not_described = || InstanceFailure::NotDescribed(node_name.to_string());
        let node = model.infra.node(node_name).ok_or_else(not_described)?;
        let implementation = model.implementation(node_name).ok_or_else(not_described)?;
        for dependency in model.infra.dependencies_of(node_name) {
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
                    // Rendered below, before its intent is recorded.
                    resource: Default::default(),
                    cloud_id: None,
                    state: InstanceState::Creating,
                    addresses: InstanceAddresses::default(),
                    error: None,
                    created_ms: now_ms(),
                    updated_ms: now_ms(),
                    fingerprint: run.nodes.get(node_name).map(|n| n.fingerprint.clone()),
                    health: Default::default(),
                    rendered: None,
                };
                (record, true)
            }
        };
        outcome.instance_id = record.id.clone();
        let context = run
            .nodes
            .get(node_name)
            .and_then(|tracker| tracker.context.as_ref())
            .ok_or_else(not_described)?
            .for_instance(&record.id);
        let book: Arc<dyn AddressBook> = run.book.clone();
        let (context, mut config) = self
            .configured_context(model, implementation, context, &book)
            .await?;

        // An instance without a cloud id is (re)created: render, then record
        // the intent of a new one before any cloud call.
        let payload = if record.cloud_id.is_none() {
            let rendered =
                render::render_sections(&self.inner.renderer, implementation, &context, &book)?;
            let payload = self.contextualise(&rendered, run, node, &record.id).await?;
            record.rendered = Some(rendered.digest());
            record.resource = rendered.resource;
            if fresh {
                if run.halted() {
                    return Err(Halted::Stopped("waiting to be created"));
                }
                store
                    .insert_intent(&record)
                    .await
                    .map_err(InstanceFailure::record("record the intent"))?;
            }
            if let Some(config) = &mut config {
                let attributes = rendered
                    .contextualisation
                    .as_ref()
                    .and_then(|c| c.get("attributes"));
                self.register(run, config, attributes).await?;
            }
            Some(payload)
        } else {
            None
        };
        let driver = self.plugins().driver(record.resource_type())?;
        let target = self.target(&record.resource, &model.auth).await?;
        if let Some(payload) = payload {
            let cloud_id = self
                .create(run, node, &record, driver, &target, payload)
                .await?;
            store
                .record_cloud_id(&run.infra_id, &record.id, &cloud_id)
                .await
                .map_err(InstanceFailure::record("record the cloud id"))?;
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
        if let Some(config) = &config {
            self.wait_configured(run, config).await?;
        }
        run.book.add(node_name, record.seq, addresses.clone());
        let probes = self.probes(implementation, &context, &book, &addresses)?;
        if !probes.is_empty() {
            // Health checks may take long: record the addresses meanwhile.
            store
                .record_state(
                    &run.infra_id,
                    &record.id,
                    InstanceState::Running,
                    Some(&addresses),
                    None,
                )
                .await
                .map_err(InstanceFailure::record("record the state"))?;
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
                .record_health(&run.infra_id, &record.id, true, None)
                .await
                .map_err(InstanceFailure::record("record the health"))?;
        }
        store
            .record_state(
                &run.infra_id,
                &record.id,
                InstanceState::Ready,
                Some(&addresses),
                None,
            )
            .await
            .map_err(InstanceFailure::record("record the state"))?;
        self.emit(
            &run.infra_id,
            node_name,
            &record.id,
            Phase::Ready,
            addresses.primary().map(str::to_string),
        );
        Ok(())
    }

    /// The payload of a new instance: what its contextualiser makes of its
    /// rendered `contextualisation` section (none without one).
    async fn contextualise(
        &self,
        rendered: &RenderedSections,
        run: &Run,
        node: &NodeSpec,
        instance_id: &str,
    ) -> Result<Payload, Halted> {
        let Some(section) = &rendered.contextualisation else {
            return Ok(Payload::None);
        };
        let plugin = self.plugins().contextualiser(resource_type(section))?;
        let facts = NodeFacts {
            infra_id: run.infra_id.clone(),
            infra_name: run.model.infra.name.clone(),
            node_name: node.name.clone(),
            instance_id: instance_id.to_string(),
            resource_type: resource_type(&rendered.resource).to_string(),
        };
        plugin
            .contextualise(section, &facts)
            .await
            .map_err(|e| Halted::Failed(InstanceFailure::Contextualise(e)))
    }

    /// The create call, bounded per endpoint and retried when transient.
    async fn create(
        &self,
        run: &Run,
        node: &NodeSpec,
        record: &InstanceRecord,
        driver: &dyn Driver,
        target: &CloudTarget,
        payload: Payload,
    ) -> Result<String, Halted> {
        let limit = self.endpoint_limit(&driver.info().name, target.endpoint());
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
            .map_err(|e| Halted::Failed(InstanceFailure::Create(e)))
    }

    /// Polls the instance's status until it runs, when [`polling`] says.
    async fn wait_running(
        &self,
        run: &Run,
        node: &str,
        instance_id: &str,
        driver: &dyn Driver,
        target: &CloudTarget,
        cloud_id: &str,
    ) -> Result<InstanceAddresses, Halted> {
        let started = Instant::now();
        let timeout = Duration::from_secs(self.inner.config.boot_timeout_secs);
        let estimates = &self.inner.boot_estimates;
        let resource = serde_json::Value::Object(target.resource.clone()).to_string();
        let mut announced = false;
        let mut stop = run.stop.clone();
        let poll = Poll::new(driver, target);
        let cadence = poll.cadence();
        loop {
            let status = self
                .with_retries(|| self.instance_status(&poll, cloud_id))
                .await
                .map_err(|e| Halted::Failed(InstanceFailure::Status(e)))?;
            match status.state {
                CloudState::Running => {
                    if announced {
                        estimates.observe(&resource, started.elapsed());
                    }
                    return Ok(status.addresses());
                }
                CloudState::Failed | CloudState::Shutdown => {
                    return Err(Halted::Failed(InstanceFailure::CloudReports {
                        state: status.state,
                        detail: status.detail,
                    }));
                }
                CloudState::Pending | CloudState::Unknown => {
                    if !announced {
                        self.emit(&run.infra_id, node, instance_id, Phase::Pending, None);
                        announced = true;
                    }
                }
            }
            let waited = started.elapsed();
            if waited > timeout {
                return Err(Halted::Failed(InstanceFailure::BootTimeout {
                    secs: timeout.as_secs(),
                }));
            }
            let interval = polling::next_poll(waited, estimates.get(&resource), cadence);
            let next = match cadence {
                Cadence::Batched => self.inner.poll_grid.after(Instant::now(), interval),
                Cadence::OneByOne => Instant::now() + interval,
            };
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = stop.stopped() => return Err(Halted::Stopped("booting")),
            }
        }
    }
}
