//! `status`: the pool's recent runs, its pending early reconcile requests, what the mirror
//! holds and, when a queue is configured, how many messages wait in the sync queue and its
//! dead-letter queue.
//!
//! The age of the oldest message is not shown: SQS's GetQueueAttributes has no such
//! attribute (CloudWatch's `ApproximateAgeOfOldestMessage` metric has it, and the deploy's
//! alarm watches it), and finding it here would mean receiving messages, which counts toward
//! their `maxReceiveCount` and hides them from the daemon meanwhile.

use std::fmt::Write as _;

use serde::Serialize;

use super::QueueUrls;
use crate::config::{Settings, redacted_url};
use crate::daemon::queue::{Queue, SqsQueue};
use crate::hasura::HasuraClient;
use crate::hasura::operations::recent_runs;
use crate::state::RunStore;
use crate::state::requests::{PendingRequest, RequestStore};

/// What `status` shows; also its `--json` output.
#[derive(Debug, Serialize)]
pub struct Status {
    pub user_pool_id: String,
    pub live_users: i64,
    pub deleted_users: i64,
    pub live_groups: i64,
    pub runs: Vec<RunLine>,
    /// Early reconcile requests not yet served, oldest first.
    pub reconcile_requests: Vec<PendingRequest>,
    /// The queues' depths, when a queue is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<QueueStatus>,
}

/// The sync queue's depth and its dead-letter queue's.
#[derive(Debug, Serialize)]
pub struct QueueStatus {
    pub queue: QueueDepth,
    /// `None` when the sync queue names no dead-letter queue and none is configured.
    pub dead_letter_queue: Option<QueueDepth>,
}

/// One queue's approximate message counts, or why they could not be read.
#[derive(Debug, Serialize)]
pub struct QueueDepth {
    /// Credentials in the URL redacted.
    pub url: String,
    /// ApproximateNumberOfMessages: waiting to be received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visible: Option<u64>,
    /// ApproximateNumberOfMessagesNotVisible: received and not yet deleted (being applied,
    /// or waiting out a retry backoff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunLine {
    pub id: uuid::Uuid,
    pub kind: String,
    pub status: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub counters: serde_json::Value,
    pub error: Option<String>,
}

/// The `limit` most recent runs of the configured pool, the mirror's counts and the depth
/// of the queues in `queues`.
pub async fn run(settings: &Settings, limit: i64, queues: &QueueUrls) -> anyhow::Result<Status> {
    let pool = settings.require_pool()?;
    let hasura = HasuraClient::new(&settings.require_hasura()?)?;
    let runs = RunStore::new(hasura.clone());
    let requests = RequestStore::new(hasura);
    let mut status = status(&runs, &requests, pool, limit).await?;
    if queues.queue_url.is_some() {
        let sdk = super::aws_config(settings).await;
        status.queues = Some(queue_status(&queues.require_queue(&sdk)?, queues).await);
    }
    Ok(status)
}

/// Both queues' depths; a queue that cannot be read says why instead.
async fn queue_status(queue: &SqsQueue, queues: &QueueUrls) -> QueueStatus {
    let dead_letter_queue = match queues.dead_letter_queue(queue).await {
        Ok(Some(dlq)) => Some(depth(&dlq).await),
        Ok(None) => None,
        Err(error) => Some(QueueDepth {
            url: "(the sync queue's RedrivePolicy)".to_owned(),
            visible: None,
            in_flight: None,
            error: Some(format!("{error:#}")),
        }),
    };
    QueueStatus {
        queue: depth(queue).await,
        dead_letter_queue,
    }
}

async fn depth(queue: &SqsQueue) -> QueueDepth {
    let (visible, in_flight, error) = match queue.depth().await {
        Ok((visible, in_flight)) => (Some(visible), Some(in_flight), None),
        Err(error) => (None, None, Some(error)),
    };
    QueueDepth {
        url: redacted_url(queue.url()),
        visible,
        in_flight,
        error,
    }
}

async fn status(
    runs: &RunStore,
    requests: &RequestStore,
    pool: &str,
    limit: i64,
) -> anyhow::Result<Status> {
    let data = runs.recent(pool, limit).await?;
    let reconcile_requests = requests.pending(pool).await?;
    let count = |agg: Option<recent_runs::RecentRunsLiveUsersAggregate>| agg.map_or(0, |a| a.count);
    Ok(Status {
        user_pool_id: pool.to_owned(),
        live_users: count(data.live_users.aggregate),
        deleted_users: data.deleted_users.aggregate.map_or(0, |a| a.count),
        live_groups: data.live_groups.aggregate.map_or(0, |a| a.count),
        runs: data
            .cognito_sync_runs
            .into_iter()
            .map(|r| RunLine {
                id: r.id,
                kind: r.kind,
                status: r.status,
                started_at: r.started_at,
                heartbeat_at: r.heartbeat_at,
                finished_at: r.finished_at,
                counters: r.counters,
                error: r.error,
            })
            .collect(),
        reconcile_requests,
        queues: None,
    })
}

impl Status {
    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "user pool {}", self.user_pool_id);
        let _ = writeln!(
            out,
            "mirror: {} users ({} deleted), {} groups",
            self.live_users, self.deleted_users, self.live_groups
        );
        self.render_requests(&mut out);
        if let Some(queues) = &self.queues {
            queues.render(&mut out);
        }
        if self.runs.is_empty() {
            let _ = writeln!(
                out,
                "no runs yet: start one with `cognito-hasura-sync backfill`"
            );
            return out;
        }
        let _ = writeln!(
            out,
            "{:<20}  {:<9}  {:<9}  {:>10}  {:>8}  run / error",
            "started", "kind", "status", "users", "took"
        );
        for run in &self.runs {
            let users = run
                .counters
                .get("users_seen")
                // A reconcile counts the users it scanned under this name.
                .or_else(|| run.counters.get("scanned"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let end = run.finished_at.unwrap_or(run.heartbeat_at);
            let took = (end - run.started_at).num_seconds().max(0);
            let _ = writeln!(
                out,
                "{:<20}  {:<9}  {:<9}  {:>10}  {:>7}s  {}{}",
                run.started_at.format("%Y-%m-%d %H:%M:%S"),
                run.kind,
                run.status,
                users,
                took,
                run.id,
                run.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        out
    }

    /// One line on the pending early reconcile requests, if any: how many, since when, why.
    fn render_requests(&self, out: &mut String) {
        let Some(oldest) = self.reconcile_requests.first() else {
            return;
        };
        let mut reasons: Vec<&str> = self
            .reconcile_requests
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        let _ = writeln!(
            out,
            "early reconcile requested: {} pending since {} ({})",
            self.reconcile_requests.len(),
            oldest.requested_at.format("%Y-%m-%d %H:%M:%S"),
            reasons.join(", ")
        );
    }
}

impl QueueStatus {
    /// One line per queue, and where the oldest message's age is found.
    fn render(&self, out: &mut String) {
        self.queue.render("queue", out);
        match &self.dead_letter_queue {
            Some(dlq) => dlq.render("dead-letter queue", out),
            None => {
                let _ = writeln!(
                    out,
                    "dead-letter queue: none (the queue has no RedrivePolicy)"
                );
            }
        }
        let _ = writeln!(
            out,
            "oldest message age: not available from SQS; see the CloudWatch metric ApproximateAgeOfOldestMessage"
        );
    }
}

impl QueueDepth {
    fn render(&self, label: &str, out: &mut String) {
        let _ = match (&self.error, self.visible, self.in_flight) {
            (Some(error), _, _) => writeln!(out, "{label} {}: unreadable: {error}", self.url),
            (None, visible, in_flight) => writeln!(
                out,
                "{label} {}: {} visible, {} in flight",
                self.url,
                visible.unwrap_or(0),
                in_flight.unwrap_or(0)
            ),
        };
    }
}
