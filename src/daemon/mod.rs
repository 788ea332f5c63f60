//! The `daemon`: long-polls SQS for change events, re-reads the users they name from Cognito, writes them to Hasura and only then deletes the messages; serves /healthz, /readyz and /metrics.
//!
//! - [`consumer`]: the poll loops and the batch pipeline (decode, reduce, re-read, one
//!   mutation, delete what is committed, back off what failed), and the periodic probe that
//!   feeds the backlog gauge and `/readyz`.
//! - [`ops`]: the operations listener and the health state behind `/readyz`.
//! - [`reconcile`]: debounced requests for an early pool-wide reconcile.
//!
//! Shutdown: one [`CancellationToken`]. When it fires the loops stop receiving, the batches
//! in flight finish (their messages are deleted only once committed) and [`Daemon::serve`]
//! returns within the shutdown timeout. Whatever is abandoned at the timeout is not lost: its
//! messages return to the queue after their visibility timeout, and applying them again is
//! harmless. Spawned tasks live in one [`TaskTracker`]; a task that panics or ends early
//! stops the daemon with an error instead of vanishing.

mod consumer;
pub mod ops;
pub mod reconcile;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cognito::{CognitoReader, QuotaCategory, QuotaSettings, ReadLimits, RetryPolicy};
use crate::config::Settings;
use crate::hasura::HasuraClient;
use crate::sync::reconcile::ReconcileOptions;
use crate::sync::reconcile::schedule::{ScheduleArgs, SchedulerOptions, run_scheduler};

use consumer::Consumer;
use ops::Health;
use reconcile::ReconcileRequests;

/// Retries of one Hasura request inside a batch: a batch that still fails goes back to the
/// queue with backoff, so long in-process retries would only hold its messages.
pub const HASURA_RETRIES: usize = 3;
/// Retries of one Cognito read inside a batch, for the same reason.
pub const COGNITO_RETRIES: u32 = 3;
/// Buckets of the apply latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// `daemon`: apply change events from SQS within seconds.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// The sync queue's URL.
    #[arg(long, env = "SYNC_SQS_QUEUE_URL", value_name = "URL")]
    pub queue_url: String,

    /// Concurrent receive loops.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub pollers: usize,

    /// Address of the /healthz, /readyz and /metrics listener.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Seconds a received message stays invisible while its batch is applied.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub visibility_timeout: u32,

    /// Seconds to finish the batches in flight after SIGTERM (ECS's stop timeout is 30).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub shutdown_timeout: u64,

    /// Long-poll wait of one receive, 0 to 20 seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    pub wait_time: u32,

    /// Messages per receive, 1 to 10.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub batch_size: u32,

    /// Cognito read requests per second (the quota is shared with every tool of the account).
    #[arg(long, default_value_t = crate::config::DEFAULT_COGNITO_RPS, value_name = "RPS")]
    pub cognito_rps: f64,

    /// First retry delay of a message that failed; doubles with each receive.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub retry_backoff: u64,

    /// Longest retry delay. With the queue's maxReceiveCount it bounds how long a dependency
    /// may be down before messages reach the dead-letter queue.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub retry_backoff_max: u64,

    /// Consecutive failed batches after which /readyz answers 503.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub unready_after: u32,

    /// Seconds between queue backlog and Hasura probes.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub probe_interval: u64,

    /// Seconds over which requests for an early reconcile are folded into one.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub reconcile_debounce: u64,

    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// [`DaemonArgs`], validated.
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
    pub fn from_args(args: &DaemonArgs) -> anyhow::Result<Self> {
        if args.queue_url.trim().is_empty() {
            bail!("no queue configured: set --queue-url or SYNC_SQS_QUEUE_URL");
        }
        if !(1..=64).contains(&args.pollers) {
            bail!("--pollers must be between 1 and 64, not {}", args.pollers);
        }
        if args.wait_time > 20 {
            bail!(
                "--wait-time must be between 0 and 20 seconds, not {}",
                args.wait_time
            );
        }
        if !(1..=10).contains(&args.batch_size) {
            bail!(
                "--batch-size must be between 1 and 10, not {}",
                args.batch_size
            );
        }
        if !(1..=43_200).contains(&args.visibility_timeout) {
            bail!(
                "--visibility-timeout must be between 1 and 43200 seconds, not {}",
                args.visibility_timeout
            );
        }
        if args.retry_backoff == 0
            || args.retry_backoff > args.retry_backoff_max
            || args.retry_backoff_max > 43_200
        {
            bail!(
                "--retry-backoff must be at least 1 and at most --retry-backoff-max (at most 43200 seconds)"
            );
        }
        if !(args.cognito_rps.is_finite() && args.cognito_rps > 0.0) {
            bail!(
                "--cognito-rps must be a positive number, not {}",
                args.cognito_rps
            );
        }
        Ok(DaemonOptions {
            queue_url: args.queue_url.clone(),
            pollers: args.pollers,
            visibility_timeout_seconds: args.visibility_timeout as i32,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
            wait_time_seconds: args.wait_time as i32,
            batch_size: args.batch_size as i32,
            retry_backoff: Duration::from_secs(args.retry_backoff),
            retry_backoff_max: Duration::from_secs(args.retry_backoff_max),
            unready_after: args.unready_after.max(1),
            probe_interval: Duration::from_secs(args.probe_interval.max(1)),
            reconcile_debounce: Duration::from_secs(args.reconcile_debounce),
            scheduler: SchedulerOptions::from_args(&args.schedule, ReconcileOptions::default())?,
        })
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

    /// Where events that name no user ask for an early reconcile.
    pub fn reconcile_requests(&self) -> ReconcileRequests {
        self.reconcile.clone()
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
            sqs: self.sqs,
            reader: self.reader,
            hasura: self.hasura,
            probe: self.probe,
            options: self.options,
            health: health.clone(),
            reconcile: self.reconcile,
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
        tracing::info!(%address, queue = %options.queue_url, pollers = options.pollers, "daemon started");
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

/// The `daemon` subcommand: builds the clients from `settings`, binds `--listen`, installs
/// the metrics recorder and serves until `shutdown`.
///
/// # Errors
///
/// Missing settings, an address that cannot be bound, or a daemon task that failed.
pub async fn run(
    settings: &Settings,
    args: DaemonArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let options = DaemonOptions::from_args(&args)?;
    let pool = settings.require_pool()?;
    let hasura_settings = settings.require_hasura()?;
    let hasura = HasuraClient::with_retries(
        &hasura_settings,
        hasura_settings.retries.min(HASURA_RETRIES),
    )?;
    let probe = HasuraClient::with_retries(&hasura_settings, 0)?;
    let sdk = crate::commands::aws_config(settings).await;
    let reader = CognitoReader::new(
        &sdk,
        pool,
        ReadLimits {
            quotas: QuotaSettings::default().with_rate(QuotaCategory::UserList, args.cognito_rps),
            retry: RetryPolicy::Capped(COGNITO_RETRIES),
        },
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics = install_metrics()?;
    Daemon::new(sqs, reader, hasura, probe, options)
        .serve(listener, metrics, shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::sync::reconcile::OnDelete;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        daemon: DaemonArgs,
    }

    /// The way the binary's command line takes it: the global connection flags, then the
    /// subcommand.
    #[derive(Parser)]
    struct Binary {
        #[command(flatten)]
        connection: crate::cli::ConnectionArgs,
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Daemon(DaemonArgs),
    }

    #[test]
    fn flags_do_not_clash_with_the_global_ones() {
        use clap::CommandFactory;
        Binary::command().debug_assert();
        let parsed = Binary::try_parse_from([
            "x",
            "daemon",
            "--queue-url",
            "http://q",
            "--user-pool-id",
            "us-east-1_abc",
            "--pollers",
            "4",
        ])
        .unwrap();
        let Sub::Daemon(args) = parsed.command;
        assert_eq!(args.pollers, 4);
        assert_eq!(
            parsed.connection.user_pool_id.as_deref(),
            Some("us-east-1_abc")
        );
    }

    #[test]
    fn defaults_and_backoff() {
        let cli = Cli::try_parse_from(["x", "--queue-url", "http://q"]).unwrap();
        assert_eq!(cli.daemon.pollers, 2);
        assert_eq!(cli.daemon.listen.to_string(), "0.0.0.0:8080");
        let options = DaemonOptions::from_args(&cli.daemon).unwrap();
        assert_eq!(options.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(options.wait_time_seconds, 20);
        assert_eq!(options.batch_size, 10);
        assert_eq!(options.backoff(1), Duration::from_secs(5));
        assert_eq!(options.backoff(3), Duration::from_secs(20));
        assert_eq!(options.backoff(30), Duration::from_secs(300));
        let reconcile = options.scheduler.reconcile;
        assert_eq!(reconcile.on_delete, OnDelete::Tombstone);
        assert_eq!(reconcile.max_delete_fraction, 0.1);
        assert!(!reconcile.allow_mass_delete);
    }

    #[test]
    fn the_scheduled_reconcile_takes_its_delete_policy_but_never_releases_the_brake() {
        let cli = Cli::try_parse_from([
            "x",
            "--queue-url",
            "http://q",
            "--reconcile-on-delete",
            "scrub",
            "--reconcile-max-delete-fraction",
            "0.25",
        ])
        .unwrap();
        let reconcile = DaemonOptions::from_args(&cli.daemon)
            .unwrap()
            .scheduler
            .reconcile;
        assert_eq!(reconcile.on_delete, OnDelete::Scrub);
        assert_eq!(reconcile.max_delete_fraction, 0.25);
        assert!(!reconcile.allow_mass_delete);
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        for flags in [
            ["--batch-size", "11"],
            ["--wait-time", "21"],
            ["--pollers", "0"],
            ["--retry-backoff", "0"],
            ["--queue-url", " "],
            ["--reconcile-max-delete-fraction", "1.5"],
        ] {
            let mut args = vec!["x"];
            args.extend(flags);
            if flags[0] != "--queue-url" {
                args.extend(["--queue-url", "http://q"]);
            }
            let cli = Cli::try_parse_from(args).unwrap();
            assert!(DaemonOptions::from_args(&cli.daemon).is_err(), "{flags:?}");
        }
    }
}
