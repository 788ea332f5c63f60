//! Telemetry events of the daemon: messages received, applied, acknowledged, failed; batches
//! committed; queue backlog; readiness; early reconcile requests.
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series.
//! Events about one message are emitted inside that message's span (message id, user), so
//! every log line about a message carries them.

use std::time::Duration;

/// A message came off the queue and was decoded (`format` is `undecodable` when it was not).
#[derive(Debug)]
pub struct MessageReceived<'a> {
    pub format: &'a str,
    pub receive_count: u32,
}

impl MessageReceived<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            format = self.format,
            receive_count = self.receive_count,
            "message received"
        );
        metrics::counter!("daemon_messages_received_total", "format" => self.format.to_owned())
            .increment(1);
    }
}

/// A message's effect is committed in Hasura and the message deleted.
#[derive(Debug)]
pub struct MessageApplied<'a> {
    pub format: &'a str,
    /// From the message's `SentTimestamp` to the commit, when SQS gave one.
    pub latency: Option<Duration>,
}

impl MessageApplied<'_> {
    pub fn emit(&self) {
        let latency_ms = self.latency.map(|l| l.as_millis() as u64);
        tracing::info!(format = self.format, latency_ms, "message applied");
        metrics::counter!("daemon_messages_applied_total", "format" => self.format.to_owned())
            .increment(1);
        if let Some(latency) = self.latency {
            metrics::histogram!("daemon_apply_latency_seconds").record(latency.as_secs_f64());
        }
    }
}

/// A message that changes nothing here was deleted: ignored, or of another pool.
#[derive(Debug)]
pub struct MessageAcknowledged<'a> {
    pub format: &'a str,
    /// `ignored` or `other_pool`.
    pub reason: &'static str,
    pub detail: &'a str,
}

impl MessageAcknowledged<'_> {
    pub fn emit(&self) {
        tracing::info!(
            format = self.format,
            reason = self.reason,
            detail = self.detail,
            "message acknowledged"
        );
        metrics::counter!(
            "daemon_messages_ignored_total",
            "format" => self.format.to_owned(),
            "reason" => self.reason
        )
        .increment(1);
    }
}

/// A batch took half its visibility timeout: its messages were made invisible for another
/// full timeout, so that no other poller receives them while it is applied.
#[derive(Debug)]
pub struct VisibilityExtended {
    pub messages: usize,
    pub seconds: i32,
}

impl VisibilityExtended {
    pub fn emit(&self) {
        tracing::info!(
            messages = self.messages,
            seconds = self.seconds,
            "batch still being applied: visibility extended"
        );
        metrics::counter!("daemon_visibility_extensions_total").increment(1);
    }
}

/// A message body could not be decoded: it is left for the dead-letter queue.
#[derive(Debug)]
pub struct MessageUndecodable<'a> {
    pub receive_count: u32,
    pub error: &'a str,
}

impl MessageUndecodable<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            receive_count = self.receive_count,
            error = self.error,
            "undecodable message left for the dead-letter queue"
        );
        metrics::counter!(
            "daemon_messages_failed_total",
            "format" => "undecodable",
            "reason" => "undecodable"
        )
        .increment(1);
    }
}

/// A message could not be applied now; it returns to the queue after `retry_in`.
#[derive(Debug)]
pub struct MessageFailed<'a> {
    pub format: &'a str,
    /// `cognito` or `hasura`: which dependency failed.
    pub reason: &'static str,
    pub receive_count: u32,
    pub retry_in: Duration,
    pub error: &'a str,
}

impl MessageFailed<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            format = self.format,
            reason = self.reason,
            receive_count = self.receive_count,
            retry_in_s = self.retry_in.as_secs(),
            error = self.error,
            "message not applied; it returns to the queue"
        );
        metrics::counter!(
            "daemon_messages_failed_total",
            "format" => self.format.to_owned(),
            "reason" => self.reason
        )
        .increment(1);
    }
}

/// One batch's mutation was committed.
#[derive(Debug)]
pub struct BatchCommitted {
    pub messages: usize,
    pub users_written: u64,
    pub users_tombstoned: u64,
    pub groups_written: u64,
    pub groups_tombstoned: u64,
    pub elapsed: Duration,
}

impl BatchCommitted {
    pub fn emit(&self) {
        tracing::debug!(
            messages = self.messages,
            users_written = self.users_written,
            users_tombstoned = self.users_tombstoned,
            groups_written = self.groups_written,
            groups_tombstoned = self.groups_tombstoned,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "batch committed"
        );
        metrics::counter!("daemon_batches_committed_total").increment(1);
        metrics::counter!("daemon_users_written_total").increment(self.users_written);
        metrics::counter!("daemon_users_tombstoned_total").increment(self.users_tombstoned);
        metrics::counter!("daemon_groups_written_total").increment(self.groups_written);
        metrics::counter!("daemon_groups_tombstoned_total").increment(self.groups_tombstoned);
    }
}

/// An SQS call failed (ReceiveMessage, DeleteMessageBatch, ChangeMessageVisibilityBatch,
/// GetQueueAttributes), or some entries of a batch call did.
#[derive(Debug)]
pub struct QueueCallFailed<'a> {
    pub operation: &'static str,
    pub error: &'a str,
}

impl QueueCallFailed<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            operation = self.operation,
            error = self.error,
            "sqs call failed"
        );
        metrics::counter!("daemon_sqs_errors_total", "operation" => self.operation).increment(1);
    }
}

/// The queue's backlog, as `ApproximateNumberOfMessages*` says.
#[derive(Debug)]
pub struct QueueBacklog {
    pub visible: u64,
    pub in_flight: u64,
}

impl QueueBacklog {
    pub fn emit(&self) {
        tracing::debug!(
            visible = self.visible,
            in_flight = self.in_flight,
            "queue backlog"
        );
        metrics::gauge!("daemon_queue_messages_visible").set(self.visible as f64);
        metrics::gauge!("daemon_queue_messages_in_flight").set(self.in_flight as f64);
    }
}

/// `/readyz` changed its answer.
#[derive(Debug)]
pub struct ReadinessChanged<'a> {
    pub ready: bool,
    pub why: &'a str,
}

impl ReadinessChanged<'_> {
    pub fn emit(&self) {
        if self.ready {
            tracing::info!(why = self.why, "daemon ready");
        } else {
            tracing::warn!(why = self.why, "daemon not ready");
        }
        metrics::gauge!("daemon_ready").set(if self.ready { 1.0 } else { 0.0 });
    }
}

/// A pool-wide event's early reconcile request was committed with its batch.
#[derive(Debug)]
pub struct ReconcileRequestRecorded<'a> {
    pub reason: &'a str,
}

impl ReconcileRequestRecorded<'_> {
    pub fn emit(&self) {
        tracing::info!(reason = self.reason, "early reconcile request recorded");
        metrics::counter!("daemon_reconcile_requests_total", "outcome" => "recorded").increment(1);
    }
}

/// A successful reconcile served `served` pending requests: all but one were folded into a
/// run another request asked for.
#[derive(Debug)]
pub struct ReconcileRequestsServed {
    pub run: uuid::Uuid,
    pub served: u64,
}

impl ReconcileRequestsServed {
    pub fn emit(&self) {
        let folded = self.served.saturating_sub(1);
        tracing::info!(
            run = %self.run,
            served = self.served,
            folded,
            "early reconcile requests served"
        );
        metrics::counter!("daemon_reconcile_requests_total", "outcome" => "served")
            .increment(self.served);
        metrics::counter!("daemon_reconcile_requests_total", "outcome" => "folded")
            .increment(folded);
    }
}

/// Pending requests stay unserved after a run that did not succeed; the next run serves them.
#[derive(Debug)]
pub struct ReconcileRequestsLeft {
    pub pending: usize,
    /// `braked`, `failed` or `dry_run` (a dry run writes nothing, so serves nothing).
    pub why: &'static str,
}

impl ReconcileRequestsLeft {
    pub fn emit(&self) {
        tracing::warn!(
            pending = self.pending,
            why = self.why,
            "early reconcile requests left unserved"
        );
        metrics::counter!("daemon_reconcile_requests_total", "outcome" => "left")
            .increment(u64::try_from(self.pending).unwrap_or(u64::MAX));
    }
}

/// The early-scan budget held back a reconcile that pending requests ask for: the pool was
/// scanned less than `min_interval` ago. The requests stay pending and fold into the run.
#[derive(Debug)]
pub struct EarlyReconcileDeferred {
    pub pending: usize,
    pub retry_in: Duration,
    pub min_interval: Duration,
}

impl EarlyReconcileDeferred {
    pub fn emit(&self) {
        tracing::info!(
            pending = self.pending,
            retry_in_s = self.retry_in.as_secs(),
            min_interval_s = self.min_interval.as_secs(),
            "early reconcile deferred by the scan budget"
        );
        metrics::counter!("daemon_early_reconciles_total", "outcome" => "deferred").increment(1);
    }
}

/// Pending requests started an early reconcile; `min_interval` is the budget it was let
/// through by.
#[derive(Debug)]
pub struct EarlyReconcileStarted {
    pub pending: usize,
    pub min_interval: Duration,
}

impl EarlyReconcileStarted {
    pub fn emit(&self) {
        tracing::info!(
            pending = self.pending,
            min_interval_s = self.min_interval.as_secs(),
            "early reconcile started"
        );
        metrics::counter!("daemon_early_reconciles_total", "outcome" => "started").increment(1);
        metrics::gauge!("daemon_early_reconcile_min_interval_seconds")
            .set(self.min_interval.as_secs_f64());
    }
}

/// How the users a batch names were read: one by one or by scanning their shards, and the
/// figures the choice was made from.
#[derive(Debug)]
pub struct ReadPlanned {
    /// `scan` or `per_user`.
    pub plan: &'static str,
    pub users: usize,
    pub shards: usize,
    pub pool_wide: bool,
    pub scan_pages: u64,
    pub estimated_users: u64,
    pub groups: u64,
    pub per_user_seconds: f64,
    pub scan_seconds: f64,
}

impl ReadPlanned {
    pub fn emit(&self) {
        tracing::info!(
            plan = self.plan,
            users = self.users,
            shards = self.shards,
            pool_wide = self.pool_wide,
            scan_pages = self.scan_pages,
            estimated_users = self.estimated_users,
            groups = self.groups,
            per_user_quota_s = format!("{:.1}", self.per_user_seconds),
            scan_quota_s = format!("{:.1}", self.scan_seconds),
            "read plan chosen"
        );
        metrics::counter!("daemon_read_plans_total", "plan" => self.plan).increment(1);
        metrics::counter!("daemon_read_plan_users_total", "plan" => self.plan)
            .increment(u64::try_from(self.users).unwrap_or(u64::MAX));
    }
}

/// A burst scan was planned but not run; its users are read one by one instead.
#[derive(Debug)]
pub struct BurstScanFellBack<'a> {
    /// `lease_busy`, `scan_failed` or `pool_unknown`.
    pub reason: &'static str,
    pub error: &'a str,
}

impl BurstScanFellBack<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            reason = self.reason,
            error = self.error,
            "burst scan not run; reading its users one by one"
        );
        metrics::counter!("daemon_burst_scan_fallbacks_total", "reason" => self.reason)
            .increment(1);
    }
}

/// A poller gathered a burst from the backlog into one batch, to read it by scanning.
#[derive(Debug)]
pub struct BurstGathered {
    pub messages: usize,
    /// The visible backlog that started the gathering.
    pub backlog: u64,
    pub elapsed: Duration,
}

impl BurstGathered {
    pub fn emit(&self) {
        tracing::info!(
            messages = self.messages,
            backlog = self.backlog,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "burst gathered"
        );
        metrics::counter!("daemon_bursts_gathered_total").increment(1);
        metrics::counter!("daemon_burst_messages_total")
            .increment(u64::try_from(self.messages).unwrap_or(u64::MAX));
    }
}
