//! The built-in local cloud as an endpoint provider: a `local` resource that
//! names no `endpoint` is served by a local cloud service this process starts
//! on first use. The service lives as long as this process; the nodes and
//! their records outlive it (they are separate process groups and a
//! database).

use async_trait::async_trait;
use occopus_engine::{EndpointError, EndpointResolver};
use occopus_local_cloud::{LocalCloud, LocalCloudSettings, RESOURCE_TYPE, http};
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
