//! What the REST service does to the infras it manages, so that a restarted
//! service resumes it.

use crate::error::StoreError;
use crate::sql::values;
use crate::state_store::StateStore;
use occopus_types::now_ms;

impl StateStore {
    /// Records what the REST service is doing to an infra it manages
    /// (`build`, `maintain`, `destroy`), and the description it was posted
    /// with, so that a restarted service resumes it.
    pub fn set_service_operation(
        &self,
        infra_id: &str,
        description: &str,
        operation: &str,
    ) -> Result<(), StoreError> {
        self.read(|db| {
            db.execute(
                "INSERT INTO service_infras (infra_id, description, operation, updated_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (infra_id) DO UPDATE SET operation = ?3, updated_ms = ?4",
                values![infra_id, description, operation, now_ms()],
            )
            .map(drop)
        })
    }

    /// Forgets an infra the REST service no longer manages (destroyed).
    pub fn forget_service_infra(&self, infra_id: &str) -> Result<(), StoreError> {
        self.read(|db| {
            db.execute(
                "DELETE FROM service_infras WHERE infra_id = ?1",
                values![infra_id],
            )
            .map(drop)
        })
    }

    /// The infras the REST service manages: (id, posted description, operation).
    pub fn service_infras(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                "SELECT infra_id, description, operation FROM service_infras ORDER BY updated_ms",
                &[],
            )
        })?;
        rows.iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .collect()
    }
}
