//! When to ask a cloud again whether an instance is running.
//!
//! Polling often notices a booted instance quickly but costs a sandboxed call
//! each time; polling rarely is cheap but late. Instances of the same resource
//! boot in similar times, so the engine learns the boot time per resource and
//! polls such an instance rarely until it is nearly due, then finely. Without
//! an estimate, the interval is a tenth of the time waited, so the delay
//! between running and noticing it stays within ~10% of the boot time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The finest polling interval.
const FINE: Duration = Duration::from_millis(5);
/// The coarsest polling interval.
const COARSE: Duration = Duration::from_secs(2);

/// The shortest boot time seen per resource.
#[derive(Default)]
pub(crate) struct BootEstimates(Mutex<HashMap<String, Duration>>);

impl BootEstimates {
    /// The estimate for `resource`, if an instance of it booted before.
    pub(crate) fn get(&self, resource: &str) -> Option<Duration> {
        self.lock().get(resource).copied()
    }

    /// Records that an instance of `resource` was seen running after `boot`.
    pub(crate) fn observe(&self, resource: &str, boot: Duration) {
        let mut estimates = self.lock();
        let estimate = estimates.entry(resource.to_string()).or_insert(boot);
        *estimate = (*estimate).min(boot);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Duration>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long to wait before the next poll, having waited `waited` so far.
pub(crate) fn next_poll(waited: Duration, expected: Option<Duration>) -> Duration {
    match expected {
        // Not due yet: sleep until shortly before it is.
        Some(expected) if waited < expected.mul_f64(0.9) => {
            (expected.mul_f64(0.9) - waited).max(FINE)
        }
        // Due: poll finely for a while.
        Some(expected) if waited < expected * 2 => (expected / 40).clamp(FINE, COARSE),
        _ => (waited / 10).clamp(FINE * 2, COARSE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn with_an_estimate_polls_rarely_then_finely() {
        let expected = Some(ms(200));
        assert_eq!(next_poll(ms(0), expected), ms(180));
        assert_eq!(next_poll(ms(181), expected), ms(5));
        assert_eq!(next_poll(ms(399), expected), ms(5));
        assert_eq!(next_poll(ms(1000), expected), ms(100));
    }

    #[test]
    fn without_one_the_interval_follows_the_time_waited() {
        assert_eq!(next_poll(ms(0), None), ms(10));
        assert_eq!(next_poll(ms(500), None), ms(50));
        assert_eq!(next_poll(ms(3_600_000), None), ms(2000));
    }

    #[test]
    fn the_shortest_boot_is_kept() {
        let estimates = BootEstimates::default();
        estimates.observe("r", ms(300));
        estimates.observe("r", ms(200));
        estimates.observe("r", ms(250));
        assert_eq!(estimates.get("r"), Some(ms(200)));
        assert_eq!(estimates.get("other"), None);
    }
}
