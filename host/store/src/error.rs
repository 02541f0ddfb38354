//! Errors of the store.

use std::path::PathBuf;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state database {path} cannot be used: {source}; check the path and permissions, or pass --state FILE"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the state database failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the state database could not commit: {0}; check the disk has space and the file is writable"
    )]
    Commit(String),
    #[error("a record in the state database is damaged: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl occopus_types::HasErrorCode for StoreError {
    fn code(&self) -> occopus_types::ErrorCode {
        occopus_types::ErrorCode::StateDatabase
    }
}
