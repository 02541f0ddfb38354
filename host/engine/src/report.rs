//! What a build (or a maintenance pass) tells about each instance it
//! followed.

use crate::events::Phase;
use occopus_types::InstanceAddresses;
use std::collections::HashSet;

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

    /// Records that `rolled_back` were destroyed, but for `not_destroyed`
    /// (instance id, why): the report must not show them as still up. A failed
    /// one keeps its phase, so that why it failed stays in view, and one never
    /// created (waiting, stopped) had nothing to destroy.
    pub(crate) fn note_rollback(
        &mut self,
        rolled_back: &HashSet<String>,
        not_destroyed: &[(String, String)],
    ) {
        for instance in &mut self.instances {
            if !rolled_back.contains(&instance.instance_id) {
                continue;
            }
            match not_destroyed
                .iter()
                .find(|(id, _)| *id == instance.instance_id)
            {
                Some((_, why)) => {
                    instance.detail = Some(format!("rollback could not destroy it: {why}"))
                }
                None if matches!(
                    instance.phase,
                    Phase::Creating | Phase::Pending | Phase::Checking | Phase::Ready
                ) =>
                {
                    instance.phase = Phase::Destroyed;
                    instance.detail = Some("destroyed by --rollback".to_string());
                }
                None => {}
            }
        }
    }
}
