//! An instance's health checks: rendering them for the instance, and
//! running them until they pass or have failed for the node's
//! `health_check.timeout`.

use crate::error::InstanceFailure;
use crate::lifecycle::Halted;
use crate::orchestrator::Orchestrator;
use crate::run::Run;
use occopus_health::{Probes, mysql};
use occopus_model::{AddressBook, Implementation, NodeContext, TemplateError};
use occopus_types::InstanceAddresses;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Orchestrator {
    /// An instance's health checks, with its `urls` and `mysqldbs` rendered
    /// (they are templates that may use the instance's own `ip`).
    pub(crate) fn probes(
        &self,
        implementation: &Implementation,
        context: &NodeContext,
        book: &Arc<dyn AddressBook>,
        addresses: &InstanceAddresses,
    ) -> Result<Probes, TemplateError> {
        let address = addresses.primary().unwrap_or_default().to_string();
        let ip = [("ip", serde_json::Value::from(address.clone()))];
        // The `urls` and `mysqldbs` strings are templates (with `ip`).
        let render = |key: &str| -> Result<serde_json::Value, TemplateError> {
            match implementation
                .health_check_yaml
                .as_ref()
                .and_then(|h| h.get(key))
            {
                Some(section) => {
                    self.inner
                        .renderer
                        .render_yaml(section, context, book.clone(), &ip)
                }
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
                    .map(|db| mysql::Login {
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
    pub(crate) async fn wait_healthy(
        &self,
        run: &Run,
        probes: &Probes,
        timeout: Duration,
    ) -> Result<(), Halted> {
        let started = Instant::now();
        let mut stop = run.stop.clone();
        loop {
            let last = match self.inner.prober.check(probes).await {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            let waited = started.elapsed();
            if waited > timeout {
                return Err(Halted::Failed(InstanceFailure::Unhealthy {
                    failing_secs: waited.as_secs(),
                    timeout_secs: None,
                    last,
                }));
            }
            let interval = (waited / 10).clamp(Duration::from_millis(20), Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.stopped() => return Err(Halted::Stopped("health checking")),
            }
        }
    }
}
