//! The library's error: each lower layer's typed error, kept whole, with the
//! kind of failure each is ([`HasErrorCode`]).

use occopus_engine::EngineError;
use occopus_local_cloud::LocalCloudError;
use occopus_model::Diagnostics;
use occopus_plugin_host::RuntimeError;
use occopus_plugin_host::lock::LockError;
use occopus_registry::RegistryError;
use occopus_store::StoreError;
use occopus_types::{ErrorCode, HasErrorCode};
use std::path::PathBuf;

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
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no plugin directory to install into: set `plugins.dir` in the occopus config or pass \
         --plugin-dir (no home directory)"
    )]
    NoPluginDir,
    #[error(
        "no plugin lock file to record the install in: set `plugins.lock_file` in the occopus \
         config (no home directory)"
    )]
    NoLockFile,
    #[error(
        "{path} exists and was not installed from a registry (the lock file {lock} does not pin \
         it): move it away, or pass --force to replace it"
    )]
    UnpinnedFileInTheWay { path: PathBuf, lock: PathBuf },
    #[error(
        "no installed plugin is named `{name}` in {lock} (pinned: {pinned}); \
         `occopus plugins verify` lists them"
    )]
    NotPinned {
        name: String,
        lock: PathBuf,
        pinned: String,
    },
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
            ApiError::NoStateLocation
            | ApiError::NoLocalCloudRoot
            | ApiError::NoPluginDir
            | ApiError::NoLockFile
            | ApiError::Lock(_) => ErrorCode::BadConfiguration,
            ApiError::Registry(RegistryError::Credentials { .. }) => ErrorCode::BadConfiguration,
            ApiError::Registry(_) | ApiError::UnpinnedFileInTheWay { .. } => {
                ErrorCode::PluginUnavailable
            }
            ApiError::NotPinned { .. } => ErrorCode::PluginUnavailable,
            ApiError::Write { .. } => ErrorCode::OperationFailed,
            ApiError::AmbiguousInfraId { .. } => ErrorCode::UnknownInfra,
        }
    }
}
