//! The state database's schema: numbered migrations, applied in order
//! (`PRAGMA user_version` counts those applied).

pub(crate) const MIGRATIONS: &[&str] = &[
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
    // One writer per infrastructure (leases.rs); the events of infras
    // destroyed before events went with their infra.
    "
    CREATE TABLE leases (
        infra_id     TEXT PRIMARY KEY,
        epoch        INTEGER NOT NULL,
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        start_ticks  INTEGER NOT NULL,
        command      TEXT NOT NULL,
        since_ms     INTEGER NOT NULL,
        heartbeat_ms INTEGER NOT NULL,
        expires_ms   INTEGER NOT NULL
    );
    CREATE TABLE lease_epochs (next INTEGER NOT NULL);
    INSERT INTO lease_epochs (next) VALUES (1);
    DELETE FROM events WHERE infra_id NOT IN (SELECT id FROM infras);
",
    // What each instance was rendered from, to see when its templates'
    // view of other nodes changed (reconfiguration).
    "
    ALTER TABLE instances ADD COLUMN rendered TEXT;
",
];
