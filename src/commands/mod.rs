//! The subcommands: each takes resolved settings and built clients, does its job and prints
//! its result on stdout (logs go to stderr).

pub mod check;
pub mod jwt_secret;
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

/// A reader of the configured pool for a scan: persistent under throttling, `rps` requests
/// per second for the scan's list calls (the `UserList` category), the other categories at
/// their default share.
pub fn cognito_reader(
    sdk: &SdkConfig,
    settings: &Settings,
    rps: f64,
) -> anyhow::Result<CognitoReader> {
    let pool = settings.require_pool()?;
    Ok(CognitoReader::new(
        sdk,
        pool,
        ReadLimits {
            quotas: QuotaSettings::default().with_rate(QuotaCategory::UserList, rps),
            retry: RetryPolicy::Persistent,
        },
    ))
}
