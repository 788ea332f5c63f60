//! In-process call statistics of one reader: requests per operation, throttled responses,
//! retries and failures, for the run summary and the benchmark.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The Cognito operations the reader sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    DescribeUserPool,
    ListUsers,
    ListGroups,
    ListUsersInGroup,
    AdminGetUser,
    AdminListGroupsForUser,
}

impl Operation {
    const ALL: [Operation; 6] = [
        Operation::DescribeUserPool,
        Operation::ListUsers,
        Operation::ListGroups,
        Operation::ListUsersInGroup,
        Operation::AdminGetUser,
        Operation::AdminListGroupsForUser,
    ];

    /// The API name, as in `X-Amz-Target` and the AWS docs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Operation::DescribeUserPool => "DescribeUserPool",
            Operation::ListUsers => "ListUsers",
            Operation::ListGroups => "ListGroups",
            Operation::ListUsersInGroup => "ListUsersInGroup",
            Operation::AdminGetUser => "AdminGetUser",
            Operation::AdminListGroupsForUser => "AdminListGroupsForUser",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A snapshot of a reader's call statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// Requests sent per operation, retries included; operations never called are absent.
    pub calls: BTreeMap<String, u64>,
    /// Responses that were TooManyRequestsException or LimitExceededException.
    pub throttled: u64,
    /// Requests sent again after a throttle or a transient failure.
    pub retries: u64,
    /// Times the shared request rate was lowered because of throttling.
    pub slowdowns: u64,
    /// Calls that returned an error to the caller.
    pub failures: u64,
}

impl CallStats {
    /// Requests sent, over all operations.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Requests sent for one operation (its API name, e.g. `ListUsers`).
    pub fn calls_of(&self, operation: &str) -> u64 {
        self.calls.get(operation).copied().unwrap_or(0)
    }
}

/// The live counters behind [`CallStats`], shared by every clone of a reader.
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    calls: [AtomicU64; Operation::ALL.len()],
    throttled: AtomicU64,
    retries: AtomicU64,
    slowdowns: AtomicU64,
    failures: AtomicU64,
}

impl StatsCounters {
    pub(crate) fn call(&self, operation: Operation) {
        self.calls[operation.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn slowdown(&self) {
        self.slowdowns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CallStats {
        let calls = Operation::ALL
            .iter()
            .filter_map(|op| {
                let count = self.calls[op.index()].load(Ordering::Relaxed);
                (count > 0).then(|| (op.as_str().to_owned(), count))
            })
            .collect();
        CallStats {
            calls,
            throttled: self.throttled.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            slowdowns: self.slowdowns.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_per_operation() {
        let counters = StatsCounters::default();
        counters.call(Operation::ListUsers);
        counters.call(Operation::ListUsers);
        counters.call(Operation::ListGroups);
        counters.throttled();
        counters.retry();
        counters.slowdown();
        let stats = counters.snapshot();
        assert_eq!(stats.calls_of("ListUsers"), 2);
        assert_eq!(stats.calls_of("ListGroups"), 1);
        assert_eq!(stats.calls_of("AdminGetUser"), 0);
        assert!(!stats.calls.contains_key("AdminGetUser"));
        assert_eq!(stats.total_calls(), 3);
        assert_eq!(
            (
                stats.throttled,
                stats.retries,
                stats.slowdowns,
                stats.failures
            ),
            (1, 1, 1, 0)
        );
    }
}
