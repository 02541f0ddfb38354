//! Listening: the token rule for addresses off loopback, resuming what a
//! previous run of the service was doing, then serving until shutdown.

use crate::routes::router;
use crate::service::Service;
use crate::time_limit::time_limit;
use occopus_http::ServerLimits;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {0} without a token: set OCCOPUS_API_TOKEN (or use a loopback address)"
    )]
    NoToken(SocketAddr),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Serves the API on `address` under `limits` (and `request_timeout` per
/// request) until `shutdown` completes; `bound` learns the address actually
/// bound (port 0 picks one).
pub async fn serve(
    service: Arc<Service>,
    address: SocketAddr,
    limits: ServerLimits,
    request_timeout: std::time::Duration,
    bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if !address.ip().is_loopback() && service.settings.token.is_none() {
        return Err(ServeError::NoToken(address));
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { address, source })?;
    bound(local);
    service.start();
    let router = router(service.clone()).layer(axum::middleware::from_fn_with_state(
        request_timeout,
        time_limit,
    ));
    // At the stop: no new job, every job asked to stop and the event
    // streams ended while the requests in flight finish; then the jobs get
    // what is left of their bound.
    let closing = service.clone();
    let shutdown = async move {
        shutdown.await;
        closing.close();
    };
    occopus_http::serve(listener, router, limits, shutdown).await;
    let left = service.drained(service.settings.drain_timeout).await;
    if left > 0 {
        tracing::warn!(
            jobs = left,
            "stopped with jobs still running after the drain timeout; their intents are recorded and the next start resumes them"
        );
    }
    Ok(())
}

impl occopus::types::HasErrorCode for ServeError {
    fn code(&self) -> occopus::types::ErrorCode {
        match self {
            // Refusing to serve without a token is the operator's setting to change.
            ServeError::NoToken(_) => occopus::types::ErrorCode::BadConfiguration,
            ServeError::Bind { .. } => occopus::types::ErrorCode::OperationFailed,
        }
    }
}
