//! Reading Cognito: sharded ListUsers, groups and memberships, single-user re-reads, each
//! under the rate limit of its Cognito quota category, with throttling backoff.
//!
//! Every request goes through one loop (`CognitoReader::call`): wait for its category's
//! limiter in the process-wide [`QuotaLimiter`] (`limiter.rs`), send, and on failure ask the
//! one classifier (`Failure::verdict` in `error.rs`) whether to slow down and retry, retry a
//! bounded number of times (5xx, network, timeouts) or give up. How long to keep trying is
//! the reader's [`RetryPolicy`]: scans persist through any amount of throttling (until the
//! reader is cancelled), the event path gives up after a few retries and lets its message
//! come back. The SDK's own retries are disabled so that this loop sees — and counts —
//! every throttled response.
//!
//! Listings the reader pages through itself (ListGroups, ListUsersInGroup,
//! AdminListGroupsForUser) start over from their first page when Cognito rejects a
//! pagination token, up to [`MAX_LISTING_RESTARTS`] times; ListUsers pages are returned to
//! the caller, which restarts its shard ([`CognitoError::PaginationTokenRejected`]).
//!
//! A user named by `sub` is read with AdminGetUser, which accepts a local user's `sub` as
//! the username (UserRead, the cheap quota); federated users, deleted users and emulators
//! answer UserNotFound, and the reader falls back to ListUsers `sub = "..."` (UserList).
//!
//! Page sizes are always [`PAGE_LIMIT`] (60), the most Cognito accepts.
//!
//! Everything the reader returns is within its [`MirrorScope`] ([`CognitoReader::with_scope`]):
//! users without the excluded attributes, only the included groups (so their members are the
//! only memberships read) and group lists naming only those. Every mode reads through a
//! reader, so every mode writes the same scope.

mod convert;
mod error;
mod limiter;
mod shard;
mod stats;

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
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::{GroupRecord, MirrorScope, UserRecord};
use crate::telemetry::cognito::{
    CognitoCallCompleted, CognitoCallFailed, CognitoListingRestarted, CognitoRateChanged,
    CognitoRetry, CognitoThrottled, CognitoUserRead,
};

pub use error::CognitoError;
pub use limiter::{
    DEFAULT_QUOTA_SHARE, InvalidQuotaSettings, QuotaCategory, QuotaLimiter, QuotaSettings,
    UnknownQuotaCategory,
};
pub use shard::{InvalidShardCount, InvalidShardPrefix, Shard};
pub use stats::CallStats;

use error::{Failure, Permanent, Verdict};
use stats::{Operation, ReadPath, StatsCounters};

/// The page size of every list call: the maximum Cognito accepts (it rejects more than 60).
pub const PAGE_LIMIT: i32 = 60;
/// Retries of a call failing with 5xx, network errors or timeouts under
/// [`RetryPolicy::Persistent`].
pub const DEFAULT_TRANSIENT_RETRIES: u32 = 8;
/// Times one listing starts over from its first page after a rejected pagination token
/// before it fails.
pub const MAX_LISTING_RESTARTS: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(20);

/// How long one call keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryPolicy {
    /// Scans (backfill, reconcile): throttled calls retry, slower and slower, until they
    /// succeed or the reader is cancelled ([`CognitoReader::with_cancel`]); other transient
    /// failures up to [`DEFAULT_TRANSIENT_RETRIES`] times.
    Persistent,
    /// The event path: throttled and transient failures each give up after this many
    /// retries (the message is retried later through the queue).
    Capped(u32),
}

/// How hard a reader may use Cognito: plain settings, filled by the caller's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadLimits {
    /// Requests per second per quota category.
    pub quotas: QuotaSettings,
    pub retry: RetryPolicy,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            quotas: QuotaSettings::default(),
            retry: RetryPolicy::Persistent,
        }
    }
}

/// How a single-user read learns the user's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsOf {
    /// AdminListGroupsForUser (`UserResourceRead`, 50 RPS by default).
    Listed,
    /// A ListGroups sent at this time found no group in the pool, so the user had none then:
    /// no AdminListGroupsForUser, and the record is stamped no later than that read.
    NoneInPool(DateTime<Utc>),
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

/// Group names per user `sub`, compact: each group name once, and one sorted
/// (`sub`, group) pair of 20 bytes per membership. A map of `sub` to a list of names costs
/// about 170 bytes per member (entry, list, one string per group): 60 MB when a third of a
/// million-user pool is in groups, against 7 MB here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    /// Group names, sorted: a pair's index orders like its name.
    names: Vec<String>,
    /// (`sub`, index into `names`), sorted and without duplicates.
    pairs: Vec<(uuid::Uuid, u32)>,
}

impl Memberships {
    /// From each group's member `sub`s.
    pub fn new(groups: Vec<(String, Vec<uuid::Uuid>)>) -> Self {
        let mut groups = groups;
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups.dedup_by(|a, b| a.0 == b.0);
        let mut pairs = Vec::with_capacity(groups.iter().map(|(_, subs)| subs.len()).sum());
        let mut names = Vec::with_capacity(groups.len());
        for (index, (name, subs)) in groups.into_iter().enumerate() {
            // Cognito allows 10,000 groups per pool; u32 leaves room.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            pairs.extend(subs.into_iter().map(|sub| (sub, index)));
            names.push(name);
        }
        pairs.sort_unstable();
        pairs.dedup();
        Memberships { names, pairs }
    }

    /// The groups of the user with this `sub`, sorted; empty when it is in none.
    pub fn groups_of(&self, sub: &uuid::Uuid) -> Vec<String> {
        let start = self.pairs.partition_point(|(s, _)| s < sub);
        self.pairs[start..]
            .iter()
            .take_while(|(s, _)| s == sub)
            .map(|(_, index)| self.names[*index as usize].clone())
            .collect()
    }

    /// How many (user, group) memberships.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Reads one user pool. Cheap to clone; clones share the client, the quota limiter and the
/// stats, and so do the readers [`CognitoReader::with_retry`], [`CognitoReader::with_cancel`]
/// and [`CognitoReader::with_scope`] derive.
#[derive(Clone)]
pub struct CognitoReader {
    inner: Arc<Inner>,
    retry: RetryPolicy,
    cancel: Option<CancellationToken>,
    scope: Arc<MirrorScope>,
}

struct Inner {
    client: Client,
    pool: String,
    limiter: QuotaLimiter,
    stats: StatsCounters,
}

impl fmt::Debug for CognitoReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoReader")
            .field("pool", &self.inner.pool)
            .field("retry", &self.retry)
            .field("scope", &self.scope)
            .field("rates", &self.inner.limiter)
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
            Verdict::Permanent(Permanent::Cancelled) => CognitoError::Cancelled { pool, operation },
            // Only listings the reader restarts itself end with a rejected token here.
            Verdict::Permanent(Permanent::PaginationTokenRejected) => {
                CognitoError::ListingRestartsExhausted {
                    pool,
                    operation,
                    restarts: MAX_LISTING_RESTARTS,
                    message,
                }
            }
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
    /// A reader of `user_pool_id` with its own [`QuotaLimiter`] built from `limits`: for a
    /// process with one reader. Readers that must share the quotas are made with
    /// [`CognitoReader::with_limiter`] or derived with [`CognitoReader::with_retry`].
    pub fn new(
        sdk: &aws_config::SdkConfig,
        user_pool_id: impl Into<String>,
        limits: ReadLimits,
    ) -> Self {
        CognitoReader::with_limiter(
            sdk,
            user_pool_id,
            QuotaLimiter::new(&limits.quotas),
            limits.retry,
        )
    }

    /// A reader of `user_pool_id` drawing from `limiter`, with a client built from `sdk`
    /// (region, credentials and the endpoint override, e.g. `AWS_ENDPOINT_URL`). The
    /// client's own retries are disabled: this reader retries, so that throttling reaches
    /// the limiter.
    pub fn with_limiter(
        sdk: &aws_config::SdkConfig,
        user_pool_id: impl Into<String>,
        limiter: QuotaLimiter,
        retry: RetryPolicy,
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
                limiter,
                stats: StatsCounters::default(),
            }),
            retry,
            cancel: None,
            scope: Arc::default(),
        }
    }

    /// The same reader (client, limiter, stats) with another retry policy: the daemon's
    /// consumer reads with [`RetryPolicy::Capped`], its scheduled reconcile with
    /// [`RetryPolicy::Persistent`], both under the same quotas.
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        CognitoReader {
            retry,
            ..self.clone()
        }
    }

    /// The same reader, whose calls stop waiting and retrying with
    /// [`CognitoError::Cancelled`] once `cancel` fires.
    pub fn with_cancel(&self, cancel: CancellationToken) -> Self {
        CognitoReader {
            cancel: Some(cancel),
            ..self.clone()
        }
    }

    /// The same reader, returning only what `scope` mirrors (a new reader mirrors everything).
    pub fn with_scope(&self, scope: MirrorScope) -> Self {
        CognitoReader {
            scope: Arc::new(scope),
            ..self.clone()
        }
    }

    pub fn user_pool_id(&self) -> &str {
        &self.inner.pool
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The process-wide limiter the reader draws from (current and configured rates).
    pub fn limiter(&self) -> &QuotaLimiter {
        &self.inner.limiter
    }

    /// A snapshot of the calls made so far by this reader and the readers sharing its stats.
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

    /// ListGroups, all pages: the groups of the reader's scope.
    pub async fn list_groups(&self) -> Result<Vec<GroupRecord>, CognitoError> {
        let op = Operation::ListGroups;
        let pages = self
            .all_pages(
                op,
                "groups",
                |token| {
                    self.inner
                        .client
                        .list_groups()
                        .user_pool_id(&self.inner.pool)
                        .limit(PAGE_LIMIT)
                        .set_next_token(token)
                        .send()
                },
                |out| out.next_token(),
                |out, observed_at| {
                    out.groups()
                        .iter()
                        .filter(|g| {
                            g.group_name()
                                .is_none_or(|name| self.scope.includes_group(name))
                        })
                        .map(|group| convert::group_record(&self.inner.pool, group, observed_at))
                        .collect::<Option<Vec<_>>>()
                },
            )
            .await
            .map_err(|f| f.into_error(&self.inner.pool, op))?;
        let mut groups = Vec::new();
        for page in pages {
            groups.extend(page.ok_or_else(|| self.invalid(op, "a group without a name"))?);
        }
        Ok(groups)
    }

    /// ListUsersInGroup, all pages: the `sub` of every member. `GroupNotFound` when the group
    /// is gone (a ResourceNotFoundException whose message does not name the pool id).
    pub async fn group_member_subs(&self, group: &str) -> Result<Vec<uuid::Uuid>, CognitoError> {
        let op = Operation::ListUsersInGroup;
        let pages = self
            .all_pages(
                op,
                &format!("members of group {group:?}"),
                |token| {
                    self.inner
                        .client
                        .list_users_in_group()
                        .user_pool_id(&self.inner.pool)
                        .group_name(group)
                        .limit(PAGE_LIMIT)
                        .set_next_token(token)
                        .send()
                },
                |out| out.next_token(),
                |out, _| {
                    out.users()
                        .iter()
                        .map(|user| {
                            convert::user_sub(user)
                                .ok_or_else(|| user.username().map(str::to_owned))
                        })
                        .collect::<Result<Vec<_>, _>>()
                },
            )
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
        let mut subs = Vec::new();
        for page in pages {
            subs.extend(page.map_err(|username| {
                self.invalid(
                    op,
                    &format!("member {username:?} of group {group:?} has no valid sub"),
                )
            })?);
        }
        Ok(subs)
    }

    /// The members of every group, `concurrency` groups at a time (all under the shared
    /// limit): `sub` → sorted group names. A group deleted since it was listed counts as
    /// empty; the next run sees it gone. `last_listing` is notified once at most one
    /// listing is left: a single chain of pages no longer uses the whole UserList quota.
    pub async fn memberships(
        &self,
        groups: &[GroupRecord],
        concurrency: usize,
        last_listing: &Notify,
    ) -> Result<Memberships, CognitoError> {
        let mut left = groups.len();
        if left == 1 {
            last_listing.notify_one();
        }
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
        let mut members = Vec::new();
        while let Some((group, result)) = results.next().await {
            left -= 1;
            if left == 1 {
                last_listing.notify_one();
            }
            match result {
                Ok(subs) => members.push((group, subs)),
                Err(CognitoError::GroupNotFound { .. }) => {
                    tracing::info!(pool = %self.inner.pool, group = %group, "group deleted while reading memberships");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Memberships::new(members))
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
        let (out, observed_at) = self
            .call_at(op, sent_token, || {
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
        let users = out
            .users()
            .iter()
            .map(|user| convert::user_from_list(&self.inner.pool, user, observed_at, &self.scope))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| self.invalid(op, &err.to_string()))?;
        Ok(UsersPage {
            users,
            next_token: next_token(out.pagination_token()),
        })
    }

    /// The user with this `sub`, groups included; `None` when Cognito no longer has it.
    /// AdminGetUser with the `sub` as the username (UserRead, the cheap quota: Cognito
    /// accepts a local user's `sub`), then AdminListGroupsForUser likewise; when Cognito
    /// answers UserNotFound (a federated user, a deleted one, or an emulator), ListUsers
    /// `Filter: sub = "..."` (UserList) and AdminListGroupsForUser by the username found.
    pub async fn user_by_sub(&self, sub: uuid::Uuid) -> Result<Option<UserRecord>, CognitoError> {
        self.user_by_sub_with(sub, GroupsOf::Listed).await
    }

    /// [`Self::user_by_sub`], its groups as `groups` says.
    pub async fn user_by_sub_with(
        &self,
        sub: uuid::Uuid,
        groups: GroupsOf,
    ) -> Result<Option<UserRecord>, CognitoError> {
        let by_sub = self.admin_get_user(&sub.to_string()).await?;
        if let Some(record) = by_sub.filter(|record| record.id == sub) {
            let user = self.join_groups(record, &sub.to_string(), groups).await?;
            self.user_read(ReadPath::AdminGetUserBySub, user.is_some());
            return Ok(user);
        }
        let user = match self.find_by_sub_filter(sub).await? {
            Some(record) => {
                let username = record.username.clone();
                self.join_groups(record, &username, groups).await?
            }
            None => None,
        };
        self.user_read(ReadPath::SubFilter, user.is_some());
        Ok(user)
    }

    /// `record` with its groups as `groups` says, read by `username` when listed.
    async fn join_groups(
        &self,
        mut record: UserRecord,
        username: &str,
        groups: GroupsOf,
    ) -> Result<Option<UserRecord>, CognitoError> {
        match groups {
            GroupsOf::Listed => self.with_groups(record, username).await,
            // A record is as old as the oldest read it is built from.
            GroupsOf::NoneInPool(read_at) => {
                record.observed_at = record.observed_at.min(read_at);
                Ok(Some(record))
            }
        }
    }

    /// The user with this username, groups included (AdminGetUser + AdminListGroupsForUser);
    /// `None` on UserNotFoundException.
    pub async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, CognitoError> {
        let found = self.admin_get_user(username).await?;
        let user = self.with_groups_by_username(found).await?;
        self.user_read(ReadPath::AdminGetUserByUsername, user.is_some());
        Ok(user)
    }

    /// AdminGetUser; `None` on UserNotFoundException.
    async fn admin_get_user(&self, username: &str) -> Result<Option<UserRecord>, CognitoError> {
        let op = Operation::AdminGetUser;
        let result = self
            .call_at(op, false, || {
                self.inner
                    .client
                    .admin_get_user()
                    .user_pool_id(&self.inner.pool)
                    .username(username)
                    .send()
            })
            .await;
        let (out, observed_at) = match result {
            Ok(read) => read,
            Err(f) if f.is(Permanent::UserNotFound) => return Ok(None),
            Err(f) => return Err(f.into_error(&self.inner.pool, op)),
        };
        convert::user_from_admin_get(&self.inner.pool, &out, observed_at, &self.scope)
            .map(Some)
            .map_err(|err| self.invalid(op, &err.to_string()))
    }

    /// ListUsers `Filter: sub = "..."`: the user without groups, `None` if nobody has it.
    async fn find_by_sub_filter(
        &self,
        sub: uuid::Uuid,
    ) -> Result<Option<UserRecord>, CognitoError> {
        let op = Operation::ListUsers;
        let filter = format!("sub = \"{sub}\"");
        let (out, observed_at) = self
            .call_at(op, false, || {
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
        out.users()
            .iter()
            .find(|u| convert::user_sub(u) == Some(sub))
            .map(|user| convert::user_from_list(&self.inner.pool, user, observed_at, &self.scope))
            .transpose()
            .map_err(|err| self.invalid(op, &err.to_string()))
    }

    /// `record` with its groups, read by `username` (its username or, for a local user, its
    /// `sub`); `None` when the user is gone by then.
    async fn with_groups(
        &self,
        mut record: UserRecord,
        username: &str,
    ) -> Result<Option<UserRecord>, CognitoError> {
        Ok(self.groups_of(username).await?.map(|groups| {
            record.set_groups(groups);
            record
        }))
    }

    /// `record`, if any, with its groups read by its username.
    async fn with_groups_by_username(
        &self,
        record: Option<UserRecord>,
    ) -> Result<Option<UserRecord>, CognitoError> {
        match record {
            Some(record) => {
                let username = record.username.clone();
                self.with_groups(record, &username).await
            }
            None => Ok(None),
        }
    }

    /// AdminListGroupsForUser, all pages, the groups of the reader's scope; `None` when the
    /// user is gone.
    async fn groups_of(&self, username: &str) -> Result<Option<Vec<String>>, CognitoError> {
        let op = Operation::AdminListGroupsForUser;
        let result = self
            .all_pages(
                op,
                &format!("groups of user {username:?}"),
                |token| {
                    self.inner
                        .client
                        .admin_list_groups_for_user()
                        .user_pool_id(&self.inner.pool)
                        .username(username)
                        .limit(PAGE_LIMIT)
                        .set_next_token(token)
                        .send()
                },
                |out| out.next_token(),
                |out, _| {
                    out.groups()
                        .iter()
                        .filter_map(|g| g.group_name())
                        .filter(|name| self.scope.includes_group(name))
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                },
            )
            .await;
        match result {
            Ok(pages) => Ok(Some(pages.concat())),
            Err(f) if f.is(Permanent::UserNotFound) => Ok(None),
            Err(f) => Err(f.into_error(&self.inner.pool, op)),
        }
    }

    fn user_read(&self, path: ReadPath, found: bool) {
        self.inner.stats.user_read(path);
        CognitoUserRead {
            pool: &self.inner.pool,
            path: path.as_str(),
            found,
        }
        .emit();
    }

    fn invalid(&self, operation: Operation, message: &str) -> CognitoError {
        CognitoError::InvalidResponse {
            pool: self.inner.pool.clone(),
            operation: operation.as_str(),
            message: message.to_owned(),
        }
    }

    /// Every page of one listing, each reduced by `keep` (given the time it was read) as it
    /// arrives: a listing holds what it keeps, never the responses (a group of a million
    /// members is 17,000 pages of full user objects). When Cognito rejects a pagination
    /// token (a member deleted while the listing is paged through, a token too old), the
    /// listing starts over from its first page, at most [`MAX_LISTING_RESTARTS`] times;
    /// `listing` names it in the log.
    async fn all_pages<O, E, F, Fut, T>(
        &self,
        op: Operation,
        listing: &str,
        mut send_page: F,
        next: impl Fn(&O) -> Option<&str>,
        mut keep: impl FnMut(O, DateTime<Utc>) -> T,
    ) -> Result<Vec<T>, CallFailure>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        let mut restarts = 0;
        loop {
            let result = self
                .call_at(op, token.is_some(), || send_page(token.clone()))
                .await;
            match result {
                Ok((out, observed_at)) => {
                    token = next_token(next(&out));
                    pages.push(keep(out, observed_at));
                    if token.is_none() {
                        return Ok(pages);
                    }
                }
                Err(f)
                    if f.is(Permanent::PaginationTokenRejected)
                        && restarts < MAX_LISTING_RESTARTS =>
                {
                    restarts += 1;
                    self.inner.stats.listing_restart();
                    CognitoListingRestarted {
                        pool: &self.inner.pool,
                        operation: op.as_str(),
                        listing,
                        restart: restarts,
                        max_restarts: MAX_LISTING_RESTARTS,
                        message: &f.failure.message(),
                    }
                    .emit();
                    pages.clear();
                    token = None;
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// `future`, unless the reader's cancellation token fires first.
    async fn unless_cancelled<F: Future>(&self, future: F) -> Option<F::Output> {
        match &self.cancel {
            None => Some(future.await),
            Some(cancel) => tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                out = future => Some(out),
            },
        }
    }

    /// Sends one request under its category's limit and retries it as the classifier and
    /// the retry policy say. `sent_token` tells the classifier whether the request carried
    /// a pagination token.
    /// [`Self::call`], also returning when the attempt that succeeded was sent: a read is
    /// as old as its request (Cognito may answer with the state of any moment after it).
    async fn call_at<T, E, F, Fut>(
        &self,
        op: Operation,
        sent_token: bool,
        mut send: F,
    ) -> Result<(T, DateTime<Utc>), CallFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let sent_at = std::sync::Mutex::new(Utc::now());
        let out = self
            .call(op, sent_token, || {
                *sent_at.lock().unwrap_or_else(|e| e.into_inner()) = Utc::now();
                send()
            })
            .await?;
        Ok((out, sent_at.into_inner().unwrap_or_else(|e| e.into_inner())))
    }

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
        let category = op.category();
        let cancelled = || {
            tracing::debug!(pool, operation, "cognito call cancelled");
            CallFailure {
                verdict: Verdict::Permanent(Permanent::Cancelled),
                failure: Failure::Cancelled,
            }
        };
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(BACKOFF_MIN)
            .with_max_delay(BACKOFF_MAX)
            .without_max_times()
            .build();
        let (throttle_limit, transient_limit) = match self.retry {
            RetryPolicy::Persistent => (None, DEFAULT_TRANSIENT_RETRIES),
            RetryPolicy::Capped(max) => (Some(max), max),
        };
        let (mut throttles, mut transients) = (0u32, 0u32);
        loop {
            self.unless_cancelled(inner.limiter.acquire(category))
                .await
                .ok_or_else(cancelled)?;
            inner.stats.call(op);
            let started = Instant::now();
            let result = self.unless_cancelled(send()).await.ok_or_else(cancelled)?;
            let elapsed = started.elapsed();
            let err = match result {
                Ok(out) => {
                    CognitoCallCompleted {
                        pool,
                        operation,
                        category: category.as_str(),
                        outcome: "ok",
                        elapsed,
                    }
                    .emit();
                    if let Some(rate) = inner.limiter.on_success(category, Instant::now()) {
                        self.rate_changed(category, rate);
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
                category: category.as_str(),
                outcome,
                elapsed,
            }
            .emit();
            let give_up = match verdict {
                Verdict::Throttled => {
                    inner.stats.throttled(category);
                    throttles += 1;
                    let lowered = inner.limiter.on_throttle(category, Instant::now());
                    CognitoThrottled {
                        pool,
                        operation,
                        category: category.as_str(),
                        code: failure.code().unwrap_or("throttled"),
                        rate_per_second: inner.limiter.rate(category),
                    }
                    .emit();
                    if let Some(rate) = lowered {
                        inner.stats.slowdown();
                        self.rate_changed(category, rate);
                    }
                    throttle_limit.is_some_and(|max| throttles > max)
                }
                Verdict::Transient(_) => {
                    transients += 1;
                    transients > transient_limit
                }
                Verdict::Permanent(_) => true,
            };
            let message = failure.message();
            if give_up {
                // A missing user is an answer (the operation returns `None`), and a rejected
                // token is the listing's to handle: neither is a failure yet.
                if !matches!(
                    verdict,
                    Verdict::Permanent(
                        Permanent::UserNotFound | Permanent::PaginationTokenRejected
                    )
                ) {
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
            self.unless_cancelled(tokio::time::sleep(delay))
                .await
                .ok_or_else(cancelled)?;
        }
    }

    fn rate_changed(&self, category: QuotaCategory, rate: f64) {
        CognitoRateChanged {
            pool: &self.inner.pool,
            category: category.as_str(),
            rate_per_second: rate,
            ceiling_per_second: self.inner.limiter.ceiling(category),
        }
        .emit();
    }
}

/// Cognito ends a listing with no token; an empty one means the same.
fn next_token(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::Memberships;

    #[test]
    fn memberships_list_each_users_groups_sorted_once() {
        let (a, b, c) = (
            uuid::Uuid::from_u128(1),
            uuid::Uuid::from_u128(2),
            uuid::Uuid::from_u128(3),
        );
        let memberships = Memberships::new(vec![
            ("readers".into(), vec![b, a]),
            ("admins".into(), vec![a, a]),
            ("editors".into(), vec![]),
        ]);
        assert_eq!(memberships.groups_of(&a), ["admins", "readers"]);
        assert_eq!(memberships.groups_of(&b), ["readers"]);
        assert!(memberships.groups_of(&c).is_empty());
        assert_eq!(memberships.len(), 3, "a member listed twice counts once");
    }
}
