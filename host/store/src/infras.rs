//! Infrastructures: their names, status and what they were built from.

use crate::error::StoreError;
use crate::records::{InfraRecord, InfraSnapshot};
use crate::sql::values;
use crate::state_store::StateStore;
use occopus_types::now_ms;

impl StateStore {
    /// Creates the infra's record, or updates its name, snapshot and status.
    pub fn upsert_infra(
        &self,
        id: &str,
        name: &str,
        status: &str,
        snapshot: &InfraSnapshot,
    ) -> Result<(), StoreError> {
        let snapshot = serde_json::to_string(snapshot)?;
        let now = now_ms();
        self.fenced(id, |db| {
            db.execute(
                "INSERT INTO infras (id, name, status, snapshot, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (id) DO UPDATE SET name = ?2, status = ?3, snapshot = ?4, updated_ms = ?5",
                values![id, name, status, snapshot, now],
            )
            .map(drop)
        })
    }

    /// Sets an infra's status.
    pub fn set_infra_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        self.fenced(id, |db| {
            db.execute(
                "UPDATE infras SET status = ?2, updated_ms = ?3 WHERE id = ?1",
                values![id, status, now_ms()],
            )
            .map(drop)
        })
    }

    /// How many infras are in each status (the service's metrics).
    pub fn infra_census(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|db| {
            db.query(
                "SELECT status, COUNT(*) FROM infras GROUP BY status ORDER BY status",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect()
        })
    }

    /// One infra.
    pub fn infra(&self, id: &str) -> Result<Option<InfraRecord>, StoreError> {
        let row = self.read(|db| {
            db.query_opt(
                "SELECT id, name, status, snapshot, created_ms, updated_ms FROM infras WHERE id = ?1",
                values![id],
            )
        })?;
        row.map(|row| {
            let snapshot: String = row.get(3)?;
            Ok(InfraRecord {
                id: row.get(0)?,
                name: row.get(1)?,
                status: row.get(2)?,
                snapshot: serde_json::from_str(&snapshot)?,
                created_ms: row.get(4)?,
                updated_ms: row.get(5)?,
            })
        })
        .transpose()
    }

    /// A tag of what is recorded of an infra now, if it is recorded: it
    /// changes with every write about it (its version), and differs between
    /// two infras of one id built one after the other (its creation time).
    /// An HTTP entity tag, for instance.
    pub fn infra_tag(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = self.read(|db| {
            db.query_opt(
                "SELECT created_ms, version FROM infras WHERE id = ?1",
                values![id],
            )
        })?;
        row.map(|row| Ok(format!("{}-{}", row.get::<i64>(0)?, row.get::<i64>(1)?)))
            .transpose()
    }

    /// A tag of the list of infras and of which the REST service manages:
    /// it changes when an infra is recorded or forgotten and with every
    /// request or transition of the service's records.
    pub fn list_tag(&self) -> Result<String, StoreError> {
        let row = self.read(|db| {
            db.query_one(
                "SELECT (SELECT COUNT(*) FROM infras), (SELECT COALESCE(MAX(created_ms), 0) FROM infras),
                 (SELECT COUNT(*) FROM service_infras), (SELECT CAST(COALESCE(SUM(revision), 0) AS BIGINT) FROM service_infras)",
                &[],
            )
        })?;
        let parts: Vec<String> = (0..4)
            .map(|i| row.get::<i64>(i).map(|n| n.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(parts.join("-"))
    }

    /// Every infra's id, oldest first.
    pub fn infra_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows =
            self.read(|db| db.query("SELECT id FROM infras ORDER BY created_ms, id", &[]))?;
        rows.iter().map(|row| row.get(0)).collect()
    }

    /// Deletes an infra with its instances, targets, scaling requests and
    /// events (after its instances were destroyed), so that the database does
    /// not grow with infras built and destroyed.
    pub fn delete_infra(&self, id: &str) -> Result<(), StoreError> {
        self.fenced(id, |db| {
            db.execute("DELETE FROM events WHERE infra_id = ?1", values![id])?;
            db.execute("DELETE FROM infras WHERE id = ?1", values![id])
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::TestDatabase;

    /// A store opened to read only creates nothing where occopus never wrote
    /// (the database reads as empty, and stays without tables), reads what
    /// is there, and writes nothing.
    #[test]
    fn a_read_only_open_creates_nothing_and_writes_nothing() {
        for db in TestDatabase::each() {
            read_only_on(&db);
        }
    }

    fn read_only_on(db: &TestDatabase) {
        let kind = db.kind();
        let empty = db.open_read_only();
        assert!(empty.infra_ids().unwrap().is_empty(), "{kind}");
        drop(empty);
        let untouched = match db {
            TestDatabase::Sqlite(dir) => !dir.path().join("state.db").exists(),
            TestDatabase::Postgres { admin, name } => {
                let (base, _) = admin.rsplit_once('/').unwrap();
                crate::postgres::Postgres::connect(&format!("{base}/{name}"))
                    .unwrap()
                    .schema_version()
                    .unwrap()
                    .is_none()
            }
        };
        assert!(untouched, "{kind}: a read-only open created the database");
        // Opened to write: the tables are created then, not before.
        let _writer = db.open_with_infra();
        let reader = db.open_read_only();
        assert_eq!(reader.infra_ids().unwrap(), ["i1"], "{kind}");
        let me = crate::LeaseHolder::this_process("occopus unlock");
        assert!(
            reader
                .try_acquire_lease("i2", &me, std::time::Duration::from_secs(30))
                .is_err(),
            "{kind}: a read-only store wrote"
        );
    }
}
