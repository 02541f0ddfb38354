//! Node definitions stored by `occopus import`.

use crate::error::StoreError;
use crate::state_store::StateStore;
use occopus_types::now_ms;
use rusqlite::params;

impl StateStore {
    /// Stores (or replaces) the implementations of node types.
    pub fn import_definitions(
        &self,
        types: &[(String, serde_json::Value)],
        source: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let transaction = c.transaction()?;
            for (node_type, implementations) in types {
                transaction.execute(
                    "INSERT INTO node_definitions (node_type, implementations, source, imported_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (node_type) DO UPDATE SET implementations = ?2, source = ?3, imported_ms = ?4",
                    params![node_type, implementations.to_string(), source, now_ms()],
                )?;
            }
            transaction.commit()
        })
    }

    /// The imported node definitions: type -> (implementations, source file).
    pub fn definitions(&self) -> Result<Vec<(String, serde_json::Value, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = self.with(|c| {
            c.prepare("SELECT node_type, implementations, source FROM node_definitions ORDER BY node_type")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(t, json, source)| Ok((t, serde_json::from_str(&json)?, source)))
            .collect()
    }
}
