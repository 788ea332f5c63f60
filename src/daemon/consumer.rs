//! The consumer: one poll loop per `--pollers`, each receiving a batch, applying it and
//! deleting only what is committed.
//!
//! One batch, step by step ([`Consumer::process_batch`]):
//! 1. decode every body; an undecodable one is made visible again at once, so that the
//!    redrive policy moves it to the dead-letter queue after `maxReceiveCount` receives;
//! 2. reduce each message to what it names; a pool-wide one asks for an early reconcile;
//! 3. re-read every named user (each once) and, if groups are named, the pool's groups; a
//!    batch naming many users is priced first (`coalesce`): when scanning their `sub`-prefix
//!    shards costs less quota than reading each, they are read by a scan;
//! 4. write everything read, and a reconcile request per pool-wide message, in ONE
//!    `ApplyEvents` mutation (one Hasura transaction); once a request is committed, this
//!    process's scheduler is woken ([`ReconcileRequests`]); while
//!    steps 3 and 4 run, the batch's visibility timeout is renewed every half timeout, so a
//!    slow dependency never lets another poller receive the same messages;
//!    a record the mirror refuses because of its data is split out of the write and the rest
//!    committed without it;
//! 5. [`fate`] decides each message's outcome from its decoding, its reads and the write
//!    (a message naming a refused record fails alone, as `bad_data`);
//!    the committed and acknowledged ones are deleted in one batch call, the failed ones get
//!    their visibility set to a backoff delay growing with their receive count.
//!
//! **Bursts.** A poller that receives a full batch while the queue's backlog is large enough
//! for a scan to pay off gathers the backlog (up to `coalesce::GATHER_MAX_MESSAGES`, for at
//! most `coalesce::GATHER_FOR`) into one batch, which then goes through the same steps: its
//! messages are kept invisible while it is read and written, and deleted once committed. One
//! poller per process gathers at a time; the others go on with their batches.
//!
//! The consumer sees the queue through [`Queue`] and Cognito and Hasura through [`Store`], so
//! the pipeline is unit-tested with in-memory twins of both.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{Span, field};

use super::DaemonOptions;
use super::coalesce::{
    self, GATHER_FOR, GATHER_MAX_MESSAGES, GATHER_RECEIVES, MIN_USERS, PoolShape, Rates, ReadPlan,
    ShapeCache,
};
use super::ops::Health;
use super::queue::{EntryFailure, Queue, Received};
use super::requests::ReconcileRequests;
use crate::cognito::{CognitoError, CognitoReader, GroupsOf, RetryPolicy};
use crate::events::{self, DecodedEvent, EventAction, Targets, UserRef};
use crate::hasura::HasuraClient;
use crate::hasura::bisect::{Bisected, bisect};
use crate::hasura::daemon_ops::{ApplyEvents, DaemonProbe, apply_events, daemon_probe};
use crate::model::{GroupRecord, UserRecord};
use crate::state::lease::{Lease, scan_lease};
use crate::sync::scan::{ShardEvent, start_pool_scan};
use crate::telemetry::daemon::{
    BatchCommitted, BurstGathered, BurstScanFellBack, MessageAcknowledged, MessageApplied,
    MessageFailed, MessageReceived, MessageUndecodable, QueueBacklog, QueueCallFailed, ReadPlanned,
    ReconcileRequestRecorded, VisibilityExtended,
};
use crate::telemetry::records::RecordRejected;

/// Users re-read from Cognito at once within a batch (all under the reader's shared limit).
const READ_CONCURRENCY: usize = 10;
/// Rows per `ApplyEvents` mutation: a gathered burst is written in parts of this size.
const WRITE_CHUNK: usize = 1_000;
/// Pages a burst scan's shards may hold ready before the consumer takes them.
const SCAN_CHANNEL: usize = 64;
/// How long a pool seen with groups is taken to still have some (groups are rarely all
/// deleted; a ListGroups per batch would then be wasted).
const GROUPS_SEEN_FOR: Duration = Duration::from_secs(60);
/// Least time between two ListGroups of the per-user path: 4 a second, under Cognito's
/// 5 RPS per pool for ListGroups, at the cost of up to this much latency.
const GROUPS_LOOK_EVERY: Duration = Duration::from_millis(250);
/// Least time between two looks at the backlog for a burst (a GetQueueAttributes call).
const BACKLOG_LOOK_EVERY: Duration = Duration::from_secs(1);

/// Where a batch's users and groups are read from and written to.
pub(crate) trait Store: Send + Sync + 'static {
    fn pool(&self) -> &str;
    /// Re-reads what `targets` names.
    fn read(&self, targets: &Targets) -> impl Future<Output = Reads> + Send;
    /// Writes every successful read, and an early reconcile request for each of `requests`
    /// (the reasons of the batch's pool-wide messages), in one transaction, leaving out (and
    /// saying so) the records the mirror refuses because of their data.
    fn write(
        &self,
        reads: &Reads,
        requests: &[String],
    ) -> impl Future<Output = Result<Written, String>> + Send;
    /// Whether the mirror answers (for `/readyz`).
    fn probe(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// The pool's size and group count, for pricing a scan.
    fn shape(&self) -> impl Future<Output = Result<PoolShape, String>> + Send;
    /// The rates reads are priced at now.
    fn rates(&self) -> Rates;
    /// Reads what `targets` names, its subs by scanning `plan`'s shards (under the pool's scan
    /// lease when the plan is pool-wide); the named users the scan did not find, usernames
    /// and groups as [`Store::read`] reads them. `Err` says why no scan ran.
    fn read_by_scan(
        &self,
        plan: &ReadPlan,
        targets: &Targets,
    ) -> impl Future<Output = Result<Reads, ScanRefused>> + Send;
}

/// Why a planned burst scan did not run; its users are then read one by one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScanRefused {
    /// `lease_busy` or `scan_failed` (a metric label).
    pub reason: &'static str,
    pub error: String,
}

/// The one gathering of a burst a process does at a time, and when the backlog was last
/// looked at.
#[derive(Debug, Default)]
pub(crate) struct Bursts {
    gathering: std::sync::atomic::AtomicBool,
    looked_at: std::sync::Mutex<Option<Instant>>,
}

/// Held while a gathered burst is applied; lets the next gathering start when dropped.
struct Gathering<'a>(&'a Bursts);

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        self.0
            .gathering
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Bursts {
    /// The right to gather, unless another poller gathers or the backlog was looked at less
    /// than [`BACKLOG_LOOK_EVERY`] ago.
    fn begin(&self) -> Option<Gathering<'_>> {
        {
            let mut looked_at = self
                .looked_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if looked_at.is_some_and(|at| at.elapsed() < BACKLOG_LOOK_EVERY) {
                return None;
            }
            *looked_at = Some(Instant::now());
        }
        self.gathering
            .compare_exchange(
                false,
                true,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok()
            .then_some(Gathering(self))
    }
}

/// The production [`Store`]: Cognito read by a [`CognitoReader`], the mirror written through
/// Hasura.
pub(crate) struct CognitoToHasura {
    pub reader: CognitoReader,
    pub hasura: HasuraClient,
    /// A client that never retries, for the readiness probe.
    pub probe: HasuraClient,
    pub shapes: ShapeCache,
    /// When a ListGroups was last sent for a read, and whether it found no group.
    pub groups_seen: tokio::sync::Mutex<Option<(DateTime<Utc>, bool)>>,
    /// The pool's scan lease as a pool-wide burst scan takes it: this process's holder name
    /// with `/burst`, and the scheduled reconcile's time to live.
    pub lease_holder: String,
    pub lease_ttl: Duration,
}

/// Everything a poll loop needs; shared by all loops.
pub(crate) struct Consumer<Q, S> {
    pub queue: Q,
    pub store: S,
    pub options: DaemonOptions,
    pub health: Arc<Health>,
    pub reconcile: ReconcileRequests,
    pub bursts: Bursts,
}

/// One received message and what became of it.
struct Item {
    receipt_handle: String,
    receive_count: u32,
    sent_at: Option<DateTime<Utc>>,
    span: Span,
    decoded: Result<(DecodedEvent, Targets), String>,
}

/// What becomes of a message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Changes nothing here: delete it.
    Acknowledged,
    /// Committed: delete it.
    Applied,
    /// Not applied; back to the queue after the backoff.
    Failed { reason: &'static str, error: String },
    /// Never applicable: back to the queue at once, for the dead-letter queue.
    Undecodable,
}

/// What one batch did, for the poll loop's health bookkeeping.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchReport {
    pub applied: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub undecodable: usize,
    /// A dependency (Cognito for every user, or Hasura) failed the batch.
    pub dependency_failed: bool,
}

/// What a batch's write committed without: the users and groups the mirror refused because
/// of their data, each with its error. Empty when everything was written.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Written {
    pub rejected_users: HashMap<UserRef, String>,
    pub rejected_groups: BTreeMap<String, String>,
    /// Why the batch's early reconcile requests were refused, if they were.
    pub rejected_request: Option<String>,
}

impl Written {
    /// Why a message naming `targets` was not written, if a record it names was refused.
    pub fn rejection_for(&self, targets: &Targets) -> Option<&str> {
        let users = targets
            .users
            .iter()
            .filter_map(|user| self.rejected_users.get(user));
        let groups = targets
            .groups
            .iter()
            .filter_map(|group| self.rejected_groups.get(group));
        let request = targets
            .pool_wide
            .then_some(self.rejected_request.as_ref())
            .flatten();
        users
            .chain(groups)
            .chain(request)
            .next()
            .map(String::as_str)
    }
}

/// The one place a message's fate is decided: from its decoding, the batch's reads and the
/// batch's write (`None` when nothing was written).
pub(crate) fn fate(
    decoded: &Result<(DecodedEvent, Targets), String>,
    reads: &Reads,
    written: Option<&Result<Written, String>>,
) -> Outcome {
    let Ok((_, targets)) = decoded else {
        return Outcome::Undecodable;
    };
    // Other-pool and ignored messages name nothing to apply; a pool-wide one has its
    // request to commit.
    if targets.is_empty() {
        return Outcome::Acknowledged;
    }
    if let Some(error) = reads.error_for(targets) {
        return Outcome::Failed {
            reason: "cognito",
            error,
        };
    }
    match written {
        Some(Ok(written)) => match written.rejection_for(targets) {
            // Fails alone, backs off and reaches the dead-letter queue after its receives.
            Some(error) => Outcome::Failed {
                reason: "bad_data",
                error: error.to_owned(),
            },
            None => Outcome::Applied,
        },
        Some(Err(error)) => Outcome::Failed {
            reason: "hasura",
            error: error.clone(),
        },
        None => Outcome::Failed {
            reason: "hasura",
            error: "not written".to_owned(),
        },
    }
}

impl<Q: Queue, S: Store> Consumer<Q, S> {
    /// Receives and applies batches until `stop`; the batch in flight is always finished.
    pub async fn poll_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let received = tokio::select! {
                // Dropping a pending receive loses nothing: anything it took returns to the
                // queue after the visibility timeout.
                () = stop.cancelled() => break,
                received = self.queue.receive(
                    self.options.batch_size,
                    self.options.wait_time_seconds,
                    self.options.visibility_timeout_seconds,
                ) => received,
            };
            let messages = match received {
                Ok(messages) => {
                    self.health.polled();
                    messages
                }
                Err(error) => {
                    QueueCallFailed {
                        operation: "ReceiveMessage",
                        error: &error,
                    }
                    .emit();
                    self.health.queue_reachable(Some(error));
                    failures += 1;
                    pause(&stop, self.options.backoff(failures)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let (messages, _gathering) = self.gather(messages, &stop).await;
            let report = self.process_batch(messages).await;
            if report.dependency_failed {
                failures += 1;
                self.health.batch_failed();
                // Give the dependency time to recover instead of churning through the queue.
                pause(&stop, self.options.backoff(failures)).await;
            } else {
                failures = 0;
                self.health.batch_succeeded();
            }
        }
    }

    /// `messages` and, when they fill a batch and the backlog behind them is worth a scan,
    /// the backlog too, with the gathering's guard (see the module docs).
    async fn gather(
        &self,
        mut messages: Vec<Received>,
        stop: &CancellationToken,
    ) -> (Vec<Received>, Option<Gathering<'_>>) {
        let batch = usize::try_from(self.options.batch_size).unwrap_or(1);
        if messages.len() < batch {
            return (messages, None);
        }
        let Some(gathering) = self.bursts.begin() else {
            return (messages, None);
        };
        let backlog = match self.queue.depth().await {
            Ok((visible, _)) => visible,
            Err(_) => return (messages, None),
        };
        let count = messages.len() + usize::try_from(backlog).unwrap_or(usize::MAX);
        if count < MIN_USERS {
            return (messages, None);
        }
        let Ok(shape) = self.store.shape().await else {
            return (messages, None);
        };
        if !coalesce::plan_for_backlog(count, shape, self.store.rates()).scan() {
            return (messages, None);
        }
        let started = Instant::now();
        while messages.len() < GATHER_MAX_MESSAGES
            && started.elapsed() < GATHER_FOR
            && !stop.is_cancelled()
        {
            let round = futures::future::join_all((0..GATHER_RECEIVES).map(|_| {
                self.queue.receive(
                    self.options.batch_size,
                    1,
                    self.options.visibility_timeout_seconds,
                )
            }))
            .await;
            let before = messages.len();
            for received in round {
                match received {
                    Ok(more) => messages.extend(more),
                    Err(error) => QueueCallFailed {
                        operation: "ReceiveMessage",
                        error: &error,
                    }
                    .emit(),
                }
            }
            if messages.len() == before {
                break;
            }
        }
        BurstGathered {
            messages: messages.len(),
            backlog,
            elapsed: started.elapsed(),
        }
        .emit();
        (messages, Some(gathering))
    }

    /// Applies one received batch; see the module docs for the steps.
    pub async fn process_batch(&self, messages: Vec<Received>) -> BatchReport {
        let pool = self.store.pool().to_owned();
        let items: Vec<Item> = messages.into_iter().map(|m| self.item(m, &pool)).collect();
        let receipt_handles: Vec<String> = items.iter().map(|i| i.receipt_handle.clone()).collect();
        let (reads, written) = tokio::select! {
            done = self.read_and_write(&pool, &items) => done,
            never = self.keep_invisible(&receipt_handles) => match never {},
        };
        let committed_at = Utc::now();
        let outcomes: Vec<Outcome> = items
            .iter()
            .map(|item| fate(&item.decoded, &reads, written.as_ref()))
            .collect();
        let mut report = BatchReport {
            dependency_failed: matches!(written, Some(Err(_)))
                || (!reads.users.is_empty() && reads.users.values().all(Result::is_err)),
            ..BatchReport::default()
        };
        self.delete(&items, &outcomes).await;
        self.release(&items, &outcomes).await;
        for (item, outcome) in items.iter().zip(&outcomes) {
            let format = item.format();
            match outcome {
                Outcome::Applied => {
                    report.applied += 1;
                    if let Ok((event, targets)) = &item.decoded
                        && targets.pool_wide
                    {
                        item.span.in_scope(|| {
                            ReconcileRequestRecorded {
                                reason: &event.reason,
                            }
                            .emit();
                        });
                        self.reconcile.recorded();
                    }
                    let latency = item
                        .sent_at
                        .and_then(|sent| (committed_at - sent).to_std().ok());
                    item.span
                        .in_scope(|| MessageApplied { format, latency }.emit());
                }
                Outcome::Acknowledged => {
                    report.acknowledged += 1;
                    if let Ok((event, targets)) = &item.decoded {
                        item.span.in_scope(|| acknowledged(event, targets));
                    }
                }
                Outcome::Failed { reason, error } => {
                    report.failed += 1;
                    let retry_in = self.options.backoff(item.receive_count);
                    item.span.in_scope(|| {
                        MessageFailed {
                            format,
                            reason,
                            receive_count: item.receive_count,
                            retry_in,
                            error,
                        }
                        .emit();
                    });
                }
                Outcome::Undecodable => report.undecodable += 1,
            }
        }
        report
    }

    /// Steps 3 and 4: re-reads what the batch's applicable messages name and, when any of
    /// them was read in full, writes the reads.
    async fn read_and_write(
        &self,
        pool: &str,
        items: &[Item],
    ) -> (Reads, Option<Result<Written, String>>) {
        let applicable: Vec<&Targets> = items
            .iter()
            .filter_map(|i| i.decoded.as_ref().ok().map(|(_, targets)| targets))
            .filter(|t| !t.is_empty())
            .collect();
        if applicable.is_empty() {
            return (Reads::default(), None);
        }
        let targets = events::reduce(
            items
                .iter()
                .filter_map(|i| i.decoded.as_ref().ok().map(|(e, _)| e)),
            pool,
        );
        let reads = self.read(&targets).await;
        let requests: Vec<String> = items
            .iter()
            .filter_map(|i| i.decoded.as_ref().ok())
            .filter(|(_, targets)| targets.pool_wide)
            .map(|(event, _)| event.reason.clone())
            .collect();
        let any_read = applicable.iter().any(|t| reads.error_for(t).is_none());
        let written = if any_read {
            Some(self.store.write(&reads, &requests).await)
        } else {
            None
        };
        (reads, written)
    }

    /// Step 3: reads what `targets` names, one by one or, when the plan says so, by scanning
    /// the shards of its subs.
    async fn read(&self, targets: &Targets) -> Reads {
        let subs: Vec<&uuid::Uuid> = targets
            .users
            .iter()
            .filter_map(|user| match user {
                UserRef::Sub(sub) => Some(sub),
                UserRef::Username(_) => None,
            })
            .collect();
        if subs.len() < MIN_USERS {
            return self.store.read(targets).await;
        }
        let shape = match self.store.shape().await {
            Ok(shape) => shape,
            Err(error) => {
                BurstScanFellBack {
                    reason: "pool_unknown",
                    error: &error,
                }
                .emit();
                return self.store.read(targets).await;
            }
        };
        let plan = coalesce::plan(subs, shape, self.store.rates());
        ReadPlanned {
            plan: plan.name(),
            users: plan.users,
            shards: plan.shards.len(),
            pool_wide: plan.pool_wide,
            scan_pages: plan.scan_pages,
            estimated_users: shape.estimated_users,
            groups: shape.groups,
            per_user_seconds: plan.per_user_seconds,
            scan_seconds: plan.scan_seconds,
        }
        .emit();
        if !plan.scan() {
            return self.store.read(targets).await;
        }
        match self.store.read_by_scan(&plan, targets).await {
            Ok(reads) => reads,
            Err(refused) => {
                BurstScanFellBack {
                    reason: refused.reason,
                    error: &refused.error,
                }
                .emit();
                self.store.read(targets).await
            }
        }
    }

    /// Decodes one message inside its span.
    fn item(&self, message: Received, pool: &str) -> Item {
        let span = tracing::info_span!(
            "message",
            message_id = %message.message_id,
            sub = field::Empty,
            username = field::Empty,
            group = field::Empty
        );
        let decoded = match events::decode(&message.body) {
            Ok(event) => {
                let targets = events::reduce(std::iter::once(&event), pool);
                for user in &targets.users {
                    match user {
                        UserRef::Sub(sub) => span.record("sub", field::display(sub)),
                        UserRef::Username(name) => span.record("username", name.as_str()),
                    };
                }
                if let Some(group) = targets.groups.first() {
                    span.record("group", group.as_str());
                }
                Ok((event, targets))
            }
            Err(error) => Err(error.to_string()),
        };
        let item = Item {
            receipt_handle: message.receipt_handle,
            receive_count: message.receive_count,
            sent_at: message.sent_at,
            span,
            decoded,
        };
        let format = item.format();
        let receive_count = item.receive_count;
        item.span.in_scope(|| {
            MessageReceived {
                format,
                receive_count,
            }
            .emit();
            if let Err(error) = &item.decoded {
                MessageUndecodable {
                    receive_count,
                    error,
                }
                .emit();
            }
        });
        item
    }

    /// Deletes the applied and acknowledged messages in one request. A message whose delete
    /// failed returns after the visibility timeout and is applied again: harmless, the write
    /// is idempotent.
    async fn delete(&self, items: &[Item], outcomes: &[Outcome]) {
        let entries: Vec<(usize, &str)> = items
            .iter()
            .zip(outcomes)
            .enumerate()
            .filter(|(_, (_, o))| matches!(o, Outcome::Applied | Outcome::Acknowledged))
            .map(|(n, (i, _))| (n, i.receipt_handle.as_str()))
            .collect();
        if entries.is_empty() {
            return;
        }
        let result = self.queue.delete(&entries).await;
        report_failures("DeleteMessageBatch", result, items);
    }

    /// Sets the visibility of failed messages to their backoff, undecodable ones to zero.
    async fn release(&self, items: &[Item], outcomes: &[Outcome]) {
        let changes: Vec<(usize, &str, i32)> = items
            .iter()
            .zip(outcomes)
            .enumerate()
            .filter_map(|(n, (i, outcome))| {
                let delay = match outcome {
                    Outcome::Failed { .. } => self.options.backoff(i.receive_count),
                    // Straight back, so that the redrive policy counts its receives quickly.
                    Outcome::Undecodable => Duration::ZERO,
                    _ => return None,
                };
                Some((
                    n,
                    i.receipt_handle.as_str(),
                    delay.as_secs().min(43_200) as i32,
                ))
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        let result = self.queue.set_visibility(&changes).await;
        report_failures("ChangeMessageVisibilityBatch", result, items);
    }

    /// Keeps a batch's messages invisible while it is applied (a slow Cognito or Hasura can
    /// outlast the receive's visibility timeout): every half timeout, the timeout is set
    /// again for all of them. Never returns; dropped when the batch is done. If a renewal
    /// fails the messages still return, after the visibility timeout they have.
    async fn keep_invisible(&self, receipt_handles: &[String]) -> Infallible {
        let timeout = self.options.visibility_timeout_seconds;
        let period = Duration::from_millis(u64::try_from(timeout).unwrap_or(1).max(1) * 500);
        loop {
            tokio::time::sleep(period).await;
            let changes: Vec<(usize, &str, i32)> = receipt_handles
                .iter()
                .enumerate()
                .map(|(n, handle)| (n, handle.as_str(), timeout))
                .collect();
            VisibilityExtended {
                messages: receipt_handles.len(),
                seconds: timeout,
            }
            .emit();
            let result = self.queue.set_visibility(&changes).await;
            report_failures("ChangeMessageVisibilityBatch", result, &[]);
        }
    }

    /// Polls the backlog gauge and probes Hasura every `probe_interval` until `stop`; also
    /// drains the recorder's histogram samples, which otherwise pile up between scrapes.
    pub async fn probe_loop(self: Arc<Self>, metrics: PrometheusHandle, stop: CancellationToken) {
        loop {
            self.probe_once().await;
            metrics.run_upkeep();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.options.probe_interval) => {}
            }
        }
    }

    async fn probe_once(&self) {
        match self.queue.depth().await {
            Ok((visible, in_flight)) => {
                QueueBacklog { visible, in_flight }.emit();
                self.health.queue_reachable(None);
            }
            Err(error) => {
                QueueCallFailed {
                    operation: "GetQueueAttributes",
                    error: &error,
                }
                .emit();
                self.health.queue_reachable(Some(error));
            }
        }
        self.health.hasura_reachable(self.store.probe().await.err());
        // Updates the readiness gauge and logs a change even when nobody asks /readyz.
        let _ = self.health.readiness();
    }
}

/// Logs and counts a batch call that failed, or its entries that did (in their message's
/// span when `items` says which message an entry was).
fn report_failures(
    operation: &'static str,
    result: Result<Vec<EntryFailure>, String>,
    items: &[Item],
) {
    match result {
        Ok(failed) => {
            for (n, error) in failed {
                let emit = || {
                    QueueCallFailed {
                        operation,
                        error: &error,
                    }
                    .emit()
                };
                match items.get(n) {
                    Some(item) => item.span.in_scope(emit),
                    None => emit(),
                }
            }
        }
        Err(error) => QueueCallFailed {
            operation,
            error: &error,
        }
        .emit(),
    }
}

impl Store for CognitoToHasura {
    fn pool(&self) -> &str {
        self.reader.user_pool_id()
    }

    async fn read(&self, targets: &Targets) -> Reads {
        let usernames_checked_at = Utc::now();
        let groups_of = if targets.users.is_empty() {
            GroupsOf::Listed
        } else {
            self.groups_of(usernames_checked_at).await
        };
        let users = futures::stream::iter(targets.users.iter().cloned())
            .map(|user| async move {
                let result = match &user {
                    UserRef::Sub(sub) => self.reader.user_by_sub_with(*sub, groups_of).await,
                    UserRef::Username(name) => self.reader.user_by_username(name).await,
                };
                (user, result)
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect::<HashMap<_, _>>()
            .await;
        // A sub never comes back once deleted: any state read of it is older than now.
        let subs_gone_at = Utc::now();
        let groups_checked_at = Utc::now();
        let groups = if targets.groups.is_empty() {
            None
        } else {
            Some(self.reader.list_groups().await.map(|all| {
                let mut by_name: BTreeMap<String, Option<GroupRecord>> = targets
                    .groups
                    .iter()
                    .map(|name| (name.clone(), None))
                    .collect();
                for group in all {
                    if let Some(slot) = by_name.get_mut(&group.name) {
                        *slot = Some(group);
                    }
                }
                by_name
            }))
        };
        Reads {
            users,
            groups,
            usernames_checked_at,
            subs_gone_at,
            groups_checked_at,
        }
    }

    async fn write(&self, reads: &Reads, requests: &[String]) -> Result<Written, String> {
        let started = Instant::now();
        let mut latest: BTreeMap<uuid::Uuid, &UserRecord> = BTreeMap::new();
        let mut rows = Vec::new();
        for (user, result) in &reads.users {
            match (user, result) {
                (_, Ok(Some(record))) => {
                    // A sub and a username can name the same user: keep the latest read.
                    if latest
                        .get(&record.id)
                        .is_none_or(|kept| kept.observed_at < record.observed_at)
                    {
                        latest.insert(record.id, record);
                    }
                }
                (UserRef::Sub(sub), Ok(None)) => rows.push(Row::GoneSub(*sub)),
                (UserRef::Username(name), Ok(None)) => rows.push(Row::GoneUsername(name)),
                (_, Err(_)) => {}
            }
        }
        rows.extend(latest.into_values().map(Row::User));
        if let Some(Ok(named)) = &reads.groups {
            rows.extend(named.iter().map(|(name, group)| match group {
                Some(group) => Row::Group(group),
                None => Row::GoneGroup(name),
            }));
        }
        rows.extend(requests.iter().map(|reason| Row::Request(reason)));
        // This replica's clock, as the lease's: the debounce compares with it.
        let requested_at = Utc::now();
        let mut done = Bisected {
            committed: Vec::new(),
            rejected: Vec::new(),
            writes: 0,
        };
        for chunk in rows.chunks(WRITE_CHUNK) {
            let part = bisect(chunk.to_vec(), |part: &[Row<'_>]| {
                self.hasura.post::<ApplyEvents>(apply_variables(
                    self.pool(),
                    reads,
                    part,
                    requested_at,
                ))
            })
            .await
            .map_err(|e| e.to_string())?;
            done.committed.extend(part.committed);
            done.rejected.extend(part.rejected);
            done.writes += part.writes;
        }
        let rows = |affected: Option<i64>| affected.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        let sum = |of: fn(&apply_events::ResponseData) -> Option<i64>| {
            done.committed
                .iter()
                .map(|data| rows(of(data)))
                .sum::<u64>()
        };
        BatchCommitted {
            messages: reads.users.len(),
            users_written: sum(|d| d.users.as_ref().map(|r| r.affected_rows)),
            users_tombstoned: sum(|d| d.gone_by_sub.as_ref().map(|r| r.affected_rows))
                + sum(|d| d.gone_by_username.as_ref().map(|r| r.affected_rows)),
            groups_written: sum(|d| d.groups.as_ref().map(|r| r.affected_rows)),
            groups_tombstoned: sum(|d| d.gone_groups.as_ref().map(|r| r.affected_rows)),
            elapsed: started.elapsed(),
        }
        .emit();
        let mut written = Written::default();
        for (row, error) in done.rejected {
            let error = error.to_string();
            let (kind, key) = match &row {
                Row::User(user) => ("user", user.id.to_string()),
                Row::GoneSub(sub) => ("user_tombstone", sub.to_string()),
                Row::GoneUsername(name) => ("user_tombstone", (*name).to_owned()),
                Row::Group(group) => ("group", group.name.clone()),
                Row::GoneGroup(name) => ("group_tombstone", (*name).to_owned()),
                Row::Request(reason) => ("reconcile_request", (*reason).to_owned()),
            };
            RecordRejected {
                path: "daemon",
                kind,
                key: &key,
                error: &error,
            }
            .emit();
            match row {
                // Every reference that read this user (its sub, its username) names it.
                Row::User(user) => {
                    for (named, result) in &reads.users {
                        if matches!(result, Ok(Some(read)) if read.id == user.id) {
                            written.rejected_users.insert(named.clone(), error.clone());
                        }
                    }
                }
                Row::GoneSub(sub) => {
                    written.rejected_users.insert(UserRef::Sub(sub), error);
                }
                Row::GoneUsername(name) => {
                    written
                        .rejected_users
                        .insert(UserRef::Username(name.to_owned()), error);
                }
                Row::Group(group) => {
                    written.rejected_groups.insert(group.name.clone(), error);
                }
                Row::GoneGroup(name) => {
                    written.rejected_groups.insert(name.to_owned(), error);
                }
                Row::Request(_) => written.rejected_request = Some(error),
            }
        }
        Ok(written)
    }

    async fn probe(&self) -> Result<(), String> {
        self.probe
            .post::<DaemonProbe>(daemon_probe::Variables {})
            .await
            .map(drop)
            .map_err(|e| format!("{}: {e}", e.problem()))
    }

    async fn shape(&self) -> Result<PoolShape, String> {
        self.shapes
            .get(&self.reader)
            .await
            .map_err(|e| e.to_string())
    }

    fn rates(&self) -> Rates {
        Rates::current(self.reader.limiter())
    }

    async fn read_by_scan(&self, plan: &ReadPlan, targets: &Targets) -> Result<Reads, ScanRefused> {
        let lease = plan.pool_wide.then(|| {
            Lease::new(
                self.hasura.clone(),
                scan_lease(self.pool()),
                format!("{}/burst", self.lease_holder),
                self.lease_ttl,
            )
        });
        if let Some(lease) = &lease {
            let busy = |error: String| ScanRefused {
                reason: "lease_busy",
                error,
            };
            match lease.acquire().await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(busy(format!(
                        "another scanner holds the lease {}",
                        lease.name()
                    )));
                }
                Err(err) => return Err(busy(format!("{err:#}"))),
            }
        }
        let run = CancellationToken::new();
        // Aborted with the scan, so a renewal never outlives it.
        let keeper = lease.clone().map(|lease| {
            let run = run.clone();
            AbortOnDropHandle::new(tokio::spawn(async move { lease.keep(run).await }))
        });
        let scanned = self.scan_for(plan, targets, &run).await;
        drop(keeper);
        if let Some(lease) = &lease
            && let Err(err) = lease.release().await
        {
            tracing::warn!(
                error = format!("{err:#}"),
                "cannot release the scan lease; it will expire"
            );
        }
        let found = scanned.map_err(|err| ScanRefused {
            reason: "scan_failed",
            error: format!("{err:#}"),
        })?;
        // What the scan could not answer is read as the per-user path reads it: a user
        // created after its shard was listed is found, one deleted is tombstoned.
        let rest = Targets {
            users: targets
                .users
                .iter()
                .filter(|user| !matches!(user, UserRef::Sub(sub) if found.contains_key(sub)))
                .cloned()
                .collect(),
            groups: targets.groups.clone(),
            ..Targets::default()
        };
        let mut reads = self.read(&rest).await;
        reads.users.extend(
            found
                .into_values()
                .map(|user| (UserRef::Sub(user.id), Ok(Some(user)))),
        );
        Ok(reads)
    }
}

impl CognitoToHasura {
    /// The daemon's store of `reader` and `hasura`; a pool-wide burst scan takes the pool's
    /// scan lease as `lease_holder` for `lease_ttl`.
    pub fn new(
        reader: CognitoReader,
        hasura: HasuraClient,
        probe: HasuraClient,
        lease_holder: String,
        lease_ttl: Duration,
    ) -> Self {
        CognitoToHasura {
            reader,
            hasura,
            probe,
            shapes: ShapeCache::default(),
            groups_seen: tokio::sync::Mutex::default(),
            lease_holder,
            lease_ttl,
        }
    }

    /// How the users of a read that started at `started` get their groups: from a ListGroups
    /// sent after `started` that found none in the pool (shared by every batch that started
    /// before it was sent: one call, at most every [`GROUPS_LOOK_EVERY`], serves many), else
    /// AdminListGroupsForUser per user. A
    /// pool known to have groups is not asked again for [`GROUPS_SEEN_FOR`].
    async fn groups_of(&self, started: DateTime<Utc>) -> GroupsOf {
        let mut seen = self.groups_seen.lock().await;
        match *seen {
            Some((read_at, true)) if read_at >= started => return GroupsOf::NoneInPool(read_at),
            Some((read_at, false))
                if (started - read_at).to_std().unwrap_or_default() < GROUPS_SEEN_FOR =>
            {
                return GroupsOf::Listed;
            }
            _ => {}
        }
        // At most one ListGroups per interval: the batches that start meanwhile wait for it
        // and share it.
        if let Some((last, _)) = *seen
            && let Some(wait) =
                GROUPS_LOOK_EVERY.checked_sub((Utc::now() - last).to_std().unwrap_or_default())
        {
            tokio::time::sleep(wait).await;
        }
        let read_at = Utc::now();
        match self.reader.list_groups().await {
            Ok(groups) => {
                *seen = Some((read_at, groups.is_empty()));
                if groups.is_empty() {
                    GroupsOf::NoneInPool(read_at)
                } else {
                    GroupsOf::Listed
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot list the pool's groups; reading each user's");
                GroupsOf::Listed
            }
        }
    }

    /// The users `targets` names by sub that a scan of `plan`'s shards finds (groups joined,
    /// each stamped as a scan stamps it). Fails when a shard fails or `run` is cancelled
    /// (the lease was lost).
    async fn scan_for(
        &self,
        plan: &ReadPlan,
        targets: &Targets,
        run: &CancellationToken,
    ) -> anyhow::Result<HashMap<uuid::Uuid, UserRecord>> {
        let wanted: std::collections::HashSet<uuid::Uuid> = targets
            .users
            .iter()
            .filter_map(|user| match user {
                UserRef::Sub(sub) => Some(*sub),
                UserRef::Username(_) => None,
            })
            .collect();
        // A scan persists through throttling, as every scan does.
        let reader = self
            .reader
            .with_retry(RetryPolicy::Persistent)
            .with_cancel(run.clone());
        let shards = plan
            .shards
            .iter()
            .map(|shard| (shard.clone(), None))
            .collect();
        let mut scan = start_pool_scan(&reader, shards, SCAN_CHANNEL, run).await?;
        let mut found = HashMap::new();
        while let Some(event) = scan.pages.recv().await {
            if let ShardEvent::Page { users, .. } = event {
                found.extend(
                    users
                        .into_iter()
                        .filter(|user| wanted.contains(&user.id))
                        .map(|user| (user.id, user)),
                );
            }
        }
        while let Some(joined) = scan.shards.join_next().await {
            joined.map_err(|err| anyhow::anyhow!("a shard scan panicked: {err}"))??;
        }
        if run.is_cancelled() {
            anyhow::bail!("the pool's scan lease was lost during the scan");
        }
        Ok(found)
    }
}

/// One record of an `ApplyEvents` write: the unit the write is split into when the mirror
/// refuses some record's data.
#[derive(Debug, Clone, Copy)]
enum Row<'a> {
    User(&'a UserRecord),
    GoneSub(uuid::Uuid),
    GoneUsername(&'a str),
    Group(&'a GroupRecord),
    GoneGroup(&'a str),
    /// An early reconcile request, with its reason.
    Request(&'a str),
}

/// The `ApplyEvents` variables writing `rows` of a batch read as `reads`.
fn apply_variables(
    pool: &str,
    reads: &Reads,
    rows: &[Row<'_>],
    requested_at: DateTime<Utc>,
) -> apply_events::Variables {
    let mut variables = apply_events::Variables {
        pool: pool.to_owned(),
        users: Vec::new(),
        gone_subs: Vec::new(),
        subs_gone_at: reads.subs_gone_at,
        gone_usernames: Vec::new(),
        usernames_gone_at: reads.usernames_checked_at,
        groups: Vec::new(),
        gone_groups: Vec::new(),
        groups_gone_at: reads.groups_checked_at,
        requests: Vec::new(),
    };
    for row in rows {
        match *row {
            Row::User(user) => variables.users.push(user.into()),
            Row::GoneSub(sub) => variables.gone_subs.push(sub),
            Row::GoneUsername(name) => variables.gone_usernames.push(name.to_owned()),
            Row::Group(group) => variables.groups.push(group.into()),
            Row::GoneGroup(name) => variables.gone_groups.push(name.to_owned()),
            Row::Request(reason) => {
                variables
                    .requests
                    .push(apply_events::cognito_sync_requests_insert_input {
                        id: None,
                        user_pool_id: Some(pool.to_owned()),
                        reason: Some(reason.to_owned()),
                        requested_at: Some(requested_at),
                        served_at: None,
                        served_by: None,
                    })
            }
        }
    }
    variables
}

impl Item {
    fn format(&self) -> &'static str {
        match &self.decoded {
            Ok((event, _)) => event.format.as_str(),
            Err(_) => "undecodable",
        }
    }
}

/// Logs and counts why a message that asks for nothing to apply was acknowledged.
fn acknowledged(event: &DecodedEvent, targets: &Targets) {
    let (reason, detail) = if targets.other_pool > 0 {
        ("other_pool", event.user_pool_id.clone().unwrap_or_default())
    } else {
        let why = match &event.action {
            EventAction::Ignore(reason) => reason.as_str(),
            _ => "nothing to apply",
        };
        ("ignored", format!("{}: {why}", event.reason))
    };
    MessageAcknowledged {
        format: event.format.as_str(),
        reason,
        detail: &detail,
    }
    .emit();
}

/// The results of one batch's Cognito reads.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    users: HashMap<UserRef, Result<Option<UserRecord>, CognitoError>>,
    /// The named groups, `None` when gone; `None` when no group was named.
    groups: Option<Result<BTreeMap<String, Option<GroupRecord>>, CognitoError>>,
    /// Taken before any read: a username created again later must keep its newer row.
    usernames_checked_at: DateTime<Utc>,
    subs_gone_at: DateTime<Utc>,
    /// Taken before ListGroups, for the same reason as usernames.
    groups_checked_at: DateTime<Utc>,
}

impl Reads {
    /// What the read of `user` returned; `None` when it was not read.
    pub fn user(&self, user: &UserRef) -> Option<&Result<Option<UserRecord>, CognitoError>> {
        self.users.get(user)
    }

    /// Why a message's reads failed, if they did.
    pub fn error_for(&self, targets: &Targets) -> Option<String> {
        for user in &targets.users {
            match self.users.get(user) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Some(error.to_string()),
                None => return Some(format!("{user} was not read")),
            }
        }
        if !targets.groups.is_empty() {
            match &self.groups {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Some(error.to_string()),
                None => return Some("groups were not read".to_owned()),
            }
        }
        None
    }
}

/// Sleeps `delay` unless `stop` comes first.
async fn pause(stop: &CancellationToken, delay: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

#[cfg(test)]
mod tests {
    //! The batch pipeline end to end on an in-memory queue and a scripted store: what is
    //! deleted, what returns, and when, with no emulator.

    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use super::*;
    use crate::daemon::queue::MemoryQueue;
    use crate::daemon::scheduler::SchedulerOptions;
    use crate::sync::reconcile::ReconcileOptions;

    const POOL: &str = "us-east-1_Pipeline";

    /// Users it "reads" by sub; subs in `unreadable` fail their read; `write_fails` fails
    /// every write. Records what each write carried. A pool of `shape`: a scan "finds" the
    /// named subs in `in_pool`, in the shards scanned; the others are read one by one.
    /// Counts per-user reads and scans as the calls they stand for.
    #[derive(Default)]
    struct ScriptedStore {
        unreadable: BTreeSet<uuid::Uuid>,
        write_fails: bool,
        written: Mutex<Vec<Vec<uuid::Uuid>>>,
        shape: Option<PoolShape>,
        in_pool: BTreeSet<uuid::Uuid>,
        lease_busy: bool,
        user_reads: std::sync::atomic::AtomicUsize,
        scans: Mutex<Vec<ReadPlan>>,
    }

    /// The default share (0.8) of Cognito's default quotas.
    const RATES: Rates = Rates {
        user_list: 24.0,
        user_read: 96.0,
        user_resource_read: 40.0,
        user_pool_resource_read: 16.0,
    };

    impl Store for ScriptedStore {
        fn pool(&self) -> &str {
            POOL
        }

        async fn read(&self, targets: &Targets) -> Reads {
            self.user_reads
                .fetch_add(targets.users.len(), std::sync::atomic::Ordering::Relaxed);
            let users = targets
                .users
                .iter()
                .map(|user| {
                    let result = match user {
                        UserRef::Sub(sub) if self.unreadable.contains(sub) => {
                            Err(CognitoError::Api {
                                pool: POOL.into(),
                                operation: "AdminGetUser",
                                message: "scripted failure".into(),
                                retryable: true,
                            })
                        }
                        // Gone from Cognito: a tombstone is written.
                        _ => Ok(None),
                    };
                    (user.clone(), result)
                })
                .collect();
            Reads {
                users,
                ..Reads::default()
            }
        }

        async fn write(&self, reads: &Reads, _requests: &[String]) -> Result<Written, String> {
            if self.write_fails {
                return Err("scripted Hasura outage".into());
            }
            let subs = reads
                .users
                .iter()
                .filter(|(_, r)| r.is_ok())
                .filter_map(|(u, _)| match u {
                    UserRef::Sub(sub) => Some(*sub),
                    UserRef::Username(_) => None,
                })
                .collect();
            self.written.lock().unwrap().push(subs);
            Ok(Written::default())
        }

        async fn probe(&self) -> Result<(), String> {
            Ok(())
        }

        async fn shape(&self) -> Result<PoolShape, String> {
            self.shape
                .ok_or_else(|| "DescribeUserPool failed".to_owned())
        }

        fn rates(&self) -> Rates {
            RATES
        }

        async fn read_by_scan(
            &self,
            plan: &ReadPlan,
            targets: &Targets,
        ) -> Result<Reads, ScanRefused> {
            if self.lease_busy && plan.pool_wide {
                return Err(ScanRefused {
                    reason: "lease_busy",
                    error: "another scanner holds the lease".into(),
                });
            }
            self.scans.lock().unwrap().push(plan.clone());
            let found: BTreeSet<uuid::Uuid> = targets
                .users
                .iter()
                .filter_map(|user| match user {
                    UserRef::Sub(sub)
                        if self.in_pool.contains(sub)
                            && plan.shards.iter().any(|shard| shard.contains(sub)) =>
                    {
                        Some(*sub)
                    }
                    _ => None,
                })
                .collect();
            let rest = Targets {
                users: targets
                    .users
                    .iter()
                    .filter(|user| !matches!(user, UserRef::Sub(sub) if found.contains(sub)))
                    .cloned()
                    .collect(),
                ..Targets::default()
            };
            let mut reads = self.read(&rest).await;
            reads
                .users
                .extend(found.into_iter().map(|sub| (UserRef::Sub(sub), Ok(None))));
            Ok(reads)
        }
    }

    fn options() -> DaemonOptions {
        DaemonOptions {
            queue_url: "memory".into(),
            pollers: 1,
            visibility_timeout_seconds: 30,
            shutdown_timeout: Duration::from_secs(1),
            wait_time_seconds: 0,
            batch_size: 10,
            retry_backoff: Duration::from_secs(5),
            retry_backoff_max: Duration::from_secs(60),
            unready_after: 1,
            probe_interval: Duration::from_secs(1),
            reconcile_debounce: Duration::from_millis(1),
            scheduler: SchedulerOptions {
                schedule: None,
                lease_ttl: Duration::from_secs(60),
                holder: "test".into(),
                reconcile: ReconcileOptions::default(),
            },
        }
    }

    fn consumer(store: ScriptedStore) -> Consumer<MemoryQueue, ScriptedStore> {
        let options = options();
        Consumer {
            queue: MemoryQueue::default(),
            store,
            health: Arc::new(Health::new(1, Duration::from_secs(60))),
            reconcile: ReconcileRequests::new(options.reconcile_debounce),
            options,
            bursts: Bursts::default(),
        }
    }

    fn event_for(sub: uuid::Uuid) -> String {
        format!(r#"{{"user_pool_id":"{POOL}","sub":"{sub}","reason":"test"}}"#)
    }

    async fn one_batch(consumer: &Consumer<MemoryQueue, ScriptedStore>) -> BatchReport {
        let received = consumer.queue.receive(10, 0, 30).await.unwrap();
        consumer.process_batch(received).await
    }

    #[tokio::test]
    async fn committed_messages_are_deleted_and_a_failed_read_fails_only_its_own() {
        let (good, bad) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let consumer = consumer(ScriptedStore {
            unreadable: BTreeSet::from([bad]),
            ..ScriptedStore::default()
        });
        consumer.queue.send(&event_for(good));
        consumer.queue.send(&event_for(bad));
        consumer.queue.send("not json");
        consumer.queue.send(&format!(
            r#"{{"user_pool_id":"eu-west-1_Other","sub":"{good}","reason":"other pool"}}"#
        ));

        let report = one_batch(&consumer).await;
        assert_eq!(
            report,
            BatchReport {
                applied: 1,
                acknowledged: 1,
                failed: 1,
                undecodable: 1,
                dependency_failed: false,
            }
        );
        // One write, with only what was read.
        assert_eq!(*consumer.store.written.lock().unwrap(), vec![vec![good]]);
        // The applied and the other-pool message are gone; the failed one waits out its
        // backoff; the undecodable one is visible again at once, for the redrive policy.
        assert_eq!(
            consumer.queue.bodies(),
            vec![event_for(bad), "not json".to_owned()]
        );
        assert_eq!(consumer.queue.visible(), vec!["not json".to_owned()]);
    }

    #[tokio::test]
    async fn a_hasura_outage_deletes_nothing_and_marks_the_batch_failed() {
        let consumer = consumer(ScriptedStore {
            write_fails: true,
            ..ScriptedStore::default()
        });
        let subs: Vec<_> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
        for sub in &subs {
            consumer.queue.send(&event_for(*sub));
        }
        let report = one_batch(&consumer).await;
        assert_eq!(report.failed, 3);
        assert!(report.dependency_failed);
        assert_eq!(consumer.queue.bodies().len(), 3, "nothing deleted");
        assert!(consumer.queue.visible().is_empty(), "all back off");
    }

    #[tokio::test]
    async fn a_batch_names_each_user_once() {
        let consumer = consumer(ScriptedStore::default());
        let sub = uuid::Uuid::new_v4();
        for _ in 0..4 {
            consumer.queue.send(&event_for(sub));
        }
        let report = one_batch(&consumer).await;
        assert_eq!(report.applied, 4);
        assert_eq!(*consumer.store.written.lock().unwrap(), vec![vec![sub]]);
        assert!(consumer.queue.bodies().is_empty());
    }

    /// A queue of `count` events, each naming a user of the pool, in a pool of
    /// `estimated_users` users and `groups` groups.
    fn burst_consumer(
        store: ScriptedStore,
        estimated_users: u64,
        groups: u64,
        count: usize,
    ) -> Consumer<MemoryQueue, ScriptedStore> {
        let subs: Vec<_> = (0..count).map(|_| uuid::Uuid::new_v4()).collect();
        let consumer = consumer(ScriptedStore {
            shape: Some(PoolShape {
                estimated_users,
                groups,
            }),
            in_pool: subs.iter().copied().collect(),
            ..store
        });
        for sub in subs {
            consumer.queue.send(&event_for(sub));
        }
        consumer
    }

    /// One poll as the loop does it: a receive, the gathering, the batch.
    async fn one_poll(consumer: &Consumer<MemoryQueue, ScriptedStore>) -> BatchReport {
        let received = consumer.queue.receive(10, 0, 30).await.unwrap();
        let (messages, _gathering) = consumer.gather(received, &CancellationToken::new()).await;
        consumer.process_batch(messages).await
    }

    fn reads(consumer: &Consumer<MemoryQueue, ScriptedStore>) -> usize {
        consumer
            .store
            .user_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_burst_worth_a_scan_is_gathered_read_by_scanning_and_deleted() {
        let consumer = burst_consumer(ScriptedStore::default(), 5_000, 0, 2_000);
        // A user the events name that the pool no longer has: read on its own.
        let gone = uuid::Uuid::new_v4();
        consumer.queue.send(&event_for(gone));

        let report = one_poll(&consumer).await;
        assert_eq!(report.applied, 2_001, "the whole backlog in one batch");
        let scans = consumer.store.scans.lock().unwrap().clone();
        assert_eq!(scans.len(), 1);
        assert!(scans[0].scan() && scans[0].users == 2_001, "{:?}", scans[0]);
        assert_eq!(reads(&consumer), 1, "only the user the scan did not find");
        let written = consumer.store.written.lock().unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].len(), 2_001);
        assert!(
            consumer.queue.bodies().is_empty(),
            "all deleted once written"
        );
    }

    #[tokio::test]
    async fn a_backlog_a_scan_does_not_pay_for_is_read_one_by_one() {
        let consumer = burst_consumer(ScriptedStore::default(), 1_000_000, 3, 300);
        // Not gathered: a batch of ten, each user read.
        let report = one_poll(&consumer).await;
        assert_eq!(report.applied, 10);
        assert_eq!(reads(&consumer), 10);
        // Even all 300 in one batch are cheaper to read one by one in a million-user pool.
        let all = consumer.queue.receive(300, 0, 30).await.unwrap();
        let report = consumer.process_batch(all).await;
        assert_eq!(report.applied, 290);
        assert_eq!(reads(&consumer), 300);
        assert!(consumer.store.scans.lock().unwrap().is_empty());
        assert!(consumer.queue.bodies().is_empty());
    }

    #[tokio::test]
    async fn a_pool_wide_burst_scan_gives_way_to_a_lease_holder() {
        let busy = ScriptedStore {
            lease_busy: true,
            ..ScriptedStore::default()
        };
        let consumer = burst_consumer(busy, 20_000, 0, 5_000);
        let report = one_poll(&consumer).await;
        assert_eq!(report.applied, 5_000, "gathered: the plan is a scan");
        assert!(consumer.store.scans.lock().unwrap().is_empty());
        assert_eq!(reads(&consumer), 5_000, "read one by one instead");
        assert!(consumer.queue.bodies().is_empty());
    }

    #[tokio::test]
    async fn a_pool_that_cannot_be_sized_is_read_one_by_one() {
        let mut consumer = burst_consumer(ScriptedStore::default(), 0, 0, 150);
        consumer.store.shape = None;
        let all = consumer.queue.receive(150, 0, 30).await.unwrap();
        let report = consumer.process_batch(all).await;
        assert_eq!(report.applied, 150);
        assert_eq!(reads(&consumer), 150);
    }

    #[test]
    fn fate_follows_decoding_reads_and_write() {
        let undecodable: Result<(DecodedEvent, Targets), String> = Err("bad".into());
        assert_eq!(
            fate(&undecodable, &Reads::default(), None),
            Outcome::Undecodable
        );
        let sub = uuid::Uuid::new_v4();
        let event = events::decode(&event_for(sub)).unwrap();
        let targets = events::reduce(std::iter::once(&event), POOL);
        let decoded = Ok((event, targets));
        let mut reads = Reads::default();
        reads.users.insert(UserRef::Sub(sub), Ok(None));
        assert_eq!(
            fate(&decoded, &reads, Some(&Ok(Written::default()))),
            Outcome::Applied
        );
        assert!(matches!(
            fate(&decoded, &reads, Some(&Err("down".into()))),
            Outcome::Failed {
                reason: "hasura",
                ..
            }
        ));
        assert!(matches!(
            fate(&decoded, &Reads::default(), Some(&Ok(Written::default()))),
            Outcome::Failed {
                reason: "cognito",
                ..
            }
        ));
    }
}
