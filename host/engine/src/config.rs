//! The `engine` section of the occopus configuration: how builds, destroys
//! and maintenance passes run.
//!
//! ```yaml
//! engine:
//!   max_concurrent_per_endpoint: 64  # create/destroy calls in flight per cloud endpoint
//!   boot_timeout_secs: 1800           # pending longer than this = failed
//!   call_attempts: 5                  # tries of a transiently failing cloud call
//!   max_concurrent_checks: 256        # instances observed at once by `maintain`
//!   lease_ttl_secs: 30                # an operation's lease lapses this long after its last heartbeat
//!   replace_batch: 1                  # instances of a changed node replaced at a time (rolling)
//! ```

use serde::Deserialize;
use std::time::Duration;

/// The `engine` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Most create/destroy calls in flight per driver endpoint (a cloud's
    /// rate limit), not a global parallelism.
    pub max_concurrent_per_endpoint: usize,
    /// How long an instance may stay pending before it counts as failed.
    pub boot_timeout_secs: u64,
    /// Tries of a cloud call that fails with a transient error.
    pub call_attempts: u32,
    /// Most instances observed (status and health checks) at once by a
    /// maintenance pass.
    pub max_concurrent_checks: usize,
    /// How long the lease of an operation on an infra outlives its last
    /// heartbeat (renewed every third of it): how soon another command takes
    /// over from a holder that hangs or runs on a host that went away. A
    /// holder that died on this host is taken over at once.
    pub lease_ttl_secs: u64,
    /// How many instances of a changed node are replaced at a time (at
    /// least 1): each batch's new instances are ready before its old ones go,
    /// where the node's `max` leaves room.
    pub replace_batch: usize,
}

impl EngineConfig {
    /// The lease's time to live (at least three seconds: one heartbeat a second).
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs.max(3))
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_per_endpoint: 64,
            boot_timeout_secs: 1800,
            call_attempts: 5,
            max_concurrent_checks: 256,
            lease_ttl_secs: 30,
            replace_batch: 1,
        }
    }
}
