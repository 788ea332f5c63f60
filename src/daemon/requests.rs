//! Early, pool-wide reconciles asked for by events that name no user (a deleted group, a user
//! import, a hidden username without a sub).
//!
//! The requests themselves are rows ([`crate::state::requests`]), recorded by the consumer in
//! its batch's transaction and served by whichever replica holds the pool's lease. This module
//! holds what is in memory: the wake-up a consumer gives its own process's scheduler once it
//! recorded a request, the debounce, and the decision [`due`] of when to run.

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

/// What the scheduler does about the pending requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing is pending.
    Idle,
    /// The oldest pending request becomes `debounce` old after this long.
    Wait(Duration),
    /// The oldest pending request is `debounce` old: reconcile now.
    Run,
}

/// Whether `pending` asks for a reconcile at `now`: once the oldest of them is `debounce` old,
/// so that requests arriving within the window fold into one run.
pub fn due(pending: &[PendingRequest], now: DateTime<Utc>, debounce: Duration) -> Due {
    let Some(oldest) = pending.iter().map(|r| r.requested_at).min() else {
        return Due::Idle;
    };
    // A request stamped ahead of this replica's clock counts as just made.
    let age = (now - oldest).to_std().unwrap_or(Duration::ZERO);
    match debounce.checked_sub(age) {
        Some(left) if !left.is_zero() => Due::Wait(left),
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

    #[test]
    fn a_burst_runs_once_its_oldest_request_is_debounced() {
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
