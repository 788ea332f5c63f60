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

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::cognito::{CognitoReader, QuotaCategory, QuotaSettings, ReadLimits, RetryPolicy};
use crate::config::Settings;

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

/// A reader of the configured pool: `user_list_rps` requests per second for the list calls
/// (the `UserList` quota category; the other categories at their default share), retried as
/// `retry` says.
fn cognito_reader(
    sdk: &SdkConfig,
    settings: &Settings,
    user_list_rps: f64,
    retry: RetryPolicy,
) -> anyhow::Result<CognitoReader> {
    let pool = settings.require_pool()?;
    Ok(CognitoReader::new(
        sdk,
        pool,
        ReadLimits {
            quotas: QuotaSettings::default().with_rate(QuotaCategory::UserList, user_list_rps),
            retry,
        },
    ))
}
