//! Leases: one writer per infrastructure.
//!
//! Whatever changes an infrastructure (a build, a destroy, a maintenance
//! loop, the REST service's jobs) first takes its lease: a row naming the
//! holder (host, pid and start time, command, since when), renewed by a
//! heartbeat and expiring when the heartbeat stops. Each grant gets a new
//! *epoch* from one counter that never goes back, and every write about the
//! infrastructure checks, in its own transaction, that the lease is still at
//! the epoch this process was granted (`state_store::fence`). So a holder
//! that was paused or cut off while another took over writes nothing more,
//! and since the engine records an instance's intent before its create call,
//! it makes no cloud call either.
//!
//! A lease is taken over when its holder is gone: a dead process on this
//! host (its pid no longer names the process that started then), or an
//! expired heartbeat (a holder on another host, or a hung one). The rules
//! use only the database and the clock, so a shared database (PostgreSQL,
//! several hosts) can apply the same ones.

use crate::error::StoreError;
use crate::sql::{Row, values};
use crate::state_store::StateStore;
use occopus_process::ProcessId;
use occopus_types::now_ms;
use serde::Serialize;
use std::time::Duration;

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    /// The host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When that process started (with the pid, it names the process).
    pub start_ticks: u64,
    /// What it is doing, as a user would say it (`occopus build`, ...).
    pub command: String,
}

impl LeaseHolder {
    /// This process, doing `command`.
    pub fn this_process(command: impl Into<String>) -> Self {
        let me = ProcessId::this();
        LeaseHolder {
            host: me.host,
            pid: me.pid,
            start_ticks: me.start_ticks,
            command: command.into(),
        }
    }

    fn process(&self) -> ProcessId {
        ProcessId {
            host: self.host.clone(),
            pid: self.pid,
            start_ticks: self.start_ticks,
        }
    }
}

/// A lease as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseRecord {
    /// The infrastructure.
    pub infra_id: String,
    /// Its epoch: every write under the lease is checked against it.
    pub epoch: i64,
    /// Who holds it.
    pub holder: LeaseHolder,
    /// When it was granted, ms since the epoch.
    pub since_ms: i64,
    /// When its holder last renewed it.
    pub heartbeat_ms: i64,
    /// When it expires unless renewed.
    pub expires_ms: i64,
}

/// Whether a lease's holder can still write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its process runs (on this host), or its heartbeat is recent.
    Alive,
    /// Its process on this host has ended.
    Dead,
    /// Its heartbeat stopped long enough ago that the lease expired.
    Expired,
}

impl LeaseRecord {
    /// Whether its holder can still write, as this host sees it at `now_ms`.
    pub fn liveness(&self, now_ms: i64) -> Liveness {
        match self.holder.process().is_alive() {
            Some(false) => Liveness::Dead,
            _ if self.expires_ms <= now_ms => Liveness::Expired,
            _ => Liveness::Alive,
        }
    }

    /// The holder in words: `occopus build (pid 4242 on host h, since
    /// 12:00:01Z, renewed 2 s ago)`.
    pub fn describe(&self, now_ms: i64) -> String {
        let holder = &self.holder;
        format!(
            "{} (pid {} on host {}, since {}, renewed {} s ago)",
            holder.command,
            holder.pid,
            holder.host,
            time_of_day(self.since_ms),
            (now_ms - self.heartbeat_ms).max(0) / 1000
        )
    }
}

/// The UTC time of day of a time stamp.
fn time_of_day(ms: i64) -> String {
    let seconds = ms / 1000 % 86_400;
    format!(
        "{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// What asking for a lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// It is this process's, at this epoch; `took_over` names the previous
    /// holder when it was taken from a dead or expired one.
    Granted {
        record: LeaseRecord,
        took_over: Option<(LeaseRecord, Liveness)>,
    },
    /// Another holder, alive, has it.
    Held(LeaseRecord),
}

const COLUMNS: &str =
    "infra_id, epoch, host, pid, start_ticks, command, since_ms, heartbeat_ms, expires_ms";

fn lease(row: &Row) -> Result<LeaseRecord, StoreError> {
    Ok(LeaseRecord {
        infra_id: row.get(0)?,
        epoch: row.get(1)?,
        holder: LeaseHolder {
            host: row.get(2)?,
            pid: row.get(3)?,
            start_ticks: row.get::<i64>(4)? as u64,
            command: row.get(5)?,
        },
        since_ms: row.get(6)?,
        heartbeat_ms: row.get(7)?,
        expires_ms: row.get(8)?,
    })
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl StateStore {
    /// Asks for the lease on `infra_id` for `holder`, valid `ttl` unless
    /// renewed: granted when free, or when its holder is dead or expired
    /// (taken over, at a new epoch); refused naming the holder otherwise.
    pub fn try_acquire_lease(
        &self,
        infra_id: &str,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<Acquired, StoreError> {
        let now = now_ms();
        let acquired = self.write(|db| {
            let current = db
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM leases WHERE infra_id = ?1"),
                    values![infra_id],
                )?
                .map(|row| lease(&row))
                .transpose()?;
            let took_over = match current {
                Some(current) => match current.liveness(now) {
                    Liveness::Alive => return Ok(Acquired::Held(current)),
                    stale => Some((current, stale)),
                },
                None => None,
            };
            let epoch: i64 = db
                .query_one(
                    "UPDATE lease_epochs SET next = next + 1 RETURNING next - 1",
                    &[],
                )?
                .get(0)?;
            let record = LeaseRecord {
                infra_id: infra_id.to_string(),
                epoch,
                holder: holder.clone(),
                since_ms: now,
                heartbeat_ms: now,
                expires_ms: now.saturating_add(ttl_ms(ttl)),
            };
            db.execute(
                &format!(
                    "INSERT INTO leases ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (infra_id) DO UPDATE SET epoch = ?2, host = ?3, pid = ?4,
                     start_ticks = ?5, command = ?6, since_ms = ?7, heartbeat_ms = ?8, expires_ms = ?9"
                ),
                values![
                    &record.infra_id,
                    record.epoch,
                    &holder.host,
                    holder.pid,
                    holder.start_ticks as i64,
                    &holder.command,
                    record.since_ms,
                    record.heartbeat_ms,
                    record.expires_ms
                ],
            )?;
            Ok(Acquired::Granted { record, took_over })
        })?;
        if let Acquired::Granted { record, .. } = &acquired {
            self.held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(infra_id.to_string(), record.epoch);
        }
        Ok(acquired)
    }

    /// Renews the lease this process holds at `epoch` for another `ttl`;
    /// false when it is no longer this process's (taken over or broken),
    /// after which nothing more is written under it.
    pub fn renew_lease(
        &self,
        infra_id: &str,
        epoch: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let renewed = self.read(|db| {
            db.execute(
                "UPDATE leases SET heartbeat_ms = ?3, expires_ms = ?4 WHERE infra_id = ?1 AND epoch = ?2",
                values![infra_id, epoch, now, now.saturating_add(ttl_ms(ttl))],
            )
        })? == 1;
        if !renewed {
            self.forget_lease(infra_id, epoch);
        }
        Ok(renewed)
    }

    /// Gives the lease at `epoch` back (nothing if it is not held at it any more).
    pub fn release_lease(&self, infra_id: &str, epoch: i64) -> Result<(), StoreError> {
        self.forget_lease(infra_id, epoch);
        self.read(|db| {
            db.execute(
                "DELETE FROM leases WHERE infra_id = ?1 AND epoch = ?2",
                values![infra_id, epoch],
            )
        })?;
        Ok(())
    }

    /// Breaks the lease on `infra_id` granted at `epoch` (as read by the
    /// caller, who judged it stale: `occopus unlock`), whoever holds it, and
    /// logs `why` with the infra's events (if it is recorded); its holder,
    /// if it still runs, is fenced off at its next write. False when the
    /// lease changed meanwhile (given back, or granted anew).
    pub fn break_lease(&self, infra_id: &str, epoch: i64, why: &str) -> Result<bool, StoreError> {
        self.forget_lease(infra_id, epoch);
        self.write(|db| {
            let broken = db.execute(
                "DELETE FROM leases WHERE infra_id = ?1 AND epoch = ?2",
                values![infra_id, epoch],
            )? == 1;
            if broken {
                db.execute(
                    "INSERT INTO events (infra_id, instance_id, time_ms, message)
                     SELECT ?1, NULL, ?2, ?3 WHERE EXISTS (SELECT 1 FROM infras WHERE id = ?1)",
                    values![infra_id, now_ms(), why],
                )?;
            }
            Ok(broken)
        })
    }

    /// The lease on `infra_id`, if one is held.
    pub fn lease(&self, infra_id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        self.read(|db| {
            db.query_opt(
                &format!("SELECT {COLUMNS} FROM leases WHERE infra_id = ?1"),
                values![infra_id],
            )?
            .map(|row| lease(&row))
            .transpose()
        })
    }

    /// Every lease held now (alive or not), by infra id.
    pub fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        self.read(|db| {
            db.query(
                &format!("SELECT {COLUMNS} FROM leases ORDER BY infra_id"),
                &[],
            )?
            .iter()
            .map(lease)
            .collect()
        })
    }

    fn forget_lease(&self, infra_id: &str, epoch: i64) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.get(infra_id) == Some(&epoch) {
            held.remove(infra_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::InfraSnapshot;
    use crate::testing::TestDatabase;

    fn holder(pid: u32, command: &str) -> LeaseHolder {
        LeaseHolder {
            pid,
            start_ticks: 0,
            command: command.into(),
            ..LeaseHolder::this_process(command)
        }
    }

    fn granted(acquired: Acquired) -> LeaseRecord {
        match acquired {
            Acquired::Granted { record, .. } => record,
            Acquired::Held(by) => panic!("held by {by:?}"),
        }
    }

    #[test]
    fn a_second_writer_is_refused_while_the_holder_lives() {
        for db in TestDatabase::each() {
            a_second_writer_is_refused_on(&db);
        }
    }

    fn a_second_writer_is_refused_on(db: &TestDatabase) {
        let store = db.open();
        let me = LeaseHolder::this_process("occopus build");
        let lease = granted(
            store
                .try_acquire_lease("i1", &me, Duration::from_secs(30))
                .unwrap(),
        );
        let other = db.open();
        match other
            .try_acquire_lease(
                "i1",
                &holder(1, "occopus maintain"),
                Duration::from_secs(30),
            )
            .unwrap()
        {
            Acquired::Held(by) => {
                assert_eq!(by.holder, me);
                assert!(by.describe(now_ms()).starts_with("occopus build (pid "));
            }
            granted => panic!("{granted:?}"),
        }
        store.release_lease("i1", lease.epoch).unwrap();
        granted(
            other
                .try_acquire_lease(
                    "i1",
                    &holder(1, "occopus maintain"),
                    Duration::from_secs(30),
                )
                .unwrap(),
        );
    }

    #[test]
    fn a_dead_or_expired_holder_is_taken_over_at_a_new_epoch() {
        for db in TestDatabase::each() {
            taken_over_on(&db);
        }
    }

    fn taken_over_on(db: &TestDatabase) {
        let store = db.open();
        // A pid with another start time: a process that is gone.
        let dead = LeaseHolder {
            start_ticks: 1,
            ..LeaseHolder::this_process("occopus build")
        };
        let first = granted(
            store
                .try_acquire_lease("i1", &dead, Duration::from_secs(30))
                .unwrap(),
        );
        let me = LeaseHolder::this_process("occopus destroy");
        match store
            .try_acquire_lease("i1", &me, Duration::from_secs(30))
            .unwrap()
        {
            Acquired::Granted {
                record,
                took_over: Some((previous, Liveness::Dead)),
            } => {
                assert!(record.epoch > first.epoch);
                assert_eq!(previous.holder, dead);
            }
            other => panic!("{other:?}"),
        }
        // A holder of another host whose heartbeat stopped.
        let remote = LeaseHolder {
            host: "elsewhere".into(),
            ..me.clone()
        };
        let short = granted(
            store
                .try_acquire_lease("i2", &remote, Duration::ZERO)
                .unwrap(),
        );
        match store
            .try_acquire_lease("i2", &me, Duration::from_secs(30))
            .unwrap()
        {
            Acquired::Granted {
                record,
                took_over: Some((_, Liveness::Expired)),
            } => assert!(record.epoch > short.epoch),
            other => panic!("{other:?}"),
        }
    }

    /// The fencing epoch: a holder whose lease was taken over writes nothing.
    #[test]
    fn a_write_with_a_stale_epoch_is_refused() {
        for db in TestDatabase::each() {
            stale_epoch_refused_on(&db);
        }
    }

    fn stale_epoch_refused_on(db: &TestDatabase) {
        let stale = db.open();
        let paused = LeaseHolder {
            host: "paused-host".into(),
            ..LeaseHolder::this_process("occopus maintain")
        };
        granted(
            stale
                .try_acquire_lease("i1", &paused, Duration::ZERO)
                .unwrap(),
        );
        stale
            .upsert_infra("i1", "demo", "building", &InfraSnapshot::default())
            .unwrap();

        // Its lease expired; another process takes it over.
        let fresh = db.open();
        let me = LeaseHolder::this_process("occopus build");
        granted(
            fresh
                .try_acquire_lease("i1", &me, Duration::from_secs(30))
                .unwrap(),
        );
        fresh.set_infra_status("i1", "ready").unwrap();

        let refused = stale.set_infra_status("i1", "failed").unwrap_err();
        assert!(matches!(refused, StoreError::Fenced { .. }), "{refused}");
        assert_eq!(fresh.infra("i1").unwrap().unwrap().status, "ready");
        // And without any lease at all, nothing is written either.
        let bystander = db.open();
        assert!(matches!(
            bystander.set_infra_status("i1", "x").unwrap_err(),
            StoreError::NotLeased { .. }
        ));
    }

    #[test]
    fn breaking_a_lease_fences_its_holder_off() {
        for db in TestDatabase::each() {
            breaking_fences_on(&db);
        }
    }

    fn breaking_fences_on(db: &TestDatabase) {
        let store = db.open();
        let me = LeaseHolder::this_process("occopus maintain");
        let lease = granted(
            store
                .try_acquire_lease("i1", &me, Duration::from_secs(30))
                .unwrap(),
        );
        let other = db.open();
        assert!(other.break_lease("i1", lease.epoch, "unlocked").unwrap());
        assert!(
            !other.break_lease("i1", lease.epoch, "again").unwrap(),
            "already broken"
        );
        assert!(store.lease("i1").unwrap().is_none());
        assert!(matches!(
            store.set_infra_status("i1", "x").unwrap_err(),
            StoreError::Fenced { .. }
        ));
        assert!(
            !store
                .renew_lease("i1", lease.epoch, Duration::from_secs(30))
                .unwrap()
        );
    }
}
