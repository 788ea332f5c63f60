//! Reading Cognito: sharded ListUsers, groups and memberships, single-user re-reads, all under
//! one shared rate limit with throttling backoff.
//!
//! Every request goes through one loop (`CognitoReader::call`): wait for the shared adaptive
//! limiter (`limiter.rs`), send, and on failure ask the one classifier (`Failure::verdict` in
//! `error.rs`) whether to slow down and retry (throttling, forever unless capped), retry a
//! bounded number of times (5xx, network, timeouts) or give up. The SDK's own retries are
//! disabled so that this loop sees — and counts — every throttled response.
//!
//! Page sizes are always [`PAGE_LIMIT`] (60), the most Cognito accepts.

mod convert;
mod error;
mod limiter;
mod shard;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::config::retry::RetryConfig;
use aws_sdk_cognitoidentityprovider::config::timeout::TimeoutConfig;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::model::{GroupRecord, UserRecord};
use crate::telemetry::cognito::{
    CognitoCallCompleted, CognitoCallFailed, CognitoRateChanged, CognitoRetry, CognitoThrottled,
};

pub use error::CognitoError;
pub use shard::{InvalidShardCount, InvalidShardPrefix, Shard};
pub use stats::CallStats;

use error::{Failure, Permanent, Verdict};
use limiter::AdaptiveLimiter;
use stats::{Operation, StatsCounters};

/// The page size of every list call: the maximum Cognito accepts (it rejects more than 60).
pub const PAGE_LIMIT: i32 = 60;
/// Retries of a call failing with 5xx, network errors or timeouts, unless
/// [`ReadLimits::max_retries`] says otherwise.
pub const DEFAULT_TRANSIENT_RETRIES: u32 = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(20);

/// How hard the reader may use Cognito.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReadLimits {
    /// Requests per second over all read calls of the reader and its clones. The default
    /// (25) stays under the 30 RPS ListUsers/ListUsersInGroup quota per account.
    pub rps: f64,
    /// Retries of one call. `None`: throttled calls retry forever (a run never fails because
    /// of throttling) and other transient failures up to [`DEFAULT_TRANSIENT_RETRIES`] times.
    /// `Some(n)`: both kinds give up after `n` retries.
    pub max_retries: Option<u32>,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            rps: 25.0,
            max_retries: None,
        }
    }
}

/// What DescribeUserPool says about the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSummary {
    pub id: String,
    pub name: String,
    /// Cognito's estimate, updated by Cognito with a delay.
    pub estimated_users: i64,
}

/// One ListUsers page of a shard.
#[derive(Debug, Clone)]
pub struct UsersPage {
    /// Users with empty `groups`: the caller joins [`Memberships`].
    pub users: Vec<UserRecord>,
    /// The token of the next page; `None` when the shard is done.
    pub next_token: Option<String>,
}

/// Group names per user `sub`, each list sorted.
pub type Memberships = HashMap<uuid::Uuid, Vec<String>>;

/// Reads one user pool. Cheap to clone; clones share the client, the rate limit and the stats.
#[derive(Clone)]
pub struct CognitoReader {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    pool: String,
    limits: ReadLimits,
    limiter: AdaptiveLimiter,
    stats: StatsCounters,
}

impl fmt::Debug for CognitoReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoReader")
            .field("pool", &self.inner.pool)
            .field("limits", &self.inner.limits)
            .field("rate_per_second", &self.inner.limiter.rate())
            .finish()
    }
}

/// A failed call as the retry loop ends it; turned into a [`CognitoError`] by the operation,
/// which knows what a not-found means for it.
struct CallFailure {
    verdict: Verdict,
    failure: Failure,
}

impl CallFailure {
    fn is(&self, permanent: Permanent) -> bool {
        self.verdict == Verdict::Permanent(permanent)
    }

    fn into_error(self, pool: &str, operation: Operation) -> CognitoError {
        let pool = pool.to_owned();
        let operation = operation.as_str();
        let message = self.failure.message();
        match self.verdict {
            Verdict::Permanent(Permanent::ResourceNotFound) => CognitoError::PoolNotFound { pool },
            Verdict::Permanent(Permanent::AccessDenied) => CognitoError::AccessDenied {
                pool,
                operation,
                message,
            },
            Verdict::Permanent(_) => CognitoError::Api {
                pool,
                operation,
                message,
                retryable: false,
            },
            Verdict::Throttled | Verdict::Transient(_) => CognitoError::Api {
                pool,
                operation,
                message,
                retryable: true,
            },
        }
    }
}

impl CognitoReader {
    /// A reader of `user_pool_id` with a client built from `sdk` (region, credentials and the
    /// endpoint override, e.g. `AWS_ENDPOINT_URL`). The client's own retries are disabled:
    /// this reader retries, so that throttling reaches the shared limiter.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        user_pool_id: impl Into<String>,
        limits: ReadLimits,
    ) -> Self {
        let mut timeouts = sdk
            .timeout_config()
            .cloned()
            .unwrap_or_else(|| TimeoutConfig::builder().build());
        timeouts.take_defaults_from(
            &TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
        let config = aws_sdk_cognitoidentityprovider::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        CognitoReader {
            inner: Arc::new(Inner {
                client: Client::from_conf(config),
                pool: user_pool_id.into(),
                limits,
                limiter: AdaptiveLimiter::new(limits.rps),
                stats: StatsCounters::default(),
            }),
        }
    }

    pub fn user_pool_id(&self) -> &str {
        &self.inner.pool
    }

    /// The current shared request rate (lowered while Cognito throttles).
    pub fn current_rate(&self) -> f64 {
        self.inner.limiter.rate()
    }

    /// A snapshot of the calls made so far by this reader and its clones.
    pub fn stats(&self) -> CallStats {
        self.inner.stats.snapshot()
    }

    /// DescribeUserPool: the pool's name and estimated size; `PoolNotFound` if it is missing.
    pub async fn describe_pool(&self) -> Result<PoolSummary, CognitoError> {
        let op = Operation::DescribeUserPool;
        let out = self
            .call(op, false, || {
                self.inner
                    .client
                    .describe_user_pool()
                    .user_pool_id(&self.inner.pool)
                    .send()
            })
            .await
            .map_err(|f| f.into_error(&self.inner.pool, op))?;
        let pool = out
            .user_pool()
            .ok_or_else(|| self.invalid(op, "no UserPool in the response"))?;
        Ok(PoolSummary {
            id: pool.id().unwrap_or(&self.inner.pool).to_owned(),
            name: pool.name().unwrap_or_default().to_owned(),
            estimated_users: i64::from(pool.estimated_number_of_users()),
        })
    }

    /// ListGroups, all pages.
    pub async fn list_groups(&self) -> Result<Vec<GroupRecord>, CognitoError> {
        let op = Operation::ListGroups;
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sent_token = token.is_some();
            let out = self
                .call(op, sent_token, || {
                    self.inner
                        .client
                        .list_groups()
                        .user_pool_id(&self.inner.pool)
                        .limit(PAGE_LIMIT)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .map_err(|f| f.into_error(&self.inner.pool, op))?;
            let observed_at = Utc::now();
            for group in out.groups() {
                let record = convert::group_record(&self.inner.pool, group, observed_at)
                    .ok_or_else(|| self.invalid(op, "a group without a name"))?;
                groups.push(record);
            }
            token = next_token(out.next_token());
            if token.is_none() {
                return Ok(groups);
            }
        }
    }

    /// ListUsersInGroup, all pages: the `sub` of every member. `GroupNotFound` when the group
    /// is gone (a ResourceNotFoundException whose message does not name the pool id).
    pub async fn group_member_subs(&self, group: &str) -> Result<Vec<uuid::Uuid>, CognitoError> {
        let op = Operation::ListUsersInGroup;
        let mut subs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sent_token = token.is_some();
            let out = self
                .call(op, sent_token, || {
                    self.inner
                        .client
                        .list_users_in_group()
                        .user_pool_id(&self.inner.pool)
                        .group_name(group)
                        .limit(PAGE_LIMIT)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .map_err(|f| {
                    let names_pool = matches!(&f.failure, Failure::Service { message, .. }
                        if message.contains(self.inner.pool.as_str()));
                    if f.is(Permanent::ResourceNotFound) && !names_pool {
                        CognitoError::GroupNotFound {
                            pool: self.inner.pool.clone(),
                            group: group.to_owned(),
                        }
                    } else {
                        f.into_error(&self.inner.pool, op)
                    }
                })?;
            for user in out.users() {
                let sub = convert::user_sub(user).ok_or_else(|| {
                    self.invalid(
                        op,
                        &format!(
                            "member {:?} of group {group:?} has no valid sub",
                            user.username()
                        ),
                    )
                })?;
                subs.push(sub);
            }
            token = next_token(out.next_token());
            if token.is_none() {
                return Ok(subs);
            }
        }
    }

    /// The members of every group, `concurrency` groups at a time (all under the shared
    /// limit): `sub` → sorted group names. A group deleted since it was listed counts as
    /// empty; the next run sees it gone.
    pub async fn memberships(
        &self,
        groups: &[GroupRecord],
        concurrency: usize,
    ) -> Result<Memberships, CognitoError> {
        // Owned names and reader clones: a future borrowing `groups` from inside the closure
        // is not `Send` (higher-ranked lifetimes), and callers spawn this.
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let mut results = futures::stream::iter(names)
            .map(|name| {
                let reader = self.clone();
                async move {
                    let subs = reader.group_member_subs(&name).await;
                    (name, subs)
                }
            })
            .buffer_unordered(concurrency.max(1));
        let mut memberships = Memberships::new();
        while let Some((group, result)) = results.next().await {
            let subs = match result {
                Ok(subs) => subs,
                Err(CognitoError::GroupNotFound { .. }) => {
                    tracing::info!(pool = %self.inner.pool, group = %group, "group deleted while reading memberships");
                    continue;
                }
                Err(err) => return Err(err),
            };
            for sub in subs {
                memberships.entry(sub).or_default().push(group.clone());
            }
        }
        for names in memberships.values_mut() {
            names.sort();
            names.dedup();
        }
        Ok(memberships)
    }

    /// One ListUsers call of a shard: `Limit` 60, `Filter: sub ^= "<prefix>"` unless the shard
    /// is the whole pool. `PaginationTokenRejected` when `token` expired or does not match.
    pub async fn list_users_page(
        &self,
        shard: &Shard,
        token: Option<String>,
    ) -> Result<UsersPage, CognitoError> {
        let op = Operation::ListUsers;
        if let Err(err) = Shard::parse(&shard.prefix) {
            return Err(CognitoError::Api {
                pool: self.inner.pool.clone(),
                operation: op.as_str(),
                message: err.to_string(),
                retryable: false,
            });
        }
        let filter = shard.filter();
        let sent_token = token.is_some();
        let out = self
            .call(op, sent_token, || {
                self.inner
                    .client
                    .list_users()
                    .user_pool_id(&self.inner.pool)
                    .limit(PAGE_LIMIT)
                    .set_filter(filter.clone())
                    .set_pagination_token(token.clone())
                    .send()
            })
            .await
            .map_err(|f| {
                if f.is(Permanent::PaginationTokenRejected) {
                    CognitoError::PaginationTokenRejected {
                        pool: self.inner.pool.clone(),
                        shard: shard.prefix.clone(),
                    }
                } else {
                    f.into_error(&self.inner.pool, op)
                }
            })?;
        let observed_at = Utc::now();
        let users = out
            .users()
            .iter()
            .map(|user| convert::user_from_list(&self.inner.pool, user, observed_at))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| self.invalid(op, &err.to_string()))?;
        Ok(UsersPage {
            users,
            next_token: next_token(out.pagination_token()),
        })
    }

    /// The user with this `sub`, groups included; `None` when Cognito no longer has it.
    /// Resolved with ListUsers `Filter: sub = "..."` (the emulator's AdminGetUser does not
    /// accept a sub), then AdminListGroupsForUser by the username found.
    pub async fn user_by_sub(&self, sub: uuid::Uuid) -> Result<Option<UserRecord>, CognitoError> {
        let op = Operation::ListUsers;
        let filter = format!("sub = \"{sub}\"");
        let out = self
            .call(op, false, || {
                self.inner
                    .client
                    .list_users()
                    .user_pool_id(&self.inner.pool)
                    .limit(PAGE_LIMIT)
                    .filter(&filter)
                    .send()
            })
            .await
            .map_err(|f| f.into_error(&self.inner.pool, op))?;
        let observed_at = Utc::now();
        let Some(user) = out
            .users()
            .iter()
            .find(|u| convert::user_sub(u) == Some(sub))
        else {
            return Ok(None);
        };
        let mut record = convert::user_from_list(&self.inner.pool, user, observed_at)
            .map_err(|err| self.invalid(op, &err.to_string()))?;
        match self.groups_of(&record.username).await? {
            Some(groups) => {
                record.set_groups(groups);
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    /// The user with this username, groups included (AdminGetUser + AdminListGroupsForUser);
    /// `None` on UserNotFoundException.
    pub async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, CognitoError> {
        let op = Operation::AdminGetUser;
        let result = self
            .call(op, false, || {
                self.inner
                    .client
                    .admin_get_user()
                    .user_pool_id(&self.inner.pool)
                    .username(username)
                    .send()
            })
            .await;
        let out = match result {
            Ok(out) => out,
            Err(f) if f.is(Permanent::UserNotFound) => return Ok(None),
            Err(f) => return Err(f.into_error(&self.inner.pool, op)),
        };
        let observed_at = Utc::now();
        let mut record = convert::user_from_admin_get(&self.inner.pool, &out, observed_at)
            .map_err(|err| self.invalid(op, &err.to_string()))?;
        match self.groups_of(&record.username).await? {
            Some(groups) => {
                record.set_groups(groups);
                Ok(Some(record))
            }
            None => Ok(None),
        }
    }

    /// AdminListGroupsForUser, all pages; `None` when the user is gone.
    async fn groups_of(&self, username: &str) -> Result<Option<Vec<String>>, CognitoError> {
        let op = Operation::AdminListGroupsForUser;
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let sent_token = token.is_some();
            let result = self
                .call(op, sent_token, || {
                    self.inner
                        .client
                        .admin_list_groups_for_user()
                        .user_pool_id(&self.inner.pool)
                        .username(username)
                        .limit(PAGE_LIMIT)
                        .set_next_token(token.clone())
                        .send()
                })
                .await;
            let out = match result {
                Ok(out) => out,
                Err(f) if f.is(Permanent::UserNotFound) => return Ok(None),
                Err(f) => return Err(f.into_error(&self.inner.pool, op)),
            };
            names.extend(
                out.groups()
                    .iter()
                    .filter_map(|g| g.group_name().map(str::to_owned)),
            );
            token = next_token(out.next_token());
            if token.is_none() {
                return Ok(Some(names));
            }
        }
    }

    fn invalid(&self, operation: Operation, message: &str) -> CognitoError {
        CognitoError::InvalidResponse {
            pool: self.inner.pool.clone(),
            operation: operation.as_str(),
            message: message.to_owned(),
        }
    }

    /// Sends one request under the shared limit and retries it as the classifier says.
    /// `sent_token` tells the classifier whether the request carried a pagination token.
    async fn call<T, E, F, Fut>(
        &self,
        op: Operation,
        sent_token: bool,
        mut send: F,
    ) -> Result<T, CallFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let inner = &*self.inner;
        let pool = inner.pool.as_str();
        let operation = op.as_str();
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(BACKOFF_MIN)
            .with_max_delay(BACKOFF_MAX)
            .without_max_times()
            .build();
        let transient_limit = inner
            .limits
            .max_retries
            .unwrap_or(DEFAULT_TRANSIENT_RETRIES);
        let (mut throttles, mut transients) = (0u32, 0u32);
        loop {
            inner.limiter.acquire().await;
            inner.stats.call(op);
            let started = Instant::now();
            let result = send().await;
            let elapsed = started.elapsed();
            let err = match result {
                Ok(out) => {
                    CognitoCallCompleted {
                        pool,
                        operation,
                        outcome: "ok",
                        elapsed,
                    }
                    .emit();
                    if let Some(rate) = inner.limiter.on_success() {
                        self.rate_changed(rate);
                    }
                    return Ok(out);
                }
                Err(err) => err,
            };
            let failure = Failure::from_sdk(&err);
            let verdict = failure.verdict(sent_token);
            let (outcome, reason) = match verdict {
                Verdict::Throttled => ("throttled", "throttled"),
                Verdict::Transient(reason) => ("transient", reason),
                Verdict::Permanent(permanent) => ("error", permanent.reason()),
            };
            CognitoCallCompleted {
                pool,
                operation,
                outcome,
                elapsed,
            }
            .emit();
            let give_up = match verdict {
                Verdict::Throttled => {
                    inner.stats.throttled();
                    throttles += 1;
                    let lowered = inner.limiter.on_throttle();
                    CognitoThrottled {
                        pool,
                        operation,
                        code: failure.code().unwrap_or("throttled"),
                        rate_per_second: inner.limiter.rate(),
                    }
                    .emit();
                    if let Some(rate) = lowered {
                        inner.stats.slowdown();
                        self.rate_changed(rate);
                    }
                    inner.limits.max_retries.is_some_and(|max| throttles > max)
                }
                Verdict::Transient(_) => {
                    transients += 1;
                    transients > transient_limit
                }
                Verdict::Permanent(_) => true,
            };
            let message = failure.message();
            if give_up {
                // A missing user is an answer (the operation returns `None`), not a failure.
                if !matches!(verdict, Verdict::Permanent(Permanent::UserNotFound)) {
                    inner.stats.failure();
                    CognitoCallFailed {
                        pool,
                        operation,
                        reason,
                        message: &message,
                    }
                    .emit();
                }
                return Err(CallFailure { verdict, failure });
            }
            let delay = delays.next().unwrap_or(BACKOFF_MAX);
            inner.stats.retry();
            CognitoRetry {
                pool,
                operation,
                reason,
                attempt: throttles + transients,
                delay,
                message: &message,
            }
            .emit();
            tokio::time::sleep(delay).await;
        }
    }

    fn rate_changed(&self, rate: f64) {
        CognitoRateChanged {
            pool: &self.inner.pool,
            rate_per_second: rate,
            ceiling_per_second: self.inner.limiter.ceiling(),
        }
        .emit();
    }
}

/// Cognito ends a listing with no token; an empty one means the same.
fn next_token(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}
