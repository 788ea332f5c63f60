//! The subcommands, one module each, all of one shape: `run` takes the resolved
//! [`Settings`] and the subcommand's plain request, builds the clients it needs, runs the
//! engine and returns a report that `main` prints (stdout for results, stderr for logs).
//!
//! - [`backfill`], [`reconcile`]: whole-pool scans ([`crate::sync`]).
//! - [`daemon`]: the SQS consumer and scheduled reconcile ([`crate::daemon`]).
//! - [`status`], [`check`], [`jwt_secret`]: reports of their own.

pub mod backfill;
pub mod check;
pub mod daemon;
pub mod jwt_secret;
pub mod reconcile;
pub mod status;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::cognito::{CognitoReader, QuotaCategory, QuotaSettings, ReadLimits, RetryPolicy};
use crate::config::Settings;
use crate::hasura::HasuraClient;
use crate::model::MirrorScope;
use crate::state::lease::{DEFAULT_SCAN_LEASE_TTL, Lease, process_holder, scan_lease};

/// Retries of a Hasura request for the read-only commands (`status`, `check`): a person is
/// waiting, so an unreachable Hasura fails within a second or two (200 ms then 400 ms of
/// backoff, jittered) instead of after the scans' persistent retries.
pub const READ_ONLY_HASURA_RETRIES: usize = 2;

/// How a scan takes the pool's lease.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest {
    /// Wait for another scanner's lease instead of failing.
    pub wait: bool,
    pub ttl: Duration,
}

impl Default for LeaseRequest {
    fn default() -> Self {
        LeaseRequest {
            wait: false,
            ttl: DEFAULT_SCAN_LEASE_TTL,
        }
    }
}

/// Runs `scan` as the pool's only scanner: takes the pool's scan lease first (or waits for
/// it), renews it while the scan runs and releases it after. The scan gets a token that is
/// cancelled on `shutdown` and when the lease is lost.
async fn with_scan_lease<T, Scan, Fut>(
    hasura: &HasuraClient,
    pool: &str,
    request: LeaseRequest,
    shutdown: CancellationToken,
    scan: Scan,
) -> anyhow::Result<T>
where
    Scan: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let lease = Lease::new(
        hasura.clone(),
        scan_lease(pool),
        process_holder(),
        request.ttl,
    );
    lease.acquire_or_wait(request.wait, &shutdown).await?;
    let run = shutdown.child_token();
    // Aborted with the scan, so a renewal never outlives it.
    let keeper = AbortOnDropHandle::new(tokio::spawn({
        let lease = lease.clone();
        let run = run.clone();
        async move { lease.keep(run).await }
    }));
    let result = scan(run).await;
    drop(keeper);
    if let Err(err) = lease.release().await {
        tracing::warn!(
            error = format!("{err:#}"),
            "cannot release the scan lease; it will expire"
        );
    }
    result
}

/// The one AWS configuration every client is built from: the default credential chain,
/// `AWS_ENDPOINT_URL` and friends, and the configured region (else the pool id's prefix).
pub async fn aws_config(settings: &Settings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = settings.region.clone() {
        loader = loader.region(Region::new(region));
    }
    let config = loader.load().await;
    match (config.region(), settings.region_or_pool_prefix()) {
        (None, Some(region)) => config.into_builder().region(Region::new(region)).build(),
        _ => config,
    }
}

/// What the configuration says the mirror holds, validated.
pub fn mirror_scope(settings: &Settings) -> anyhow::Result<MirrorScope> {
    MirrorScope::new(
        settings.exclude_attributes.clone(),
        settings.include_groups.clone(),
    )
    .context("invalid --exclude-attributes / SYNC_EXCLUDE_ATTRIBUTES / [mirror] exclude_attributes")
}

/// A reader of the configured pool within the configured [`MirrorScope`]: `user_list_rps`
/// requests per second for the list calls (the `UserList` quota category; the other
/// categories at their default share), retried as `retry` says. Every command that reads
/// users builds its reader here, so every mode mirrors the same scope.
fn cognito_reader(
    sdk: &SdkConfig,
    settings: &Settings,
    user_list_rps: f64,
    retry: RetryPolicy,
) -> anyhow::Result<CognitoReader> {
    let pool = settings.require_pool()?;
    settings.require_pool_region(sdk.region().map(|r| r.as_ref()))?;
    let scope = mirror_scope(settings)?;
    Ok(CognitoReader::new(
        sdk,
        pool,
        ReadLimits {
            quotas: QuotaSettings::default().with_rate(QuotaCategory::UserList, user_list_rps),
            retry,
        },
    )
    .with_scope(scope))
}
