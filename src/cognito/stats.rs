//! In-process call statistics of one reader: requests per operation, throttled responses per
//! quota category, retries, failures, restarted listings and the path each single-user read
//! took, for the run summary and the benchmark.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::limiter::QuotaCategory;

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

    /// The quota category Cognito counts the operation against.
    pub(crate) fn category(self) -> QuotaCategory {
        match self {
            Operation::ListUsers | Operation::ListUsersInGroup => QuotaCategory::UserList,
            Operation::AdminGetUser => QuotaCategory::UserRead,
            Operation::AdminListGroupsForUser => QuotaCategory::UserResourceRead,
            Operation::DescribeUserPool => QuotaCategory::UserPoolRead,
            Operation::ListGroups => QuotaCategory::UserPoolResourceRead,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a single user was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadPath {
    /// AdminGetUser with the `sub` as the username (UserRead): local users.
    AdminGetUserBySub,
    /// AdminGetUser answered UserNotFound for the `sub`; ListUsers `sub = "..."` (UserList):
    /// federated users, deleted users, and emulators that do not accept a `sub`.
    SubFilter,
    /// AdminGetUser by the username an event named.
    AdminGetUserByUsername,
}

impl ReadPath {
    const ALL: [ReadPath; 3] = [
        ReadPath::AdminGetUserBySub,
        ReadPath::SubFilter,
        ReadPath::AdminGetUserByUsername,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReadPath::AdminGetUserBySub => "admin_get_user_by_sub",
            ReadPath::SubFilter => "sub_filter",
            ReadPath::AdminGetUserByUsername => "admin_get_user_by_username",
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
    /// Throttled responses per quota category (`UserList`, ...); unthrottled ones absent.
    pub throttled_by_category: BTreeMap<String, u64>,
    /// Requests sent again after a throttle or a transient failure.
    pub retries: u64,
    /// Times the shared request rate was lowered because of throttling.
    pub slowdowns: u64,
    /// Calls that returned an error to the caller.
    pub failures: u64,
    /// Listings started over from their first page because Cognito rejected a token.
    pub listing_restarts: u64,
    /// Single-user reads by path (`admin_get_user_by_sub`, `sub_filter`,
    /// `admin_get_user_by_username`); paths never taken are absent.
    pub user_reads: BTreeMap<String, u64>,
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
    throttled: [AtomicU64; QuotaCategory::ALL.len()],
    retries: AtomicU64,
    slowdowns: AtomicU64,
    failures: AtomicU64,
    listing_restarts: AtomicU64,
    user_reads: [AtomicU64; ReadPath::ALL.len()],
}

impl StatsCounters {
    pub(crate) fn call(&self, operation: Operation) {
        self.calls[operation.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self, category: QuotaCategory) {
        self.throttled[category.index()].fetch_add(1, Ordering::Relaxed);
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

    pub(crate) fn listing_restart(&self) {
        self.listing_restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn user_read(&self, path: ReadPath) {
        self.user_reads[path.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CallStats {
        let calls = nonzero(&Operation::ALL, &self.calls, |op| op.as_str());
        let throttled_by_category = nonzero(&QuotaCategory::ALL, &self.throttled, |c| c.as_str());
        let user_reads = nonzero(&ReadPath::ALL, &self.user_reads, |path| path.as_str());
        CallStats {
            calls,
            throttled: throttled_by_category.values().sum(),
            throttled_by_category,
            retries: self.retries.load(Ordering::Relaxed),
            slowdowns: self.slowdowns.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            listing_restarts: self.listing_restarts.load(Ordering::Relaxed),
            user_reads,
        }
    }
}

/// The counters that are not zero, by name; `keys[i]` names `counters[i]`.
fn nonzero<K: Copy>(
    keys: &[K],
    counters: &[AtomicU64],
    name: impl Fn(K) -> &'static str,
) -> BTreeMap<String, u64> {
    keys.iter()
        .zip(counters)
        .filter_map(|(key, counter)| {
            let count = counter.load(Ordering::Relaxed);
            (count > 0).then(|| (name(*key).to_owned(), count))
        })
        .collect()
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
        counters.throttled(QuotaCategory::UserList);
        counters.retry();
        counters.slowdown();
        counters.listing_restart();
        counters.user_read(ReadPath::SubFilter);
        let stats = counters.snapshot();
        assert_eq!(
            stats.throttled_by_category,
            BTreeMap::from([("UserList".to_owned(), 1)])
        );
        assert_eq!(stats.listing_restarts, 1);
        assert_eq!(
            stats.user_reads,
            BTreeMap::from([("sub_filter".to_owned(), 1)])
        );
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
