//! Errors of the local cloud.

use std::path::PathBuf;

impl LocalCloudError {
    /// Whether it may pass by itself (the records were locked by another
    /// process for longer than the busy timeout): worth a retry.
    pub fn is_transient(&self) -> bool {
        matches!(self, LocalCloudError::Store { source, .. } if occopus_sqlite::is_busy(source))
    }
}

/// Errors of the local cloud.
#[derive(Debug, thiserror::Error)]
pub enum LocalCloudError {
    #[error("the local cloud's database {path}: {source}")]
    Store {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the local cloud's database {path} cannot be used: {source}")]
    Open {
        path: PathBuf,
        source: occopus_sqlite::OpenError,
    },
    #[error("the local cloud cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("no local node `{0}`")]
    NotFound(String),
    #[error(
        "the local cloud already runs {max} nodes, its limit; destroy some, or raise \
         `local_cloud.max_nodes`"
    )]
    TooManyNodes { max: usize },
    #[error(
        "every address of the local cloud's range {range} is in use; destroy nodes, or give \
         `local_cloud.address_range` a larger range"
    )]
    AddressesExhausted { range: String },
    #[error("`{0}` is not an IPv4 range like 127.77.0.0/16 inside 127.0.0.0/8")]
    BadRange(String),
}

impl occopus_types::HasErrorCode for LocalCloudError {
    fn code(&self) -> occopus_types::ErrorCode {
        use occopus_types::ErrorCode;
        match self {
            LocalCloudError::BadRange(_)
            | LocalCloudError::Open {
                source:
                    occopus_sqlite::OpenError::NewerSchema { .. } | occopus_sqlite::OpenError::ReadOnly,
                ..
            } => ErrorCode::BadConfiguration,
            LocalCloudError::NotFound(_) => ErrorCode::OperationFailed,
            LocalCloudError::TooManyNodes { .. } | LocalCloudError::AddressesExhausted { .. } => {
                ErrorCode::CloudCallFailed
            }
            LocalCloudError::Store { source, .. } if occopus_sqlite::is_busy(source) => {
                ErrorCode::CloudCallFailed
            }
            LocalCloudError::Store { .. }
            | LocalCloudError::Open { .. }
            | LocalCloudError::Io { .. } => ErrorCode::Internal,
        }
    }
}
