//! Opening occopus's SQLite databases, safely when several processes open,
//! migrate and write one file at once:
//!
//! - WAL with `synchronous=NORMAL`: a committed transaction survives the
//!   process being killed at any instant (only a power loss may lose the last
//!   ones), which is the failure the stores are built for; the WAL is
//!   truncated after checkpoints (`journal_size_limit`), so it does not keep
//!   the size of its busiest moment;
//! - a busy timeout, and write transactions that take the write lock when
//!   they begin (`BEGIN IMMEDIATE`): a transaction that began reading and then
//!   wants to write can fail with `SQLITE_BUSY` at once when another writer
//!   committed meanwhile; one that starts as a writer waits its turn instead;
//! - migrations counted by `PRAGMA user_version`, applied under that write
//!   lock after reading the version again, so that two first opens of a new
//!   file do not both create its tables; a file whose version is newer than
//!   the migrations known is refused, never used;
//! - the first open of a file is retried while another process holds it in
//!   the middle of switching it to WAL;
//! - a read-only open for commands that only read, which also works on a
//!   read-only mount;
//! - for a long-lived writer, the WAL copied into the file by a thread of
//!   its own, so that the checkpoint a commit runs has little left to do
//!   ([`BackgroundCheckpoint`]).

mod checkpoint;

pub use checkpoint::BackgroundCheckpoint;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a connection waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// How large the WAL file may stay after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "its schema is version {found}, newer than the {known} this occopus knows: it was written by a newer occopus; use that one (this one would misread it)"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("it does not exist")]
    Missing(PathBuf),
    #[error(
        "it is read-only (a read-only file or mount), and this command writes to it; \
         commands that only read (info, plan, validate, graph) work on it as it is"
    )]
    ReadOnly,
    #[error("cannot start the thread that checkpoints its WAL: {0}")]
    Checkpointer(String),
}

/// Whether an error says another connection holds a lock right now.
pub fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Opens (creating if needed) the database at `path` and applies the
/// `migrations` it has not seen yet, in one transaction.
pub fn open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, OpenError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match try_open_migrated(path, migrations) {
            Err(OpenError::Sqlite(e)) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            outcome => return outcome,
        }
    }
}

fn try_open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, OpenError> {
    let mut connection = Connection::open(path)?;
    // SQLite falls back to read-only when it cannot write the file; say so
    // now rather than at the first write, half-way through a command.
    if connection.is_readonly(rusqlite::MAIN_DB)? {
        return Err(OpenError::ReadOnly);
    }
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    let known = migrations.len() as i64;
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > known {
        return Err(OpenError::NewerSchema {
            found: version,
            known,
        });
    }
    for (index, migration) in (0i64..).zip(migrations).skip(version.max(0) as usize) {
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index + 1)?;
    }
    transaction.commit()?;
    Ok(connection)
}

/// Opens the existing database at `path` for reading only: nothing is
/// created, migrated or locked for writing. On a read-only mount, where
/// SQLite cannot create the WAL's shared-memory file, it reads the file as
/// it is (`immutable`). A schema newer than `known_version` is refused; an
/// older one is read as it is (the caller sees no newer tables); none yet (a
/// file another process is creating) reads as [`OpenError::Missing`].
pub fn open_read_only(path: &Path, known_version: i64) -> Result<Connection, OpenError> {
    if !path.exists() {
        return Err(OpenError::Missing(path.to_owned()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    let uri = |extra: &str| format!("file:{}?mode=ro{extra}", path.display());
    let usable = |connection: Connection| -> Result<Connection, OpenError> {
        connection.busy_timeout(BUSY_TIMEOUT)?;
        let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
        // Created, its tables not committed yet (its creator's first
        // migration runs in one transaction): as good as missing, not broken.
        if version == 0 {
            return Err(OpenError::Missing(path.to_owned()));
        }
        if version > known_version {
            return Err(OpenError::NewerSchema {
                found: version,
                known: known_version,
            });
        }
        Ok(connection)
    };
    match Connection::open_with_flags(uri(""), flags)
        .map_err(OpenError::from)
        .and_then(usable)
    {
        Err(OpenError::Sqlite(e)) if cannot_share(&e) => {
            usable(Connection::open_with_flags(uri("&immutable=1"), flags)?)
        }
        outcome => outcome,
    }
}

/// Whether a read-only open failed because the WAL's shared memory cannot be
/// set up (a read-only directory).
fn cannot_share(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::SystemIoFailure)
    )
}

/// Runs `f` on the connection behind `lock` (a poisoned lock is still usable:
/// SQLite transactions keep the data consistent).
pub fn with<T>(
    lock: &Mutex<Connection>,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let mut connection = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[&str] = &[
        "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT);",
        "ALTER TABLE things ADD COLUMN size INTEGER;",
    ];

    #[test]
    fn concurrent_first_opens_of_a_new_file_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || open_migrated(&path, MIGRATIONS).map(drop))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap().unwrap();
        }
        let connection = open_migrated(&path, MIGRATIONS).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let connection = open_migrated(&path, MIGRATIONS).unwrap();
        connection.pragma_update(None, "user_version", 999).unwrap();
        drop(connection);
        let error = open_migrated(&path, MIGRATIONS).unwrap_err();
        assert!(matches!(
            error,
            OpenError::NewerSchema {
                found: 999,
                known: 2
            }
        ));
        assert!(
            error.to_string().contains("version 999, newer than the 2"),
            "{error}"
        );
        let error = open_read_only(&path, 2).unwrap_err();
        assert!(matches!(error, OpenError::NewerSchema { found: 999, .. }));
    }

    #[test]
    fn read_only_opens_create_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        assert!(matches!(
            open_read_only(&path, 2),
            Err(OpenError::Missing(_))
        ));
        assert!(!path.exists());
        // Created by another process that has not committed its tables yet.
        drop(Connection::open(&path).unwrap());
        assert!(matches!(
            open_read_only(&path, 2),
            Err(OpenError::Missing(_))
        ));
        drop(open_migrated(&path, MIGRATIONS).unwrap());
        let connection = open_read_only(&path, 2).unwrap();
        let error = connection
            .execute("INSERT INTO things (name) VALUES ('x')", [])
            .unwrap_err();
        assert_eq!(error.sqlite_error_code(), Some(ErrorCode::ReadOnly));
    }
}
