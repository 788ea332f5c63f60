//! Requests for an early, pool-wide reconcile from events that name no user (a deleted group,
//! a user import, a hidden username without a sub), debounced for the reconcile scheduler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::telemetry::daemon::ReconcileRequested;

/// The producer side is [`ReconcileRequests::request`] (the consumer loop); the consumer side
/// is [`ReconcileRequests::next`] (the reconcile scheduler). Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct ReconcileRequests {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    notify: Notify,
    debounce: Duration,
    requested: AtomicU64,
    handled: AtomicU64,
}

impl ReconcileRequests {
    /// Requests arriving within `debounce` of the first pending one are folded into it.
    pub fn new(debounce: Duration) -> Self {
        ReconcileRequests {
            inner: Arc::new(Inner {
                notify: Notify::new(),
                debounce,
                requested: AtomicU64::new(0),
                handled: AtomicU64::new(0),
            }),
        }
    }

    /// Asks for an early reconcile; never blocks.
    pub fn request(&self, reason: &str) {
        let before = self.inner.requested.fetch_add(1, Ordering::SeqCst);
        let signalled = before == self.inner.handled.load(Ordering::SeqCst);
        ReconcileRequested { reason, signalled }.emit();
        self.inner.notify.notify_one();
    }

    /// Requests not yet taken by [`ReconcileRequests::next`].
    pub fn pending(&self) -> u64 {
        self.inner.requested.load(Ordering::SeqCst) - self.inner.handled.load(Ordering::SeqCst)
    }

    /// Waits for a request, then for the debounce window so that a burst of requests makes one
    /// reconcile; returns how many requests it covers.
    pub async fn next(&self) -> u64 {
        loop {
            if self.pending() > 0 {
                tokio::time::sleep(self.inner.debounce).await;
                let requested = self.inner.requested.load(Ordering::SeqCst);
                let handled = self.inner.handled.swap(requested, Ordering::SeqCst);
                return requested - handled;
            }
            self.inner.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_requests_makes_one_reconcile() {
        let requests = ReconcileRequests::new(Duration::from_millis(10));
        requests.request("DeleteGroup");
        requests.request("StartUserImportJob");
        requests.request("DeleteGroup");
        assert_eq!(requests.pending(), 3);
        assert_eq!(requests.next().await, 3);
        assert_eq!(requests.pending(), 0);

        // A request after the reconcile started is a new reconcile; the consumer wakes for it.
        let consumer = tokio::spawn({
            let requests = requests.clone();
            async move { requests.next().await }
        });
        requests.request("DeleteGroup");
        assert_eq!(consumer.await.unwrap(), 1);
    }
}
