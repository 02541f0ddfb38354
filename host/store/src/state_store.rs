//! The state database handle: one connection (to the embedded SQLite file,
//! or to a PostgreSQL database several processes share) used by short
//! transactions, the writer thread that group-commits the engine's
//! per-instance writes (see `committer.rs`), and the leases this process
//! holds, against which every write about an infrastructure is fenced (see
//! `leases.rs`).

use crate::backend::Backend;
use crate::committer::{Committer, Fence, bump_version, current_epoch};
use crate::error::StoreError;
use crate::postgres::Postgres;
use crate::schema::MIGRATIONS;
use crate::sql::Sql;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The state database. Share it behind an `Arc`; calls are short
/// transactions, and the engine's per-instance writes (the async ones) are
/// group-committed by a writer thread.
pub struct StateStore {
    pub(crate) backend: Arc<Backend>,
    /// None when opened to read only.
    committer: Option<Committer>,
    /// The lease epoch this process holds, per infra id.
    pub(crate) held: Mutex<HashMap<String, i64>>,
    /// Moves with every write made through this store (see [`StateStore::generation`]).
    generation: Arc<AtomicU64>,
    /// For a SQLite file written to: the thread that copies its WAL into
    /// the file ahead of the group commit's own checkpoints (see
    /// occopus-sqlite).
    _checkpoint: Option<occopus_sqlite::BackgroundCheckpoint>,
}

impl StateStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Directory {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let connection = occopus_sqlite::open_migrated(path, MIGRATIONS).map_err(open_error)?;
        let checkpoint = occopus_sqlite::BackgroundCheckpoint::start(path).map_err(open_error)?;
        Self::with_backend(Backend::Sqlite(Mutex::new(connection)), Some(checkpoint))
    }

    /// Opens (creating its tables, or migrating them) the PostgreSQL
    /// database at `url` (`postgres://user:password@host:port/database`),
    /// which several occopus processes and hosts may share.
    pub fn open_postgres(url: &str) -> Result<StateStore, StoreError> {
        let postgres = Postgres::connect(url)?;
        postgres.migrate(MIGRATIONS)?;
        Self::with_backend(Backend::Postgres(Box::new(postgres)), None)
    }

    /// Opens the PostgreSQL database at `url` to read only, as
    /// [`StateStore::open_read_only`] does a file: nothing is created or
    /// migrated; a database occopus never wrote to reads as empty; a newer
    /// schema is refused.
    pub fn open_postgres_read_only(url: &str) -> Result<StateStore, StoreError> {
        let postgres = Postgres::connect(url)?;
        let known = MIGRATIONS.len() as i64;
        match postgres.schema_version()? {
            None => Ok(Self::read_only(Backend::Sqlite(Mutex::new(empty()?)))),
            Some(found) if found > known => Err(StoreError::NewerSchema {
                location: postgres.location.clone(),
                found,
                known,
            }),
            Some(_) => {
                postgres.refuse_writes()?;
                Ok(Self::read_only(Backend::Postgres(Box::new(postgres))))
            }
        }
    }

    /// A store on `backend` that never writes (no group committer).
    fn read_only(backend: Backend) -> StateStore {
        StateStore {
            backend: Arc::new(backend),
            committer: None,
            held: Mutex::default(),
            generation: Arc::default(),
            _checkpoint: None,
        }
    }

    fn with_backend(
        backend: Backend,
        checkpoint: Option<occopus_sqlite::BackgroundCheckpoint>,
    ) -> Result<StateStore, StoreError> {
        let backend = Arc::new(backend);
        let generation = Arc::new(AtomicU64::new(0));
        let committer = Committer::start(backend.clone(), generation.clone())
            .map_err(|e| StoreError::Commit(e.to_string()))?;
        Ok(StateStore {
            backend,
            committer: Some(committer),
            held: Mutex::default(),
            generation,
            _checkpoint: checkpoint,
        })
    }

    /// Opens the database at `path` to read only: for commands that never
    /// change an infrastructure. Nothing is created, migrated or locked; a
    /// missing file reads as an empty database; a read-only mount works.
    pub fn open_read_only(path: &Path) -> Result<StateStore, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let connection = match occopus_sqlite::open_read_only(path, MIGRATIONS.len() as i64) {
            Ok(connection) => connection,
            Err(occopus_sqlite::OpenError::Missing(_)) => empty()?,
            Err(e) => return Err(open_error(e)),
        };
        Ok(Self::read_only(Backend::Sqlite(Mutex::new(connection))))
    }

    /// Runs `f`'s statements (reads, or a write that needs no lease) on
    /// the connection, outside any transaction of the caller's.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.backend.read(f)
    }

    /// Runs `f` in one write transaction that holds the writers' lock from
    /// its start, and commits it unless `f` fails.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = self.backend.write(f)?;
        self.changed();
        Ok(value)
    }

    /// Notes a write made outside [`StateStore::write`].
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A number that moves with every write made through this store (by
    /// this process), so that a reader can keep what it rendered without
    /// asking the database while it stays; writes of other processes (or
    /// replicas) on a shared database do not move it: read a tag
    /// (`infra_tag`, `list_tag`) for those.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The group committer, unless the store was opened to read only.
    pub(crate) fn committer(&self) -> Result<&Committer, StoreError> {
        self.committer.as_ref().ok_or(StoreError::ReadOnly)
    }

    /// The lease epoch this process holds for `infra_id`.
    pub(crate) fn epoch_of(&self, infra_id: &str) -> Result<i64, StoreError> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(infra_id)
            .copied()
            .ok_or_else(|| StoreError::NotLeased {
                infra_id: infra_id.to_string(),
            })
    }

    /// Runs `f` in a write transaction about `infra_id`, after checking, in
    /// that transaction, that this process still holds its lease.
    pub(crate) fn fenced<T>(
        &self,
        infra_id: &str,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let epoch = self.epoch_of(infra_id)?;
        self.write(|db| {
            fence(db, infra_id, epoch)?;
            let value = f(db)?;
            bump_version(db, infra_id)?;
            Ok(value)
        })
    }
}

impl StateStore {
    /// Runs `write` in the next group commit (see `committer.rs`), fenced
    /// like [`StateStore::fenced`], and returns once it is committed.
    pub(crate) async fn fenced_write(
        &self,
        infra_id: &str,
        write: impl FnOnce(&mut dyn Sql) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let fence = Fence {
            infra_id: infra_id.to_string(),
            epoch: self.epoch_of(infra_id)?,
        };
        self.committer()?.write(fence, write).await
    }
}

/// Refuses a write about `infra_id` unless the lease on it is still at
/// `epoch`: a holder that was paused or cut off while another took its lease
/// over writes nothing more.
pub(crate) fn fence(db: &mut dyn Sql, infra_id: &str, epoch: i64) -> Result<(), StoreError> {
    if current_epoch(db, infra_id)? == Some(epoch) {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            infra_id: infra_id.to_string(),
        })
    }
}

/// An empty database in memory, with the schema: what a store opened to
/// read only reads where there is no database yet.
fn empty() -> Result<Connection, StoreError> {
    let mut empty = Connection::open_in_memory()?;
    let transaction = empty.transaction()?;
    for migration in MIGRATIONS {
        transaction.execute_batch(migration)?;
    }
    transaction.commit()?;
    Ok(empty)
}
