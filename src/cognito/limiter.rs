//! The one client-side rate limit every Cognito read of a reader goes through, adaptive:
//! halved when Cognito throttles, raised again step by step while calls succeed (AIMD).
//!
//! One limiter for all read operations rather than one per quota category: ListUsers and
//! ListUsersInGroup each have a 30 RPS per-account quota that cannot be raised, and the
//! AdminGetUser family shares the user-read quota with other clients of the account. A single
//! budget below the smallest of them (25 RPS by default) keeps every category under its quota
//! whatever the mix of calls, and leaves headroom for the account's other callers.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Throttles that arrive within this window of the last decrease are one congestion event:
/// parallel shards hit by the same burst must not halve the rate once each.
const DECREASE_COOLDOWN: Duration = Duration::from_secs(1);
/// How long the rate must stay unthrottled before it is raised by one step.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// The additive step, as a fraction of the configured ceiling.
const RECOVERY_STEP: f64 = 0.05;
/// The lowest rate, as a fraction of the ceiling: the run must keep moving.
const FLOOR_FRACTION: f64 = 1.0 / 16.0;
/// Absolute lowest rate in requests per second.
const MIN_RATE: f64 = 0.5;

/// The AIMD arithmetic, separated from the clock and the limiter so it can be tested with
/// chosen instants.
#[derive(Debug, Clone)]
pub(crate) struct Aimd {
    ceiling: f64,
    floor: f64,
    rate: f64,
    last_decrease: Option<Instant>,
    last_increase: Option<Instant>,
}

impl Aimd {
    pub(crate) fn new(ceiling: f64) -> Self {
        let ceiling = ceiling.max(MIN_RATE);
        Aimd {
            ceiling,
            floor: (ceiling * FLOOR_FRACTION).max(MIN_RATE).min(ceiling),
            rate: ceiling,
            last_decrease: None,
            last_increase: None,
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    pub(crate) fn ceiling(&self) -> f64 {
        self.ceiling
    }

    /// Halves the rate unless a decrease happened within the cooldown; returns the new rate
    /// when it changed.
    pub(crate) fn on_throttle(&mut self, now: Instant) -> Option<f64> {
        if self
            .last_decrease
            .is_some_and(|last| now.saturating_duration_since(last) < DECREASE_COOLDOWN)
        {
            return None;
        }
        self.last_decrease = Some(now);
        let next = (self.rate / 2.0).max(self.floor);
        (next != self.rate).then(|| {
            self.rate = next;
            next
        })
    }

    /// Raises the rate by one step when it is below the ceiling and neither a decrease nor an
    /// increase happened within the recovery interval; returns the new rate when it changed.
    pub(crate) fn on_success(&mut self, now: Instant) -> Option<f64> {
        if self.rate >= self.ceiling {
            return None;
        }
        let last_change = match (self.last_decrease, self.last_increase) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if last_change.is_some_and(|last| now.saturating_duration_since(last) < RECOVERY_INTERVAL) {
            return None;
        }
        self.last_increase = Some(now);
        self.rate = (self.rate + self.ceiling * RECOVERY_STEP).min(self.ceiling);
        Some(self.rate)
    }
}

/// The shared limiter: a `governor` limiter at the current AIMD rate, rebuilt when the rate
/// changes (governor quotas are fixed; changes are rare, a rebuild is cheap).
#[derive(Debug)]
pub(crate) struct AdaptiveLimiter {
    aimd: Mutex<Aimd>,
    current: RwLock<Arc<DefaultDirectRateLimiter>>,
}

impl AdaptiveLimiter {
    pub(crate) fn new(rate_per_second: f64) -> Self {
        let aimd = Aimd::new(rate_per_second);
        let limiter = build_limiter(aimd.rate());
        AdaptiveLimiter {
            aimd: Mutex::new(aimd),
            current: RwLock::new(Arc::new(limiter)),
        }
    }

    /// Waits until one more request may be sent.
    pub(crate) async fn acquire(&self) {
        let limiter = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        limiter.until_ready().await;
    }

    pub(crate) fn rate(&self) -> f64 {
        self.aimd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rate()
    }

    pub(crate) fn ceiling(&self) -> f64 {
        self.aimd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ceiling()
    }

    /// Records a throttled response; returns the new rate when it was lowered.
    pub(crate) fn on_throttle(&self) -> Option<f64> {
        let changed = self
            .aimd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_throttle(Instant::now());
        changed.inspect(|rate| self.replace(*rate))
    }

    /// Records a successful response; returns the new rate when it was raised.
    pub(crate) fn on_success(&self) -> Option<f64> {
        let changed = self
            .aimd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_success(Instant::now());
        changed.inspect(|rate| self.replace(*rate))
    }

    fn replace(&self, rate: f64) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(build_limiter(rate));
    }
}

/// Burst of one: a per-second quota is enforced over short windows, so requests are spread
/// evenly instead of sent in bursts.
fn build_limiter(rate_per_second: f64) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs_f64(1.0 / rate_per_second.max(MIN_RATE));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_halves_once_per_cooldown() {
        let start = Instant::now();
        let mut aimd = Aimd::new(25.0);
        assert_eq!(aimd.on_throttle(start), Some(12.5));
        // Parallel shards throttled by the same burst: no further halving.
        assert_eq!(aimd.on_throttle(start + Duration::from_millis(200)), None);
        assert_eq!(aimd.rate(), 12.5);
        assert_eq!(aimd.on_throttle(start + DECREASE_COOLDOWN), Some(6.25));
    }

    #[test]
    fn rate_never_drops_below_the_floor() {
        let start = Instant::now();
        let mut aimd = Aimd::new(25.0);
        for i in 0..20 {
            aimd.on_throttle(start + DECREASE_COOLDOWN * i);
        }
        assert_eq!(aimd.rate(), 25.0 * FLOOR_FRACTION);
        assert_eq!(aimd.on_throttle(start + DECREASE_COOLDOWN * 30), None);
    }

    #[test]
    fn recovers_gradually_up_to_the_ceiling() {
        let start = Instant::now();
        let mut aimd = Aimd::new(20.0);
        assert_eq!(aimd.on_success(start), None, "already at the ceiling");
        aimd.on_throttle(start);
        assert_eq!(aimd.rate(), 10.0);
        // Too soon after the decrease.
        assert_eq!(aimd.on_success(start + Duration::from_millis(500)), None);
        assert_eq!(aimd.on_success(start + RECOVERY_INTERVAL), Some(11.0));
        // Too soon after the increase.
        assert_eq!(
            aimd.on_success(start + RECOVERY_INTERVAL + Duration::from_millis(10)),
            None
        );
        let mut now = start + RECOVERY_INTERVAL;
        let mut steps = 1;
        while aimd.rate() < 20.0 {
            now += RECOVERY_INTERVAL;
            assert!(aimd.on_success(now).is_some());
            steps += 1;
        }
        assert_eq!(steps, 10, "additive steps of 5% of the ceiling");
        assert_eq!(aimd.rate(), 20.0);
        assert_eq!(aimd.on_success(now + RECOVERY_INTERVAL * 5), None);
    }

    #[test]
    fn tiny_ceiling_has_a_usable_floor() {
        let mut aimd = Aimd::new(0.1);
        assert_eq!(aimd.ceiling(), MIN_RATE);
        assert_eq!(aimd.on_throttle(Instant::now()), None);
        assert_eq!(aimd.rate(), MIN_RATE);
    }

    #[tokio::test]
    async fn limiter_reports_changes() {
        let limiter = AdaptiveLimiter::new(1000.0);
        limiter.acquire().await;
        assert_eq!(limiter.on_throttle(), Some(500.0));
        assert_eq!(limiter.rate(), 500.0);
        limiter.acquire().await;
        assert_eq!(limiter.on_success(), None, "within the recovery interval");
        assert_eq!(limiter.ceiling(), 1000.0);
    }
}
