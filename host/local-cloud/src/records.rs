//! The local cloud's records, in SQLite, so that nodes outlive the process
//! that created them and any occopus process can list them.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::Mutex;

/// Schema migrations, applied in order; `PRAGMA user_version` counts them.
/// `seq` never repeats (AUTOINCREMENT), so neither does a cloud id.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE nodes (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        client_token TEXT NOT NULL UNIQUE,
        infra_id     TEXT NOT NULL,
        infra_name   TEXT NOT NULL,
        node_name    TEXT NOT NULL,
        address      TEXT NOT NULL UNIQUE,
        pid          INTEGER,
        created_ms   INTEGER NOT NULL
    );
    CREATE INDEX nodes_by_infra ON nodes (infra_id);",
    // Destroyed nodes are remembered, so that their status says `shutdown`.
    "CREATE TABLE destroyed (
        id           TEXT PRIMARY KEY,
        infra_id     TEXT NOT NULL,
        node_name    TEXT NOT NULL,
        destroyed_ms INTEGER NOT NULL
    );",
    // The idempotency key too, so that a test can prove no instance id was
    // ever created twice.
    "ALTER TABLE destroyed ADD COLUMN client_token TEXT;",
    // Which process reserved a node and owes it a start: if that process dies
    // before starting it, a retried create takes the start over.
    "ALTER TABLE nodes ADD COLUMN creator_pid INTEGER;",
];

/// One node's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeRecord {
    /// The cloud id (`local-N`).
    pub id: String,
    /// The idempotency key it was created with (the occopus instance id).
    pub client_token: String,
    /// The infra id tag.
    pub infra_id: String,
    /// The infra name tag.
    pub infra_name: String,
    /// The node name tag.
    pub node_name: String,
    /// Its loopback address.
    pub address: String,
    /// The pid of its supervisor, which leads its process group.
    pub pid: Option<i32>,
    /// When it was created, in ms since the epoch.
    pub created_ms: i64,
}

/// The database of node records.
pub struct NodeRecords {
    connection: Mutex<Connection>,
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRecord> {
    Ok(NodeRecord {
        id: row.get(0)?,
        client_token: row.get(1)?,
        infra_id: row.get(2)?,
        infra_name: row.get(3)?,
        node_name: row.get(4)?,
        address: row.get(5)?,
        pid: row.get(6)?,
        created_ms: row.get(7)?,
    })
}

const COLUMNS: &str = "id, client_token, infra_id, infra_name, node_name, address, pid, created_ms";

impl NodeRecords {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<NodeRecords, occopus_sqlite::OpenError> {
        let connection = occopus_sqlite::open_migrated(path, MIGRATIONS)?;
        Ok(NodeRecords {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        occopus_sqlite::with(&self.connection, f)
    }

    /// Reserves a new node: the first free address of `addresses` and the next
    /// id, in one transaction, so that concurrent creates cannot pass the node
    /// limit or share an address. Returns the existing record if
    /// `client_token` was used before.
    pub fn reserve(
        &self,
        client_token: &str,
        tags: (&str, &str, &str),
        addresses: impl Iterator<Item = String>,
        max_nodes: usize,
        created_ms: i64,
    ) -> rusqlite::Result<Reservation> {
        self.with(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing = transaction
                .query_row(
                    &format!("SELECT {COLUMNS} FROM nodes WHERE client_token = ?1"),
                    [client_token],
                    record,
                )
                .optional()?;
            if let Some(existing) = existing {
                return Ok(Reservation::Existing(existing));
            }
            let count: i64 = transaction.query_row("SELECT COUNT(*) FROM nodes", [], |r| r.get(0))?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max_nodes {
                return Ok(Reservation::Full);
            }
            let mut taken = transaction.prepare("SELECT 1 FROM nodes WHERE address = ?1")?;
            let mut free = None;
            for address in addresses {
                if !taken.exists([&address])? {
                    free = Some(address);
                    break;
                }
            }
            drop(taken);
            let Some(address) = free else {
                return Ok(Reservation::NoAddress);
            };
            let mut node = NodeRecord {
                id: String::new(),
                client_token: client_token.to_owned(),
                infra_id: tags.0.to_owned(),
                infra_name: tags.1.to_owned(),
                node_name: tags.2.to_owned(),
                address,
                pid: None,
                created_ms,
            };
            transaction.execute(
                &format!(
                    "INSERT INTO nodes ({COLUMNS}) VALUES ('new-' || ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    node.id,
                    node.client_token,
                    node.infra_id,
                    node.infra_name,
                    node.node_name,
                    node.address,
                    node.pid,
                    node.created_ms
                ],
            )?;
            node.id = format!("local-{}", transaction.last_insert_rowid());
            transaction.execute(
                "UPDATE nodes SET id = ?1, creator_pid = ?2 WHERE seq = last_insert_rowid()",
                params![node.id, std::process::id()],
            )?;
            transaction.commit()?;
            Ok(Reservation::New(node))
        })
    }

    /// Records the pid of a node's supervisor.
    pub fn set_pid(&self, id: &str, pid: i32) -> rusqlite::Result<()> {
        self.with(|c| c.execute("UPDATE nodes SET pid = ?2 WHERE id = ?1", params![id, pid]))
            .map(drop)
    }

    /// Takes over the start of a node that was reserved but never started,
    /// when the process that reserved it is gone. True when this process now
    /// owes the node its start.
    pub fn claim_unstarted(&self, id: &str) -> rusqlite::Result<bool> {
        self.with(|c| {
            let transaction = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let creator: Option<Option<u32>> = transaction
                .query_row(
                    "SELECT creator_pid FROM nodes WHERE id = ?1 AND pid IS NULL",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(creator) = creator else {
                return Ok(false);
            };
            let me = std::process::id();
            let creator_alive =
                creator.is_some_and(|pid| pid == me || occopus_process::stat(pid as i32).is_some());
            if creator_alive {
                return Ok(false);
            }
            transaction.execute(
                "UPDATE nodes SET creator_pid = ?2 WHERE id = ?1",
                params![id, me],
            )?;
            transaction.commit()?;
            Ok(true)
        })
    }

    /// One node by id.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<NodeRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM nodes WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
        })
    }

    /// Every node, or those of one infra, oldest first.
    pub fn list(&self, infra_id: Option<&str>) -> rusqlite::Result<Vec<NodeRecord>> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM nodes WHERE ?1 IS NULL OR infra_id = ?1 ORDER BY created_ms, id"
            ))?;
            statement.query_map([infra_id], record)?.collect()
        })
    }

    /// Forgets a node that never started.
    pub fn remove(&self, id: &str) -> rusqlite::Result<()> {
        self.with(|c| c.execute("DELETE FROM nodes WHERE id = ?1", [id]))
            .map(drop)
    }

    /// Moves a destroyed node's record to the destroyed ones (freeing its address).
    pub fn mark_destroyed(&self, id: &str, destroyed_ms: i64) -> rusqlite::Result<()> {
        self.with(|c| {
            let transaction = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            transaction.execute(
                "INSERT OR IGNORE INTO destroyed (id, infra_id, node_name, destroyed_ms, client_token)
                 SELECT id, infra_id, node_name, ?2, client_token FROM nodes WHERE id = ?1",
                params![id, destroyed_ms],
            )?;
            transaction.execute("DELETE FROM nodes WHERE id = ?1", [id])?;
            transaction.commit()
        })
    }

    /// Whether a node with this id was destroyed.
    pub fn was_destroyed(&self, id: &str) -> rusqlite::Result<bool> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM destroyed WHERE id = ?1")?
                .exists([id])
        })
    }
}

/// The outcome of [`Store::reserve`].
#[derive(Debug)]
pub enum Reservation {
    /// A new node was recorded.
    New(NodeRecord),
    /// A node with this client token exists already.
    Existing(NodeRecord),
    /// The node limit is reached.
    Full,
    /// Every address of the range is in use.
    NoAddress,
}
