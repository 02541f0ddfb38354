//! Reading the files a call names besides the description: credentials,
//! and a lone resource section (for `occopus plugins check`).

use crate::error::ApiError;
use occopus_model::yaml::{self, LoadLimits};
use occopus_model::{AuthData, Diagnostics};
use occopus_types::ResourceSection;
use std::path::Path;

/// The credentials of `path`, or none without one.
pub(crate) fn load_auth_or_default(path: Option<&Path>) -> Result<AuthData, ApiError> {
    match path {
        Some(path) => load_auth(path),
        None => Ok(AuthData::default()),
    }
}

/// Reads a credentials file.
pub(crate) fn load_auth(path: &Path) -> Result<AuthData, ApiError> {
    let mut diagnostics = Diagnostics::default();
    let auth = yaml::load_file(path, LoadLimits::default(), &mut diagnostics)
        .map(|yaml| AuthData::from_yaml(&yaml, &mut diagnostics));
    match auth {
        Some(auth) if !diagnostics.has_errors() => Ok(auth),
        _ => Err(ApiError::Invalid(diagnostics)),
    }
}

/// Reads a resource section: a mapping with a `type`, alone or as the
/// `resource` of a node definition's implementation.
pub(crate) fn load_resource(path: &Path) -> Result<ResourceSection, ApiError> {
    let mut diagnostics = Diagnostics::default();
    let Some(document) = yaml::load_file(path, LoadLimits::default(), &mut diagnostics) else {
        return Err(ApiError::Invalid(diagnostics));
    };
    if diagnostics.has_errors() {
        return Err(ApiError::Invalid(diagnostics));
    }
    let section = match document.get("resource") {
        Some(inner) if document.get("type").is_none() => inner.to_json(),
        _ => document.to_json(),
    };
    match section {
        serde_json::Value::Object(map) if map.get("type").is_some_and(|t| t.is_string()) => Ok(map),
        _ => Err(ApiError::BadResource {
            path: path.display().to_string(),
            problem: "not a resource section: write a mapping with `type` and the driver's keys (or a node definition's `resource:`)".into(),
        }),
    }
}
