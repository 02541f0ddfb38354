//! Errors of the store.

use occopus_types::{ErrorCode, HasErrorCode};
use std::path::PathBuf;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state database {path} cannot be used: {source}; check the path and permissions, or pass --state FILE"
    )]
    Open {
        path: PathBuf,
        source: occopus_sqlite::OpenError,
    },
    #[error("cannot create the directory of the state database {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the state database failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the state database failed: {0}")]
    Database(String),
    #[error(
        "the state database {location} cannot be used: {message}; check the URL (--state or OCCOPUS_STATE), that the server runs and accepts this user"
    )]
    Postgres { location: String, message: String },
    #[error(
        "the state database {location} has schema version {found}, newer than the {known} this occopus knows: it was written by a newer occopus; use that one (this one would misread it)"
    )]
    NewerSchema {
        location: String,
        found: i64,
        known: i64,
    },
    #[error(
        "the state database could not commit: {0}; check the disk has space and the file is writable"
    )]
    Commit(String),
    #[error("a record in the state database is damaged: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("a record in the state database is damaged: {0}")]
    Damaged(String),
    #[error("the state database was not copied: {0}")]
    CopyRefused(String),
    #[error("the state database was opened to read only")]
    ReadOnly,
    #[error(
        "infrastructure `{infra_id}` is no longer this process's to change: its lease was taken over (its holder was thought dead or its lease had expired); nothing more is written"
    )]
    Fenced { infra_id: String },
    #[error("infrastructure `{infra_id}` is changed without its lease (a bug)")]
    NotLeased { infra_id: String },
}

impl HasErrorCode for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::Open {
                source:
                    occopus_sqlite::OpenError::NewerSchema { .. } | occopus_sqlite::OpenError::ReadOnly,
                ..
            }
            | StoreError::NewerSchema { .. } => ErrorCode::BadConfiguration,
            StoreError::Fenced { .. } => ErrorCode::Conflict,
            StoreError::NotLeased { .. } => ErrorCode::Internal,
            _ => ErrorCode::StateDatabase,
        }
    }
}
