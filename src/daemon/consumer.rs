//! The consumer: one poll loop per `--pollers`, each receiving a batch, applying it and
//! deleting only what is committed.
//!
//! One batch, step by step ([`Consumer::process_batch`]):
//! 1. decode every body; an undecodable one is made visible again at once, so that the
//!    redrive policy moves it to the dead-letter queue after `maxReceiveCount` receives;
//! 2. reduce each message to what it names; other-pool and ignored ones are acknowledged,
//!    pool-wide ones ask the reconcile for an early run ([`ReconcileRequests`]);
//! 3. re-read every named user (each once) and, if groups are named, the pool's groups;
//! 4. write everything read in ONE `ApplyEvents` mutation (one Hasura transaction); while
//!    steps 3 and 4 run, the batch's visibility timeout is renewed every half timeout, so a
//!    slow dependency never lets another poller receive the same messages;
//! 5. delete the messages whose effect is committed, plus the acknowledged ones, in one
//!    `DeleteMessageBatch`; messages whose read or write failed get their visibility set to a
//!    backoff delay growing with their receive count, and are never deleted.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Span, field};

use super::DaemonOptions;
use super::ops::Health;
use super::reconcile::ReconcileRequests;
use crate::cognito::{CognitoError, CognitoReader};
use crate::events::{self, DecodedEvent, EventAction, Plan, UserRef};
use crate::hasura::HasuraClient;
use crate::hasura::daemon_ops::{ApplyEvents, DaemonProbe, apply_events, daemon_probe};
use crate::model::{GroupRecord, UserRecord};
use crate::telemetry::daemon::{
    BatchCommitted, MessageAcknowledged, MessageApplied, MessageFailed, MessageReceived,
    MessageUndecodable, QueueBacklog, QueueCallFailed, VisibilityExtended,
};

/// Users re-read from Cognito at once within a batch (all under the reader's shared limit).
const READ_CONCURRENCY: usize = 10;

/// Everything a poll loop needs; shared by all loops.
pub(crate) struct Consumer {
    pub sqs: aws_sdk_sqs::Client,
    pub reader: CognitoReader,
    pub hasura: HasuraClient,
    /// A client that never retries, for the readiness probe.
    pub probe: HasuraClient,
    pub options: DaemonOptions,
    pub health: Arc<Health>,
    pub reconcile: ReconcileRequests,
}

/// One received message and what became of it.
struct Item {
    receipt_handle: String,
    receive_count: u32,
    sent_at: Option<DateTime<Utc>>,
    span: Span,
    decoded: Result<(DecodedEvent, Plan), String>,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Waiting for the reads and the write.
    Pending,
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

impl Consumer {
    /// Receives and applies batches until `stop`; the batch in flight is always finished.
    pub async fn poll_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let received = tokio::select! {
                // Dropping a pending receive loses nothing: anything it took returns to the
                // queue after the visibility timeout.
                () = stop.cancelled() => break,
                received = self.receive() => received,
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

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.options.queue_url)
            .max_number_of_messages(self.options.batch_size)
            .wait_time_seconds(self.options.wait_time_seconds)
            .visibility_timeout(self.options.visibility_timeout_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Applies one received batch; see the module docs for the steps.
    pub async fn process_batch(&self, messages: Vec<Message>) -> BatchReport {
        let pool = self.reader.user_pool_id().to_owned();
        let mut items: Vec<Item> = messages
            .into_iter()
            .filter_map(|m| self.item(m, &pool))
            .collect();

        // What the batch names, each once.
        let plan = events::reduce(
            items
                .iter()
                .filter_map(|i| i.decoded.as_ref().ok().map(|(e, _)| e)),
            &pool,
        );
        for item in &mut items {
            if let Ok((event, message_plan)) = &item.decoded {
                item.outcome = if message_plan.pool_wide || message_plan.is_empty() {
                    acknowledge(item, event, message_plan, &self.reconcile)
                } else {
                    Outcome::Pending
                };
            }
        }

        let mut report = BatchReport::default();
        let receipt_handles: Vec<String> = items.iter().map(|i| i.receipt_handle.clone()).collect();
        report.dependency_failed = tokio::select! {
            failed = self.apply(&pool, &plan, &mut items) => failed,
            never = self.keep_invisible(&receipt_handles) => match never {},
        };
        let committed_at = Utc::now();

        self.delete(&items).await;
        self.release(&items).await;
        for item in &items {
            let format = item.format();
            match &item.outcome {
                Outcome::Applied => {
                    report.applied += 1;
                    let latency = item
                        .sent_at
                        .and_then(|sent| (committed_at - sent).to_std().ok());
                    item.span
                        .in_scope(|| MessageApplied { format, latency }.emit());
                }
                Outcome::Acknowledged => report.acknowledged += 1,
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
                Outcome::Pending => {
                    unreachable!("every pending message is applied or failed above")
                }
            }
        }
        report
    }

    /// Steps 3 and 4: re-reads what the batch names and writes it, marking each pending
    /// message applied or failed. True when a dependency failed the batch as a whole.
    async fn apply(&self, pool: &str, plan: &Plan, items: &mut [Item]) -> bool {
        let reads = self.read(plan).await;
        for item in items.iter_mut().filter(|i| i.outcome == Outcome::Pending) {
            let Ok((_, message_plan)) = &item.decoded else {
                continue;
            };
            if let Some(error) = reads.error_for(message_plan) {
                item.outcome = Outcome::Failed {
                    reason: "cognito",
                    error,
                };
            }
        }
        let mut dependency_failed =
            !plan.users.is_empty() && reads.users.values().all(Result::is_err);
        if items.iter().any(|i| i.outcome == Outcome::Pending) {
            let outcome = match self.write(pool, &reads).await {
                Ok(()) => Outcome::Applied,
                Err(error) => {
                    dependency_failed = true;
                    Outcome::Failed {
                        reason: "hasura",
                        error,
                    }
                }
            };
            for item in items.iter_mut().filter(|i| i.outcome == Outcome::Pending) {
                item.outcome = outcome.clone();
            }
        }
        dependency_failed
    }

    /// Decodes one message inside its span. Messages SQS sent without a receipt handle cannot
    /// be acted on and are skipped (they return after the visibility timeout).
    fn item(&self, message: Message, pool: &str) -> Option<Item> {
        let message_id = message.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "message",
            message_id = %message_id,
            sub = field::Empty,
            username = field::Empty,
            group = field::Empty
        );
        let Some(receipt_handle) = message.receipt_handle.clone() else {
            span.in_scope(|| {
                QueueCallFailed {
                    operation: "ReceiveMessage",
                    error: "message without a receipt handle",
                }
                .emit();
            });
            return None;
        };
        let attribute = |name: MessageSystemAttributeName| {
            message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<i64>().ok())
        };
        let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
            .map_or(1, |n| n.clamp(1, 1_000) as u32);
        let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
            .and_then(DateTime::from_timestamp_millis);
        let decoded = match events::decode(message.body().unwrap_or_default()) {
            Ok(event) => {
                let plan = events::reduce(std::iter::once(&event), pool);
                for user in &plan.users {
                    match user {
                        UserRef::Sub(sub) => span.record("sub", field::display(sub)),
                        UserRef::Username(name) => span.record("username", name.as_str()),
                    };
                }
                if let Some(group) = plan.groups.first() {
                    span.record("group", group.as_str());
                }
                Ok((event, plan))
            }
            Err(error) => Err(error.to_string()),
        };
        let mut item = Item {
            receipt_handle,
            receive_count,
            sent_at,
            span,
            decoded,
            outcome: Outcome::Pending,
        };
        let format = item.format();
        item.span.in_scope(|| {
            MessageReceived {
                format,
                receive_count,
            }
            .emit()
        });
        if let Err(error) = &item.decoded {
            item.span.in_scope(|| {
                MessageUndecodable {
                    receive_count,
                    error,
                }
                .emit()
            });
            item.outcome = Outcome::Undecodable;
        }
        Some(item)
    }

    /// Re-reads every user and, when groups are named, the pool's groups.
    async fn read(&self, plan: &Plan) -> Reads {
        let usernames_checked_at = Utc::now();
        let users = futures::stream::iter(plan.users.iter().cloned())
            .map(|user| async move {
                let result = match &user {
                    UserRef::Sub(sub) => self.reader.user_by_sub(*sub).await,
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
        let groups = if plan.groups.is_empty() {
            None
        } else {
            Some(self.reader.list_groups().await.map(|all| {
                let mut by_name: BTreeMap<String, Option<GroupRecord>> = plan
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

    /// Writes every successful read in one mutation.
    async fn write(&self, pool: &str, reads: &Reads) -> Result<(), String> {
        let started = Instant::now();
        let mut latest: BTreeMap<uuid::Uuid, &UserRecord> = BTreeMap::new();
        let (mut gone_subs, mut gone_usernames) = (Vec::new(), Vec::new());
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
                (UserRef::Sub(sub), Ok(None)) => gone_subs.push(*sub),
                (UserRef::Username(name), Ok(None)) => gone_usernames.push(name.clone()),
                (_, Err(_)) => {}
            }
        }
        let (mut groups, mut gone_groups) = (Vec::new(), Vec::new());
        if let Some(Ok(named)) = &reads.groups {
            for (name, group) in named {
                match group {
                    Some(group) => groups.push(group.into()),
                    None => gone_groups.push(name.clone()),
                }
            }
        }
        let users: Vec<_> = latest.values().map(|user| (*user).into()).collect();
        let variables = apply_events::Variables {
            pool: pool.to_owned(),
            users,
            gone_subs,
            subs_gone_at: reads.subs_gone_at,
            gone_usernames,
            usernames_gone_at: reads.usernames_checked_at,
            groups,
            gone_groups,
            groups_gone_at: reads.groups_checked_at,
        };
        let messages = reads.users.len();
        let data = self
            .hasura
            .post::<ApplyEvents>(variables)
            .await
            .map_err(|e| e.to_string())?;
        let rows = |affected: Option<i64>| affected.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        BatchCommitted {
            messages,
            users_written: rows(data.users.map(|r| r.affected_rows)),
            users_tombstoned: rows(data.gone_by_sub.map(|r| r.affected_rows))
                + rows(data.gone_by_username.map(|r| r.affected_rows)),
            groups_written: rows(data.groups.map(|r| r.affected_rows)),
            groups_tombstoned: rows(data.gone_groups.map(|r| r.affected_rows)),
            elapsed: started.elapsed(),
        }
        .emit();
        Ok(())
    }

    /// Deletes the applied and acknowledged messages in one request.
    async fn delete(&self, items: &[Item]) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.outcome, Outcome::Applied | Outcome::Acknowledged))
            .filter_map(|(n, i)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(&i.receipt_handle)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let result = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.options.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        // A message whose delete failed returns after the visibility timeout and is applied
        // again: harmless, the write is idempotent.
        match result {
            Ok(out) => {
                for failed in out.failed() {
                    let message_id = failed.id().parse::<usize>().ok().and_then(|n| items.get(n));
                    let error = format!(
                        "{}: {}",
                        failed.code(),
                        failed.message().unwrap_or_default()
                    );
                    let emit = || {
                        QueueCallFailed {
                            operation: "DeleteMessageBatch",
                            error: &error,
                        }
                        .emit()
                    };
                    match message_id {
                        Some(item) => item.span.in_scope(emit),
                        None => emit(),
                    }
                }
            }
            Err(error) => QueueCallFailed {
                operation: "DeleteMessageBatch",
                error: &DisplayErrorContext(error).to_string(),
            }
            .emit(),
        }
    }

    /// Sets the visibility of failed messages to their backoff, undecodable ones to zero.
    async fn release(&self, items: &[Item]) {
        let changes: Vec<(usize, &str, i32)> = items
            .iter()
            .enumerate()
            .filter_map(|(n, i)| {
                let delay = match i.outcome {
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
        self.set_visibility(&changes).await;
    }

    /// Keeps a batch's messages invisible while it is applied (a slow Cognito or Hasura can
    /// outlast the receive's visibility timeout): every half timeout, the timeout is set
    /// again for all of them. Never returns; dropped when the batch is done.
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
            self.set_visibility(&changes).await;
        }
    }

    /// One `ChangeMessageVisibilityBatch` setting, per message, (entry id, receipt handle,
    /// seconds); failures are logged and counted. If it fails the messages still return,
    /// after the visibility timeout they have.
    async fn set_visibility(&self, changes: &[(usize, &str, i32)]) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = changes
            .iter()
            .filter_map(|&(n, handle, seconds)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let result = self
            .sqs
            .change_message_visibility_batch()
            .queue_url(&self.options.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match result {
            Ok(out) => {
                for failed in out.failed() {
                    let error = format!(
                        "{}: {}",
                        failed.code(),
                        failed.message().unwrap_or_default()
                    );
                    QueueCallFailed {
                        operation: "ChangeMessageVisibilityBatch",
                        error: &error,
                    }
                    .emit();
                }
            }
            Err(error) => QueueCallFailed {
                operation: "ChangeMessageVisibilityBatch",
                error: &DisplayErrorContext(error).to_string(),
            }
            .emit(),
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
        let queue = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.options.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await;
        match queue {
            Ok(out) => {
                let count = |name: QueueAttributeName| {
                    out.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                QueueBacklog {
                    visible: count(QueueAttributeName::ApproximateNumberOfMessages),
                    in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                }
                .emit();
                self.health.queue_reachable(None);
            }
            Err(error) => {
                let error = DisplayErrorContext(error).to_string();
                QueueCallFailed {
                    operation: "GetQueueAttributes",
                    error: &error,
                }
                .emit();
                self.health.queue_reachable(Some(error));
            }
        }
        let hasura = self
            .probe
            .post::<DaemonProbe>(daemon_probe::Variables {})
            .await;
        self.health
            .hasura_reachable(hasura.err().map(|e| e.to_string()));
        // Updates the readiness gauge and logs a change even when nobody asks /readyz.
        let _ = self.health.readiness();
    }
}

impl Item {
    fn format(&self) -> &'static str {
        match &self.decoded {
            Ok((event, _)) => event.format.as_str(),
            Err(_) => "undecodable",
        }
    }
}

/// Acknowledges a message that asks for nothing this batch can apply.
fn acknowledge(
    item: &Item,
    event: &DecodedEvent,
    plan: &Plan,
    reconcile: &ReconcileRequests,
) -> Outcome {
    let format = event.format.as_str();
    item.span.in_scope(|| {
        if plan.pool_wide {
            reconcile.request(&event.reason);
        }
        // A pool-wide event that also names users and groups is applied like any other.
        if !(plan.users.is_empty() && plan.groups.is_empty()) {
            return Outcome::Pending;
        }
        let (reason, detail) = if plan.other_pool > 0 {
            ("other_pool", event.user_pool_id.clone().unwrap_or_default())
        } else if plan.pool_wide {
            ("pool_wide", event.reason.clone())
        } else {
            let why = match &event.action {
                EventAction::Ignore(reason) => reason.as_str(),
                _ => "nothing to apply",
            };
            ("ignored", format!("{}: {why}", event.reason))
        };
        MessageAcknowledged {
            format,
            reason,
            detail: &detail,
        }
        .emit();
        Outcome::Acknowledged
    })
}

/// The results of one batch's Cognito reads.
struct Reads {
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
    /// Why a message's reads failed, if they did.
    fn error_for(&self, plan: &Plan) -> Option<String> {
        for user in &plan.users {
            match self.users.get(user) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Some(error.to_string()),
                None => return Some(format!("{user} was not read")),
            }
        }
        if !plan.groups.is_empty() {
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
