//! What the REST service is asked to do to the infras it manages, shared by
//! every replica of the service on one database and by a restarted one.
//!
//! Each managed infra has one record: the description it was posted with,
//! the operation asked for (`build`, `maintain`, `destroy`, or `idle` once
//! its maintenance ended by itself) and a *revision*, bumped by every
//! request. Whichever replica holds (or takes) the infra's lease does what
//! the newest revision asks; a replica that sees a newer revision than the
//! one its job runs replaces the job. A job's own transition (a build done,
//! maintenance next) is a compare-and-set on the revision it ran, so that it
//! never overwrites a request that came meanwhile.

use crate::error::StoreError;
use crate::sql::{Row, values};
use crate::state_store::StateStore;
use occopus_types::now_ms;

/// The operation the service is asked to run on an infra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceOperation {
    /// Build it (or resume its build), then maintain it.
    Build,
    /// Keep it alive: heal, scale.
    Maintain,
    /// Destroy it (or resume its destroy).
    Destroy,
    /// Nothing: its maintenance or destroy ended by itself (an error no
    /// retry mends); a new request starts it again.
    Idle,
}

impl ServiceOperation {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceOperation::Build => "build",
            ServiceOperation::Maintain => "maintain",
            ServiceOperation::Destroy => "destroy",
            ServiceOperation::Idle => "idle",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "build" => ServiceOperation::Build,
            "maintain" => ServiceOperation::Maintain,
            "destroy" => ServiceOperation::Destroy,
            "idle" => ServiceOperation::Idle,
            other => {
                return Err(StoreError::Damaged(format!(
                    "unknown service operation `{other}` in service_infras"
                )));
            }
        })
    }
}

/// One infra the REST service manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// The infra.
    pub infra_id: String,
    /// The description it was posted with.
    pub description: String,
    /// What is asked of it now.
    pub operation: ServiceOperation,
    /// Bumped by every request and transition.
    pub revision: i64,
}

const COLUMNS: &str = "infra_id, description, operation, revision";

fn service_record(row: &Row) -> Result<ServiceRecord, StoreError> {
    Ok(ServiceRecord {
        infra_id: row.get(0)?,
        description: row.get(1)?,
        operation: ServiceOperation::parse(&row.get::<String>(2)?)?,
        revision: row.get(3)?,
    })
}

/// Notes a write of the service's records when dropped (after it, whatever
/// its outcome).
struct Changed<'s>(&'s StateStore);

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.0.changed();
    }
}

impl StateStore {
    /// Records a request for `operation` on `infra_id` (a new infra with the
    /// `description` it was posted with; an existing one keeps its own) at a
    /// new revision, which it returns with the record.
    pub fn request_service_operation(
        &self,
        infra_id: &str,
        description: &str,
        operation: ServiceOperation,
    ) -> Result<ServiceRecord, StoreError> {
        let _changed = Changed(self);
        self.read(|db| {
            let row = db.query_one(
                &format!(
                    "INSERT INTO service_infras (infra_id, description, operation, updated_ms, revision)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (infra_id) DO UPDATE SET operation = ?3, updated_ms = ?4,
                     revision = service_infras.revision + 1
                     RETURNING {COLUMNS}"
                ),
                values![infra_id, description, operation.as_str(), now_ms()],
            )?;
            service_record(&row)
        })
    }

    /// Moves `infra_id` on to `operation` if its record is still at
    /// `revision` (a job's own transition); `None` when a newer request came
    /// meanwhile (or the record is gone), which then wins.
    pub fn advance_service_operation(
        &self,
        infra_id: &str,
        revision: i64,
        operation: ServiceOperation,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        let _changed = Changed(self);
        self.read(|db| {
            db.query_opt(
                &format!(
                    "UPDATE service_infras SET operation = ?3, updated_ms = ?4, revision = revision + 1
                     WHERE infra_id = ?1 AND revision = ?2
                     RETURNING {COLUMNS}"
                ),
                values![infra_id, revision, operation.as_str(), now_ms()],
            )?
            .map(|row| service_record(&row))
            .transpose()
        })
    }

    /// Forgets `infra_id` (destroyed) if its record is still at `revision`.
    pub fn forget_service_infra(&self, infra_id: &str, revision: i64) -> Result<bool, StoreError> {
        let _changed = Changed(self);
        self.read(|db| {
            db.execute(
                "DELETE FROM service_infras WHERE infra_id = ?1 AND revision = ?2",
                values![infra_id, revision],
            )
            .map(|deleted| deleted == 1)
        })
    }

    /// Every infra the REST service manages, oldest request first.
    pub fn service_infras(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                &format!("SELECT {COLUMNS} FROM service_infras ORDER BY updated_ms, infra_id"),
                &[],
            )
        })?;
        rows.iter().map(service_record).collect()
    }

    /// The REST service's record of `infra_id`, if it manages it.
    pub fn service_infra(&self, infra_id: &str) -> Result<Option<ServiceRecord>, StoreError> {
        self.read(|db| {
            db.query_opt(
                &format!("SELECT {COLUMNS} FROM service_infras WHERE infra_id = ?1"),
                values![infra_id],
            )?
            .map(|row| service_record(&row))
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    #[test]
    fn a_job_never_overwrites_a_newer_request() {
        for db in TestDatabase::each() {
            newer_request_wins_on(&db);
        }
    }

    fn newer_request_wins_on(db: &TestDatabase) {
        let store = db.open();
        let built = store
            .request_service_operation("i1", "infra_name: x", ServiceOperation::Build)
            .unwrap();
        assert_eq!(built.revision, 1);
        // Another replica is asked to destroy it while the build runs here.
        let other = db.open();
        let destroy = other
            .request_service_operation("i1", "", ServiceOperation::Destroy)
            .unwrap();
        assert_eq!(
            (destroy.revision, destroy.description.as_str()),
            (2, "infra_name: x")
        );
        // The build ends and would hand over to maintenance: refused.
        assert_eq!(
            store
                .advance_service_operation("i1", built.revision, ServiceOperation::Maintain)
                .unwrap(),
            None
        );
        assert!(!store.forget_service_infra("i1", built.revision).unwrap());
        assert_eq!(
            store.service_infra("i1").unwrap().unwrap().operation,
            ServiceOperation::Destroy
        );
        assert!(store.forget_service_infra("i1", destroy.revision).unwrap());
        assert!(store.service_infras().unwrap().is_empty());
    }
}
