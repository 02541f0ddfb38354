//! The PostgreSQL back-end: the same statements as the SQLite file's (see
//! `sql.rs`), for a database several occopus processes and hosts share.
//!
//! Two connections per store, driven by a runtime thread of their own, so
//! that the store's synchronous calls (made from async tasks and plain
//! threads alike) wait on them without blocking a runtime they run on: one
//! for write transactions (the group commit's among them), one for reads and
//! single-statement writes, which so never wait behind a write transaction
//! (they see what is committed, as SQLite's readers do). Write transactions
//! take one advisory lock first: as with SQLite's write lock, writers go one
//! at a time, so a lease's fence checked in a transaction holds until it
//! commits. Statements are written with SQLite's `?N`
//! parameters and rewritten to PostgreSQL's `$N`.

use crate::error::StoreError;
use crate::schema::postgres_dialect;
use crate::sql::{Row, Sql, Value};
use bytes::BytesMut;
use futures::executor::block_on;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, GenericClient, NoTls, Statement};

/// The advisory lock every write transaction takes (an arbitrary number,
/// "occopus" on a phone keypad).
const WRITE_LOCK: i64 = 6_226_787;

/// One connection and the statements prepared on it.
struct Connection {
    client: Mutex<Client>,
    /// The statements prepared on the connection, by their text: each is
    /// prepared once, then only executed (one round trip, not two).
    prepared: Mutex<HashMap<String, Statement>>,
}

impl Connection {
    fn new(client: Client) -> Connection {
        Connection {
            client: Mutex::new(client),
            prepared: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The connections to the shared database.
pub(crate) struct Postgres {
    /// Write transactions.
    writer: Connection,
    /// Reads and single-statement writes.
    reader: Connection,
    /// Where it is, its password masked, for messages.
    pub(crate) location: String,
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database`).
    pub(crate) fn connect(url: &str) -> Result<Postgres, StoreError> {
        let location = mask_password(url);
        let unusable = |message: String| StoreError::Postgres {
            location: location.clone(),
            message,
        };
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| unusable(format!("not a PostgreSQL URL ({e})")))?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("occopus-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = sender.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let connected = async {
                        let writer = config.connect(NoTls).await?;
                        let reader = config.connect(NoTls).await?;
                        Ok::<_, tokio_postgres::Error>((writer, reader))
                    };
                    match connected.await {
                        Ok(((writer, writer_connection), (reader, reader_connection))) => {
                            let _ = sender.send(Ok((writer, reader)));
                            // Run until their clients are dropped.
                            let _ = futures::join!(writer_connection, reader_connection);
                        }
                        Err(e) => {
                            let _ = sender.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(|e| unusable(format!("cannot start its connection thread: {e}")))?;
        let (writer, reader) = receiver
            .recv()
            .map_err(|_| unusable("its connection thread ended".into()))?
            .map_err(unusable)?;
        Ok(Postgres {
            writer: Connection::new(writer),
            reader: Connection::new(reader),
            location,
        })
    }

    /// The schema version the database holds (none: occopus never wrote
    /// to it), read without creating anything.
    pub(crate) fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        self.read(|db| {
            let created: Option<String> = db
                .query_one("SELECT CAST(to_regclass('occopus_schema') AS TEXT)", &[])?
                .get(0)?;
            if created.is_none() {
                return Ok(None);
            }
            db.query_opt("SELECT version FROM occopus_schema", &[])?
                .map(|row| row.get(0))
                .transpose()
        })
    }

    /// Makes both connections refuse every write (a store opened to read
    /// only), as a read-only SQLite connection does.
    pub(crate) fn refuse_writes(&self) -> Result<(), StoreError> {
        const READ_ONLY: &str = "SET default_transaction_read_only = on";
        self.read(|db| db.batch(READ_ONLY))?;
        self.write(|db| db.batch(READ_ONLY))
    }

    /// Applies the `migrations` (SQLite's, see [`postgres_dialect`]) the
    /// database has not seen yet, in one
    /// transaction under the writers' lock (two first opens do not both
    /// create the tables); a database whose version is newer is refused.
    pub(crate) fn migrate(&self, migrations: &[&str]) -> Result<(), StoreError> {
        let known = migrations.len() as i64;
        let location = self.location.clone();
        self.write(|db| {
            db.execute(
                "CREATE TABLE IF NOT EXISTS occopus_schema (version BIGINT NOT NULL)",
                &[],
            )?;
            let found: Option<i64> = db
                .query_opt("SELECT version FROM occopus_schema", &[])?
                .map(|row| row.get(0))
                .transpose()?;
            if found.is_none() {
                db.execute("INSERT INTO occopus_schema (version) VALUES (0)", &[])?;
            }
            let found = found.unwrap_or(0);
            if found > known {
                return Err(StoreError::NewerSchema {
                    location,
                    found,
                    known,
                });
            }
            for migration in &migrations[found as usize..] {
                db.batch(&postgres_dialect(migration))?;
            }
            db.execute(
                "UPDATE occopus_schema SET version = ?1",
                crate::sql::values![known],
            )?;
            Ok(())
        })
    }

    /// Runs `f` outside any transaction (each statement commits by
    /// itself), on the reading connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let client = self.reader.lock();
        f(&mut Statements {
            client: &*client,
            prepared: &self.reader.prepared,
        })
    }

    /// Runs `f` in one write transaction, after the writers' lock; commits
    /// unless `f` fails.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.writer.lock();
        let transaction = block_on(client.transaction()).map_err(sql_error)?;
        block_on(transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]))
            .map_err(sql_error)?;
        let value = f(&mut Statements {
            client: &transaction,
            prepared: &self.writer.prepared,
        })?;
        block_on(transaction.commit()).map_err(sql_error)?;
        Ok(value)
    }
}

/// A client or a transaction running the store's statements.
struct Statements<'c, C: GenericClient> {
    client: &'c C,
    prepared: &'c Mutex<HashMap<String, Statement>>,
}

impl<C: GenericClient + Sync> Statements<'_, C> {
    /// `sql` prepared on the connection (once).
    fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        let mut prepared = self
            .prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(statement) = prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement =
            block_on(self.client.prepare(&dollar_parameters(sql))).map_err(sql_error)?;
        prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl<C: GenericClient + Sync> Sql for Statements<'_, C> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let changed = block_on(self.client.execute(&statement, &params)).map_err(sql_error)?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = block_on(self.client.query(&statement, &params)).map_err(sql_error)?;
        rows.iter().map(row).collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        block_on(self.client.batch_execute(sql)).map_err(sql_error)
    }
}

/// A row as the store reads it.
fn row(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row
                .try_get::<_, Option<i64>>(index)
                .map(|v| v.map(Value::Integer)),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(index)
                .map(|v| v.map(|i| Value::Integer(i.into()))),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(index)
                .map(|v| v.map(|i| Value::Integer(i.into()))),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(index)
                .map(|v| v.map(|b| Value::Integer(b.into()))),
            Type::FLOAT8 => row
                .try_get::<_, Option<f64>>(index)
                .map(|v| v.map(Value::Real)),
            _ => row
                .try_get::<_, Option<String>>(index)
                .map(|v| v.map(Value::Text)),
        }
        .map_err(sql_error)?;
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(text) => text.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// SQLite's `?N` parameters as PostgreSQL's `$N` (outside string literals).
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

/// The server's own words (with its SQLSTATE code) when it refused a
/// statement; the driver's otherwise.
fn sql_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Database(match error.as_db_error() {
        Some(refused) => format!("{} (SQLSTATE {})", refused.message(), refused.code().code()),
        None => match std::error::Error::source(&error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    })
}

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials
                .split_once(':')
                .map_or(credentials, |(user, _)| user);
            if credentials.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                url.to_owned()
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_passwords_are_rewritten() {
        assert_eq!(
            dollar_parameters("SELECT ?1, '?' FROM t WHERE a = ?2 AND b = ?1"),
            "SELECT $1, '?' FROM t WHERE a = $2 AND b = $1"
        );
        assert_eq!(
            mask_password("postgres://occopus:s3cret@127.0.0.1:5432/state"),
            "postgres://occopus:***@127.0.0.1:5432/state"
        );
        assert_eq!(
            mask_password("postgres://occopus@db/state"),
            "postgres://occopus@db/state"
        );
    }
}
