//! The built-in local cloud as an endpoint provider: a `local` resource that
//! names no `endpoint` is served by a local cloud service this process starts
//! on first use. The service lives as long as this process; the nodes and
//! their records outlive it (they are separate process groups and a
//! database).

use async_trait::async_trait;
use occopus_engine::{EndpointError, EndpointResolver};
use occopus_local_cloud::{LocalCloud, LocalCloudSettings, RESOURCE_TYPE, http};
use occopus_model::{Diagnostics, Model};
use occopus_types::{ErrorCode, HasErrorCode, ResourceSection, resource_type};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Starts the local cloud's service for `local` resources without endpoint.
pub struct LocalCloudEndpoint {
    /// Where the local cloud lives; `None` when the front end gave no
    /// directory or runner (then `local` resources need an endpoint).
    settings: Option<LocalCloudSettings>,
    endpoint: OnceCell<String>,
}

/// Why the local cloud could not be started.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(
        "no local cloud is configured in this process; give the resource an `endpoint` (`occopus local-cloud serve` prints one) or run it with the occopus command"
    )]
    NotConfigured,
    #[error(transparent)]
    Open(#[from] occopus_local_cloud::LocalCloudError),
    #[error("its service did not start listening: {0}")]
    Listen(std::io::Error),
}

impl HasErrorCode for StartError {
    fn code(&self) -> ErrorCode {
        match self {
            StartError::NotConfigured => ErrorCode::BadConfiguration,
            StartError::Open(e) => e.code(),
            StartError::Listen(_) => ErrorCode::Internal,
        }
    }
}

impl LocalCloudEndpoint {
    /// A provider for the local cloud of `settings`, if there is one.
    pub fn new(settings: Option<LocalCloudSettings>) -> Self {
        LocalCloudEndpoint {
            settings,
            endpoint: OnceCell::new(),
        }
    }

    async fn start(&self) -> Result<String, StartError> {
        let settings = self.settings.clone().ok_or(StartError::NotConfigured)?;
        let cloud = Arc::new(LocalCloud::open(settings)?);
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let address = SocketAddr::from(([127, 0, 0, 1], 0));
        tokio::spawn(async move {
            let served = http::serve(cloud, address, |bound| {
                let _ = bound_tx.send(bound);
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the in-process local cloud stopped");
            }
        });
        // The task logs why, when it ends before binding.
        let bound = bound_rx.await.map_err(|_| {
            StartError::Listen(std::io::Error::other(
                "it ended before binding (see the log)",
            ))
        })?;
        tracing::info!(%bound, "local cloud service started in-process");
        Ok(format!("http://{bound}"))
    }
}

#[async_trait]
impl EndpointResolver for LocalCloudEndpoint {
    async fn endpoint(&self, resource: &ResourceSection) -> Result<Option<String>, EndpointError> {
        if resource_type(resource) != RESOURCE_TYPE {
            return Ok(None);
        }
        self.endpoint
            .get_or_try_init(|| self.start())
            .await
            .cloned()
            .map(Some)
            .map_err(|error| EndpointError {
                resource_type: RESOURCE_TYPE.into(),
                code: error.code(),
                source: Box::new(error),
            })
    }
}

/// What the local cloud will refuse, known before any call: a `local`
/// resource without `endpoint` when no local cloud is configured, and more
/// nodes at once (the sum of the `scaling.min` of the nodes it serves) than
/// `local_cloud.max_nodes`. `validate` and `build` both run it, so that what
/// validate accepts, build does not refuse for these reasons.
pub fn check_local_cloud(
    settings: Option<&LocalCloudSettings>,
    model: &Model,
    diagnostics: &mut Diagnostics,
) {
    let served: Vec<_> = model
        .infra
        .nodes
        .iter()
        .filter_map(|node| Some((node, model.implementation(&node.name)?)))
        .filter(|(_, implementation)| {
            implementation.resource_type == RESOURCE_TYPE
                && implementation.resource.get("endpoint").is_none()
        })
        .collect();
    let Some(settings) = settings else {
        for (node, implementation) in &served {
            diagnostics.error(
                &implementation.resource.location,
                format!("node `{}`: {}", node.name, StartError::NotConfigured),
                "name the local cloud's directory (`local_cloud.root` in the occopus config)",
            );
        }
        return;
    };
    let needed: u64 = served
        .iter()
        .map(|(node, _)| u64::from(node.scaling.min))
        .sum();
    if needed <= settings.max_nodes as u64 {
        return;
    }
    let Some((largest, _)) = served.iter().max_by_key(|(node, _)| node.scaling.min) else {
        return;
    };
    let counts: Vec<String> = served
        .iter()
        .map(|(node, _)| format!("{} {}", node.name, node.scaling.min))
        .collect();
    diagnostics.error(
        &largest.location,
        format!(
            "the local cloud runs at most {} nodes at once (`local_cloud.max_nodes`), and this infrastructure needs at least {needed} there ({})",
            settings.max_nodes,
            counts.join(", ")
        ),
        "lower `scaling.min`, or raise `local_cloud.max_nodes` in the occopus config",
    );
}
