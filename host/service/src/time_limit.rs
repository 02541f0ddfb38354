//! The service's own limits on top of [`occopus_http::serve`]: a request
//! must be answered within its time limit (body upload included), or it gets
//! 408; the event stream is exempt.

use crate::error::HttpError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Answers 408 when a request takes longer than `limit`.
pub(crate) async fn time_limit(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().ends_with("/events") {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!(
                "the request took longer than {} s; send it faster (or start \
                 `occopus serve` with a longer --request-timeout)",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}
