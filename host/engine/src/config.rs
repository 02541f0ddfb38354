//! The `engine` section of the occopus configuration: how builds, destroys
//! and maintenance passes run.
//!
//! ```yaml
//! engine:
//!   max_concurrent_per_endpoint: 64  # create/destroy calls in flight per cloud endpoint
//!   boot_timeout_secs: 1800           # pending longer than this = failed
//!   call_attempts: 5                  # tries of a transiently failing cloud call
//!   max_concurrent_checks: 256        # instances observed at once by `maintain`
//! ```

use serde::Deserialize;

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent_per_endpoint: 64,
            boot_timeout_secs: 1800,
            call_attempts: 5,
            max_concurrent_checks: 256,
        }
    }
}
