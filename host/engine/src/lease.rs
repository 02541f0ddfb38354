//! Taking and keeping the lease on an infrastructure (see the store's
//! `leases.rs` for the rules): every operation that changes an infra
//! (build, destroy, maintenance) holds it for its whole run.
//!
//! [`Orchestrator::take_lease`] asks for it, waiting as long as the caller's
//! [`LeasePolicy`] allows; the [`Lease`] it returns renews it on a heartbeat
//! (every third of its time to live) and gives it back when dropped. If a
//! renewal finds it gone (taken over after this process was paused longer
//! than the time to live, or broken by `occopus unlock`), the lease fires its
//! stop signal so that no new cloud call starts, and the store refuses every
//! write made under it from then on.

use crate::error::EngineError;
use crate::orchestrator::Orchestrator;
use crate::stop::{StopHandle, StopSignal};
use occopus_store::{Acquired, LeaseHolder, LeaseRecord, Liveness, StateStore};
use occopus_types::now_ms;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How an operation takes the lease on its infrastructure.
#[derive(Debug, Clone)]
pub struct LeasePolicy {
    /// What the holder is doing, as whoever it blocks is told:
    /// `occopus build`, `occopus serve (build job)`.
    pub command: String,
    /// How long to wait for a lease another holder has: zero refuses at
    /// once, [`Duration::MAX`] waits until it is free.
    pub wait: Duration,
}

impl LeasePolicy {
    /// Refuse at once when another holder has the lease.
    pub fn no_wait(command: impl Into<String>) -> Self {
        LeasePolicy {
            command: command.into(),
            wait: Duration::ZERO,
        }
    }
}

/// How often a waiting operation asks for the lease again.
const POLL: Duration = Duration::from_millis(250);

/// The lease this process holds on one infrastructure, renewed until dropped.
pub struct Lease {
    store: Arc<StateStore>,
    record: LeaseRecord,
    ttl: Duration,
    /// Fired once the lease is found gone.
    lost: StopHandle,
    lost_signal: StopSignal,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Fires when `also` does or when the lease is lost: what the operation
    /// under the lease watches before starting anything new.
    pub fn stop_signal(&self, also: &StopSignal) -> StopSignal {
        StopSignal::either(&self.lost_signal, also)
    }

    /// Whether the lease is still this process's, checked now (not at the
    /// next heartbeat).
    pub fn confirm(&self) -> bool {
        if !self.lost_signal.is_stopped() {
            let record = &self.record;
            if let Ok(false) = self
                .store
                .renew_lease(&record.infra_id, record.epoch, self.ttl)
            {
                self.lost.stop();
            }
        }
        !self.lost_signal.is_stopped()
    }

    /// The outcome of an operation run under the lease: its own, unless
    /// the lease was lost meanwhile (the operation stopped, or a write of it
    /// was refused), which is then the error.
    pub(crate) fn settle<T>(&self, outcome: Result<T, EngineError>) -> Result<T, EngineError> {
        if self.confirm() {
            outcome
        } else {
            Err(self.lost_error())
        }
    }

    /// The error of an operation that ended because its lease was lost.
    fn lost_error(&self) -> EngineError {
        EngineError::LeaseLost {
            infra_id: self.record.infra_id.clone(),
            now_held_by: self
                .store
                .lease(&self.record.infra_id)
                .ok()
                .flatten()
                .map(|now| now.describe(now_ms())),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Err(error) = self
            .store
            .release_lease(&self.record.infra_id, self.record.epoch)
        {
            // It expires by itself; the next holder takes it over then.
            tracing::warn!(infra = %self.record.infra_id, %error, "cannot give the lease back");
        }
    }
}

/// Frees the lease on `infra_id` in `store` (`occopus unlock`): at once when
/// its holder is gone (dead or expired); while it is alive only with
/// `force`, since the holder may then have a cloud call under way whose
/// result it can no longer record. Returns the lease freed, with how its
/// holder was seen; none when no lease was held.
pub fn unlock(
    store: &StateStore,
    infra_id: &str,
    force: bool,
) -> Result<Option<(LeaseRecord, Liveness)>, EngineError> {
    loop {
        let Some(lease) = store.lease(infra_id)? else {
            return Ok(None);
        };
        let liveness = lease.liveness(now_ms());
        if liveness == Liveness::Alive && !force {
            return Err(EngineError::HolderAlive {
                infra_id: infra_id.to_string(),
                holder: lease.describe(now_ms()),
            });
        }
        let why = format!(
            "lease of {} broken by occopus unlock{}",
            lease.describe(now_ms()),
            if liveness == Liveness::Alive {
                " --force"
            } else {
                ""
            }
        );
        if store.break_lease(infra_id, lease.epoch, &why)? {
            return Ok(Some((lease, liveness)));
        }
        // Given back or granted anew meanwhile: look again.
    }
}

impl Orchestrator {
    /// Takes the lease on `infra_id` for this process, waiting as `policy`
    /// allows (and not after `stop` fires); refused naming the holder.
    pub async fn take_lease(
        &self,
        infra_id: &str,
        policy: &LeasePolicy,
        stop: &StopSignal,
    ) -> Result<Lease, EngineError> {
        let store = &self.inner.store;
        let ttl = self.inner.config.lease_ttl();
        let holder = LeaseHolder::this_process(&policy.command);
        let deadline = Instant::now().checked_add(policy.wait);
        let mut stop = stop.clone();
        let mut said = false;
        let record = loop {
            let by = match store.try_acquire_lease(infra_id, &holder, ttl)? {
                Acquired::Granted { record, took_over } => {
                    if let Some((previous, why)) = took_over {
                        self.log_takeover(infra_id, &policy.command, &previous, why)?;
                    }
                    break record;
                }
                Acquired::Held(by) => by,
            };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left.is_zero()) || stop.is_stopped() {
                return Err(EngineError::Held {
                    infra_id: infra_id.to_string(),
                    holder: by.describe(now_ms()),
                    waited: policy.wait,
                });
            }
            if !said {
                tracing::warn!(infra = %infra_id, "waiting for the lease held by {}", by.describe(now_ms()));
                said = true;
            }
            tokio::select! {
                () = tokio::time::sleep(left.map_or(POLL, |left| left.min(POLL))) => {}
                () = stop.stopped() => {}
            }
        };
        let (lost, lost_signal) = StopHandle::new();
        let heartbeat = tokio::spawn(heartbeat(store.clone(), record.clone(), ttl, lost.clone()));
        Ok(Lease {
            store: store.clone(),
            record,
            ttl,
            lost,
            lost_signal,
            heartbeat,
        })
    }

    /// Runs `operation` holding the lease on `infra_id` (taken as `policy`
    /// allows): it gets a stop signal that also fires when the lease is lost,
    /// and its outcome is settled against the lease.
    pub(crate) async fn under_lease<T, F>(
        &self,
        infra_id: &str,
        policy: &LeasePolicy,
        stop: &StopSignal,
        operation: impl FnOnce(StopSignal) -> F,
    ) -> Result<T, EngineError>
    where
        F: Future<Output = Result<T, EngineError>>,
    {
        let lease = self.take_lease(infra_id, policy, stop).await?;
        let outcome = operation(lease.stop_signal(stop)).await;
        lease.settle(outcome)
    }

    /// Logs, with the infra's events, that `command` took its lease over.
    fn log_takeover(
        &self,
        infra_id: &str,
        command: &str,
        previous: &LeaseRecord,
        why: Liveness,
    ) -> Result<(), EngineError> {
        let previous = previous.describe(now_ms());
        tracing::warn!(infra = %infra_id, "took the lease over from {previous} ({why:?})");
        let store = &self.inner.store;
        if store.infra(infra_id)?.is_some() {
            let why = match why {
                Liveness::Dead => "its process had ended",
                Liveness::Expired | Liveness::Alive => "its heartbeat had stopped",
            };
            store.log_event(
                infra_id,
                None,
                &format!("{command} took the lease over from {previous}: {why}"),
            )?;
        }
        Ok(())
    }
}

/// Renews the lease every third of its time to live until it is found gone
/// (then fires `lost`). A renewal that fails (the database busy for longer
/// than its timeout) is tried again at the next beat: the lease only expires
/// after three missed ones.
async fn heartbeat(store: Arc<StateStore>, record: LeaseRecord, ttl: Duration, lost: StopHandle) {
    let mut beat = tokio::time::interval(ttl / 3);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        beat.tick().await;
        match store.renew_lease(&record.infra_id, record.epoch, ttl) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(infra = %record.infra_id, %error, "cannot renew the lease; trying again");
            }
        }
    }
    tracing::error!(
        infra = %record.infra_id,
        "the lease was taken over or broken: starting nothing more"
    );
    lost.stop();
}
