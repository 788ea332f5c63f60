//! Client-side rate limits per Cognito quota category, adaptive: a category's rate is halved
//! when Cognito throttles one of its operations, and raised again step by step while its
//! calls succeed (AIMD).
//!
//! Cognito enforces its request-rate quotas per *category* of operations, per account and
//! Region, across all pools: ListUsers and ListUsersInGroup share `UserList` (30 RPS), and
//! so on ([`QuotaCategory`]). One [`QuotaLimiter`] holds one limiter per category; every
//! reader of the process shares it (the daemon's consumer and its scheduled reconcile, a
//! scan's shards), so the process as a whole stays under its share of each quota whatever
//! the mix of calls, and a throttled category slows down without slowing the others.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

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
/// Longest single wait on a limiter before it is checked again (a lost wake-up costs no
/// more); a longer turn is waited for in several.
const WAIT_GUARD: Duration = Duration::from_secs(1);

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

/// Cognito's request-rate quota categories of the operations the reader sends, from the
/// "API operation categories and request rate quotas" table of Cognito's quota documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaCategory {
    /// ListUsers, ListUsersInGroup: 30 RPS, not adjustable.
    UserList,
    /// AdminGetUser: 120 RPS.
    UserRead,
    /// AdminListGroupsForUser (a user's groups are a "user resource"): 50 RPS.
    UserResourceRead,
    /// DescribeUserPool: 15 RPS, not adjustable.
    UserPoolRead,
    /// ListGroups, GetGroup: 20 RPS, not adjustable (and 5 RPS per operation and pool).
    UserPoolResourceRead,
}

impl QuotaCategory {
    pub const ALL: [QuotaCategory; 5] = [
        QuotaCategory::UserList,
        QuotaCategory::UserRead,
        QuotaCategory::UserResourceRead,
        QuotaCategory::UserPoolRead,
        QuotaCategory::UserPoolResourceRead,
    ];

    /// The category's name as Cognito's documentation and Service Quotas spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaCategory::UserList => "UserList",
            QuotaCategory::UserRead => "UserRead",
            QuotaCategory::UserResourceRead => "UserResourceRead",
            QuotaCategory::UserPoolRead => "UserPoolRead",
            QuotaCategory::UserPoolResourceRead => "UserPoolResourceRead",
        }
    }

    /// Cognito's default quota in requests per second (per account and Region).
    pub fn default_quota(self) -> f64 {
        match self {
            QuotaCategory::UserList => 30.0,
            QuotaCategory::UserRead => 120.0,
            QuotaCategory::UserResourceRead => 50.0,
            QuotaCategory::UserPoolRead => 15.0,
            QuotaCategory::UserPoolResourceRead => 20.0,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for QuotaCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`QuotaCategory::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown Cognito quota category {name:?}: expected one of UserList, UserRead, UserResourceRead, UserPoolRead, UserPoolResourceRead"
)]
pub struct UnknownQuotaCategory {
    pub name: String,
}

impl FromStr for QuotaCategory {
    type Err = UnknownQuotaCategory;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        QuotaCategory::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownQuotaCategory {
                name: name.to_owned(),
            })
    }
}

/// The default [`QuotaSettings::quota_share`]: the rest of each quota is left to the
/// application's own calls and other tools of the account.
pub const DEFAULT_QUOTA_SHARE: f64 = 0.8;

/// How much of each category's quota this process may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaSettings {
    /// Fraction (0, 1] of every category's default quota.
    pub quota_share: f64,
    /// Requests per second for a category, used as given instead of its default quota times
    /// `quota_share` (e.g. an adjustable quota raised for the account).
    pub rps: BTreeMap<QuotaCategory, f64>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            quota_share: DEFAULT_QUOTA_SHARE,
            rps: BTreeMap::new(),
        }
    }
}

/// A share outside (0, 1] or a rate that is not a positive number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidQuotaSettings {
    #[error("the quota share must be above 0 and at most 1, not {0}")]
    Share(f64),
    #[error("the {category} rate must be a positive number of requests per second, not {rps}")]
    Rate { category: QuotaCategory, rps: f64 },
}

impl QuotaSettings {
    /// The same rate for every category, whatever Cognito's quotas (emulators, benchmarks).
    pub fn uniform(rps: f64) -> Self {
        QuotaSettings {
            quota_share: DEFAULT_QUOTA_SHARE,
            rps: QuotaCategory::ALL.into_iter().map(|c| (c, rps)).collect(),
        }
    }

    /// These settings with `category` at `rps` requests per second.
    pub fn with_rate(mut self, category: QuotaCategory, rps: f64) -> Self {
        self.rps.insert(category, rps);
        self
    }

    /// The requests per second this process may send in `category`.
    pub fn rate(&self, category: QuotaCategory) -> f64 {
        self.rps
            .get(&category)
            .copied()
            .unwrap_or_else(|| category.default_quota() * self.quota_share)
    }

    pub fn validate(&self) -> Result<(), InvalidQuotaSettings> {
        if !(self.quota_share > 0.0 && self.quota_share <= 1.0) {
            return Err(InvalidQuotaSettings::Share(self.quota_share));
        }
        for (&category, &rps) in &self.rps {
            if !(rps.is_finite() && rps > 0.0) {
                return Err(InvalidQuotaSettings::Rate { category, rps });
            }
        }
        Ok(())
    }
}

/// One adaptive limiter per quota category. Cheap to clone; clones share the limits, so
/// every reader built with one [`QuotaLimiter`] draws from the same budgets.
#[derive(Clone)]
pub struct QuotaLimiter {
    categories: Arc<[AdaptiveLimiter; QuotaCategory::ALL.len()]>,
}

impl fmt::Debug for QuotaLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for category in QuotaCategory::ALL {
            map.entry(&category.as_str(), &self.rate(category));
        }
        map.finish()
    }
}

impl QuotaLimiter {
    /// Limits at each category's rate from `settings` (not validated here: a rate below
    /// the floor is raised to it).
    pub fn new(settings: &QuotaSettings) -> Self {
        QuotaLimiter {
            categories: Arc::new(
                QuotaCategory::ALL.map(|c| AdaptiveLimiter::new(settings.rate(c))),
            ),
        }
    }

    /// The current rate of a category (lowered while Cognito throttles it).
    pub fn rate(&self, category: QuotaCategory) -> f64 {
        self.get(category).aimd().rate()
    }

    /// The configured rate of a category, which throttling lowers and recovery returns to.
    pub fn ceiling(&self, category: QuotaCategory) -> f64 {
        self.get(category).aimd().ceiling()
    }

    /// Waits until one more request of `category` may be sent.
    pub(crate) async fn acquire(&self, category: QuotaCategory) {
        self.get(category).acquire().await;
    }

    /// Takes a request of `category` if one may be sent now, without waiting.
    #[cfg(test)]
    pub(crate) fn try_acquire(&self, category: QuotaCategory) -> bool {
        self.get(category).current().check().is_ok()
    }

    /// Records a throttled response in `category`; returns its new rate when it was lowered.
    pub(crate) fn on_throttle(&self, category: QuotaCategory, now: Instant) -> Option<f64> {
        let limiter = self.get(category);
        let changed = limiter.aimd().on_throttle(now);
        changed.inspect(|rate| limiter.replace(*rate))
    }

    /// Records a successful response in `category`; returns its new rate when it was raised.
    pub(crate) fn on_success(&self, category: QuotaCategory, now: Instant) -> Option<f64> {
        let limiter = self.get(category);
        let changed = limiter.aimd().on_success(now);
        changed.inspect(|rate| limiter.replace(*rate))
    }

    fn get(&self, category: QuotaCategory) -> &AdaptiveLimiter {
        &self.categories[category.index()]
    }
}

/// One category's limiter: a `governor` limiter at the current AIMD rate, replaced when the
/// rate changes (a governor quota is fixed; changes are rare and a new limiter is cheap).
#[derive(Debug)]
struct AdaptiveLimiter {
    aimd: Mutex<Aimd>,
    current: RwLock<Arc<DefaultDirectRateLimiter>>,
}

impl AdaptiveLimiter {
    fn new(rate_per_second: f64) -> Self {
        let aimd = Aimd::new(rate_per_second);
        let limiter = build_limiter(aimd.rate());
        AdaptiveLimiter {
            aimd: Mutex::new(aimd),
            current: RwLock::new(Arc::new(limiter)),
        }
    }

    fn aimd(&self) -> std::sync::MutexGuard<'_, Aimd> {
        self.aimd.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Arc<DefaultDirectRateLimiter> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits on the current limiter; when the rate changed meanwhile, waits on the new one
    /// too, so that a slowdown also holds back the requests already queued. Each wait is
    /// also bounded by tokio's timer ([`WAIT_GUARD`]): governor sleeps on futures-timer's
    /// own thread, which is precise (tokio's timer rounds up to the millisecond, 3 % of a
    /// 30 RPS period), but a backfill at 2 RPS was found idle for good twice with that
    /// thread parked and nothing left to wake it. A wait that overruns looks again.
    async fn acquire(&self) {
        loop {
            let limiter = self.current();
            match tokio::time::timeout(WAIT_GUARD, limiter.until_ready()).await {
                Ok(()) if Arc::ptr_eq(&limiter, &self.current()) => return,
                Ok(()) | Err(_) => {}
            }
        }
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

    fn slow() -> QuotaLimiter {
        // One request per two seconds: nothing refills while a test runs.
        QuotaLimiter::new(&QuotaSettings::uniform(0.5))
    }

    #[test]
    fn clones_share_one_budget_per_category() {
        let limiter = slow();
        let other_reader = limiter.clone();
        assert!(limiter.try_acquire(QuotaCategory::UserList));
        assert!(
            !other_reader.try_acquire(QuotaCategory::UserList),
            "the second reader draws from the same UserList budget"
        );
        assert!(!limiter.try_acquire(QuotaCategory::UserList));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_on_every_thread_draw_from_one_budget() {
        // The daemon's pollers, its scheduled reconcile and a scan's shards are such tasks.
        let limiter = slow();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let reader = limiter.clone();
                tokio::spawn(async move {
                    [QuotaCategory::UserRead, QuotaCategory::UserList]
                        .map(|category| reader.try_acquire(category))
                })
            })
            .collect();
        let mut granted = [0, 0];
        for task in tasks {
            let [read, list] = task.await.unwrap();
            granted[0] += usize::from(read);
            granted[1] += usize::from(list);
        }
        assert_eq!(
            granted,
            [1, 1],
            "one request per category, whichever task asked"
        );
    }

    #[test]
    fn categories_are_independent() {
        let limiter = slow();
        assert!(limiter.try_acquire(QuotaCategory::UserList));
        for category in QuotaCategory::ALL
            .into_iter()
            .filter(|c| *c != QuotaCategory::UserList)
        {
            assert!(
                limiter.try_acquire(category),
                "{category} has its own budget"
            );
        }
        assert!(!limiter.try_acquire(QuotaCategory::UserRead));
    }

    #[test]
    fn a_throttle_slows_only_its_category_then_it_recovers() {
        let limiter =
            QuotaLimiter::new(&QuotaSettings::default().with_rate(QuotaCategory::UserList, 20.0));
        let start = Instant::now();
        assert_eq!(limiter.rate(QuotaCategory::UserList), 20.0);
        assert_eq!(
            limiter.on_throttle(QuotaCategory::UserList, start),
            Some(10.0)
        );
        assert_eq!(limiter.rate(QuotaCategory::UserList), 10.0);
        assert_eq!(limiter.ceiling(QuotaCategory::UserList), 20.0);
        for category in QuotaCategory::ALL
            .into_iter()
            .filter(|c| *c != QuotaCategory::UserList)
        {
            assert_eq!(
                limiter.rate(category),
                limiter.ceiling(category),
                "{category} keeps its rate"
            );
            assert_eq!(
                limiter.on_success(category, start + RECOVERY_INTERVAL),
                None
            );
        }
        let mut now = start;
        let mut steps = 0;
        while limiter.rate(QuotaCategory::UserList) < 20.0 {
            now += RECOVERY_INTERVAL;
            assert!(limiter.on_success(QuotaCategory::UserList, now).is_some());
            steps += 1;
        }
        assert_eq!(steps, 10, "back to the ceiling in steps of 5%");
    }

    #[test]
    fn settings_scale_defaults_and_take_overrides() {
        let settings = QuotaSettings {
            quota_share: 0.5,
            ..QuotaSettings::default()
        }
        .with_rate(QuotaCategory::UserList, 30.0);
        assert_eq!(
            settings.rate(QuotaCategory::UserList),
            30.0,
            "used as given"
        );
        assert_eq!(settings.rate(QuotaCategory::UserRead), 60.0);
        assert_eq!(settings.rate(QuotaCategory::UserPoolRead), 7.5);
        assert_eq!(settings.validate(), Ok(()));
        let share = QuotaSettings {
            quota_share: 1.5,
            ..QuotaSettings::default()
        };
        assert_eq!(share.validate(), Err(InvalidQuotaSettings::Share(1.5)));
        let rate = QuotaSettings::default().with_rate(QuotaCategory::UserRead, 0.0);
        assert!(matches!(
            rate.validate(),
            Err(InvalidQuotaSettings::Rate {
                category: QuotaCategory::UserRead,
                ..
            })
        ));
        assert_eq!("userlist".parse(), Ok(QuotaCategory::UserList));
        assert!("Users".parse::<QuotaCategory>().is_err());
    }
}
