//! The database behind a store: the embedded SQLite file or a PostgreSQL
//! database, each running the store's statements (`sql.rs`) in the two ways
//! the store needs: outside a transaction, and in a write transaction that
//! holds the writers' lock from its start.

use crate::error::StoreError;
use crate::postgres::Postgres;
use crate::sql::{Lite, Sql};
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Mutex;

/// The database behind a store.
pub(crate) enum Backend {
    /// The embedded SQLite file (one connection, WAL; see occopus-sqlite).
    Sqlite(Mutex<Connection>),
    /// A PostgreSQL database, possibly shared by several hosts.
    Postgres(Box<Postgres>),
}

impl Backend {
    /// Whether this is a PostgreSQL database.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// Runs `f` outside any transaction of the caller's.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Backend::Sqlite(connection) => {
                let connection = connection
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                f(&mut Lite(&connection))
            }
            Backend::Postgres(postgres) => postgres.read(f),
        }
    }

    /// Runs `f` in one write transaction that holds the writers' lock from
    /// its start (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock),
    /// and commits it unless `f` fails.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Backend::Sqlite(connection) => {
                let mut connection = connection
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let transaction =
                    connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = f(&mut Lite(&transaction))?;
                transaction.commit()?;
                Ok(value)
            }
            Backend::Postgres(postgres) => postgres.write(f),
        }
    }
}
