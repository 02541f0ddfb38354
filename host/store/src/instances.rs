//! Node instances: the intent written before a create, the cloud id and
//! state after, health, and their removal once destroyed. The writes the
//! engine makes per instance go through the group committer.

use crate::error::StoreError;
use crate::events::log_instance_event;
use crate::records::{Health, HealthStatus, InstanceCount, InstanceRecord, InstanceState};
use crate::sql::{Row, Value, values};
use crate::state_store::StateStore;
use occopus_types::{InstanceAddresses, now_ms};
use std::collections::BTreeMap;

/// What health checks found of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthObserved {
    /// The instance.
    pub id: String,
    /// Whether its checks passed.
    pub healthy: bool,
    /// Why they failed, when they did.
    pub detail: Option<String>,
    /// Its record says this already (only the check time is written).
    pub unchanged: bool,
}

impl HealthObserved {
    /// What the checks found of instance `id`, compared with its record's
    /// `health`.
    pub fn of(id: &str, healthy: bool, detail: Option<String>, health: &Health) -> Self {
        let status = if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Failing
        };
        HealthObserved {
            id: id.to_string(),
            unchanged: health.status == status && health.detail == detail,
            healthy,
            detail,
        }
    }
}

pub(crate) const INSTANCE_COLUMNS: &str = "id, infra_id, node_name, seq, resource, cloud_id, state, addresses, error, created_ms, updated_ms, fingerprint, health, health_detail, checked_ms, failing_since_ms, rendered";

fn instance(row: &Row) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: row.get(0)?,
        infra_id: row.get(1)?,
        node_name: row.get(2)?,
        seq: row.get(3)?,
        resource: serde_json::from_str(&row.get::<String>(4)?)?,
        cloud_id: row.get(5)?,
        state: InstanceState::parse(&row.get::<String>(6)?),
        addresses: serde_json::from_str(&row.get::<String>(7)?)?,
        error: row.get(8)?,
        created_ms: row.get(9)?,
        updated_ms: row.get(10)?,
        fingerprint: row.get(11)?,
        health: Health {
            status: HealthStatus::parse(&row.get::<String>(12)?),
            detail: row.get(13)?,
            checked_ms: row.get(14)?,
            failing_since_ms: row.get(15)?,
        },
        rendered: row.get(16)?,
    })
}

impl StateStore {
    /// Writes an instance's intent, before the call that creates it.
    pub async fn insert_intent(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        // The row's values, made here: the write runs on the writer thread,
        // and the whole record (its resource map) need not be copied there.
        let row: [Value; 9] = [
            Value::from(record.id.as_str()),
            Value::from(record.infra_id.as_str()),
            Value::from(record.node_name.as_str()),
            Value::from(record.seq),
            Value::from(serde_json::to_string(&record.resource)?),
            Value::from(record.state.as_str()),
            Value::from(record.created_ms),
            Value::from(record.fingerprint.as_deref()),
            Value::from(record.rendered.as_deref()),
        ];
        self.fenced_write(&record.infra_id, move |db| {
                db.execute(
                    "INSERT INTO instances (id, infra_id, node_name, seq, resource, state, created_ms, updated_ms, fingerprint, rendered)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
                    &row,
                )
                .map(drop)
            })
            .await
    }

    /// Records the cloud id a create returned (or that `list` found).
    pub async fn record_cloud_id(
        &self,
        infra_id: &str,
        id: &str,
        cloud_id: &str,
    ) -> Result<(), StoreError> {
        let (id, cloud_id) = (id.to_string(), cloud_id.to_string());
        self.fenced_write(infra_id, move |db| {
                db.execute(
                    "UPDATE instances SET cloud_id = ?2, state = CASE WHEN state = 'creating' THEN 'pending' ELSE state END,
                     updated_ms = ?3 WHERE id = ?1",
                    values![id, cloud_id, now_ms()],
                )
                .map(drop)
            })
            .await
    }

    /// Records a state, with the addresses and error that go with it; a
    /// state worth remembering (ready, failed) is logged in the same
    /// transaction.
    pub async fn record_state(
        &self,
        infra_id: &str,
        id: &str,
        state: InstanceState,
        addresses: Option<&InstanceAddresses>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let address_json = addresses.map(serde_json::to_string).transpose()?;
        let event = match state {
            InstanceState::Ready => Some(format!(
                "ready{}",
                addresses
                    .and_then(|a| a.primary())
                    .map(|a| format!(" at {a}"))
                    .unwrap_or_default()
            )),
            InstanceState::Failed => Some(format!("failed: {}", error.unwrap_or("unknown reason"))),
            _ => None,
        };
        let (id, error) = (id.to_string(), error.map(str::to_string));
        self.fenced_write(infra_id, move |db| {
                let now = now_ms();
                db.execute(
                    "UPDATE instances SET state = ?2, addresses = COALESCE(?3, addresses), error = ?4, updated_ms = ?5
                     WHERE id = ?1",
                    values![&id, state.as_str(), address_json, error, now],
                )?;
                match &event {
                    Some(event) => log_instance_event(db, &id, event, now),
                    None => Ok(()),
                }
            })
            .await
    }

    /// Forgets a destroyed instance (and logs that it was destroyed).
    pub async fn delete_instance(&self, infra_id: &str, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.fenced_write(infra_id, move |db| {
            log_instance_event(db, &id, "destroyed", now_ms())?;
            db.execute("DELETE FROM instances WHERE id = ?1", values![&id])
                .map(drop)
        })
        .await
    }

    /// Records the outcome of an instance's health checks: a pass clears the
    /// failure time, a failure keeps the first one.
    pub async fn record_health(
        &self,
        infra_id: &str,
        id: &str,
        healthy: bool,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let observed = HealthObserved {
            id: id.to_string(),
            healthy,
            detail: detail.map(str::to_string),
            unchanged: false,
        };
        self.record_health_checks(infra_id, vec![observed]).await
    }

    /// Records what a maintenance pass's health checks found, in one write:
    /// the instances grouped by what is written (only the check time for
    /// those whose record says so already; the health for the others), a few
    /// hundred per statement. At 10,000 instances, a write per instance was
    /// most of a pass.
    pub async fn record_health_checks(
        &self,
        infra_id: &str,
        observed: Vec<HealthObserved>,
    ) -> Result<(), StoreError> {
        const IDS_PER_STATEMENT: usize = 500;
        if observed.is_empty() {
            return Ok(());
        }
        self.fenced_write(infra_id, move |db| {
            let now = now_ms();
            // (unchanged, healthy, detail) -> instance ids.
            let mut groups: BTreeMap<(bool, bool, Option<&str>), Vec<&str>> = BTreeMap::new();
            for instance in &observed {
                let key = if instance.unchanged {
                    (true, true, None)
                } else {
                    (false, instance.healthy, instance.detail.as_deref())
                };
                groups.entry(key).or_default().push(&instance.id);
            }
            for ((unchanged, healthy, detail), ids) in groups {
                let (set, fixed) = if unchanged {
                    ("checked_ms = ?1", vec![Value::from(now)])
                } else {
                    let status = if healthy {
                        HealthStatus::Healthy
                    } else {
                        HealthStatus::Failing
                    };
                    (
                        "health = ?1, health_detail = ?2, checked_ms = ?3, failing_since_ms = \
                         CASE WHEN ?1 = 'healthy' THEN NULL ELSE COALESCE(failing_since_ms, ?3) END",
                        vec![Value::from(status.as_str()), Value::from(detail), Value::from(now)],
                    )
                };
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let list: Vec<String> = (0..chunk.len())
                        .map(|i| format!("?{}", fixed.len() + i + 1))
                        .collect();
                    let mut params = fixed.clone();
                    params.extend(chunk.iter().map(|id| Value::from(*id)));
                    db.execute(
                        &format!(
                            "UPDATE instances SET {set} WHERE id IN ({})",
                            list.join(", ")
                        ),
                        &params,
                    )?;
                }
            }
            Ok(())
        })
        .await
    }

    /// How many instances each node of each infra has in each state, in
    /// one grouped read (the service's metrics).
    pub fn instance_census(&self) -> Result<Vec<InstanceCount>, StoreError> {
        self.read(|db| {
            db.query(
                "SELECT infra_id, node_name, state, COUNT(*) FROM instances
                 GROUP BY infra_id, node_name, state ORDER BY infra_id, node_name, state",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(InstanceCount {
                    infra_id: row.get(0)?,
                    node: row.get(1)?,
                    state: row.get(2)?,
                    count: row.get(3)?,
                })
            })
            .collect()
        })
    }

    /// The instances of an infra, by node and number.
    pub fn instances(&self, infra_id: &str) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                &format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances WHERE infra_id = ?1 ORDER BY node_name, seq"
                ),
                values![infra_id],
            )
        })?;
        rows.iter().map(instance).collect()
    }

    /// The next free instance number of a node (numbers are never reused
    /// while the infra exists).
    pub fn next_seq(&self, infra_id: &str, node_name: &str) -> Result<u32, StoreError> {
        self.read(|db| {
            db.query_one(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM instances WHERE infra_id = ?1 AND node_name = ?2",
                values![infra_id, node_name],
            )?
            .get(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::InfraSnapshot;
    use crate::testing::TestDatabase;

    fn intent(id: &str, seq: u32) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            infra_id: "i1".into(),
            node_name: "web".into(),
            seq,
            resource: serde_json::Map::new(),
            cloud_id: None,
            state: InstanceState::Creating,
            addresses: InstanceAddresses::default(),
            error: None,
            created_ms: now_ms(),
            ..InstanceRecord::default()
        }
    }

    #[tokio::test]
    async fn concurrent_writes_commit_together_and_a_failing_one_alone_is_rolled_back() {
        for db in TestDatabase::each() {
            let store = db.open_with_infra();
            concurrent_writes_on(&store, db.kind()).await;
        }
    }

    async fn concurrent_writes_on(store: &StateStore, kind: &str) {
        store.insert_intent(&intent("web-0", 0)).await.unwrap();
        let records: Vec<InstanceRecord> =
            (1..=200).map(|n| intent(&format!("web-{n}"), n)).collect();
        let duplicate = intent("web-0", 0);
        let (many, clash) = tokio::join!(
            futures::future::join_all(records.iter().map(|r| store.insert_intent(r))),
            store.insert_intent(&duplicate),
        );
        assert!(many.iter().all(Result::is_ok), "{many:?}");
        let clash = clash.expect_err("a second intent with the same id must fail");
        assert!(
            clash.to_string().to_lowercase().contains("unique"),
            "{kind}: {clash}"
        );
        assert_eq!(store.instances("i1").unwrap().len(), 201, "{kind}");
    }

    /// The metrics' counts: instances by infra, node and state, infras by
    /// status, one grouped read each, on both back-ends.
    #[tokio::test]
    async fn instances_and_infras_are_counted_by_state() {
        for db in TestDatabase::each() {
            let store = three_web_intents(&db).await;
            store
                .record_state("i1", "web-2", InstanceState::Ready, None, None)
                .await
                .unwrap();
            let census: Vec<(String, String, i64)> = store
                .instance_census()
                .unwrap()
                .into_iter()
                .map(|c| (c.node, c.state, c.count))
                .collect();
            assert_eq!(
                census,
                [
                    ("web".into(), "creating".into(), 2),
                    ("web".into(), "ready".into(), 1)
                ],
                "{}",
                db.kind()
            );
            let infras = store.infra_census().unwrap();
            assert_eq!(
                infras.iter().map(|(_, n)| n).sum::<i64>(),
                1,
                "{}",
                db.kind()
            );
        }
    }

    #[tokio::test]
    async fn intents_results_and_deletion_round_trip() {
        for db in TestDatabase::each() {
            round_trip_on(&db).await;
        }
    }

    async fn round_trip_on(db: &TestDatabase) {
        let store = db.open_with_infra();
        let mut record = intent("web-1", store.next_seq("i1", "web").unwrap());
        record.resource = serde_json::json!({"type": "dummy"})
            .as_object()
            .unwrap()
            .clone();
        store.insert_intent(&record).await.unwrap();
        assert_eq!(store.next_seq("i1", "web").unwrap(), 2);
        store.record_cloud_id("i1", "web-1", "c-1").await.unwrap();
        let addresses = InstanceAddresses {
            public: vec!["10.0.0.1".into()],
            private: vec![],
        };
        store
            .record_state("i1", "web-1", InstanceState::Ready, Some(&addresses), None)
            .await
            .unwrap();
        let stored = &store.instances("i1").unwrap()[0];
        assert_eq!(stored.cloud_id.as_deref(), Some("c-1"));
        assert_eq!(stored.state, InstanceState::Ready);
        assert_eq!(stored.addresses, addresses);
        assert_eq!(stored.resource_type(), "dummy");
        let events = store.events("i1").unwrap();
        assert_eq!(
            events.last().unwrap().message,
            "web web-1: ready at 10.0.0.1"
        );
        // Reopening keeps everything (migrations are not re-run).
        let epoch = store.lease("i1").unwrap().unwrap().epoch;
        store.release_lease("i1", epoch).unwrap();
        drop(store);
        let store = db.open();
        assert_eq!(store.instances("i1").unwrap().len(), 1);
        let me = crate::LeaseHolder::this_process("occopus destroy");
        store
            .try_acquire_lease("i1", &me, std::time::Duration::from_secs(30))
            .unwrap();
        store.delete_infra("i1").unwrap();
        assert!(
            store.instances("i1").unwrap().is_empty(),
            "instances go with their infra"
        );
    }

    /// A pass's health checks in one write: the check time of every
    /// instance moves; the health only where it changed, a failure keeping
    /// when it began until a pass clears it.
    #[tokio::test]
    async fn a_pass_s_health_checks_are_recorded_together() {
        for db in TestDatabase::each() {
            health_checks_on(&db).await;
        }
    }

    /// A store with the infra and three intents, `web-0`..`web-2`.
    async fn three_web_intents(db: &TestDatabase) -> StateStore {
        let store = db.open_with_infra();
        for n in 0..3 {
            store
                .insert_intent(&intent(&format!("web-{n}"), n))
                .await
                .unwrap();
        }
        store
    }

    async fn health_checks_on(db: &TestDatabase) {
        let store = three_web_intents(db).await;
        let health = |id: &str| {
            let all = store.instances("i1").unwrap();
            all.into_iter().find(|i| i.id == id).unwrap().health
        };
        let pass = |results: [(bool, Option<&str>); 3]| {
            let observed: Vec<HealthObserved> = results
                .iter()
                .enumerate()
                .map(|(n, (healthy, detail))| {
                    let id = format!("web-{n}");
                    HealthObserved::of(&id, *healthy, detail.map(str::to_string), &health(&id))
                })
                .collect();
            store.record_health_checks("i1", observed)
        };
        let down = Some("port 80: refused");
        pass([(true, None), (false, down), (false, down)])
            .await
            .unwrap();
        let first = [health("web-0"), health("web-1"), health("web-2")];
        assert_eq!(first[0].status, HealthStatus::Healthy);
        assert_eq!(first[1].status, HealthStatus::Failing);
        assert_eq!(first[1].detail.as_deref(), down);
        let failing_since = first[1].failing_since_ms.expect("failing since the pass");
        std::thread::sleep(std::time::Duration::from_millis(5));

        // Unchanged (web-0, web-1) and changed back (web-2).
        pass([(true, None), (false, down), (true, None)])
            .await
            .unwrap();
        let second = [health("web-0"), health("web-1"), health("web-2")];
        for (before, after) in first.iter().zip(&second) {
            assert!(
                after.checked_ms > before.checked_ms,
                "{before:?} -> {after:?}"
            );
        }
        assert_eq!(second[0].status, HealthStatus::Healthy);
        assert_eq!(second[1].failing_since_ms, Some(failing_since));
        assert_eq!(second[2].status, HealthStatus::Healthy);
        assert_eq!(second[2].failing_since_ms, None);
        assert_eq!(second[2].detail, None);
    }

    /// The tag moves with every write about the infra, in either path, and
    /// not with reads; an infra rebuilt under the same id gets another one.
    #[tokio::test]
    async fn an_infra_s_tag_moves_with_its_writes() {
        for db in TestDatabase::each() {
            tag_moves_on(&db).await;
        }
    }

    async fn tag_moves_on(db: &TestDatabase) {
        let store = db.open_with_infra();
        let first = store.infra_tag("i1").unwrap().unwrap();
        assert_eq!(store.infra_tag("i1").unwrap().unwrap(), first);
        store.insert_intent(&intent("web-1", 1)).await.unwrap();
        let second = store.infra_tag("i1").unwrap().unwrap();
        assert_ne!(second, first);
        store.instances("i1").unwrap();
        assert_eq!(store.infra_tag("i1").unwrap().unwrap(), second);
        store.set_infra_status("i1", "ready").unwrap();
        let third = store.infra_tag("i1").unwrap().unwrap();
        assert_ne!(third, second);
        store.delete_infra("i1").unwrap();
        assert_eq!(store.infra_tag("i1").unwrap(), None);
        std::thread::sleep(std::time::Duration::from_millis(2));
        store
            .upsert_infra("i1", "demo", "building", &InfraSnapshot::default())
            .unwrap();
        let rebuilt = store.infra_tag("i1").unwrap().unwrap();
        assert!(![first, second, third].contains(&rebuilt), "{rebuilt}");

        // The list's tag: moved by a service request, not by a read.
        let listed = store.list_tag().unwrap();
        assert_eq!(store.list_tag().unwrap(), listed);
        store
            .request_service_operation("i1", "", crate::ServiceOperation::Maintain)
            .unwrap();
        let managed = store.list_tag().unwrap();
        assert_ne!(managed, listed);
        store
            .request_service_operation("i1", "", crate::ServiceOperation::Destroy)
            .unwrap();
        assert_ne!(store.list_tag().unwrap(), managed);
    }
}
