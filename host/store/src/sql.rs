//! The SQL the store speaks, whatever the database behind it: statements
//! with numbered parameters (`?1`, `?2`, ...), values of four kinds, rows
//! read by column index. The store's tables are written once against
//! [`Sql`]; a back-end runs the statements (the embedded SQLite file here,
//! through [`Lite`]), so that another database can stand behind the same
//! store code.

use crate::error::StoreError;

/// A value bound to a parameter or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Integer(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Value::Integer(value.into())
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Integer(value.into())
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// The parameters of a statement, each converted into a [`Value`].
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::Value::from($value)),*]
    };
}
pub(crate) use values;

/// What a column's value can be read as.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u32 {
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One row of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `index`, read as a `T`; a value of another kind (or no such
    /// column) means the record is damaged.
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T, StoreError> {
        self.0.get(index).and_then(T::from_value).ok_or_else(|| {
            StoreError::Damaged(format!(
                "column {index} holds {:?}, not a {}",
                self.0.get(index),
                std::any::type_name::<T>()
            ))
        })
    }
}

/// A connection (or a transaction on one) that runs the store's statements.
pub(crate) trait Sql {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError>;
    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs statements without parameters, separated by `;` (migrations).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Runs the same few parameterless statements, in order, again and
    /// again (the group commit's savepoints): by default as one batch, one
    /// round trip to a server.
    fn repeated(&mut self, statements: &[&str]) -> Result<(), StoreError> {
        self.batch(&statements.join("; "))
    }
}

impl dyn Sql + '_ {
    /// The first row of a query, if it has one.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always answers one (an aggregate, a
    /// `RETURNING` of an update that cannot miss).
    pub(crate) fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Damaged(format!("no row answered `{sql}`")))
    }
}

/// The embedded SQLite file's side of [`Sql`]: statements are prepared once
/// per connection and cached.
pub(crate) struct Lite<'c>(pub(crate) &'c rusqlite::Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

impl Sql for Lite<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let mut statement = self.0.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params))?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut answer = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(text) | ValueRef::Blob(text) => {
                        Value::Text(String::from_utf8_lossy(text).into_owned())
                    }
                });
            }
            answer.push(Row(values));
        }
        Ok(answer)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.0.execute_batch(sql)?)
    }

    /// Each statement prepared once per connection: in process, parsing a
    /// batch anew for each write was what its savepoints cost.
    fn repeated(&mut self, statements: &[&str]) -> Result<(), StoreError> {
        for sql in statements {
            self.0.prepare_cached(sql)?.execute([])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_in_and_come_back_as_they_were() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let mut lite = Lite(&connection);
        let db: &mut dyn Sql = &mut lite;
        db.execute("CREATE TABLE t (i INTEGER, s TEXT, r REAL, n TEXT)", &[])
            .unwrap();
        let changed = db
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                values![7_i64, "seven", 7.5, None::<&str>],
            )
            .unwrap();
        assert_eq!(changed, 1);
        let row = db.query_one("SELECT i, s, r, n FROM t", &[]).unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<String>(1).unwrap(), "seven");
        assert_eq!(row.0[2], Value::Real(7.5));
        assert_eq!(row.get::<Option<String>>(3).unwrap(), None);
        assert!(matches!(row.get::<i64>(1), Err(StoreError::Damaged(_))));
        assert!(
            db.query_opt("SELECT i FROM t WHERE i = 8", &[])
                .unwrap()
                .is_none()
        );
    }
}
