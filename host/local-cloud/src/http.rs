//! The local cloud's HTTP API, which the `local` driver plugin talks to like
//! any driver talks to its cloud.
//!
//! | method, path | answer |
//! |---|---|
//! | `POST /v1/nodes` with a [`CreateNode`] | the [`NodeView`] (the same node again for a repeated `client_token`) |
//! | `GET /v1/nodes?infra=ID` | `{"nodes": [NodeView...]}` |
//! | `GET /v1/nodes/ID` | the [`NodeView`], or 404 |
//! | `DELETE /v1/nodes/ID` | 204 (also when it was already gone) |
//! | `GET /v1/nodes/ID/logs` | the node's output, as text |
//! | `GET /healthz` | `ok` |
//!
//! Errors are `{"error": {"kind": ..., "message": ...}}` with `kind` one of
//! the plugin contract's error kinds. The service has no authentication, so it
//! only ever listens on loopback.

use crate::cloud::{CreateNode, LocalCloud};
use crate::error::LocalCloudError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use occopus_http::ServerLimits;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The routes of the API over one local cloud.
pub fn router(cloud: Arc<LocalCloud>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/nodes", get(list).post(create))
        .route("/v1/nodes/{id}", get(status).delete(destroy))
        .route("/v1/nodes/{id}/logs", get(logs))
        .with_state(cloud)
}

/// Serves the API on `address` (which must be a loopback address) until the
/// future is dropped. Returns the bound address through `bound` first.
pub async fn serve(
    cloud: Arc<LocalCloud>,
    address: SocketAddr,
    bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    if !address.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "the local cloud has no authentication and listens on loopback only, not {}",
                address.ip()
            ),
        ));
    }
    let listener = tokio::net::TcpListener::bind(address).await?;
    bound(listener.local_addr()?);
    let forever = std::future::pending();
    occopus_http::serve(listener, router(cloud), ServerLimits::default(), forever).await;
    Ok(())
}

/// A [`LocalCloudError`] as an HTTP answer.
struct ApiError(LocalCloudError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self.0 {
            LocalCloudError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            LocalCloudError::TooManyNodes { .. } | LocalCloudError::AddressesExhausted { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "quota")
            }
            // Another process holds the records: the driver retries (503).
            error if error.is_transient() => (StatusCode::SERVICE_UNAVAILABLE, "transient"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let body = json!({"error": {"kind": kind, "message": self.0.to_string()}});
        (status, Json(body)).into_response()
    }
}

/// Runs a blocking local cloud operation off the async threads.
async fn blocking<T: Send + 'static>(
    cloud: Arc<LocalCloud>,
    operation: impl FnOnce(&LocalCloud) -> Result<T, LocalCloudError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || operation(&cloud))
        .await
        .map_err(|e| {
            ApiError(LocalCloudError::Io {
                what: "finish an operation".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })?
        .map_err(ApiError)
}

async fn create(
    State(cloud): State<Arc<LocalCloud>>,
    Json(request): Json<CreateNode>,
) -> Result<impl IntoResponse, ApiError> {
    let node = blocking(cloud, move |c| c.create(&request)).await?;
    Ok(Json(node))
}

async fn list(
    State(cloud): State<Arc<LocalCloud>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let infra = query.get("infra").cloned();
    let nodes = blocking(cloud, move |c| c.list(infra.as_deref())).await?;
    Ok(Json(json!({ "nodes": nodes })))
}

async fn status(
    State(cloud): State<Arc<LocalCloud>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(blocking(cloud, move |c| c.status(&id)).await?))
}

async fn destroy(
    State(cloud): State<Arc<LocalCloud>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    blocking(cloud, move |c| c.destroy(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(cloud): State<Arc<LocalCloud>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    blocking(cloud, move |c| c.logs(&id)).await
}
