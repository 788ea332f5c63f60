//! Moving the dead-letter queue's messages back to the sync queue (`redrive`), after an
//! outage sent them there.
//!
//! SQS's message move task is preferred: StartMessageMoveTask from the dead-letter queue to
//! the sync queue, then ListMessageMoveTasks until the task ends; SQS moves each message with
//! its body and attributes. Where the endpoint has no move tasks (emulators), the messages are
//! moved a batch at a time: receive up to 10 (invisible meanwhile), send them to the sync
//! queue in one batch with their attributes, and only then delete from the dead-letter queue
//! exactly those whose copy was sent. A message whose send failed is made visible again and
//! stays; the run stops after that batch and fails. A crash between send and delete leaves a
//! message in both queues: applying an event twice is harmless (the daemon re-reads the
//! user), losing one is not.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::queue::{EntryFailure, Envelope, MoveTaskError, Queue, SqsQueue};
use crate::config::redacted_url;
use crate::telemetry::operator::{RedriveMessageFailed, RedriveProgress, RedriveStarted};

/// How long a received dead-letter message stays invisible while its copy is sent.
const MOVE_VISIBILITY_SECONDS: i32 = 60;
/// Long-poll wait of one receive from the dead-letter queue.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// At most one progress event this often while batches are moved.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Empty receives in a row after which the dead-letter queue counts as drained even if its
/// (approximate, possibly lagging) depth still shows messages.
const EMPTY_RECEIVES: u32 = 5;
/// Polls in a row a move task may be missing from ListMessageMoveTasks right after its start.
const UNLISTED_POLLS: u32 = 5;

/// How the messages were moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedriveMethod {
    /// SQS's message move task.
    MoveTask,
    /// Receive, send, delete, a batch at a time.
    ReceiveSendDelete,
}

impl RedriveMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RedriveMethod::MoveTask => "move_task",
            RedriveMethod::ReceiveSendDelete => "receive_send_delete",
        }
    }
}

/// What `redrive` did.
#[derive(Debug, Clone, Serialize)]
pub struct RedriveReport {
    /// The sync queue (credentials in the URL redacted).
    pub queue_url: String,
    pub dlq_url: String,
    pub method: RedriveMethod,
    /// Messages moved back to the sync queue.
    pub moved: u64,
    /// The dead-letter queue's depth afterwards: (visible, in flight).
    pub remaining: (u64, u64),
    /// Stopped before the dead-letter queue was empty (a signal).
    pub interrupted: bool,
}

/// One redrive from `dlq` to `queue`.
pub struct Redrive {
    pub queue: SqsQueue,
    pub dlq: SqsQueue,
    /// How often a move task's progress is polled.
    pub poll_interval: Duration,
}

impl Redrive {
    /// Moves every message of the dead-letter queue to the sync queue; stops early on `stop`
    /// (a move task keeps running in SQS; a batch in flight is finished).
    ///
    /// # Errors
    ///
    /// A queue that cannot be read, a move task that failed or was cancelled, or messages that
    /// could not be sent (they stay in the dead-letter queue).
    pub async fn run(&self, stop: &CancellationToken) -> anyhow::Result<RedriveReport> {
        let destination = self.queue.arn().await.map_err(|e| {
            anyhow!(e).context(format!(
                "reading the ARN of the sync queue {}",
                redacted_url(self.queue.url())
            ))
        })?;
        let (method, moved, failed, interrupted) =
            match self.dlq.start_move_task(&destination).await {
                Ok(handle) => {
                    RedriveStarted {
                        method: RedriveMethod::MoveTask.as_str(),
                        reason: "StartMessageMoveTask accepted",
                    }
                    .emit();
                    let (moved, interrupted) = self.wait_for_move_task(&handle, stop).await?;
                    (RedriveMethod::MoveTask, moved, 0, interrupted)
                }
                Err(MoveTaskError::Unsupported(why)) => {
                    RedriveStarted {
                        method: RedriveMethod::ReceiveSendDelete.as_str(),
                        reason: &why,
                    }
                    .emit();
                    let (moved, failed, interrupted) = self.move_batches(stop).await?;
                    (RedriveMethod::ReceiveSendDelete, moved, failed, interrupted)
                }
                Err(MoveTaskError::Failed(error)) => match self.dlq.latest_move_task().await {
                    // Another operator's task is moving the same messages: follow it.
                    Ok(Some(task)) if task.status == "RUNNING" => {
                        tracing::info!("a message move task is already running; waiting for it");
                        let handle = task.task_handle.unwrap_or_default();
                        let (moved, interrupted) = self.wait_for_move_task(&handle, stop).await?;
                        (RedriveMethod::MoveTask, moved, 0, interrupted)
                    }
                    _ => bail!(
                        "StartMessageMoveTask from {} failed: {error}",
                        redacted_url(self.dlq.url())
                    ),
                },
            };
        let remaining = self
            .dlq
            .depth()
            .await
            .map_err(|e| anyhow!(e).context("reading the dead-letter queue's depth"))?;
        if failed > 0 {
            bail!(
                "{moved} messages moved, {failed} could not be sent and stay in the dead-letter queue (see the log)"
            );
        }
        Ok(RedriveReport {
            queue_url: redacted_url(self.queue.url()),
            dlq_url: redacted_url(self.dlq.url()),
            method,
            moved,
            remaining,
            interrupted,
        })
    }

    /// Polls the move task `handle` until it ends; (moved, interrupted).
    async fn wait_for_move_task(
        &self,
        handle: &str,
        stop: &CancellationToken,
    ) -> anyhow::Result<(u64, bool)> {
        let (mut reported, mut unlisted) = (0, 0);
        loop {
            let listed = self
                .dlq
                .latest_move_task()
                .await
                .map_err(|e| anyhow!(e).context("ListMessageMoveTasks"))?;
            // Right after the start, the latest task listed can still be an earlier one.
            let Some(task) = listed.filter(|t| t.task_handle.as_deref() == Some(handle)) else {
                unlisted += 1;
                if unlisted >= UNLISTED_POLLS {
                    bail!("ListMessageMoveTasks does not list the message move task {handle}");
                }
                tokio::time::sleep(self.poll_interval).await;
                continue;
            };
            if task.moved > reported {
                RedriveProgress {
                    moved: task.moved - reported,
                    total: task.moved,
                    remaining: task.to_move.map(|n| n.saturating_sub(task.moved)),
                }
                .emit();
                reported = task.moved;
            }
            match task.status.as_str() {
                "COMPLETED" => return Ok((task.moved, false)),
                "FAILED" | "CANCELLED" => bail!(
                    "the message move task {handle} ended {} after {} messages: {}",
                    task.status,
                    task.moved,
                    task.failure_reason.as_deref().unwrap_or("no reason given")
                ),
                _ => {}
            }
            tokio::select! {
                () = stop.cancelled() => {
                    tracing::warn!("stopped waiting; the message move task continues in SQS (CancelMessageMoveTask stops it)");
                    return Ok((task.moved, true));
                }
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Receive, send, delete until the dead-letter queue shows no visible message;
    /// (moved, failed, interrupted).
    async fn move_batches(&self, stop: &CancellationToken) -> anyhow::Result<(u64, u64, bool)> {
        let (mut moved, mut failed) = (0u64, 0u64);
        let mut reported = (0u64, Instant::now());
        let mut empty = 0;
        loop {
            if stop.is_cancelled() {
                return Ok((moved, failed, true));
            }
            let batch = self
                .dlq
                .receive_envelopes(10, RECEIVE_WAIT_SECONDS, MOVE_VISIBILITY_SECONDS)
                .await
                .map_err(|e| anyhow!(e).context("ReceiveMessage from the dead-letter queue"))?;
            if batch.is_empty() {
                empty += 1;
                let (visible, _) = self
                    .dlq
                    .depth()
                    .await
                    .map_err(|e| anyhow!(e).context("reading the dead-letter queue's depth"))?;
                if visible == 0 || empty >= EMPTY_RECEIVES {
                    break;
                }
                continue;
            }
            empty = 0;
            let (sent, unsent) = self.move_batch(&batch).await?;
            moved += sent;
            failed += unsent;
            if unsent > 0 {
                break;
            }
            if reported.1.elapsed() >= PROGRESS_EVERY {
                self.progress(moved - reported.0, moved).await;
                reported = (moved, Instant::now());
            }
        }
        if moved > reported.0 {
            self.progress(moved - reported.0, moved).await;
        }
        Ok((moved, failed, false))
    }

    /// Sends one received batch to the sync queue, then deletes from the dead-letter queue
    /// the messages whose copy was sent; (sent, not sent).
    async fn move_batch(&self, batch: &[Envelope]) -> anyhow::Result<(u64, u64)> {
        let entries: Vec<(usize, &Envelope)> = batch.iter().enumerate().collect();
        let unsent = match self.queue.send(&entries).await {
            Ok(unsent) => unsent,
            Err(error) => {
                // Nothing was sent: every message goes back to the dead-letter queue at once.
                self.release(batch, &(0..batch.len()).collect::<Vec<_>>())
                    .await;
                return Err(anyhow!(error).context(format!(
                    "SendMessageBatch to the sync queue {}",
                    redacted_url(self.queue.url())
                )));
            }
        };
        report_unmoved(batch, "SendMessageBatch", &unsent);
        let unsent: Vec<usize> = unsent.into_iter().map(|(n, _)| n).collect();
        let deletes: Vec<(usize, &str)> = batch
            .iter()
            .enumerate()
            .filter(|(n, _)| !unsent.contains(n))
            .map(|(n, m)| (n, m.receipt_handle.as_str()))
            .collect();
        let delete_failures = match self.dlq.delete(&deletes).await {
            Ok(failures) => failures,
            Err(error) => deletes.iter().map(|&(n, _)| (n, error.clone())).collect(),
        };
        // Sent but not deleted: the original returns after its visibility timeout and is
        // moved again; a duplicate event is harmless.
        report_unmoved(batch, "DeleteMessageBatch", &delete_failures);
        self.release(batch, &unsent).await;
        Ok((deletes.len() as u64, unsent.len() as u64))
    }

    /// Makes the messages at `indices` visible again in the dead-letter queue.
    async fn release(&self, batch: &[Envelope], indices: &[usize]) {
        let entries: Vec<(usize, &str, i32)> = indices
            .iter()
            .filter_map(|&n| batch.get(n).map(|m| (n, m.receipt_handle.as_str(), 0)))
            .collect();
        if entries.is_empty() {
            return;
        }
        if let Err(error) = self.dlq.set_visibility(&entries).await {
            tracing::warn!(
                error,
                "cannot release the unsent messages; they return after their visibility timeout"
            );
        }
    }

    async fn progress(&self, moved: u64, total: u64) {
        RedriveProgress {
            moved,
            total,
            remaining: self.dlq.depth().await.ok().map(|(visible, _)| visible),
        }
        .emit();
    }
}

/// Logs and counts each entry of `batch` that `operation` failed.
fn report_unmoved(batch: &[Envelope], operation: &'static str, failures: &[EntryFailure]) {
    for (n, error) in failures {
        RedriveMessageFailed {
            message_id: batch.get(*n).map_or("?", |m| m.message_id.as_str()),
            operation,
            error,
        }
        .emit();
    }
}

impl std::fmt::Display for RedriveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} messages moved from {} to {} ({})",
            self.moved,
            self.dlq_url,
            self.queue_url,
            match self.method {
                RedriveMethod::MoveTask => "SQS message move task",
                RedriveMethod::ReceiveSendDelete => "receive, send, delete",
            }
        )?;
        let (visible, in_flight) = self.remaining;
        if self.interrupted {
            writeln!(f, "interrupted before the dead-letter queue was empty")?;
        }
        writeln!(
            f,
            "dead-letter queue now: {visible} visible, {in_flight} in flight"
        )
    }
}
