//! Telemetry events of the operator commands: `sync-user` (each named user's outcome) and
//! `redrive` (how the dead-letter queue is moved, its progress, and messages that could not
//! be moved).
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series.

/// A user named to `sync-user` was synced (or, in a dry run, compared).
#[derive(Debug)]
pub struct UserSynced<'a> {
    pub identifier: &'a str,
    /// `inserted`, `updated`, `unchanged`, `tombstoned`, `superseded`, `not_found`, `failed`.
    pub outcome: &'static str,
    pub dry_run: bool,
    /// Why it failed, or which newer read superseded it.
    pub detail: Option<&'a str>,
}

impl UserSynced<'_> {
    pub fn emit(&self) {
        let (identifier, outcome, dry_run) = (self.identifier, self.outcome, self.dry_run);
        match (self.outcome, self.detail) {
            ("failed" | "not_found", detail) => {
                tracing::warn!(identifier, outcome, dry_run, detail, "user not synced")
            }
            (_, detail) => tracing::info!(identifier, outcome, dry_run, detail, "user synced"),
        }
        metrics::counter!(
            "sync_user_total",
            "outcome" => self.outcome,
            "dry_run" => if self.dry_run { "true" } else { "false" }
        )
        .increment(1);
    }
}

/// How `redrive` moves the dead-letter queue: SQS's message move task, or receive, send and
/// delete when the endpoint has no move tasks.
#[derive(Debug)]
pub struct RedriveStarted<'a> {
    /// `move_task` or `receive_send_delete`.
    pub method: &'static str,
    /// Why the method was chosen (the move task's error, for the fallback).
    pub reason: &'a str,
}

impl RedriveStarted<'_> {
    pub fn emit(&self) {
        tracing::info!(
            method = self.method,
            reason = self.reason,
            "redrive started"
        );
        metrics::counter!("redrive_runs_total", "method" => self.method).increment(1);
    }
}

/// Messages moved back to the sync queue since the last progress event.
#[derive(Debug)]
pub struct RedriveProgress {
    /// Moved in this step.
    pub moved: u64,
    /// Moved so far by this run.
    pub total: u64,
    /// Still in the dead-letter queue, when known.
    pub remaining: Option<u64>,
}

impl RedriveProgress {
    pub fn emit(&self) {
        tracing::info!(
            moved = self.total,
            remaining = self.remaining,
            "redrive progress"
        );
        metrics::counter!("redrive_messages_moved_total").increment(self.moved);
    }
}

/// A dead-letter message could not be moved: it stays in the dead-letter queue.
#[derive(Debug)]
pub struct RedriveMessageFailed<'a> {
    pub message_id: &'a str,
    /// The call that failed: `SendMessageBatch` (the message stays, untouched) or
    /// `DeleteMessageBatch` (the copy was sent; the original returns and is moved again).
    pub operation: &'static str,
    pub error: &'a str,
}

impl RedriveMessageFailed<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            message_id = self.message_id,
            operation = self.operation,
            error = self.error,
            "dead-letter message not moved"
        );
        metrics::counter!("redrive_messages_failed_total", "operation" => self.operation)
            .increment(1);
    }
}
