//! Keeping an infrastructure alive, one reconcile pass at a time:
//!
//! 1. observe every instance that is up: the driver's status, then (when it
//!    runs) its health checks, recorded with the time in one write per pass
//!    (an instance whose health did not change gets only its check time); an
//!    instance the cloud reports failed or gone, or whose checks have failed
//!    for longer than its node's `health_check.timeout`, is marked failed;
//! 2. apply the queued scaling requests (each checked against the node's
//!    limits again: a refused one is logged and dropped);
//! 3. converge (see [`crate::plan`]): failed instances are destroyed and
//!    replaced with new instance ids, counts brought to each node's target;
//!    instances that are fine, and their dependents, are not touched;
//! 4. a node whose new instances keep failing is held back: its next attempt
//!    waits one pass interval, doubling with each failure in a row up to an
//!    hour, and the pass reports it instead of rebuilding it in a hot loop.
//!
//! Every step is idempotent: a pass interrupted anywhere is finished by the
//! next one.

use crate::converge::Converge;
use crate::error::{EngineError, InstanceFailure};
use crate::events::Phase;
use crate::orchestrator::Orchestrator;
use crate::plan::Plan;
use crate::report::InstanceOutcome;
use crate::run::Book;
use crate::status_batches::Poll;
use crate::stop::StopSignal;
use occopus_model::render::node_context;
use occopus_model::{AddressBook, AuthData, Model};
use occopus_store::{HealthObserved, InstanceRecord, InstanceState, NodeTarget};
use occopus_types::{CloudState, ConfigState, now_ms};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The longest a failing node is held back.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What one maintenance pass did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    /// The infra.
    pub infra_id: String,
    /// Instances observed (status and health).
    pub observed: usize,
    /// Instances found failed, with why.
    pub found_failed: Vec<(String, String)>,
    /// Scaling requests applied or refused, in words.
    pub scaling: Vec<String>,
    /// What the pass changed.
    pub plan: Plan,
    /// The instances it created (and those of unfinished creations it followed).
    pub instances: Vec<InstanceOutcome>,
    /// Nodes held back after repeated failures, with when they are tried again.
    pub held: Vec<(String, i64)>,
    /// Wall time of the pass.
    pub elapsed_ms: u64,
}

/// What observing one instance found: why it counts as failed, if it does,
/// and what its health checks said, if they ran.
#[derive(Default)]
struct Observation {
    failure: Option<InstanceFailure>,
    health: Option<HealthObserved>,
}

impl Observation {
    fn failed(failure: InstanceFailure) -> Self {
        Observation {
            failure: Some(failure),
            health: None,
        }
    }
}

impl Orchestrator {
    /// One maintenance pass over `infra_id`, under the lease the caller
    /// holds; `interval` is the time between passes, the unit of a failing
    /// node's backoff.
    pub(crate) async fn pass(
        &self,
        infra_id: &str,
        auth: &AuthData,
        interval: Duration,
        stop: StopSignal,
    ) -> Result<PassReport, EngineError> {
        let started = Instant::now();
        let store = &self.inner.store;
        let infra = self.recorded_infra(infra_id)?;
        let description = infra
            .snapshot
            .description
            .as_ref()
            .ok_or_else(|| EngineError::NoDescription(infra_id.to_string()))?;
        let model = Arc::new(
            Model::from_stored(description, infra_id, auth.clone())
                .map_err(EngineError::Invalid)?,
        );

        let records = store.instances(infra_id)?;
        let (observed, found_failed) = self.observe(&model, infra_id, &records).await?;
        let (removals, scaling) = self.apply_scale_requests(&model, infra_id, &records)?;
        let now = now_ms();
        let held: HashSet<String> = store
            .node_targets(infra_id)?
            .into_iter()
            .filter(|t| t.retry_after_ms > now)
            .map(|t| t.node_name)
            .collect();
        let converged = self
            .converge(
                &model,
                infra_id,
                Converge {
                    previous: Some(&infra.snapshot),
                    follow_all: false,
                    removals: &removals,
                    held: &held,
                    stop,
                },
            )
            .await?;
        let held = self.update_backoff(&model, infra_id, &converged.instances, interval)?;
        Ok(PassReport {
            infra_id: infra_id.to_string(),
            observed,
            found_failed,
            scaling,
            plan: converged.plan,
            instances: converged.instances,
            held,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Observes every instance that is up, concurrently (at most
    /// `engine.max_concurrent_checks` at once); marks the failed ones.
    /// Returns how many were observed and the failed ones with why.
    async fn observe(
        &self,
        model: &Model,
        infra_id: &str,
        records: &[InstanceRecord],
    ) -> Result<(usize, Vec<(String, String)>), EngineError> {
        let limit = Semaphore::new(self.inner.config.max_concurrent_checks.max(1));
        let up: Vec<&InstanceRecord> = records
            .iter()
            .filter(|r| r.cloud_id.is_some())
            .filter(|r| matches!(r.state, InstanceState::Running | InstanceState::Ready))
            .filter(|r| model.infra.node(&r.node_name).is_some())
            .collect();
        let book: Arc<dyn AddressBook> = Arc::new(Book::of_ready(model, records));
        let checks = up.iter().map(|record| {
            let (limit, book) = (&limit, book.clone());
            async move {
                let _permit = limit.acquire().await;
                (
                    record,
                    self.observe_one(model, infra_id, record, book).await,
                )
            }
        });
        let mut observations = Vec::with_capacity(up.len());
        let mut health = Vec::with_capacity(up.len());
        for (record, observation) in futures::future::join_all(checks).await {
            let observation = observation?;
            health.extend(observation.health);
            observations.push((record, observation.failure));
        }
        self.inner
            .store
            .record_health_checks(infra_id, health)
            .await?;
        let mut failed = Vec::new();
        for (record, failure) in observations {
            if let Some(failure) = failure {
                let why = failure.to_string();
                self.inner
                    .store
                    .record_state(
                        infra_id,
                        &record.id,
                        InstanceState::Failed,
                        None,
                        Some(&why),
                    )
                    .await?;
                self.emit(
                    infra_id,
                    &record.node_name,
                    &record.id,
                    Phase::Failed,
                    Some(why.clone()),
                );
                failed.push((record.id.clone(), why));
            }
        }
        Ok((up.len(), failed))
    }

    /// One instance's status and health; why it counts as failed, if it does.
    async fn observe_one(
        &self,
        model: &Model,
        infra_id: &str,
        record: &InstanceRecord,
        book: Arc<dyn AddressBook>,
    ) -> Result<Observation, EngineError> {
        let store = &self.inner.store;
        let (Some(node), Some(implementation), Some(cloud_id)) = (
            model.infra.node(&record.node_name),
            model.implementation(&record.node_name),
            record.cloud_id.as_deref(),
        ) else {
            return Ok(Observation::default());
        };
        let unobservable = |why: &dyn std::fmt::Display| {
            tracing::warn!(instance = %record.id, "cannot observe: {why}");
            Ok(Observation::default())
        };
        let driver = match self.plugins().driver(record.resource_type()) {
            Ok(driver) => driver,
            Err(e) => return unobservable(&e),
        };
        let target = match self.target(&record.resource, &model.auth).await {
            Ok(target) => target,
            Err(e) => return unobservable(&e),
        };
        let poll = Poll::new(driver, &target);
        let status = match self
            .with_retries(|| self.instance_status(&poll, cloud_id))
            .await
        {
            Ok(status) => status,
            Err(e) if e.is_not_found() => {
                return Ok(Observation::failed(InstanceFailure::Gone {
                    cloud_id: cloud_id.to_string(),
                }));
            }
            Err(e) => return unobservable(&e),
        };
        match status.state {
            CloudState::Running => {}
            CloudState::Failed | CloudState::Shutdown => {
                return Ok(Observation::failed(InstanceFailure::CloudReports {
                    state: status.state,
                    detail: status.detail,
                }));
            }
            CloudState::Pending | CloudState::Unknown => return Ok(Observation::default()),
        }
        let context = node_context(model, node, implementation, infra_id, &record.id);
        // As in Occopus, what its config manager says is part of its state:
        // failed fails it; not configured (any more) leaves it be.
        match self
            .configuration_state(model, implementation, &context, &book)
            .await
        {
            Ok(None | Some(ConfigState::Ready)) => {}
            Ok(Some(ConfigState::Failed)) => {
                return Ok(Observation::failed(InstanceFailure::ConfigFailed));
            }
            Ok(Some(ConfigState::Pending | ConfigState::Unknown)) => {
                return Ok(Observation::default());
            }
            Err(e) => return unobservable(&e),
        }
        let addresses = status.addresses();
        let probes = match self.probes(implementation, &context, &book, &addresses) {
            Ok(probes) => probes,
            Err(why) => return Ok(Observation::failed(why.into())),
        };
        let checked = self.inner.prober.check(&probes).await;
        let detail = checked.as_ref().err().map(ToString::to_string);
        // Recorded with the others' at the end of the pass, in one write.
        let health = Some(HealthObserved::of(
            &record.id,
            checked.is_ok(),
            detail,
            &record.health,
        ));
        let failure = match checked {
            Ok(()) if record.state != InstanceState::Ready => {
                store
                    .record_state(
                        infra_id,
                        &record.id,
                        InstanceState::Ready,
                        Some(&addresses),
                        None,
                    )
                    .await?;
                None
            }
            Ok(()) => None,
            Err(last) => {
                let since = record.health.failing_since_ms.unwrap_or_else(now_ms);
                let failing = Duration::from_millis((now_ms() - since).max(0) as u64);
                let timeout = implementation.health_check.timeout;
                (failing >= timeout).then(|| InstanceFailure::Unhealthy {
                    failing_secs: failing.as_secs(),
                    timeout_secs: Some(timeout.as_secs()),
                    last,
                })
            }
        };
        Ok(Observation { failure, health })
    }

    /// Counts failures in a row per node from what a pass created, and holds
    /// a failing node back; returns the held nodes with their next attempt.
    fn update_backoff(
        &self,
        model: &Model,
        infra_id: &str,
        outcomes: &[InstanceOutcome],
        interval: Duration,
    ) -> Result<Vec<(String, i64)>, EngineError> {
        let store = &self.inner.store;
        let mut held = Vec::new();
        let mut targets = std::collections::HashMap::new();
        for target in store.node_targets(infra_id)? {
            if model.infra.node(&target.node_name).is_none() {
                store.delete_node_target(infra_id, &target.node_name)?;
                continue;
            }
            if target.retry_after_ms > now_ms() {
                held.push((target.node_name.clone(), target.retry_after_ms));
            }
            targets.insert(target.node_name.clone(), target);
        }
        for node in &model.infra.nodes {
            let mine: Vec<&InstanceOutcome> =
                outcomes.iter().filter(|o| o.node == node.name).collect();
            if mine.is_empty() {
                continue;
            }
            let mut target = targets.remove(&node.name).unwrap_or_else(|| NodeTarget {
                node_name: node.name.clone(),
                ..NodeTarget::default()
            });
            if mine.iter().any(|o| o.phase == Phase::Failed) {
                target.failures += 1;
                let backoff = interval
                    .saturating_mul(1 << (target.failures - 1).min(20))
                    .min(MAX_BACKOFF);
                target.retry_after_ms = now_ms() + backoff.as_millis() as i64;
                store.log_event(
                    infra_id,
                    None,
                    &format!(
                        "node `{}` failed {} time(s) in a row; next attempt in {}s",
                        node.name,
                        target.failures,
                        backoff.as_secs()
                    ),
                )?;
                held.push((node.name.clone(), target.retry_after_ms));
            } else if mine.iter().all(|o| o.phase == Phase::Ready) {
                target.failures = 0;
                target.retry_after_ms = 0;
            }
            store.set_node_target(infra_id, &target)?;
        }
        held.sort();
        held.dedup_by(|a, b| a.0 == b.0);
        Ok(held)
    }
}
