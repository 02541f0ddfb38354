//! Bringing the instances of an infra in line with a model: what only the
//! clouds know is destroyed, the plan's destroys run (dependents first), then
//! every missing instance is created the moment its dependencies are ready,
//! and last the instances of changed nodes are replaced, rolling
//! (`rolling.rs`).
//! Builds run it following every instance; maintenance passes only new ones.

use crate::error::EngineError;
use crate::events::Phase;
use crate::orchestrator::Orchestrator;
use crate::plan::{self, Plan, PlanInput};
use crate::report::InstanceOutcome;
use crate::run::{Book, NodeTracker, Planned, Run};
use crate::stop::StopSignal;
use occopus_model::Model;
use occopus_store::{InfraSnapshot, InstanceRecord, InstanceState};
use occopus_types::{CloudState, ResourceSection, resource_type};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;

/// How [`Orchestrator::converge`] treats the instances already recorded.
pub(crate) struct Converge<'a> {
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
pub(crate) struct Converged {
    /// The plan it carried out.
    pub plan: Plan,
    /// The outcome of every instance it followed or created.
    pub instances: Vec<InstanceOutcome>,
}

impl Orchestrator {
    /// Brings the instances of `infra_id` in line with `model`: adopts or
    /// destroys what only the clouds know, destroys what the plan says
    /// (dependents first), then creates what is missing, each instance the
    /// moment its dependencies are ready.
    pub(crate) async fn converge(
        &self,
        model: &Arc<Model>,
        infra_id: &str,
        how: Converge<'_>,
    ) -> Result<Converged, EngineError> {
        let store = &self.inner.store;
        let (halt, _) = watch::channel(false);
        let mut run = Run {
            infra_id: infra_id.to_string(),
            book: Arc::new(Book::new(model.infra.nodes.iter().map(|n| n.name.as_str()))),
            model: model.clone(),
            nodes: HashMap::new(),
            halt,
            stop: how.stop.clone(),
            config_prepared: Default::default(),
        };
        self.destroy_unknown(&run).await?;

        let records = store.instances(infra_id)?;
        let resolved = self.resolved_for_plan(model, infra_id, &records).await;
        let plan = plan::plan(&PlanInput {
            model,
            records: &records,
            previous: how.previous,
            targets: &store.node_targets(infra_id)?,
            removals: how.removals,
            infra_id,
            renderer: &self.inner.renderer,
            resolved: &resolved,
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
            // Instances of a node the description no longer has are dropped
            // from their config manager as the previous description said.
            let removed = records.iter().any(|r| {
                victims.contains(r.id.as_str()) && model.infra.node(&r.node_name).is_none()
            });
            let previous = how
                .previous
                .and_then(|p| p.description.as_ref())
                .filter(|_| removed)
                .and_then(|d| match Model::from_stored(d, infra_id, model.auth.clone()) {
                    Ok(previous) => Some(previous),
                    Err(e) => {
                        tracing::warn!(infra = %infra_id, "the previous description cannot be read; removed nodes are not dropped from their config managers: {e}");
                        None
                    }
                });
            let mut models: Vec<&Model> = vec![model];
            models.extend(&previous);
            self.destroy_instances(
                infra_id,
                &model.auth,
                &models,
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
                NodeTracker::new(model, node, infra_id, followed + missing),
            );
            let first = store.next_seq(infra_id, &node.name)?;
            for seq in (first..).take(missing) {
                tasks.push((node.name.clone(), Planned::new_instance(&node.name, seq)));
            }
        }
        let mut instances = self.follow(Arc::new(run), tasks).await;

        // Changed instances go last, a batch at a time, once all is well.
        let rolling = plan.rolling();
        let all_ready = instances.iter().all(|i| i.phase == Phase::Ready);
        if !rolling.is_empty() && all_ready && !how.stop.is_stopped() {
            let rolled = self.roll(model, infra_id, &rolling, &how.stop).await?;
            instances.retain(|i| !rolled.replaced.contains(&i.instance_id));
            instances.extend(rolled.created);
            instances.sort_by(|a, b| (&a.node, &a.instance_id).cmp(&(&b.node, &b.instance_id)));
        }
        Ok(Converged { plan, instances })
    }

    /// Runs an instance task for each of `tasks` and gathers their outcomes,
    /// sorted by node and instance.
    pub(crate) async fn follow(
        &self,
        run: Arc<Run>,
        tasks: Vec<(String, Planned)>,
    ) -> Vec<InstanceOutcome> {
        // Every instance is announced before any starts, so that a watcher
        // knows the run's size before the first instances move on (a log
        // switches to summaries by it).
        for (node, record) in &tasks {
            self.emit(&run.infra_id, node, record.id(), Phase::Waiting, None);
        }
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
        instances
    }

    /// Asks each cloud the infra uses for the instances tagged with its id
    /// and destroys any the store does not know at all (its intent was lost).
    /// One the store knows without a cloud id is left to its task: its create
    /// is called again with the same idempotency key, which completes it.
    async fn destroy_unknown(&self, run: &Run) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let records = store.instances(&run.infra_id)?;
        let mut resources: Vec<ResourceSection> =
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
            if let Ok(target) = self.target(&resource, &run.model.auth).await
                && let Ok(driver) = self.plugins().driver(resource_type(&resource))
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
}
