//! Destroying an infrastructure: every recorded instance and every instance
//! the clouds list under the infra's tag, dependents before their
//! dependencies, each record removed only once its cloud confirmed and its
//! config manager (if any) forgot the node; the infrastructure forgotten by
//! its config managers once its last instance went.

use crate::error::{DestroyFailure, EngineError};
use crate::events::Phase;
use crate::lease::LeasePolicy;
use crate::orchestrator::Orchestrator;
use crate::stop::StopSignal;
use occopus_model::{AuthData, Model};
use occopus_store::{InstanceRecord, InstanceState};
use occopus_types::{CloudState, resource_type};
use std::collections::{HashMap, HashSet};
use tokio::sync::watch;

/// What a destroy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DestroyReport {
    /// The infra.
    pub infra_id: String,
    /// Instances destroyed.
    pub destroyed: usize,
    /// Instances that could not be destroyed, with why (their records stay).
    pub failed: Vec<(String, String)>,
}

/// How a destroy runs.
#[derive(Debug, Clone)]
pub struct DestroyOptions {
    /// Stops the destroy gracefully when fired: no new destroy call starts.
    pub stop: StopSignal,
    /// How the destroy takes the infra's lease.
    pub lease: LeasePolicy,
}

impl Orchestrator {
    /// Destroys the infrastructure `infra_id` and forgets it, holding its lease.
    pub async fn destroy(
        &self,
        infra_id: &str,
        auth: &AuthData,
        options: DestroyOptions,
    ) -> Result<DestroyReport, EngineError> {
        self.recorded_infra(infra_id)?;
        self.under_lease(infra_id, &options.lease, &options.stop, |stop| {
            self.destroy_leased(infra_id, auth, stop)
        })
        .await
    }

    async fn destroy_leased(
        &self,
        infra_id: &str,
        auth: &AuthData,
        stop: StopSignal,
    ) -> Result<DestroyReport, EngineError> {
        let store = &self.inner.store;
        // Gone meanwhile (destroyed by the holder this one waited for).
        self.recorded_infra(infra_id)?;
        store.set_infra_status(infra_id, "destroying")?;
        store.log_event(infra_id, None, "destroy started")?;
        let model = self.stored_model(infra_id, auth)?;
        let mut report = self
            .destroy_instances(infra_id, auth, &Vec::from_iter(&model), |_| true, stop)
            .await?;
        let emptied = report.failed.is_empty() && store.instances(infra_id)?.is_empty();
        if emptied
            && let Some(model) = &model
            && let Err(failure) = self.forget_infra(model, infra_id).await
        {
            report
                .failed
                .push((infra_id.to_string(), failure.to_string()));
        }
        if emptied && report.failed.is_empty() {
            store.delete_infra(infra_id)?;
        } else {
            store.set_infra_status(infra_id, "destroy-failed")?;
        }
        Ok(report)
    }

    /// Destroys the recorded instances that `select` picks, plus any instance
    /// tagged with the infra that the store does not know (when every
    /// instance is selected), dependents first; each is then dropped from
    /// its node's config manager as the first of `models` (descriptions of
    /// the infra, newest first) that has its node describes it: a node
    /// removed from the description is found in the previous one.
    pub(crate) async fn destroy_instances(
        &self,
        infra_id: &str,
        auth: &AuthData,
        models: &[&Model],
        select: impl Fn(&InstanceRecord) -> bool,
        stop: StopSignal,
    ) -> Result<DestroyReport, EngineError> {
        let store = &self.inner.store;
        let all = store.instances(infra_id)?;
        let everything = all.iter().all(&select);
        let mut victims: Vec<InstanceRecord> = all.iter().filter(|r| select(r)).cloned().collect();
        // The clouds may know instances the store lost or never got the id of.
        let resources: Vec<_> = all.iter().map(|r| r.resource.clone()).collect();
        for (resource, listed) in self.list_tagged(infra_id, &resources, auth).await {
            if listed.state == CloudState::Shutdown {
                continue;
            }
            match victims.iter_mut().find(|r| r.id == listed.instance_id) {
                Some(record) if record.cloud_id.is_none() => {
                    record.cloud_id = Some(listed.cloud_id)
                }
                Some(_) => {}
                None if everything || !all.iter().any(|r| r.id == listed.instance_id) => {
                    victims.push(InstanceRecord {
                        id: listed.instance_id.clone(),
                        infra_id: infra_id.to_string(),
                        node_name: listed.tags.node_name.clone(),
                        seq: 0,
                        resource,
                        cloud_id: Some(listed.cloud_id),
                        state: InstanceState::Failed,
                        addresses: Default::default(),
                        error: Some("not in the store".into()),
                        ..InstanceRecord::default()
                    });
                }
                None => {}
            }
        }

        // Dependents first: a node's instances go once no remaining node depends on it.
        let dependencies: HashMap<String, Vec<String>> = store
            .infra(infra_id)?
            .map(|infra| {
                infra
                    .snapshot
                    .nodes
                    .into_iter()
                    .map(|n| (n.name, n.dependencies))
                    .collect()
            })
            .unwrap_or_default();
        let mut remaining: HashMap<String, usize> = HashMap::new();
        for victim in &victims {
            *remaining.entry(victim.node_name.clone()).or_default() += 1;
        }
        let (done_tx, _) = watch::channel(HashSet::<String>::new());
        let nodes: Vec<String> = remaining.keys().cloned().collect();
        let dependents_of = |node: &str| -> Vec<String> {
            nodes
                .iter()
                .filter(|n| {
                    dependencies
                        .get(*n)
                        .is_some_and(|deps| deps.iter().any(|d| d == node))
                })
                .cloned()
                .collect()
        };
        let remaining = std::sync::Mutex::new(remaining);
        let tasks = victims.into_iter().map(|victim| {
            let waits_for = dependents_of(&victim.node_name);
            let mut done = done_tx.subscribe();
            let done_tx = &done_tx;
            let remaining = &remaining;
            let stop = stop.clone();
            async move {
                let _ = done
                    .wait_for(|finished| waits_for.iter().all(|n| finished.contains(n)))
                    .await;
                let result = if stop.is_stopped() {
                    Err(DestroyFailure::Stopped)
                } else {
                    self.destroy_one(infra_id, auth, models, &victim).await
                };
                let mut counts = remaining
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(count) = counts.get_mut(&victim.node_name) {
                    *count -= 1;
                    if *count == 0 {
                        done_tx.send_modify(|finished| {
                            finished.insert(victim.node_name.clone());
                        });
                    }
                }
                (victim.id, result)
            }
        });
        let mut report = DestroyReport {
            infra_id: infra_id.to_string(),
            ..DestroyReport::default()
        };
        for (id, result) in futures::future::join_all(tasks).await {
            match result {
                Ok(()) => report.destroyed += 1,
                Err(failure) => report.failed.push((id, failure.to_string())),
            }
        }
        Ok(report)
    }

    /// The description an infra was built from, if it was stored.
    fn stored_model(&self, infra_id: &str, auth: &AuthData) -> Result<Option<Model>, EngineError> {
        let Some(infra) = self.inner.store.infra(infra_id)? else {
            return Ok(None);
        };
        let Some(description) = &infra.snapshot.description else {
            return Ok(None);
        };
        Model::from_stored(description, infra_id, auth.clone())
            .map(Some)
            .map_err(EngineError::Invalid)
    }

    async fn destroy_one(
        &self,
        infra_id: &str,
        auth: &AuthData,
        models: &[&Model],
        victim: &InstanceRecord,
    ) -> Result<(), DestroyFailure> {
        let store = &self.inner.store;
        let node = &victim.node_name;
        self.emit(
            infra_id,
            node,
            &victim.id,
            Phase::Destroying,
            victim.cloud_id.clone(),
        );
        if let Some(cloud_id) = &victim.cloud_id {
            // Refused when the lease was lost: then no destroy call goes out.
            store
                .record_state(infra_id, &victim.id, InstanceState::Destroying, None, None)
                .await
                .map_err(DestroyFailure::Record)?;
            let driver = self.plugins().driver(resource_type(&victim.resource))?;
            let target = self.target(&victim.resource, auth).await?;
            let limit = self.endpoint_limit(&driver.info().name, target.endpoint());
            // The semaphore is never closed, so the permit always comes.
            let _permit = limit.acquire().await;
            if let Err(source) = self
                .with_retries(|| driver.destroy(&target, cloud_id))
                .await
            {
                let failure = DestroyFailure::Call {
                    cloud_id: cloud_id.clone(),
                    source,
                };
                let reason = failure.to_string();
                let _ = store
                    .record_state(
                        infra_id,
                        &victim.id,
                        InstanceState::Destroying,
                        None,
                        Some(&reason),
                    )
                    .await;
                self.emit(infra_id, node, &victim.id, Phase::Failed, Some(reason));
                return Err(failure);
            }
        }
        if let Some(model) = models.iter().find(|m| m.infra.node(node).is_some()) {
            self.forget_node(model, infra_id, node, &victim.id).await?;
        }
        store
            .delete_instance(infra_id, &victim.id)
            .await
            .map_err(DestroyFailure::Record)?;
        self.emit(
            infra_id,
            node,
            &victim.id,
            Phase::Destroyed,
            victim.cloud_id.clone(),
        );
        Ok(())
    }
}
