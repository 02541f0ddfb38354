//! The state database handle: one SQLite connection shared by short
//! transactions, and the writer thread that group-commits the engine's
//! per-instance writes (see `committer.rs`).

use crate::committer::Committer;
use crate::error::StoreError;
use crate::schema::MIGRATIONS;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The state database. Share it behind an `Arc`; calls are short
/// transactions, and the engine's per-instance writes (the async ones) are
/// group-committed by a writer thread.
pub struct StateStore {
    pub(crate) connection: Arc<Mutex<Connection>>,
    pub(crate) committer: Committer,
}

impl StateStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let connection =
            occopus_sqlite::open_migrated(path, MIGRATIONS).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let connection = Arc::new(Mutex::new(connection));
        let committer = Committer::start(connection.clone()).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        Ok(StateStore {
            connection,
            committer,
        })
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        Ok(occopus_sqlite::with(&self.connection, f)?)
    }
}
