//! Each node's wanted count and healing backoff, and the queued scaling
//! requests.

use crate::error::StoreError;
use crate::records::{NodeTarget, ScaleRequest};
use crate::sql::values;
use crate::state_store::StateStore;
use occopus_types::now_ms;

impl StateStore {
    /// The nodes' targets of an infra, by node name (nodes never scaled or
    /// healed have none: their target is their `scaling.min`).
    pub fn node_targets(&self, infra_id: &str) -> Result<Vec<NodeTarget>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                "SELECT node_name, target, failures, retry_after_ms FROM node_targets WHERE infra_id = ?1 ORDER BY node_name",
                values![infra_id],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(NodeTarget {
                    node_name: row.get(0)?,
                    target: row.get(1)?,
                    failures: row.get(2)?,
                    retry_after_ms: row.get(3)?,
                })
            })
            .collect()
    }

    /// Sets a node's target and backoff.
    pub fn set_node_target(&self, infra_id: &str, target: &NodeTarget) -> Result<(), StoreError> {
        self.fenced(infra_id, |db| {
            db.execute(
                "INSERT INTO node_targets (infra_id, node_name, target, failures, retry_after_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (infra_id, node_name) DO UPDATE SET target = ?3, failures = ?4, retry_after_ms = ?5",
                values![
                    infra_id,
                    &target.node_name,
                    target.target,
                    target.failures,
                    target.retry_after_ms
                ],
            )
            .map(drop)
        })
    }

    /// Forgets the target of a node no longer in the description.
    pub fn delete_node_target(&self, infra_id: &str, node_name: &str) -> Result<(), StoreError> {
        self.fenced(infra_id, |db| {
            db.execute(
                "DELETE FROM node_targets WHERE infra_id = ?1 AND node_name = ?2",
                values![infra_id, node_name],
            )
            .map(drop)
        })
    }

    /// Queues a scaling request, and logs it, in one transaction; returns
    /// its number. Needs no lease: the queue is how a request reaches the
    /// infra's maintenance, whoever holds it.
    pub fn queue_scale_request(
        &self,
        infra_id: &str,
        node_name: &str,
        change: i64,
        instance: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        self.write(|db| {
            let seq: i64 = db
                .query_one(
                    "INSERT INTO scale_requests (infra_id, node_name, change, instance_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                     RETURNING seq",
                    values![infra_id, node_name, change, instance, now],
                )?
                .get(0)?;
            db.execute(
                "INSERT INTO events (infra_id, instance_id, time_ms, message) VALUES (?1, NULL, ?2, ?3)",
                values![
                    infra_id,
                    now,
                    format!("scaling request {seq} queued: node `{node_name}` {change:+}")
                ],
            )?;
            Ok(seq)
        })
    }

    /// The queued scaling requests of an infra, oldest first.
    pub fn scale_requests(&self, infra_id: &str) -> Result<Vec<ScaleRequest>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                "SELECT seq, node_name, change, instance_id, created_ms FROM scale_requests WHERE infra_id = ?1 ORDER BY seq",
                values![infra_id],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(ScaleRequest {
                    seq: row.get(0)?,
                    node_name: row.get(1)?,
                    change: row.get(2)?,
                    instance: row.get(3)?,
                    created_ms: row.get(4)?,
                })
            })
            .collect()
    }

    /// Removes a handled scaling request.
    pub fn delete_scale_request(&self, infra_id: &str, seq: i64) -> Result<(), StoreError> {
        self.fenced(infra_id, |db| {
            db.execute("DELETE FROM scale_requests WHERE seq = ?1", values![seq])
                .map(drop)
        })
    }
}
