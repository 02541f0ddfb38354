//! occopus's state: infrastructures, their node instances, imported node
//! definitions and an event log, in one SQLite database.
//!
//! The engine writes an instance's *intent* (its id, node and target) before
//! the cloud call that creates it and the *result* after, each committed
//! before the engine goes on (writes from concurrent instances share a commit:
//! see `store/committer.rs`), so that a process killed at any instant leaves a
//! record of every machine it may have made. Running the command again reads
//! these records and finishes the job.

use crate::sqlite;
use crate::template::InstanceAddresses;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod committer;

const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE infras (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        status      TEXT NOT NULL,
        snapshot    TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE TABLE instances (
        id          TEXT PRIMARY KEY,
        infra_id    TEXT NOT NULL REFERENCES infras (id) ON DELETE CASCADE,
        node_name   TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        resource    TEXT NOT NULL,
        cloud_id    TEXT,
        state       TEXT NOT NULL,
        addresses   TEXT NOT NULL DEFAULT '{\"public\":[],\"private\":[]}',
        error       TEXT,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE INDEX instances_by_infra ON instances (infra_id, node_name, seq);
    CREATE TABLE node_definitions (
        node_type       TEXT PRIMARY KEY,
        implementations TEXT NOT NULL,
        source          TEXT NOT NULL,
        imported_ms     INTEGER NOT NULL
    );
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        infra_id    TEXT NOT NULL,
        instance_id TEXT,
        time_ms     INTEGER NOT NULL,
        message     TEXT NOT NULL
    );
    CREATE INDEX events_by_infra ON events (infra_id, seq);
",
    "
    ALTER TABLE instances ADD COLUMN fingerprint TEXT;
    ALTER TABLE instances ADD COLUMN health TEXT NOT NULL DEFAULT 'unchecked';
    ALTER TABLE instances ADD COLUMN health_detail TEXT;
    ALTER TABLE instances ADD COLUMN checked_ms INTEGER;
    ALTER TABLE instances ADD COLUMN failing_since_ms INTEGER;
    CREATE TABLE node_targets (
        infra_id        TEXT NOT NULL REFERENCES infras (id) ON DELETE CASCADE,
        node_name       TEXT NOT NULL,
        target          INTEGER,
        failures        INTEGER NOT NULL DEFAULT 0,
        retry_after_ms  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (infra_id, node_name)
    );
    CREATE TABLE scale_requests (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        infra_id    TEXT NOT NULL REFERENCES infras (id) ON DELETE CASCADE,
        node_name   TEXT NOT NULL,
        change      INTEGER NOT NULL,
        instance_id TEXT,
        created_ms  INTEGER NOT NULL
    );
",
    "
    CREATE TABLE service_infras (
        infra_id    TEXT PRIMARY KEY,
        description TEXT NOT NULL,
        operation   TEXT NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
",
];

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state database {path} cannot be used: {source}; check the path and permissions, or pass --state FILE"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the state database failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "the state database could not commit: {0}; check the disk has space and the file is writable"
    )]
    Commit(String),
    #[error("a record in the state database is damaged: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// What state an instance is in, as recorded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Intent written; the create call may or may not have happened.
    #[default]
    Creating,
    /// The cloud made it; it is booting.
    Pending,
    /// The cloud reports it running; health checks not passed yet.
    Running,
    /// Running and healthy: dependents may start.
    Ready,
    /// It failed (cloud, boot or health checks); see the error.
    Failed,
    /// Being destroyed.
    Destroying,
}

impl InstanceState {
    /// Whether it still holds a cloud resource worth keeping (not failed,
    /// not being destroyed).
    pub fn is_live(self) -> bool {
        !matches!(self, InstanceState::Failed | InstanceState::Destroying)
    }

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Creating => "creating",
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Ready => "ready",
            InstanceState::Failed => "failed",
            InstanceState::Destroying => "destroying",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "creating" => InstanceState::Creating,
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "ready" => InstanceState::Ready,
            "destroying" => InstanceState::Destroying,
            _ => InstanceState::Failed,
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an instance's health checks said last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `unchecked`, `healthy` or `failing`.
    pub status: HealthStatus,
    /// Why it is failing, when it is.
    pub detail: Option<String>,
    /// When the checks last ran, ms since the epoch.
    pub checked_ms: Option<i64>,
    /// Since when the checks have failed without a pass in between.
    pub failing_since_ms: Option<i64>,
}

/// The outcome of an instance's last health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Not checked yet.
    #[default]
    Unchecked,
    /// Every check passed.
    Healthy,
    /// A check failed.
    Failing,
}

impl HealthStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unchecked => "unchecked",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Failing => "failing",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "healthy" => HealthStatus::Healthy,
            "failing" => HealthStatus::Failing,
            _ => HealthStatus::Unchecked,
        }
    }
}

/// A node's wanted instance count and its healing backoff.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTarget {
    /// The node.
    pub node_name: String,
    /// How many instances it should have (kept within its scaling limits),
    /// once it was scaled; until then it follows `scaling.min`.
    pub target: Option<u32>,
    /// Failed creations or replacements in a row.
    pub failures: u32,
    /// No new attempt before this time, ms since the epoch.
    pub retry_after_ms: i64,
}

/// A queued request to scale a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Its number (requests apply in this order).
    pub seq: i64,
    /// The node.
    pub node_name: String,
    /// +N or -N instances.
    pub change: i64,
    /// With -1: the instance to remove (by id or address).
    pub instance: Option<String>,
    /// When it was made.
    pub created_ms: i64,
}

/// One node instance's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance id: unique, and the driver's idempotency key.
    pub id: String,
    /// The infra it belongs to.
    pub infra_id: String,
    /// The node it is an instance of.
    pub node_name: String,
    /// Its number among the node's instances (creation order).
    pub seq: u32,
    /// The rendered resource section it was created with (no credentials).
    pub resource: serde_json::Map<String, serde_json::Value>,
    /// The cloud's id for it, once the create call returned.
    pub cloud_id: Option<String>,
    /// Its state.
    pub state: InstanceState,
    /// Its addresses, once known.
    pub addresses: InstanceAddresses,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When the intent was written, ms since the epoch.
    pub created_ms: i64,
    /// When the record last changed.
    pub updated_ms: i64,
    /// What its node's description and definition were when it was made
    /// (a digest); an instance whose node changed since is replaced.
    pub fingerprint: Option<String>,
    /// Its last health checks.
    pub health: Health,
}

impl InstanceRecord {
    /// Whether it is live and `chosen` is its id or one of its addresses
    /// (how a scale-down names the instance to remove).
    pub fn is_live_and_named(&self, chosen: &str) -> bool {
        self.state.is_live() && (self.id == chosen || self.addresses.contains(chosen))
    }

    /// `resource.type`.
    pub fn resource_type(&self) -> &str {
        self.resource
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
    }
}

/// One infrastructure's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfraRecord {
    /// The infra id.
    pub id: String,
    /// `infra_name`.
    pub name: String,
    /// building, ready, failed, interrupted, destroying.
    pub status: String,
    /// What was last built: nodes, their scaling and dependencies.
    pub snapshot: InfraSnapshot,
    /// When it was first built.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

/// The parts of a description the store needs after the files are gone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InfraSnapshot {
    /// `user_id`.
    pub user_id: Option<String>,
    /// The nodes.
    pub nodes: Vec<NodeSnapshot>,
    /// The description and definitions it was built from (see
    /// `Model::to_stored`), so it can be maintained without its files.
    #[serde(default)]
    pub description: Option<serde_json::Value>,
}

/// A node as built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// What shaped its instances (see `Model::node_basis`), for plans to
    /// say what changed.
    #[serde(default)]
    pub basis: Option<serde_json::Value>,
    /// Its name.
    pub name: String,
    /// Its node type.
    pub node_type: String,
    /// Its scaling limits.
    pub scaling: crate::model::Scaling,
    /// The nodes it depends on.
    pub dependencies: Vec<String>,
}

/// A logged event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When, ms since the epoch.
    pub time_ms: i64,
    /// The instance concerned, if one.
    pub instance_id: Option<String>,
    /// What happened.
    pub message: String,
}

/// The state database. Share it behind an `Arc`; calls are short
/// transactions, and the engine's per-instance writes (the async ones) are
/// group-committed by a writer thread.
pub struct Store {
    connection: Arc<Mutex<Connection>>,
    committer: committer::Committer,
}

const INSTANCE_COLUMNS: &str = "id, infra_id, node_name, seq, resource, cloud_id, state, addresses, error, created_ms, updated_ms, fingerprint, health, health_detail, checked_ms, failing_since_ms";

fn instance(row: &rusqlite::Row<'_>) -> rusqlite::Result<(InstanceRecord, String, String)> {
    Ok((
        InstanceRecord {
            id: row.get(0)?,
            infra_id: row.get(1)?,
            node_name: row.get(2)?,
            seq: row.get(3)?,
            resource: serde_json::Map::new(),
            cloud_id: row.get(5)?,
            state: InstanceState::parse(&row.get::<_, String>(6)?),
            addresses: InstanceAddresses::default(),
            error: row.get(8)?,
            created_ms: row.get(9)?,
            updated_ms: row.get(10)?,
            fingerprint: row.get(11)?,
            health: Health {
                status: HealthStatus::parse(&row.get::<_, String>(12)?),
                detail: row.get(13)?,
                checked_ms: row.get(14)?,
                failing_since_ms: row.get(15)?,
            },
        },
        row.get(4)?,
        row.get(7)?,
    ))
}

fn decode(
    (mut record, resource, addresses): (InstanceRecord, String, String),
) -> Result<InstanceRecord, StoreError> {
    record.resource = serde_json::from_str(&resource)?;
    record.addresses = serde_json::from_str(&addresses)?;
    Ok(record)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Logs `message` about instance `id` (prefixed with its node and id).
fn log_instance_event(
    connection: &Connection,
    id: &str,
    message: &str,
    time_ms: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO events (infra_id, instance_id, time_ms, message)
             SELECT infra_id, id, ?2, node_name || ' ' || id || ': ' || ?3 FROM instances WHERE id = ?1",
        )?
        .execute(params![id, time_ms, message])
        .map(drop)
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let connection =
            sqlite::open_migrated(path, MIGRATIONS).map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let connection = Arc::new(Mutex::new(connection));
        let committer =
            committer::Committer::start(connection.clone()).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Store {
            connection,
            committer,
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        Ok(sqlite::with(&self.connection, f)?)
    }

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

    /// Records what the REST service is doing to an infra it manages
    /// (`build`, `maintain`, `destroy`), and the description it was posted
    /// with, so that a restarted service resumes it.
    pub fn set_service_operation(
        &self,
        infra_id: &str,
        description: &str,
        operation: &str,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO service_infras (infra_id, description, operation, updated_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (infra_id) DO UPDATE SET operation = ?3, updated_ms = ?4",
                params![infra_id, description, operation, now_ms()],
            )
            .map(drop)
        })
    }

    /// Forgets an infra the REST service no longer manages (destroyed).
    pub fn forget_service_infra(&self, infra_id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM service_infras WHERE infra_id = ?1",
                params![infra_id],
            )
            .map(drop)
        })
    }

    /// The infras the REST service manages: (id, posted description, operation).
    pub fn service_infras(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.with(|c| {
            c.prepare(
                "SELECT infra_id, description, operation FROM service_infras ORDER BY updated_ms",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
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
        self.with(|c| {
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
        self.with(|c| {
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

    /// Deletes an infra with its instances (after they were destroyed).
    pub fn delete_infra(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM infras WHERE id = ?1", [id])
                .map(drop)
        })
    }

    /// Writes an instance's intent, before the call that creates it.
    pub async fn insert_intent(&self, record: &InstanceRecord) -> Result<(), StoreError> {
        let resource = serde_json::to_string(&record.resource)?;
        let record = record.clone();
        self.committer
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO instances (id, infra_id, node_name, seq, resource, state, created_ms, updated_ms, fingerprint)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                )?
                .execute(params![
                    record.id,
                    record.infra_id,
                    record.node_name,
                    record.seq,
                    resource,
                    record.state.as_str(),
                    record.created_ms,
                    record.fingerprint
                ])
                .map(drop)
            })
            .await
    }

    /// Records the cloud id a create returned (or that `list` found).
    pub async fn record_cloud_id(&self, id: &str, cloud_id: &str) -> Result<(), StoreError> {
        let (id, cloud_id) = (id.to_string(), cloud_id.to_string());
        self.committer
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE instances SET cloud_id = ?2, state = CASE WHEN state = 'creating' THEN 'pending' ELSE state END,
                     updated_ms = ?3 WHERE id = ?1",
                )?
                .execute(params![id, cloud_id, now_ms()])
                .map(drop)
            })
            .await
    }

    /// Records a state, with the addresses and error that go with it; a
    /// state worth remembering (ready, failed) is logged in the same
    /// transaction.
    pub async fn record_state(
        &self,
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
        self.committer
            .write(move |c| {
                let now = now_ms();
                c.prepare_cached(
                    "UPDATE instances SET state = ?2, addresses = COALESCE(?3, addresses), error = ?4, updated_ms = ?5
                     WHERE id = ?1",
                )?
                .execute(params![id, state.as_str(), address_json, error, now])?;
                match &event {
                    Some(event) => log_instance_event(c, &id, event, now),
                    None => Ok(()),
                }
            })
            .await
    }

    /// Forgets a destroyed instance (and logs that it was destroyed).
    pub async fn delete_instance(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.committer
            .write(move |c| {
                log_instance_event(c, &id, "destroyed", now_ms())?;
                c.execute("DELETE FROM instances WHERE id = ?1", [&id])
                    .map(drop)
            })
            .await
    }

    /// Records the outcome of an instance's health checks: a pass clears the
    /// failure time, a failure keeps the first one.
    pub async fn record_health(
        &self,
        id: &str,
        healthy: bool,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let (id, detail) = (id.to_string(), detail.map(str::to_string));
        let status = if healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Failing
        };
        self.committer
            .write(move |c| {
                let now = now_ms();
                c.prepare_cached(
                    "UPDATE instances SET health = ?2, health_detail = ?3, checked_ms = ?4,
                     failing_since_ms = CASE WHEN ?2 = 'healthy' THEN NULL ELSE COALESCE(failing_since_ms, ?4) END
                     WHERE id = ?1",
                )?
                .execute(params![id, status.as_str(), detail, now])
                .map(drop)
            })
            .await
    }

    /// The nodes' targets of an infra, by node name (nodes never scaled or
    /// healed have none: their target is their `scaling.min`).
    pub fn node_targets(&self, infra_id: &str) -> Result<Vec<NodeTarget>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT node_name, target, failures, retry_after_ms FROM node_targets WHERE infra_id = ?1 ORDER BY node_name",
            )?
            .query_map([infra_id], |r| {
                Ok(NodeTarget {
                    node_name: r.get(0)?,
                    target: r.get(1)?,
                    failures: r.get(2)?,
                    retry_after_ms: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// Sets a node's target and backoff.
    pub fn set_node_target(&self, infra_id: &str, target: &NodeTarget) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO node_targets (infra_id, node_name, target, failures, retry_after_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (infra_id, node_name) DO UPDATE SET target = ?3, failures = ?4, retry_after_ms = ?5",
            )?
            .execute(params![
                infra_id,
                target.node_name,
                target.target,
                target.failures,
                target.retry_after_ms
            ])
            .map(drop)
        })
    }

    /// Forgets the target of a node no longer in the description.
    pub fn delete_node_target(&self, infra_id: &str, node_name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM node_targets WHERE infra_id = ?1 AND node_name = ?2",
                params![infra_id, node_name],
            )
            .map(drop)
        })
    }

    /// Queues a scaling request; returns its number.
    pub fn queue_scale_request(
        &self,
        infra_id: &str,
        node_name: &str,
        change: i64,
        instance: Option<&str>,
    ) -> Result<i64, StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO scale_requests (infra_id, node_name, change, instance_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![infra_id, node_name, change, instance, now_ms()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The queued scaling requests of an infra, oldest first.
    pub fn scale_requests(&self, infra_id: &str) -> Result<Vec<ScaleRequest>, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT seq, node_name, change, instance_id, created_ms FROM scale_requests WHERE infra_id = ?1 ORDER BY seq",
            )?
            .query_map([infra_id], |r| {
                Ok(ScaleRequest {
                    seq: r.get(0)?,
                    node_name: r.get(1)?,
                    change: r.get(2)?,
                    instance: r.get(3)?,
                    created_ms: r.get(4)?,
                })
            })?
            .collect()
        })
    }

    /// Removes a handled scaling request.
    pub fn delete_scale_request(&self, seq: i64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM scale_requests WHERE seq = ?1", [seq])
                .map(drop)
        })
    }

    /// The instances of an infra, by node and number.
    pub fn instances(&self, infra_id: &str) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows = self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM instances WHERE infra_id = ?1 ORDER BY node_name, seq"
            ))?
            .query_map([infra_id], instance)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// The next free instance number of a node (numbers are never reused
    /// while the infra exists).
    pub fn next_seq(&self, infra_id: &str, node_name: &str) -> Result<u32, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM instances WHERE infra_id = ?1 AND node_name = ?2",
                params![infra_id, node_name],
                |r| r.get(0),
            )
        })
    }

    /// Appends to the infra's event log.
    pub fn log_event(
        &self,
        infra_id: &str,
        instance_id: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        self.log_events(infra_id, &[(instance_id, message.to_string())])
    }

    /// Appends several events (instance, message) in one transaction.
    pub fn log_events(
        &self,
        infra_id: &str,
        events: &[(Option<&str>, String)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.with(|c| {
            let transaction = c.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO events (infra_id, instance_id, time_ms, message) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (instance_id, message) in events {
                    insert.execute(params![infra_id, instance_id, now, message])?;
                }
            }
            transaction.commit()
        })
    }

    /// The infra's event log, oldest first.
    pub fn events(&self, infra_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        self.with(|c| {
            c.prepare(
                "SELECT time_ms, instance_id, message FROM events WHERE infra_id = ?1 ORDER BY seq",
            )?
            .query_map([infra_id], |r| {
                Ok(EventRecord {
                    time_ms: r.get(0)?,
                    instance_id: r.get(1)?,
                    message: r.get(2)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A fresh store holding infra `i1`, and the directory it lives in.
    fn store_with_infra() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        store
            .upsert_infra("i1", "demo", "building", &InfraSnapshot::default())
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn concurrent_writes_commit_together_and_a_failing_one_alone_is_rolled_back() {
        let (_dir, store) = store_with_infra();
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
        assert!(clash.to_string().contains("UNIQUE"), "{clash}");
        assert_eq!(store.instances("i1").unwrap().len(), 201);
    }

    #[tokio::test]
    async fn intents_results_and_deletion_round_trip() {
        let (dir, store) = store_with_infra();
        let mut record = intent("web-1", store.next_seq("i1", "web").unwrap());
        record.resource = serde_json::json!({"type": "dummy"})
            .as_object()
            .unwrap()
            .clone();
        store.insert_intent(&record).await.unwrap();
        assert_eq!(store.next_seq("i1", "web").unwrap(), 2);
        store.record_cloud_id("web-1", "c-1").await.unwrap();
        let addresses = InstanceAddresses {
            public: vec!["10.0.0.1".into()],
            private: vec![],
        };
        store
            .record_state("web-1", InstanceState::Ready, Some(&addresses), None)
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
        drop(store);
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(store.instances("i1").unwrap().len(), 1);
        store.delete_infra("i1").unwrap();
        assert!(
            store.instances("i1").unwrap().is_empty(),
            "instances go with their infra"
        );
    }
}
