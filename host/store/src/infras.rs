//! Infrastructures: their names, status and what they were built from.

use crate::error::StoreError;
use crate::records::{InfraRecord, InfraSnapshot};
use crate::state_store::StateStore;
use occopus_types::now_ms;
use rusqlite::{OptionalExtension, params};

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
        self.fenced(id, |c| {
            c.execute(
                "INSERT INTO infras (id, name, status, snapshot, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (id) DO UPDATE SET name = ?2, status = ?3, snapshot = ?4, updated_ms = ?5",
                params![id, name, status, snapshot, now],
            )
            .map(drop)
        })
    }

    /// Sets an infra's status.
    pub fn set_infra_status(&self, id: &str, status: &str) -> Result<(), StoreError> {
        self.fenced(id, |c| {
            c.execute(
                "UPDATE infras SET status = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, status, now_ms()],
            )
            .map(drop)
        })
    }

    /// One infra.
    pub fn infra(&self, id: &str) -> Result<Option<InfraRecord>, StoreError> {
        let row: Option<(String, String, String, String, i64, i64)> = self.with(|c| {
            c.query_row(
                "SELECT id, name, status, snapshot, created_ms, updated_ms FROM infras WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
        })?;
        row.map(|(id, name, status, snapshot, created_ms, updated_ms)| {
            Ok(InfraRecord {
                id,
                name,
                status,
                snapshot: serde_json::from_str(&snapshot)?,
                created_ms,
                updated_ms,
            })
        })
        .transpose()
    }

    /// Every infra's id, oldest first.
    pub fn infra_ids(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            c.prepare("SELECT id FROM infras ORDER BY created_ms, id")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
    }

    /// Deletes an infra with its instances, targets, scaling requests and
    /// events (after its instances were destroyed), so that the database does
    /// not grow with infras built and destroyed.
    pub fn delete_infra(&self, id: &str) -> Result<(), StoreError> {
        self.fenced(id, |c| {
            c.execute("DELETE FROM events WHERE infra_id = ?1", [id])?;
            c.execute("DELETE FROM infras WHERE id = ?1", [id])
                .map(drop)
        })
    }
}
