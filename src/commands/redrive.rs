//! `redrive`: moves the dead-letter queue's messages back to the sync queue
//! ([`crate::daemon::redrive`]): with SQS's message move task, or receive, send and delete
//! where the endpoint has none.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::QueueUrls;
use crate::config::Settings;
use crate::daemon::redrive::{Redrive, RedriveReport};

/// How often a move task's progress is polled.
const MOVE_TASK_POLL: Duration = Duration::from_secs(2);

/// Moves every message of the dead-letter queue to the sync queue; stops early on `shutdown`.
///
/// # Errors
///
/// No queue configured, no dead-letter queue found, a queue that cannot be read, a move task
/// that failed, or messages that could not be sent (they stay in the dead-letter queue).
pub async fn run(
    settings: &Settings,
    queues: &QueueUrls,
    shutdown: CancellationToken,
) -> anyhow::Result<RedriveReport> {
    let sdk = super::aws_config(settings).await;
    let queue = queues.require_queue(&sdk)?;
    let dlq = queues.dead_letter_queue(&queue).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "the sync queue has no RedrivePolicy naming a dead-letter queue: pass --dlq-url or set SYNC_SQS_DLQ_URL"
        )
    })?;
    Redrive {
        queue,
        dlq,
        poll_interval: MOVE_TASK_POLL,
    }
    .run(&shutdown)
    .await
}
