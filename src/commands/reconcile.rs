//! `reconcile`: one diff of Cognito against the mirror, writing only the difference.

use anyhow::bail;
use tokio_util::sync::CancellationToken;

use super::{LeaseRequest, with_scan_lease};
use crate::cognito::RetryPolicy;
use crate::config::{ScanOverrides, ScanSettings, Settings};
use crate::hasura::HasuraClient;
use crate::sync::reconcile::review::review;
use crate::sync::reconcile::{
    DIGEST_PAGE_SIZE, OnDelete, ReconcileOptions, ReconcileReport, reconcile,
};

/// What `reconcile` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileRequest {
    pub scan: ScanOverrides,
    pub lease: LeaseRequest,
    pub on_delete: OnDelete,
    /// The safety brake's threshold, 0 to 1.
    pub max_delete_fraction: f64,
    pub allow_mass_delete: bool,
    pub dry_run: bool,
    /// With `dry_run`: fill [`ReconcileReport::changes`] with each planned user's change.
    pub review: bool,
}

/// Runs one reconcile of the configured pool as its only scanner (a dry run takes no lease,
/// and reviews its plan user by user when asked).
/// A run stopped by the safety brake returns its report (with [`ReconcileReport::brake`]
/// set): `main` prints it, then exits non-zero.
pub async fn run(
    settings: &Settings,
    request: ReconcileRequest,
    shutdown: CancellationToken,
) -> anyhow::Result<ReconcileReport> {
    let tuning = ScanSettings::resolve(&request.scan, &settings.backfill_file)?;
    if !(0.0..=1.0).contains(&request.max_delete_fraction) {
        bail!(
            "--max-delete-fraction must be between 0 and 1, not {}",
            request.max_delete_fraction
        );
    }
    let hasura = HasuraClient::new(&settings.require_hasura()?)?;
    let sdk = super::aws_config(settings).await;
    let reader =
        super::cognito_reader(&sdk, settings, tuning.cognito_rps, RetryPolicy::Persistent)?;
    let options = ReconcileOptions {
        shards: tuning.shards,
        batch_size: tuning.batch_size,
        page_size: DIGEST_PAGE_SIZE,
        on_delete: request.on_delete,
        max_delete_fraction: request.max_delete_fraction,
        allow_mass_delete: request.allow_mass_delete,
        dry_run: request.dry_run,
    };
    if request.dry_run {
        let pool = reader.user_pool_id().to_owned();
        let mut report = reconcile(reader, hasura.clone(), options, shutdown).await?;
        if let (true, Some(plan)) = (request.review, &report.plan) {
            report.changes =
                review(&hasura, &pool, plan, options.on_delete, options.batch_size).await?;
            // The review's reads are part of what the dry run cost.
            report.hasura = hasura.stats();
        }
        return Ok(report);
    }
    let pool = reader.user_pool_id().to_owned();
    with_scan_lease(&hasura.clone(), &pool, request.lease, shutdown, |run| {
        reconcile(reader, hasura, options, run)
    })
    .await
}
