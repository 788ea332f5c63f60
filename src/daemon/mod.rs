//! The `daemon`: long-polls SQS for change events, re-reads the users they name from Cognito, writes them to Hasura and only then deletes the messages; serves /healthz, /readyz and /metrics.
//!
//! - [`consumer`]: the poll loops and the batch pipeline (decode, reduce, re-read, one
//!   mutation, delete what is committed, back off what failed), and the periodic probe that
//!   feeds the backlog gauge and `/readyz`.
//! - [`queue`]: the queue seam ([`queue::Queue`]) and its SQS implementation.
//! - [`ops`]: the operations listener and the health state behind `/readyz`.
//! - [`requests`]: when an early pool-wide reconcile is due (debounce, early-scan budget), and
//!   the wake-up its scheduler gets.
//! - `coalesce`: when a burst of users is read by scanning their shards, priced in quota-seconds.
//! - [`scheduler`]: the scheduled reconcile under the pool's lease.
//! - [`user_sync`]: `sync-user`, the event path's read and write for users an operator names.
//! - [`redrive`]: `redrive`, moving the dead-letter queue back to the sync queue.
//!
//! Shutdown: one [`CancellationToken`]. When it fires the loops stop receiving, the batches
//! in flight finish (their messages are deleted only once committed) and [`Daemon::serve`]
//! returns within the shutdown timeout. Whatever is abandoned at the timeout is not lost: its
//! messages return to the queue after their visibility timeout, and applying them again is
//! harmless. Spawned tasks live in one [`TaskTracker`]; a task that panics or ends early
//! stops the daemon with an error instead of vanishing.

mod coalesce;
mod consumer;
pub mod ops;
pub mod queue;
pub mod redrive;
pub mod requests;
pub mod scheduler;
pub mod user_sync;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cognito::{CognitoReader, RetryPolicy};
use crate::config::redacted_url;
use crate::hasura::HasuraClient;

use consumer::{Bursts, CognitoToHasura, Consumer};
use ops::Health;
use queue::SqsQueue;
use requests::ReconcileRequests;
use scheduler::{SchedulerOptions, run_scheduler};

/// Retries of one Hasura request inside a batch: a batch that still fails goes back to the
/// queue with backoff, so long in-process retries would only hold its messages.
pub const HASURA_RETRIES: usize = 3;
/// Retries of one Cognito read inside a batch, for the same reason.
pub const COGNITO_RETRIES: u32 = 3;
/// Buckets of the apply latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// How the daemon runs; [`DaemonOptions::validate`] says whether it can.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub queue_url: String,
    pub pollers: usize,
    pub visibility_timeout_seconds: i32,
    pub shutdown_timeout: Duration,
    pub wait_time_seconds: i32,
    pub batch_size: i32,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub unready_after: u32,
    pub probe_interval: Duration,
    pub reconcile_debounce: Duration,
    /// The scheduled reconcile: cron, lease, and what a run does.
    pub scheduler: SchedulerOptions,
}

impl DaemonOptions {
    /// Refuses settings SQS or the daemon cannot work with, naming the flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.queue_url.trim().is_empty() {
            bail!("no queue configured: set --queue-url or SYNC_SQS_QUEUE_URL");
        }
        if !(1..=64).contains(&self.pollers) {
            bail!("--pollers must be between 1 and 64, not {}", self.pollers);
        }
        if !(0..=20).contains(&self.wait_time_seconds) {
            bail!(
                "--wait-time must be between 0 and 20 seconds, not {}",
                self.wait_time_seconds
            );
        }
        if !(1..=10).contains(&self.batch_size) {
            bail!(
                "--batch-size must be between 1 and 10, not {}",
                self.batch_size
            );
        }
        if !(1..=43_200).contains(&self.visibility_timeout_seconds) {
            bail!(
                "--visibility-timeout must be between 1 and 43200 seconds, not {}",
                self.visibility_timeout_seconds
            );
        }
        if self.retry_backoff.is_zero()
            || self.retry_backoff > self.retry_backoff_max
            || self.retry_backoff_max > Duration::from_secs(43_200)
        {
            bail!(
                "--retry-backoff must be at least 1 and at most --retry-backoff-max (at most 43200 seconds)"
            );
        }
        self.scheduler.validate()
    }

    /// The delay before the `attempt`-th retry (1-based): doubling from `retry_backoff`,
    /// capped at `retry_backoff_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.retry_backoff
            .saturating_mul(1 << doublings)
            .min(self.retry_backoff_max)
    }
}

/// The clients the daemon works with.
pub struct Daemon {
    sqs: aws_sdk_sqs::Client,
    reader: CognitoReader,
    hasura: HasuraClient,
    probe: HasuraClient,
    options: DaemonOptions,
    reconcile: ReconcileRequests,
}

impl Daemon {
    /// `hasura` writes batches; `probe` (best without retries) answers the readiness probe.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        reader: CognitoReader,
        hasura: HasuraClient,
        probe: HasuraClient,
        options: DaemonOptions,
    ) -> Self {
        let reconcile = ReconcileRequests::new(options.reconcile_debounce);
        Daemon {
            sqs,
            reader,
            hasura,
            probe,
            options,
            reconcile,
        }
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `listener` and consumes the queue until
    /// `shutdown`, then finishes the batches in flight within the shutdown timeout.
    ///
    /// # Errors
    ///
    /// When a task panics or ends before `shutdown` (for example the listener fails).
    pub async fn serve(
        self,
        listener: TcpListener,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let options = self.options.clone();
        // A loop that has not finished a receive for this long is stuck.
        let stuck_after = Duration::from_secs(
            u64::try_from(options.wait_time_seconds + options.visibility_timeout_seconds)
                .unwrap_or(0)
                * 2
                + 60,
        );
        let health = Arc::new(Health::new(options.unready_after, stuck_after));
        let stop = shutdown.child_token();
        // The consumer's reader and quota limiter, but persistent: a scan slows down under
        // throttling instead of failing.
        let scheduler = run_scheduler(
            self.reader.with_retry(RetryPolicy::Persistent),
            self.hasura.clone(),
            options.scheduler.clone(),
            self.reconcile.clone(),
            stop.clone(),
        );
        let consumer = Arc::new(Consumer {
            queue: SqsQueue::new(self.sqs, &options.queue_url),
            store: CognitoToHasura::new(
                self.reader,
                self.hasura,
                self.probe,
                options.scheduler.holder.clone(),
                options.scheduler.lease_ttl,
            ),
            options: self.options,
            health: health.clone(),
            reconcile: self.reconcile,
            bursts: Bursts::default(),
        });
        let tracker = TaskTracker::new();
        let mut tasks = FuturesUnordered::new();
        let mut aborts: Vec<AbortHandle> = Vec::new();
        let mut spawn = |name: String, task: JoinHandle<anyhow::Result<()>>| {
            aborts.push(task.abort_handle());
            tasks.push(named(name, task));
        };

        let address = listener
            .local_addr()
            .context("reading the listener's address")?;
        tracing::info!(%address, queue = %redacted_url(&options.queue_url), pollers = options.pollers, "daemon started");
        let upkeep = metrics.clone();
        let app = ops::router(health, metrics);
        let ops_stop = stop.clone();
        spawn(
            "ops listener".into(),
            tracker.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(ops_stop.cancelled_owned())
                    .await
                    .context("the ops listener failed")
            }),
        );
        let probe_stop = stop.clone();
        let probe = consumer.clone();
        spawn(
            "probe".into(),
            tracker.spawn(async move {
                probe.probe_loop(upkeep, probe_stop).await;
                Ok(())
            }),
        );
        spawn(
            "reconcile scheduler".into(),
            tracker.spawn(scheduler.instrument(tracing::info_span!("reconcile scheduler"))),
        );
        for n in 0..options.pollers {
            let poller = consumer.clone();
            let poller_stop = stop.clone();
            spawn(
                format!("poller {n}"),
                tracker.spawn(
                    async move {
                        poller.poll_loop(poller_stop).await;
                        Ok(())
                    }
                    .instrument(tracing::info_span!("poller", poller = n)),
                ),
            );
        }
        tracker.close();

        let mut failure: Option<anyhow::Error> = None;
        tokio::select! {
            // The tasks stop on a child of `shutdown`: look at it first, so that a task
            // ending because of it is not taken for a failure.
            biased;
            () = shutdown.cancelled() => {
                tracing::info!("shutting down: no more receives; finishing the batches in flight");
            }
            Some((name, result)) = tasks.next() => {
                // Every task runs until shutdown: one that ends first is a failure.
                let error = task_error(&name, result).or_else(|| {
                    (!shutdown.is_cancelled()).then(|| anyhow!("{name} ended unexpectedly"))
                });
                if let Some(error) = error {
                    tracing::error!(error = %format!("{error:#}"), "daemon task failed; stopping");
                    failure = Some(error);
                }
            }
        }
        stop.cancel();
        let drain = async {
            while let Some((name, result)) = tasks.next().await {
                if let Some(error) = task_error(&name, result) {
                    tracing::error!(error = %format!("{error:#}"), "daemon task failed while stopping");
                    failure.get_or_insert(error);
                }
            }
        };
        if tokio::time::timeout(options.shutdown_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_s = options.shutdown_timeout.as_secs(),
                "shutdown timeout: abandoning the batches in flight; their messages return to the queue"
            );
            aborts.iter().for_each(AbortHandle::abort);
        }
        tracker.wait().await;
        match failure {
            Some(error) => Err(error),
            None => {
                tracing::info!("daemon stopped");
                Ok(())
            }
        }
    }
}

/// A task's result with its name, so that a failure says which task it was.
async fn named(
    name: String,
    task: JoinHandle<anyhow::Result<()>>,
) -> (String, Result<anyhow::Result<()>, JoinError>) {
    (name, task.await)
}

/// The error of a finished task, panics included.
fn task_error(name: &str, result: Result<anyhow::Result<()>, JoinError>) -> Option<anyhow::Error> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.context(format!("{name} failed"))),
        Err(join) if join.is_panic() => {
            let payload = join.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            Some(anyhow!("{name} panicked: {message}"))
        }
        Err(_) => None,
    }
}

/// The process's Prometheus recorder, installed on first use; later calls return the same
/// handle (tests start several daemons in one process).
///
/// # Errors
///
/// When another metrics recorder was installed first.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("daemon_apply_latency_seconds".to_owned()),
            &LATENCY_BUCKETS,
        )
        .context("invalid latency buckets")?
        .build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => Ok(HANDLE.get_or_init(|| handle).clone()),
        // Lost a race with another caller of this function: use its handle.
        Err(_) => HANDLE
            .get()
            .cloned()
            .context("another metrics recorder is already installed"),
    }
}
