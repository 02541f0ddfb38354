//! Node definitions stored by `occopus import`.

use crate::error::StoreError;
use crate::sql::values;
use crate::state_store::StateStore;
use occopus_types::now_ms;

impl StateStore {
    /// Stores (or replaces) the implementations of node types.
    pub fn import_definitions(
        &self,
        types: &[(String, serde_json::Value)],
        source: &str,
    ) -> Result<(), StoreError> {
        self.write(|db| {
            for (node_type, implementations) in types {
                db.execute(
                    "INSERT INTO node_definitions (node_type, implementations, source, imported_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (node_type) DO UPDATE SET implementations = ?2, source = ?3, imported_ms = ?4",
                    values![node_type, implementations.to_string(), source, now_ms()],
                )?;
            }
            Ok(())
        })
    }

    /// The imported node definitions: type -> (implementations, source file).
    pub fn definitions(&self) -> Result<Vec<(String, serde_json::Value, String)>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                "SELECT node_type, implementations, source FROM node_definitions ORDER BY node_type",
                &[],
            )
        })?;
        rows.iter()
            .map(|row| {
                let json: String = row.get(1)?;
                Ok((row.get(0)?, serde_json::from_str(&json)?, row.get(2)?))
            })
            .collect()
    }
}
