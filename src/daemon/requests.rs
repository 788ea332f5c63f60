//! Early, pool-wide reconciles asked for by events that name no user (a deleted group, a user
//! import, a hidden username without a sub).
//!
//! The requests themselves are rows ([`crate::state::requests`]), recorded by the consumer in
//! its batch's transaction and served by whichever replica holds the pool's lease. This module
//! holds what is in memory: the wake-up a consumer gives its own process's scheduler once it
//! recorded a request, the debounce, the early-scan budget, and the decision [`due`] of when
//! to run.
//!
//! **The early-scan budget.** Requests are cheap to make (a deleted group, an import job, a
//! user no record identifies), a scan of the pool is not: it costs `ceil(users / 60)` pages
//! plus the memberships in the `UserList` category, which every scanner and the application
//! share. Early runs are therefore at least [`early_scan_interval`] apart: the interval in
//! which one pool scan uses [`EARLY_SCAN_SHARE`] of this process's `UserList` rate, so that
//! early scans never take more than that share of it over time (a 100,000-user pool at the
//! default 24 RPS: 70 s of scanning, one early run per 140 s at most; a million users: one
//! per 23 minutes). Requests arriving meanwhile stay pending and fold into the next run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::state::requests::PendingRequest;

/// Longest wait between two looks at the pool's pending requests: requests recorded by
/// another replica's consumer give this process no wake-up.
pub const POLL_EVERY: Duration = Duration::from_secs(15);

/// The consumer side is [`ReconcileRequests::recorded`], the scheduler side
/// [`ReconcileRequests::wait`]. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct ReconcileRequests {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    notify: Notify,
    debounce: Duration,
}

impl ReconcileRequests {
    /// A run starts once the oldest pending request is `debounce` old, so a burst of
    /// requests makes one reconcile.
    pub fn new(debounce: Duration) -> Self {
        ReconcileRequests {
            inner: Arc::new(Inner {
                notify: Notify::new(),
                debounce,
            }),
        }
    }

    pub fn debounce(&self) -> Duration {
        self.inner.debounce
    }

    /// Wakes the scheduler: a request was just committed. Never blocks.
    pub fn recorded(&self) {
        self.inner.notify.notify_one();
    }

    /// Waits for [`ReconcileRequests::recorded`] (one that came while nobody waited counts).
    pub async fn wait(&self) {
        self.inner.notify.notified().await;
    }

    /// How long the scheduler may sleep before it looks at the pending requests again.
    pub fn poll_every(&self) -> Duration {
        self.inner.debounce.min(POLL_EVERY)
    }
}

/// The fraction of the `UserList` rate early reconciles may use over time.
pub const EARLY_SCAN_SHARE: f64 = 0.5;

/// The least time between two early reconciles of a pool whose scan costs `scan_seconds` of
/// `UserList` quota: one scan per interval uses [`EARLY_SCAN_SHARE`] of the rate.
pub fn early_scan_interval(scan_seconds: f64) -> Duration {
    Duration::try_from_secs_f64(scan_seconds.max(0.0) / EARLY_SCAN_SHARE).unwrap_or(Duration::MAX)
}

/// The early-scan budget at the time of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// When this process last started a reconcile of the pool (scheduled or early).
    pub last_run: Option<DateTime<Utc>>,
    pub min_interval: Duration,
}

/// What the scheduler does about the pending requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing is pending.
    Idle,
    /// The oldest pending request becomes `debounce` old after this long.
    Wait(Duration),
    /// Debounced, but the pool was scanned less than the budget's interval ago: run after
    /// this long.
    Deferred(Duration),
    /// The oldest pending request is `debounce` old and the budget allows a scan: reconcile now.
    Run,
}

/// Whether `pending` asks for a reconcile at `now`: once the oldest of them is `debounce` old,
/// so that requests arriving within the window fold into one run, and no sooner than the
/// budget's interval after the last run.
pub fn due(
    pending: &[PendingRequest],
    now: DateTime<Utc>,
    debounce: Duration,
    budget: Budget,
) -> Due {
    let Some(oldest) = pending.iter().map(|r| r.requested_at).min() else {
        return Due::Idle;
    };
    let since = |at: DateTime<Utc>| (now - at).to_std().unwrap_or(Duration::ZERO);
    // A request stamped ahead of this replica's clock counts as just made.
    if let Some(left) = debounce.checked_sub(since(oldest))
        && !left.is_zero()
    {
        return Due::Wait(left);
    }
    match budget
        .last_run
        .and_then(|last| budget.min_interval.checked_sub(since(last)))
    {
        Some(left) if !left.is_zero() => Due::Deferred(left),
        _ => Due::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(reason: &str, at: DateTime<Utc>) -> PendingRequest {
        PendingRequest {
            id: uuid::Uuid::new_v4(),
            reason: reason.to_owned(),
            requested_at: at,
        }
    }

    const NO_BUDGET: Budget = Budget {
        last_run: None,
        min_interval: Duration::ZERO,
    };

    #[test]
    fn a_burst_runs_once_its_oldest_request_is_debounced() {
        let due =
            |pending: &[PendingRequest], now, debounce| due(pending, now, debounce, NO_BUDGET);
        let debounce = Duration::from_secs(30);
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let secs = chrono::Duration::seconds;
        assert_eq!(due(&[], t0, debounce), Due::Idle);

        let burst = [
            request("StartUserImportJob", t0 + secs(12)),
            request("DeleteGroup", t0),
            request("DeleteGroup", t0 + secs(25)),
        ];
        assert_eq!(
            due(&burst, t0 + secs(10), debounce),
            Due::Wait(Duration::from_secs(20)),
            "the oldest request sets the deadline, whatever the order"
        );
        assert_eq!(due(&burst, t0 + secs(30), debounce), Due::Run);
        assert_eq!(due(&burst, t0 + secs(3600), debounce), Due::Run);
        assert_eq!(
            due(&burst, t0 - secs(5), debounce),
            Due::Wait(debounce),
            "a request from a clock ahead of ours waits a whole window"
        );
        assert_eq!(due(&burst[..1], t0, Duration::ZERO), Due::Run);
    }

    #[test]
    fn the_budget_defers_early_scans_and_requests_fold_into_one_run() {
        let debounce = Duration::from_secs(60);
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let secs = chrono::Duration::seconds;
        // A 100,000-user pool without groups at 24 RPS: 1,667 pages, 70 s; twice that apart.
        let min_interval = early_scan_interval(1_667.0 / 24.0);
        assert_eq!(min_interval.as_secs(), 138);
        let budget = Budget {
            last_run: Some(t0),
            min_interval,
        };
        // A SignUp-like stream: a request every few seconds after a run at t0.
        let pending: Vec<PendingRequest> = (0..40)
            .map(|n| request("Signup_POST", t0 + secs(5 + 3 * n)))
            .collect();
        assert_eq!(
            due(&pending[..1], t0 + secs(30), debounce, budget),
            Due::Wait(Duration::from_secs(35)),
            "the debounce comes first"
        );
        assert_eq!(
            due(&pending, t0 + secs(70), debounce, budget),
            Due::Deferred(min_interval - Duration::from_secs(70)),
            "debounced, but the pool was scanned 70 s ago"
        );
        // Once the interval has passed, one run serves all forty.
        assert_eq!(due(&pending, t0 + secs(139), debounce, budget), Due::Run);
        assert_eq!(
            due(
                &pending,
                t0 + secs(70),
                debounce,
                Budget {
                    last_run: None,
                    ..budget
                }
            ),
            Due::Run,
            "no run yet: nothing to wait for"
        );
        // A million users: one early run per 23 minutes at most.
        assert_eq!(early_scan_interval(16_667.0 / 24.0).as_secs() / 60, 23);
    }

    #[test]
    fn the_poll_never_sleeps_longer_than_the_debounce() {
        assert_eq!(
            ReconcileRequests::new(Duration::from_secs(2)).poll_every(),
            Duration::from_secs(2)
        );
        assert_eq!(
            ReconcileRequests::new(Duration::from_secs(300)).poll_every(),
            POLL_EVERY
        );
    }
}
