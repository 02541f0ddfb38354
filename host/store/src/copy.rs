//! Copying a whole state database into another (`occopus state copy`), so a
//! user moves from the SQLite file to a shared PostgreSQL database (or back)
//! without losing an infrastructure: every table but the leases, in one
//! write transaction of the target, then every table read back from both
//! and compared.

use crate::error::StoreError;
use crate::instances::INSTANCE_COLUMNS;
use crate::leases::Liveness;
use crate::sql::{Row, Value};
use crate::state_store::StateStore;
use occopus_types::now_ms;

/// The copied tables in an order their references allow, each with its
/// columns and the key that orders it.
const TABLES: &[(&str, &str, &str)] = &[
    (
        "infras",
        "id, name, status, snapshot, created_ms, updated_ms, version",
        "id",
    ),
    ("instances", INSTANCE_COLUMNS, "id"),
    (
        "node_definitions",
        "node_type, implementations, source, imported_ms",
        "node_type",
    ),
    (
        "events",
        "seq, infra_id, instance_id, time_ms, message",
        "seq",
    ),
    (
        "node_targets",
        "infra_id, node_name, target, failures, retry_after_ms",
        "infra_id, node_name",
    ),
    (
        "scale_requests",
        "seq, infra_id, node_name, change, instance_id, created_ms",
        "seq",
    ),
    (
        "service_infras",
        "infra_id, description, operation, updated_ms, revision",
        "infra_id",
    ),
];

/// The tables whose numbers a database hands out itself (identity columns
/// on PostgreSQL), with that column: after explicit numbers were copied in,
/// the next ones must come after them.
const NUMBERED: &[(&str, &str)] = &[("events", "seq"), ("scale_requests", "seq")];

/// How many rows of each table a copy moved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// (table, rows), in copy order.
    pub tables: Vec<(String, usize)>,
}

/// Every copied table's rows, in key order.
fn all_rows(store: &StateStore) -> Result<Vec<Vec<Row>>, StoreError> {
    store.read(|db| {
        TABLES
            .iter()
            .map(|(table, columns, key)| {
                db.query(
                    &format!("SELECT {columns} FROM {table} ORDER BY {key}"),
                    &[],
                )
            })
            .collect()
    })
}

impl StateStore {
    /// Copies every infrastructure, instance, definition, event, target,
    /// scaling request and service record of this database into `target`,
    /// which must hold none; then reads every table back from both and
    /// compares them. Refused while a lease on an infra is alive here
    /// (something is changing it: copy once it is done). The lease counter
    /// moves forward in `target`, never back.
    pub fn copy_to(&self, target: &StateStore) -> Result<CopyReport, StoreError> {
        let now = now_ms();
        for lease in self.leases()? {
            if lease.liveness(now) == Liveness::Alive {
                return Err(StoreError::CopyRefused(format!(
                    "infrastructure `{}` is being changed by {}; copy once it is done \
                     (or `occopus unlock` it if its holder is gone)",
                    lease.infra_id,
                    lease.describe(now)
                )));
            }
        }
        let source = all_rows(self)?;
        let epochs: i64 =
            self.read(|db| db.query_one("SELECT next FROM lease_epochs", &[])?.get(0))?;
        let postgres = target.backend.is_postgres();
        target.write(|db| {
            for (table, _, _) in TABLES {
                let count: i64 = db
                    .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
                    .get(0)?;
                if count > 0 {
                    return Err(StoreError::CopyRefused(format!(
                        "the target already holds {count} row(s) of `{table}`; copy into an empty \
                         database"
                    )));
                }
            }
            for ((table, columns, _), rows) in TABLES.iter().zip(&source) {
                let width = columns.split(',').count();
                let parameters: Vec<String> = (1..=width).map(|n| format!("?{n}")).collect();
                let insert = format!(
                    "INSERT INTO {table} ({columns}) VALUES ({})",
                    parameters.join(", ")
                );
                for row in rows {
                    db.execute(&insert, &row.0)?;
                }
            }
            if postgres {
                for (table, column) in NUMBERED {
                    db.query(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                             COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
                        ),
                        &[],
                    )?;
                }
            }
            db.execute(
                "UPDATE lease_epochs SET next = CASE WHEN next > ?1 THEN next ELSE ?1 END",
                &[Value::Integer(epochs)],
            )?;
            Ok(())
        })?;
        let copied = all_rows(target)?;
        for ((table, _, _), (written, read)) in TABLES.iter().zip(source.iter().zip(&copied)) {
            if written != read {
                return Err(StoreError::CopyRefused(format!(
                    "`{table}` reads back otherwise than it was copied ({} rows written, {} read); \
                     the target is not to be used",
                    written.len(),
                    read.len()
                )));
            }
        }
        Ok(CopyReport {
            tables: TABLES
                .iter()
                .zip(&source)
                .map(|((table, _, _), rows)| (table.to_string(), rows.len()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeaseHolder;
    use crate::records::{InfraSnapshot, InstanceRecord, InstanceState, NodeTarget};
    use crate::testing::TestDatabase;
    use std::time::Duration;

    /// A store with an infra, two instances, a target, a queued scaling
    /// request and events, its lease given back.
    async fn populated(store: &StateStore) {
        let me = LeaseHolder::this_process("occopus build");
        let lease = match store
            .try_acquire_lease("i1", &me, Duration::from_secs(30))
            .unwrap()
        {
            crate::Acquired::Granted { record, .. } => record,
            held => panic!("{held:?}"),
        };
        store
            .upsert_infra("i1", "demo", "ready", &InfraSnapshot::default())
            .unwrap();
        for seq in 1..=2 {
            let record = InstanceRecord {
                id: format!("web-{seq}"),
                infra_id: "i1".into(),
                node_name: "web".into(),
                seq,
                state: InstanceState::Creating,
                created_ms: now_ms(),
                ..InstanceRecord::default()
            };
            store.insert_intent(&record).await.unwrap();
            store
                .record_state("i1", &record.id, InstanceState::Ready, None, None)
                .await
                .unwrap();
        }
        store
            .set_node_target(
                "i1",
                &NodeTarget {
                    node_name: "web".into(),
                    target: Some(2),
                    failures: 0,
                    retry_after_ms: 0,
                },
            )
            .unwrap();
        store.queue_scale_request("i1", "web", 1, None).unwrap();
        store.release_lease("i1", lease.epoch).unwrap();
    }

    /// SQLite -> PostgreSQL -> SQLite: every table arrives as it was, the
    /// copies go on numbering events and requests after the copied ones,
    /// and a second copy into a non-empty database is refused.
    #[tokio::test]
    async fn a_state_round_trips_between_the_back_ends() {
        let [sqlite, postgres] = TestDatabase::each();
        let original = sqlite.open();
        populated(&original).await;
        let shared = postgres.open();
        let report = original.copy_to(&shared).unwrap();
        assert!(
            report.tables.contains(&("instances".to_string(), 2)),
            "{report:?}"
        );
        let back_db = TestDatabase::each().into_iter().next().unwrap();
        let back = back_db.open();
        shared.copy_to(&back).unwrap();
        for store in [&shared, &back] {
            assert_eq!(
                store.instances("i1").unwrap(),
                original.instances("i1").unwrap()
            );
            assert_eq!(store.events("i1").unwrap(), original.events("i1").unwrap());
            assert_eq!(
                store.scale_requests("i1").unwrap(),
                original.scale_requests("i1").unwrap()
            );
            // New numbers come after the copied ones.
            let seq = store.queue_scale_request("i1", "web", 1, None).unwrap();
            assert!(seq > original.scale_requests("i1").unwrap()[0].seq);
        }
        let refused = original.copy_to(&shared).unwrap_err();
        assert!(
            refused.to_string().contains("copy into an empty database"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_state_being_changed_is_not_copied() {
        let [sqlite, postgres] = TestDatabase::each();
        let store = sqlite.open();
        let me = LeaseHolder::this_process("occopus maintain");
        store
            .try_acquire_lease("i1", &me, Duration::from_secs(30))
            .unwrap();
        let refused = store.copy_to(&postgres.open()).unwrap_err();
        assert!(
            refused.to_string().contains("occopus maintain"),
            "{refused}"
        );
    }
}
