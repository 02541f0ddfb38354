//! What the handlers take from a request: a path's parts, a body's text, a
//! posted description checked.

use crate::error::HttpError;
use crate::service::Service;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::StatusCode;

/// The body as UTF-8 text; a body over the limit is 413, an empty one 400.
pub(crate) fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, HttpError> {
    let bytes = body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body-too-large"
        } else {
            "bad-body"
        };
        HttpError::new(rejection.status(), code, rejection.body_text())
    })?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "bad-body",
            "the body is not UTF-8 text",
        )
    })?;
    if text.trim().is_empty() {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "empty-body",
            "Empty POST data: send the YAML as the body",
        ));
    }
    Ok(text)
}

pub(crate) fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, HttpError> {
    use axum::extract::path::ErrorKind;
    path.map(|Path(p)| p).map_err(|rejection| {
        // The only typed part of a path is a count: say so in those words,
        // not in the deserialiser's ("Cannot parse value at index 2 ...").
        let unparsable = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::ParseError { value, .. }
                | ErrorKind::ParseErrorAtIndex { value, .. }
                | ErrorKind::ParseErrorAtKey { value, .. } => Some(value.clone()),
                _ => None,
            },
            _ => None,
        };
        let message = match unparsable {
            Some(value) => format!(
                "`{value}` is not a count: give a whole number from 1 to {}",
                u32::MAX
            ),
            None => rejection.body_text(),
        };
        HttpError::new(StatusCode::BAD_REQUEST, "bad-path", message)
    })
}

/// Validates a posted description: its problems as a 400, else its warnings.
pub(crate) async fn checked(
    service: &Service,
    description: String,
) -> Result<occopus::model::Diagnostics, HttpError> {
    let sources = service.posted_sources(description);
    let diagnostics = service.occopus.validate(&sources).await?;
    if diagnostics.has_errors() {
        return Err(HttpError::invalid(&diagnostics));
    }
    Ok(diagnostics)
}
