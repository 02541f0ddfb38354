//! Maintenance as callers run it, holding the infra's lease: one pass, or
//! the loop (a pass every interval until stopped, with one explicit policy
//! for failed passes) used by the command line's `maintain` and by the REST
//! service alike (in the manner of kube-runtime's controller: reconcile,
//! error policy, requeue).

use crate::error::EngineError;
use crate::lease::LeasePolicy;
use crate::maintain::PassReport;
use crate::orchestrator::Orchestrator;
use crate::stop::StopSignal;
use occopus_model::AuthData;
use occopus_types::HasErrorCode;
use std::time::Duration;

/// What the loop does after a failed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// End the loop with the pass's error.
    Stop,
    /// After a failure that may heal by itself (the state database was
    /// busy, say: see [`occopus_types::ErrorCode::is_transient`]) wait and
    /// go on, the interval doubling with each failure in a row up to
    /// `max_wait`; end the loop after any other failure (the infra is gone,
    /// its stored description is unusable), which no retry mends.
    RetryTransient { max_wait: Duration },
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        ErrorPolicy::RetryTransient {
            max_wait: Duration::from_secs(300),
        }
    }
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Upkeep {
    /// The time between passes (and the unit of a failing node's backoff).
    pub interval: Duration,
    /// What to do after a failed pass.
    pub policy: ErrorPolicy,
    /// Ends the loop gracefully: a pass under way finishes its calls.
    pub stop: StopSignal,
    /// How the loop takes the infra's lease, which it holds until it ends.
    pub lease: LeasePolicy,
}

impl Orchestrator {
    /// One maintenance pass over `infra_id`, holding its lease, run as
    /// `upkeep` says (its interval is the unit of a failing node's backoff;
    /// its error policy does not apply to a single pass).
    pub async fn maintain_pass(
        &self,
        infra_id: &str,
        auth: &AuthData,
        upkeep: &Upkeep,
    ) -> Result<PassReport, EngineError> {
        self.recorded_infra(infra_id)?;
        self.under_lease(infra_id, &upkeep.lease, &upkeep.stop, |stop| {
            self.pass(infra_id, auth, upkeep.interval, stop)
        })
        .await
    }

    /// Maintains `infra_id`, holding its lease, until `upkeep.stop` fires
    /// (then `Ok`), the policy ends the loop after a failed pass (then that
    /// pass's error) or the lease is lost (then [`EngineError::LeaseLost`]).
    /// `on_pass` sees every pass's outcome as it ends.
    pub async fn maintain(
        &self,
        infra_id: &str,
        auth: &AuthData,
        upkeep: Upkeep,
        mut on_pass: impl FnMut(&Result<PassReport, EngineError>),
    ) -> Result<(), EngineError> {
        self.recorded_infra(infra_id)?;
        let lease = self
            .take_lease(infra_id, &upkeep.lease, &upkeep.stop)
            .await?;
        let mut stop = lease.stop_signal(&upkeep.stop);
        let mut failures_in_a_row = 0u32;
        while !stop.is_stopped() {
            let outcome = self
                .pass(infra_id, auth, upkeep.interval, stop.clone())
                .await;
            let outcome = lease.settle(outcome);
            on_pass(&outcome);
            let wait = match (outcome, upkeep.policy) {
                (Err(lost @ EngineError::LeaseLost { .. }), _) => return Err(lost),
                (Ok(_), _) => {
                    failures_in_a_row = 0;
                    upkeep.interval
                }
                (Err(error), ErrorPolicy::RetryTransient { max_wait })
                    if error.code().is_transient() =>
                {
                    failures_in_a_row += 1;
                    let wait = upkeep
                        .interval
                        .saturating_mul(1 << (failures_in_a_row - 1).min(16))
                        .min(max_wait);
                    tracing::warn!(infra = %infra_id, %error, "maintenance pass failed; next in {wait:?}");
                    wait
                }
                (Err(error), _) => return Err(error),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.stopped() => {}
            }
        }
        lease.settle(Ok(()))
    }
}
