//! The library's error: each lower layer's typed error, kept whole, with the
//! kind of failure each is ([`HasErrorCode`]).

use occopus_engine::EngineError;
use occopus_local_cloud::LocalCloudError;
use occopus_model::Diagnostics;
use occopus_plugin_host::RuntimeError;
use occopus_store::StoreError;
use occopus_types::{ErrorCode, HasErrorCode};

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Plugin(#[from] RuntimeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(EngineError),
    #[error(transparent)]
    LocalCloud(#[from] LocalCloudError),
    #[error("no state database location: pass --state FILE (no home directory)")]
    NoStateLocation,
    #[error(
        "no local cloud directory: set `local_cloud.root` in the occopus config (no home directory)"
    )]
    NoLocalCloudRoot,
    #[error("{path}: {problem}")]
    BadResource { path: String, problem: String },
    #[error(
        "`{given}` is the start of {} infrastructure ids ({}): give more of the id",
        candidates.len(),
        candidates.join(", ")
    )]
    AmbiguousInfraId {
        given: String,
        candidates: Vec<String>,
    },
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(diagnostics) => ApiError::Invalid(diagnostics),
            other => ApiError::Engine(other),
        }
    }
}

impl HasErrorCode for ApiError {
    fn code(&self) -> ErrorCode {
        match self {
            ApiError::Invalid(_) | ApiError::BadResource { .. } => ErrorCode::InvalidDescription,
            ApiError::Config(e) => e.code(),
            ApiError::Plugin(e) => e.code(),
            ApiError::Store(e) => e.code(),
            ApiError::Engine(e) => e.code(),
            ApiError::LocalCloud(e) => e.code(),
            ApiError::NoStateLocation | ApiError::NoLocalCloudRoot => ErrorCode::BadConfiguration,
            ApiError::AmbiguousInfraId { .. } => ErrorCode::UnknownInfra,
        }
    }
}
