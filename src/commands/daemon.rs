//! `daemon`: builds the clients, binds the ops listener, installs the metrics recorder and
//! serves until shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cognito::RetryPolicy;
use crate::config::{ScanOverrides, ScanSettings, Settings};
use crate::daemon::{COGNITO_RETRIES, Daemon, DaemonOptions, HASURA_RETRIES, install_metrics};
use crate::hasura::HasuraClient;

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
    // The scheduled reconcile scans as the CLI's does: the config file's scan tuning.
    let tuning = ScanSettings::resolve(&ScanOverrides::default(), &settings.backfill_file)?;
    options.scheduler.reconcile.shards = tuning.shards;
    options.scheduler.reconcile.batch_size = tuning.batch_size;
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
    let listener = TcpListener::bind(request.listen)
        .await
        .with_context(|| format!("cannot listen on {}", request.listen))?;
    let metrics = install_metrics()?;
    Daemon::new(sqs, reader, hasura, probe, options)
        .serve(listener, metrics, shutdown)
        .await
}
