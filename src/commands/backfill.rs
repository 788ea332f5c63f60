//! `backfill`: streams the whole pool into the mirror, resuming the last unfinished run.

use tokio_util::sync::CancellationToken;

use super::{LeaseRequest, with_scan_lease};
use crate::cognito::RetryPolicy;
use crate::config::{ScanOverrides, ScanSettings, Settings};
use crate::hasura::HasuraClient;
use crate::sync::backfill::{BackfillOptions, BackfillSummary, backfill};
use crate::sync::progress::ProgressMode;

/// What `backfill` is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackfillRequest {
    pub scan: ScanOverrides,
    pub lease: LeaseRequest,
    pub dry_run: bool,
    pub restart: bool,
    pub progress: ProgressMode,
}

/// Runs one backfill of the configured pool until done, failed or `shutdown`, as the pool's
/// only scanner (a dry run, which writes nothing, takes no lease).
pub async fn run(
    settings: &Settings,
    request: BackfillRequest,
    shutdown: CancellationToken,
) -> anyhow::Result<BackfillSummary> {
    let tuning = ScanSettings::resolve(&request.scan, &settings.backfill_file)?;
    let hasura = HasuraClient::new(&settings.require_hasura()?)?;
    let sdk = super::aws_config(settings).await;
    let quotas = super::quota_settings(settings, tuning.cognito_rps)?;
    let reader = super::cognito_reader(&sdk, settings, quotas, RetryPolicy::Persistent)?;
    let options = BackfillOptions {
        settings: tuning,
        dry_run: request.dry_run,
        restart: request.restart,
        progress: request.progress,
    };
    if request.dry_run {
        return backfill(reader, hasura, options, shutdown).await;
    }
    let pool = reader.user_pool_id().to_owned();
    with_scan_lease(&hasura.clone(), &pool, request.lease, shutdown, |run| {
        backfill(reader, hasura, options, run)
    })
    .await
}
