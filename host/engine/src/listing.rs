//! Asking the clouds which instances carry an infra's tag: how the engine
//! finds what it created before a crash, including what the store never
//! learned of.

use crate::orchestrator::Orchestrator;
use occopus_model::AuthData;
use occopus_types::{ListedInstance, ResourceSection, resource_type};
use std::collections::HashSet;

impl Orchestrator {
    /// Every instance the clouds of `resources` list under `infra_id`, with the
    /// resource it was listed through. A cloud that cannot list is logged.
    pub(crate) async fn list_tagged(
        &self,
        infra_id: &str,
        resources: &[ResourceSection],
        auth: &AuthData,
    ) -> Vec<(ResourceSection, ListedInstance)> {
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
            let Ok(driver) = self.plugins().driver(resource_type(resource)) else {
                continue;
            };
            let target = match self.target(resource, auth).await {
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
