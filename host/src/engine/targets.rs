//! Turning a stored resource section into a driver target: credentials from
//! `auth_data`, and for a `local` resource without an `endpoint`, the address
//! of a local cloud service that this process starts on first use.

use super::EngineError;
use crate::local_cloud::{LocalCloud, LocalCloudSettings, service};
use crate::model::AuthData;
use crate::plugin::Target;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::OnceCell;

pub(super) struct Targets {
    local: Option<LocalCloudSettings>,
    local_endpoint: OnceCell<String>,
}

impl Targets {
    pub(super) fn new(local: Option<LocalCloudSettings>) -> Self {
        Targets {
            local,
            local_endpoint: OnceCell::new(),
        }
    }

    /// The target for `resource` (as stored: without an injected endpoint).
    pub(super) async fn target(
        &self,
        resource: &Map<String, Value>,
        auth: &AuthData,
    ) -> Result<Target, String> {
        let credentials = auth.select(resource).map_err(|e| e.to_string())?;
        let mut resource = resource.clone();
        if resource.get("type").and_then(Value::as_str) == Some("local")
            && !resource.contains_key("endpoint")
        {
            let endpoint = self.local_endpoint().await.map_err(|e| e.to_string())?;
            resource.insert("endpoint".into(), Value::String(endpoint));
        }
        Ok(Target {
            resource,
            credentials,
        })
    }

    /// The in-process local cloud service's URL, started on first use. The
    /// service lives as long as this process; the nodes and their records
    /// outlive it (they are separate process groups and a database).
    async fn local_endpoint(&self) -> Result<String, EngineError> {
        self.local_endpoint
            .get_or_try_init(|| async {
                let settings = self.local.clone().ok_or_else(|| {
                    EngineError::LocalCloud("no directory for the local cloud is configured".into())
                })?;
                let cloud = LocalCloud::open(settings)
                    .map_err(|e| EngineError::LocalCloud(e.to_string()))?;
                let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                tokio::spawn(async move {
                    let served = service::serve(Arc::new(cloud), address, |bound| {
                        let _ = bound_tx.send(bound);
                    });
                    if let Err(e) = served.await {
                        tracing::error!(error = %e, "the in-process local cloud stopped");
                    }
                });
                let bound = bound_rx.await.map_err(|_| {
                    EngineError::LocalCloud("the service did not start listening".into())
                })?;
                tracing::info!(%bound, "local cloud service started in-process");
                Ok(format!("http://{bound}"))
            })
            .await
            .cloned()
    }
}
