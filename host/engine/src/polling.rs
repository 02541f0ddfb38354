//! When to ask a cloud again whether an instance is running.
//!
//! Polling often notices a booted instance quickly but costs a sandboxed call
//! each time; polling rarely is cheap but late. Instances of the same resource
//! boot in similar times, so the engine learns the boot time per resource and
//! polls such an instance rarely until it is nearly due, then finely. Without
//! an estimate, the interval is a tenth of the time waited, so the delay
//! between running and noticing it stays within ~10% of the boot time.
//!
//! For a driver that answers for many instances in one call
//! (`status_batches.rs`), the polls of all instances fall on a shared grid
//! of ticks (multiples of the finest interval since the orchestrator
//! started), so that the instances due about the same time are asked in one
//! call instead of each at its own moment; such a driver is polled five
//! times as finely ([`Cadence`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How finely instances are polled: a poll is a sandboxed call per instance
/// for most drivers, but one call per tick for all the due instances of a
/// driver that answers for many at once, which can therefore afford to look
/// five times as often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cadence {
    /// Each instance asked on its own.
    OneByOne,
    /// Instances asked together (`status_batches.rs`), on a grid's ticks.
    Batched,
}

impl Cadence {
    /// The finest interval.
    fn fine(self) -> Duration {
        match self {
            Cadence::OneByOne => Duration::from_millis(5),
            Cadence::Batched => Duration::from_millis(1),
        }
    }

    /// The interval as a share of the time expected (or waited so far,
    /// without an estimate): 1/40, or 1/200 batched.
    fn share(self) -> u32 {
        match self {
            Cadence::OneByOne => 40,
            Cadence::Batched => 200,
        }
    }
}
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

/// The ticks the polls of a batching driver fall on.
pub(crate) struct PollGrid {
    origin: Instant,
}

impl Default for PollGrid {
    fn default() -> Self {
        PollGrid {
            origin: Instant::now(),
        }
    }
}

impl PollGrid {
    /// The first tick at least `interval` from `now`.
    pub(crate) fn after(&self, now: Instant, interval: Duration) -> Instant {
        let earliest = (now + interval).saturating_duration_since(self.origin);
        let tick = Cadence::Batched.fine().as_nanos();
        let ticks = earliest.as_nanos().div_ceil(tick);
        self.origin + Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
    }
}

/// How long to wait before the next poll, having waited `waited` so far.
pub(crate) fn next_poll(
    waited: Duration,
    expected: Option<Duration>,
    cadence: Cadence,
) -> Duration {
    let fine = cadence.fine();
    match expected {
        // Not due yet: sleep until shortly before it is.
        Some(expected) if waited < expected.mul_f64(0.9) => {
            (expected.mul_f64(0.9) - waited).max(fine)
        }
        // Due: poll finely for a while.
        Some(expected) if waited < expected * 2 => (expected / cadence.share()).clamp(fine, COARSE),
        // Without an estimate: a fraction of the time waited (a quarter as
        // fine as when due).
        _ => (waited * 4 / cadence.share()).clamp(fine * 2, COARSE),
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
        let one_by_one = |waited| next_poll(ms(waited), expected, Cadence::OneByOne);
        assert_eq!(one_by_one(0), ms(180));
        assert_eq!(one_by_one(181), ms(5));
        assert_eq!(one_by_one(399), ms(5));
        assert_eq!(one_by_one(1000), ms(100));
        let batched = |waited| next_poll(ms(waited), expected, Cadence::Batched);
        assert_eq!(batched(0), ms(180));
        assert_eq!(batched(181), ms(1));
        assert_eq!(
            next_poll(ms(28_000), Some(ms(30_000)), Cadence::Batched),
            ms(150)
        );
    }

    #[test]
    fn without_one_the_interval_follows_the_time_waited() {
        let one_by_one = |waited| next_poll(ms(waited), None, Cadence::OneByOne);
        assert_eq!(one_by_one(0), ms(10));
        assert_eq!(one_by_one(500), ms(50));
        assert_eq!(one_by_one(3_600_000), ms(2000));
        let batched = |waited| next_poll(ms(waited), None, Cadence::Batched);
        assert_eq!(batched(0), ms(2));
        assert_eq!(batched(500), ms(10));
    }

    #[test]
    fn a_grid_puts_polls_due_about_the_same_time_on_one_tick() {
        let grid = PollGrid::default();
        let origin = grid.origin;
        let us = Duration::from_micros;
        let tick = |at: u64, wait: Duration| grid.after(origin + us(at), wait) - origin;
        // Polls due anywhere in the same millisecond fall on its end.
        assert_eq!(tick(100, ms(5)), ms(6));
        assert_eq!(tick(900, ms(5)), ms(6));
        assert_eq!(tick(1000, ms(5)), ms(6));
        assert_eq!(tick(2500, ms(180)), ms(183));
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
