//! Each infra's event log.

use crate::error::StoreError;
use crate::records::EventRecord;
use crate::sql::{Sql, Value, values};
use crate::state_store::StateStore;
use occopus_types::now_ms;

/// Logs `message` about instance `id` (prefixed with its node and id).
pub(crate) fn log_instance_event(
    db: &mut dyn Sql,
    id: &str,
    message: &str,
    time_ms: i64,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO events (infra_id, instance_id, time_ms, message)
         SELECT infra_id, id, ?2, node_name || ' ' || id || ': ' || ?3 FROM instances WHERE id = ?1",
        values![id, time_ms, message],
    )
    .map(drop)
}

impl StateStore {
    /// Appends to the infra's event log.
    pub fn log_event(
        &self,
        infra_id: &str,
        instance_id: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        self.log_events(infra_id, &[(instance_id, message.to_string())])
    }

    /// Appends several events (instance, message) in one transaction, a
    /// hundred rows per statement (a plan of a thousand changes is ten
    /// round trips to a database server, not a thousand).
    pub fn log_events(
        &self,
        infra_id: &str,
        events: &[(Option<&str>, String)],
    ) -> Result<(), StoreError> {
        const ROWS_PER_STATEMENT: usize = 100;
        let now = now_ms();
        self.fenced(infra_id, |db| {
            for chunk in events.chunks(ROWS_PER_STATEMENT) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| format!("(?1, ?{}, ?2, ?{})", 3 + 2 * i, 4 + 2 * i))
                    .collect();
                let mut params = vec![Value::from(infra_id), Value::from(now)];
                for (instance_id, message) in chunk {
                    params.push(Value::from(*instance_id));
                    params.push(Value::from(message));
                }
                db.execute(
                    &format!(
                        "INSERT INTO events (infra_id, instance_id, time_ms, message) VALUES {}",
                        rows.join(", ")
                    ),
                    &params,
                )?;
            }
            Ok(())
        })
    }

    /// The infra's event log, oldest first.
    pub fn events(&self, infra_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let rows = self.read(|db| {
            db.query(
                "SELECT time_ms, instance_id, message FROM events WHERE infra_id = ?1 ORDER BY seq",
                values![infra_id],
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    time_ms: row.get(0)?,
                    instance_id: row.get(1)?,
                    message: row.get(2)?,
                })
            })
            .collect()
    }
}
