//! Building an infrastructure: one task per node instance, each starting the
//! moment every node it depends on has all its instances ready (see
//! `converge.rs` and, for one instance's steps, `lifecycle.rs`).
//!
//! Every step is recorded, so running the build again
//! resumes: instances with a cloud id are followed, not re-created; an
//! instance whose create may not have finished gets the create again with the
//! same idempotency key (the cloud returns, or completes, the one it made); and
//! the driver's `list` by infra tag finds any instance the store does not know
//! at all, which is destroyed.
//!
//! When an instance fails, no new creation starts; calls under way finish and
//! are recorded, and the report says what is up, what failed and why.

use crate::check;
use crate::converge::Converge;
use crate::error::EngineError;
use crate::lease::LeasePolicy;
use crate::orchestrator::Orchestrator;
use crate::plan::{self, Plan, PlanInput};
use crate::report::BuildReport;
use crate::stop::StopSignal;
use occopus_model::Model;
use occopus_store::{InfraSnapshot, NodeSnapshot};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::time::Instant;

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
    /// How the build takes the infra's lease.
    pub lease: LeasePolicy,
}

impl Orchestrator {
    /// Builds (or resumes, or completes, or reconfigures) the infrastructure
    /// of `model`, holding its lease.
    pub async fn build(
        &self,
        model: Model,
        options: BuildOptions,
    ) -> Result<BuildReport, EngineError> {
        let started = Instant::now();
        check::check_buildable(&model, self.plugins(), &self.inner.renderer).await?;
        let infra_id = options
            .infra_id
            .clone()
            .or_else(|| model.infra.id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut report = self
            .under_lease(&infra_id, &options.lease, &options.stop, |stop| {
                self.build_leased(model, &infra_id, options.rollback, stop)
            })
            .await?;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    async fn build_leased(
        &self,
        model: Model,
        infra_id: &str,
        rollback: bool,
        stop: StopSignal,
    ) -> Result<BuildReport, EngineError> {
        let store = &self.inner.store;
        let previous = store.infra(infra_id)?.map(|i| i.snapshot);
        let before: HashSet<String> = store
            .instances(infra_id)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        store.upsert_infra(infra_id, &model.infra.name, "building", &snapshot(&model))?;
        store.log_event(infra_id, None, "build started")?;
        let model = Arc::new(model);
        let converged = self
            .converge(
                &model,
                infra_id,
                Converge {
                    previous: previous.as_ref(),
                    follow_all: true,
                    removals: &[],
                    held: &HashSet::new(),
                    stop: stop.clone(),
                },
            )
            .await?;
        let mut report = BuildReport {
            infra_id: infra_id.to_string(),
            instances: converged.instances,
            stopped: stop.is_stopped(),
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
        store.set_infra_status(infra_id, status)?;
        store.log_event(infra_id, None, &format!("build ended: {status}"))?;
        if !report.succeeded() && rollback {
            let mine: HashSet<String> = report
                .instances
                .iter()
                .map(|i| i.instance_id.clone())
                .filter(|id| !before.contains(id))
                .collect();
            let destroyed = self
                .destroy_instances(
                    infra_id,
                    &model.auth,
                    &[&model],
                    |r| mine.contains(&r.id),
                    StopSignal::never(),
                )
                .await?;
            report.rolled_back = true;
            report.note_rollback(&mine, &destroyed.failed);
        }
        Ok(report)
    }

    /// The plan that `build` of `model` on `infra_id` would carry out, from
    /// the store alone (no cloud is asked).
    pub async fn plan(&self, model: &Model, infra_id: &str) -> Result<Plan, EngineError> {
        let store = &self.inner.store;
        let previous = store.infra(infra_id)?.map(|i| i.snapshot);
        let records = store.instances(infra_id)?;
        let resolved = self.resolved_for_plan(model, infra_id, &records).await;
        Ok(plan::plan(&PlanInput {
            model,
            records: &records,
            previous: previous.as_ref(),
            targets: &store.node_targets(infra_id)?,
            removals: &[],
            infra_id,
            renderer: &self.inner.renderer,
            resolved: &resolved,
        }))
    }
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
