//! `daemon`: builds the clients, refuses to start on a configuration error, binds the ops
//! listener, installs the metrics recorder and serves until shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cognito::RetryPolicy;
use crate::config::{ScanOverrides, ScanSettings, Settings};
use crate::daemon::queue::{is_missing_queue, sqs_error_line};
use crate::daemon::{COGNITO_RETRIES, Daemon, DaemonOptions, HASURA_RETRIES, install_metrics};
use crate::hasura::HasuraClient;
use crate::hasura::daemon_ops::{DaemonProbe, daemon_probe};

/// What `daemon` is asked to do.
#[derive(Debug, Clone)]
pub struct DaemonRequest {
    pub options: DaemonOptions,
    /// The /healthz, /readyz and /metrics listener.
    pub listen: SocketAddr,
    /// Cognito read requests per second of the whole process.
    pub cognito_rps: f64,
}

/// Serves until `shutdown`.
///
/// # Errors
///
/// Invalid or missing settings, an address that cannot be bound, or a daemon task that failed.
pub async fn run(
    settings: &Settings,
    request: DaemonRequest,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut options = request.options;
    apply_scan_tuning(&mut options, settings)?;
    options.validate()?;
    if !(request.cognito_rps.is_finite() && request.cognito_rps > 0.0) {
        anyhow::bail!(
            "--cognito-rps must be a positive number, not {}",
            request.cognito_rps
        );
    }
    let hasura_settings = settings.require_hasura()?;
    let hasura = HasuraClient::with_retries(
        &hasura_settings,
        hasura_settings.retries.min(HASURA_RETRIES),
    )?;
    let probe = HasuraClient::with_retries(&hasura_settings, 0)?;
    let sdk = super::aws_config(settings).await;
    let reader = super::cognito_reader(
        &sdk,
        settings,
        request.cognito_rps,
        RetryPolicy::Capped(COGNITO_RETRIES),
    )?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    preflight(&probe, &sqs, &options.queue_url).await?;
    let listener = TcpListener::bind(request.listen)
        .await
        .with_context(|| format!("cannot listen on {}", request.listen))?;
    let metrics = install_metrics()?;
    Daemon::new(sqs, reader, hasura, probe, options)
        .serve(listener, metrics, shutdown)
        .await
}

/// The scheduled reconcile scans as the command-line one does: with the config file's scan
/// tuning (`[backfill] shards`, `batch_size`).
fn apply_scan_tuning(options: &mut DaemonOptions, settings: &Settings) -> anyhow::Result<()> {
    let tuning = ScanSettings::resolve(&ScanOverrides::default(), &settings.backfill_file)?;
    options.scheduler.reconcile.shards = tuning.shards;
    options.scheduler.reconcile.batch_size = tuning.batch_size;
    Ok(())
}

/// Fails the start on a configuration error, so that a deployment that cannot work is
/// rolled back (ECS's circuit breaker sees the task exit): Hasura refusing the credentials or
/// not serving the mirror's tables, or a queue that does not exist. A dependency that is only
/// unreachable is not a reason to exit: the daemon starts, reports unready, and retries.
async fn preflight(
    hasura: &HasuraClient,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> anyhow::Result<()> {
    match hasura.post::<DaemonProbe>(daemon_probe::Variables {}).await {
        Err(err) if err.is_configuration() => {
            return Err(anyhow::Error::new(err).context("Hasura refuses the daemon's requests"));
        }
        Err(err) => tracing::warn!(error = %err, "Hasura is not reachable yet; starting anyway"),
        Ok(_) => {}
    }
    let queue = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await;
    match queue {
        Err(err) if is_missing_queue(err.code()) => {
            anyhow::bail!("the SQS queue {}", sqs_error_line(queue_url, &err))
        }
        Err(err) => tracing::warn!(
            error = sqs_error_line(queue_url, &err),
            "the queue is not reachable yet; starting anyway"
        ),
        Ok(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Overrides;
    use crate::daemon::scheduler::SchedulerOptions;
    use crate::sync::reconcile::ReconcileOptions;

    #[test]
    fn the_scheduled_reconcile_takes_the_config_files_scan_tuning() {
        let settings = Settings::from_toml(
            &Overrides::default(),
            "[backfill]\nshards = 256\nbatch_size = 700\n",
        )
        .unwrap();
        let mut options = DaemonOptions {
            queue_url: "q".into(),
            pollers: 1,
            visibility_timeout_seconds: 30,
            shutdown_timeout: Duration::from_secs(1),
            wait_time_seconds: 0,
            batch_size: 10,
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(2),
            unready_after: 1,
            probe_interval: Duration::from_secs(1),
            reconcile_debounce: Duration::from_secs(1),
            scheduler: SchedulerOptions {
                schedule: None,
                lease_ttl: Duration::from_secs(60),
                holder: "t".into(),
                reconcile: ReconcileOptions::default(),
            },
        };
        apply_scan_tuning(&mut options, &settings).unwrap();
        assert_eq!(options.scheduler.reconcile.shards, 256);
        assert_eq!(options.scheduler.reconcile.batch_size, 700);
    }
}
