//! The one error shape of the REST service.
//!
//! Every failure answers with its real HTTP status and
//! `{"status_code": S, "reason": R, "message": M, "error": {"code": C, "details": [...]}}`:
//! `status_code`, `reason` and `message` are the fields Occopus's clients
//! read (the original sent them with HTTP 200); `error.code` is a stable
//! machine name; `details` lists validation problems with their locations
//! (`location` as `FILE:LINE:COLUMN`, and `file`, `line`, `column` apart).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use occopus::ApiError;
use occopus::model::Diagnostics;
use occopus::types::{ErrorCode, HasErrorCode};
use serde_json::{Value, json};

/// A failed request.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Value>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 with every problem of a description, each with its place.
    pub fn invalid(diagnostics: &Diagnostics) -> Self {
        HttpError {
            details: problem_details(diagnostics),
            ..HttpError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidDescription.as_str(),
                format!("the posted YAML has problems:\n{diagnostics}"),
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::CONFLICT, ErrorCode::Conflict.as_str(), message)
    }
}

/// The HTTP status of each kind of failure (the answer's `error.code` is
/// the kind's own name).
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidDescription => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownInfra | ErrorCode::UnknownNode => StatusCode::NOT_FOUND,
        ErrorCode::ScaleRefused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::CloudCallFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::BadConfiguration
        | ErrorCode::PluginUnavailable
        | ErrorCode::OperationFailed
        | ErrorCode::StateDatabase
        | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        if let ApiError::Invalid(diagnostics) = &error {
            return HttpError::invalid(diagnostics);
        }
        let code = error.code();
        let status = status_of(code);
        if status.is_server_error() {
            tracing::error!(%error, "request failed");
        }
        HttpError::new(status, code.as_str(), error.to_string())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = json!({
            "status_code": self.status.as_u16(),
            "reason": self.status.canonical_reason().unwrap_or_default(),
            "message": self.message,
            "error": {"code": self.code, "details": self.details},
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Every problem of a description with its place: `severity`, `location`
/// (`FILE:LINE:COLUMN`), `file`, `line`, `column`, `message`, `help`.
pub(crate) fn problem_details(diagnostics: &Diagnostics) -> Vec<Value> {
    diagnostics
        .iter()
        .map(|d| {
            json!({
                "severity": format!("{:?}", d.severity).to_lowercase(),
                "location": d.location.as_ref().map(|l| l.to_string()),
                "file": d.location.as_ref().map(|l| l.file.display().to_string()),
                "line": d.location.as_ref().map(|l| l.line),
                "column": d.location.as_ref().map(|l| l.column),
                "message": d.message,
                "help": d.help,
            })
        })
        .collect()
}
