//! Keeping an infrastructure alive, one reconcile pass at a time:
//!
//! 1. observe every instance that is up: the driver's status, then (when it
//!    runs) its health checks, recorded with the time; an instance the cloud
//!    reports failed or gone, or whose checks have failed for longer than its
//!    node's `health_check.timeout`, is marked failed;
//! 2. apply the queued scaling requests (each checked against the node's
//!    limits again: a refused one is logged and dropped);
//! 3. converge (see [`super::plan`]): failed instances are destroyed and
//!    replaced with new instance ids, counts brought to each node's target;
//!    instances that are fine, and their dependents, are not touched;
//! 4. a node whose new instances keep failing is held back: its next attempt
//!    waits one pass interval, doubling with each failure in a row up to an
//!    hour, and the pass reports it instead of rebuilding it in a hot loop.
//!
//! Every step is idempotent: a pass interrupted anywhere is finished by the
//! next one.

use super::build::{Converge, InstanceOutcome};
use super::plan::Plan;
use super::{EngineError, Orchestrator, Phase, StopSignal};
use crate::model::{AuthData, Model};
use crate::plugin::InstanceState as CloudState;
use crate::store::{InstanceRecord, InstanceState, NodeTarget, now_ms};
use crate::template::{AddressBook, InstanceAddresses};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Instances asked to go, with why.
type Removals = Vec<(String, String)>;

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

impl Orchestrator {
    /// One maintenance pass over `infra_id`; `interval` is the time between
    /// passes, the unit of a failing node's backoff.
    pub async fn maintain_pass(
        &self,
        infra_id: &str,
        auth: &AuthData,
        interval: Duration,
        stop: StopSignal,
    ) -> Result<PassReport, EngineError> {
        let started = Instant::now();
        let store = &self.inner.store;
        let infra = store
            .infra(infra_id)?
            .ok_or_else(|| EngineError::UnknownInfra(infra_id.to_string()))?;
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
        let book: Arc<dyn AddressBook> = Arc::new(RecordedAddresses(records.to_vec()));
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
        let mut failed = Vec::new();
        for (record, failure) in futures::future::join_all(checks).await {
            if let Some(why) = failure? {
                self.inner
                    .store
                    .record_state(&record.id, InstanceState::Failed, None, Some(&why))
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
    ) -> Result<Option<String>, EngineError> {
        let store = &self.inner.store;
        let (Some(node), Some(implementation), Some(cloud_id)) = (
            model.infra.node(&record.node_name),
            model.implementation(&record.node_name),
            record.cloud_id.as_deref(),
        ) else {
            return Ok(None);
        };
        let unobservable = |why: String| {
            tracing::warn!(instance = %record.id, "cannot observe: {why}");
            Ok(None)
        };
        let driver = match self.catalog().driver(record.resource_type()) {
            Ok(driver) => driver,
            Err(e) => return unobservable(e.to_string()),
        };
        let target = match self
            .inner
            .targets
            .target(&record.resource, &model.auth)
            .await
        {
            Ok(target) => target,
            Err(e) => return unobservable(e),
        };
        let status = match self.with_retries(|| driver.status(&target, cloud_id)).await {
            Ok(status) => status,
            Err(e) if e.is_not_found() => {
                return Ok(Some(format!("the cloud no longer knows {cloud_id}")));
            }
            Err(e) => return unobservable(e.to_string()),
        };
        match status.state {
            CloudState::Running => {}
            CloudState::Failed | CloudState::Shutdown => {
                let state = if matches!(status.state, CloudState::Failed) {
                    "failed"
                } else {
                    "shut down"
                };
                let detail = status.detail.map(|d| format!(": {d}")).unwrap_or_default();
                return Ok(Some(format!("the cloud reports it {state}{detail}")));
            }
            CloudState::Pending | CloudState::Unknown => return Ok(None),
        }
        let addresses = InstanceAddresses {
            public: status.public_addresses,
            private: status.private_addresses,
        };
        let context =
            crate::model::check::node_context(model, node, implementation, infra_id, &record.id);
        let probes = match self.probes(implementation, &context, &book, &addresses) {
            Ok(probes) => probes,
            Err(why) => return Ok(Some(why)),
        };
        let checked = self.inner.health.check(&probes).await;
        store
            .record_health(
                &record.id,
                checked.is_ok(),
                checked.as_ref().err().map(String::as_str),
            )
            .await?;
        match checked {
            Ok(()) if record.state != InstanceState::Ready => {
                store
                    .record_state(&record.id, InstanceState::Ready, Some(&addresses), None)
                    .await?;
                Ok(None)
            }
            Ok(()) => Ok(None),
            Err(why) => {
                let since = record.health.failing_since_ms.unwrap_or_else(now_ms);
                let failing = Duration::from_millis((now_ms() - since).max(0) as u64);
                let timeout = implementation.health_check.timeout;
                Ok((failing >= timeout).then(|| {
                    format!(
                        "health checks failing for {}s (health_check.timeout {}s): {why}",
                        failing.as_secs(),
                        timeout.as_secs()
                    )
                }))
            }
        }
    }

    /// Applies the queued scaling requests to the nodes' targets; returns the
    /// instances chosen to go and what was done, in words.
    fn apply_scale_requests(
        &self,
        model: &Model,
        infra_id: &str,
        records: &[InstanceRecord],
    ) -> Result<(Removals, Vec<String>), EngineError> {
        let store = &self.inner.store;
        let mut targets = store.node_targets(infra_id)?;
        let mut removals = Removals::new();
        let mut said = Vec::new();
        for request in store.scale_requests(infra_id)? {
            let outcome = (|| {
                let node = model.infra.node(&request.node_name).ok_or_else(|| {
                    format!("node `{}` is not in the description", request.node_name)
                })?;
                let index = match targets.iter().position(|t| t.node_name == node.name) {
                    Some(index) => index,
                    None => {
                        targets.push(NodeTarget {
                            node_name: node.name.clone(),
                            ..NodeTarget::default()
                        });
                        targets.len() - 1
                    }
                };
                let current = node.scaling.target(targets[index].target);
                let wanted = check_limits(&node.name, node.scaling, current, request.change)?;
                if let Some(chosen) = &request.instance {
                    let record = records
                        .iter()
                        .find(|r| r.node_name == node.name && r.is_live_and_named(chosen))
                        .ok_or_else(|| {
                            format!("node `{}` has no live instance `{chosen}`", node.name)
                        })?;
                    if removals.iter().any(|(id, _)| *id == record.id) {
                        return Err(format!("instance `{chosen}` is already going"));
                    }
                    removals.push((record.id.clone(), "scaled down: chosen to go".into()));
                }
                targets[index].target = Some(wanted);
                Ok::<_, String>((index, current, wanted))
            })();
            let message = match outcome {
                Ok((index, current, wanted)) => {
                    store.set_node_target(infra_id, &targets[index])?;
                    format!(
                        "scaling request {} applied: node `{}`: target {current} -> {wanted}",
                        request.seq, request.node_name
                    )
                }
                Err(why) => format!("scaling request {} refused: {why}", request.seq),
            };
            store.log_event(infra_id, None, &message)?;
            store.delete_scale_request(request.seq)?;
            said.push(message);
        }
        Ok((removals, said))
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

/// What a scaling request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleBy {
    /// `+N` or `-N` instances.
    Change(i64),
    /// Exactly N instances.
    To(u32),
}

/// A queued scaling request, as accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleQueued {
    /// Its number.
    pub seq: i64,
    /// The node.
    pub node: String,
    /// The change it makes.
    pub change: i64,
    /// The node's target once it and the requests before it are applied.
    pub target: u32,
}

impl Orchestrator {
    /// Queues a scaling request for the next maintenance pass, after checking
    /// that, with the requests already queued, it keeps the node within its
    /// limits. `instance` (an instance id or address) names the instance to
    /// remove; it goes with a change of -1.
    pub fn request_scale(
        &self,
        infra_id: &str,
        node_name: &str,
        by: ScaleBy,
        instance: Option<&str>,
    ) -> Result<ScaleQueued, EngineError> {
        let store = &self.inner.store;
        let infra = store
            .infra(infra_id)?
            .ok_or_else(|| EngineError::UnknownInfra(infra_id.to_string()))?;
        let node = infra
            .snapshot
            .nodes
            .iter()
            .find(|n| n.name == node_name)
            .ok_or_else(|| {
                let known: Vec<&str> = infra
                    .snapshot
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect();
                EngineError::Scale(format!(
                    "infrastructure {infra_id} has no node `{node_name}`; its nodes: {}",
                    known.join(", ")
                ))
            })?;
        let scaled = store
            .node_targets(infra_id)?
            .into_iter()
            .find(|t| t.node_name == node_name)
            .and_then(|t| t.target);
        let stored = node.scaling.target(scaled);
        let queued: i64 = store
            .scale_requests(infra_id)?
            .iter()
            .filter(|r| r.node_name == node_name)
            .map(|r| r.change)
            .sum();
        let current = (i64::from(stored) + queued).max(0) as u32;
        let change = match (by, instance) {
            (ScaleBy::Change(-1), Some(_)) => -1,
            (_, Some(chosen)) => {
                return Err(EngineError::Scale(format!(
                    "removing the chosen instance `{chosen}` is a change of -1; leave out the count"
                )));
            }
            (ScaleBy::Change(change), None) => change,
            (ScaleBy::To(count), None) => i64::from(count) - i64::from(current),
        };
        if change == 0 {
            return Err(EngineError::Scale(format!(
                "node `{node_name}` already has a target of {current}: nothing to change"
            )));
        }
        let target =
            check_limits(node_name, node.scaling, current, change).map_err(EngineError::Scale)?;
        if let Some(chosen) = instance {
            let known = store
                .instances(infra_id)?
                .into_iter()
                .any(|r| r.node_name == node_name && r.is_live_and_named(chosen));
            if !known {
                return Err(EngineError::Scale(format!(
                    "node `{node_name}` has no live instance with the id or address `{chosen}`; see `occopus info -i {infra_id}`"
                )));
            }
        }
        let seq = store.queue_scale_request(infra_id, node_name, change, instance)?;
        store.log_event(
            infra_id,
            None,
            &format!("scaling request {seq} queued: node `{node_name}` {change:+}"),
        )?;
        Ok(ScaleQueued {
            seq,
            node: node_name.to_string(),
            change,
            target,
        })
    }
}

/// The target `change` leads to from `current`, or why it is refused.
fn check_limits(
    node: &str,
    scaling: crate::model::Scaling,
    current: u32,
    change: i64,
) -> Result<u32, String> {
    let wanted = i64::from(current) + change;
    let (min, max) = (scaling.min, scaling.max);
    if wanted < i64::from(min) || wanted > i64::from(max) {
        return Err(format!(
            "node `{node}` may have between {min} and {max} instances (its scaling in the description); \
             its target is {current}, so {change:+} would make {wanted}"
        ));
    }
    Ok(wanted as u32)
}

/// The addresses of the recorded ready instances, for rendering health-check
/// URLs that name other nodes.
struct RecordedAddresses(Vec<InstanceRecord>);

impl AddressBook for RecordedAddresses {
    fn addresses(&self, node: &str) -> Option<Vec<InstanceAddresses>> {
        Some(
            self.0
                .iter()
                .filter(|r| r.node_name == node && r.state == InstanceState::Ready)
                .map(|r| r.addresses.clone())
                .collect(),
        )
    }
}
