//! Opening occopus's SQLite databases: WAL, a busy timeout, and schema
//! migrations counted by `PRAGMA user_version`.

use rusqlite::Connection;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Opens (creating if needed) the database at `path` and applies the
/// `migrations` it has not seen yet, in one transaction.
///
/// WAL with `synchronous=NORMAL`: a committed transaction survives the
/// process being killed at any instant (only a power loss may lose the last
/// ones), which is the failure the stores are built for.
pub fn open_migrated(path: &Path, migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let transaction = connection.transaction()?;
    for (index, migration) in (0i64..).zip(migrations).skip(version.max(0) as usize) {
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index + 1)?;
    }
    transaction.commit()?;
    Ok(connection)
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
