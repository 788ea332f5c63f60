//! The subcommands, one module each, all of one shape: `run` takes the resolved
//! [`Settings`] and the subcommand's plain request, builds the clients it needs, runs the
//! engine and returns a report that `main` prints (stdout for results, stderr for logs).
//!
//! - [`backfill`], [`reconcile`]: whole-pool scans ([`crate::sync`]).
//! - [`daemon`]: the SQS consumer and scheduled reconcile ([`crate::daemon`]).
//! - [`sync_user`], [`redrive`]: operator repairs on the daemon's paths ([`crate::daemon`]).
//! - [`status`], [`check`], [`jwt_secret`]: reports of their own.

pub mod backfill;
pub mod check;
pub mod daemon;
pub mod jwt_secret;
pub mod reconcile;
pub mod redrive;
pub mod status;
pub mod sync_user;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::cognito::{
    CognitoReader, DEFAULT_QUOTA_SHARE, InvalidQuotaSettings, QuotaCategory, QuotaSettings,
    ReadLimits, RetryPolicy,
};
use crate::config::{Settings, redacted_url};
use crate::daemon::queue::SqsQueue;
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

/// How much of each Cognito quota category this process may use: the share (`--quota-share`,
/// `SYNC_QUOTA_SHARE` or `[cognito] quota_share`) of every category's default quota, the
/// absolute rates of `[cognito.quotas]` over it, and `user_list_rps` (`--cognito-rps`, or
/// `[backfill] cognito_rps` for a scan) over the `UserList` entry.
///
/// # Errors
///
/// An unknown category name (the error lists the valid ones), a share outside (0, 1], a rate
/// that is not a positive number.
pub fn quota_settings(
    settings: &Settings,
    user_list_rps: Option<f64>,
) -> anyhow::Result<QuotaSettings> {
    let mut quotas = QuotaSettings {
        quota_share: settings.quota_share.unwrap_or(DEFAULT_QUOTA_SHARE),
        ..QuotaSettings::default()
    };
    for (name, &rps) in &settings.quota_rates {
        let category: QuotaCategory = name
            .parse()
            .context("in the config file's [cognito.quotas] table")?;
        quotas = quotas.with_rate(category, rps);
    }
    if let Some(rps) = user_list_rps {
        quotas = quotas.with_rate(QuotaCategory::UserList, rps);
    }
    quotas.validate().map_err(|err| match err {
        InvalidQuotaSettings::Share(_) => anyhow::Error::new(err)
            .context("invalid --quota-share (SYNC_QUOTA_SHARE, [cognito] quota_share)"),
        InvalidQuotaSettings::Rate { .. } => anyhow::Error::new(err)
            .context("invalid Cognito rate (--cognito-rps or [cognito.quotas])"),
    })?;
    Ok(quotas)
}

/// A reader of the configured pool within the configured [`MirrorScope`], under `quotas`,
/// retried as `retry` says. Every command that reads users builds its reader here, so every
/// mode mirrors the same scope.
fn cognito_reader(
    sdk: &SdkConfig,
    settings: &Settings,
    quotas: QuotaSettings,
    retry: RetryPolicy,
) -> anyhow::Result<CognitoReader> {
    let pool = settings.require_pool()?;
    settings.require_pool_region(sdk.region().map(|r| r.as_ref()))?;
    let scope = mirror_scope(settings)?;
    Ok(CognitoReader::new(sdk, pool, ReadLimits { quotas, retry }).with_scope(scope))
}

/// The sync queue and its dead-letter queue, as an operator names them (`status`, `redrive`).
#[derive(Debug, Clone, Default)]
pub struct QueueUrls {
    pub queue_url: Option<String>,
    /// Else the one the sync queue's `RedrivePolicy` names.
    pub dlq_url: Option<String>,
}

impl QueueUrls {
    /// The sync queue; an error naming the flag when none is configured.
    fn require_queue(&self, sdk: &SdkConfig) -> anyhow::Result<SqsQueue> {
        match self.queue_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => Ok(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)),
            _ => anyhow::bail!("no queue configured: set --queue-url or SYNC_SQS_QUEUE_URL"),
        }
    }

    /// The dead-letter queue: the configured one, else the one `queue`'s `RedrivePolicy`
    /// names; `None` when neither.
    async fn dead_letter_queue(&self, queue: &SqsQueue) -> anyhow::Result<Option<SqsQueue>> {
        if let Some(url) = self
            .dlq_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            return Ok(Some(queue.with_url(url)));
        }
        queue.dead_letter_queue().await.map_err(|e| {
            anyhow::anyhow!(e).context(format!(
                "finding the dead-letter queue of {} (its RedrivePolicy); or pass --dlq-url",
                redacted_url(queue.url())
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn settings(share: Option<f64>, toml: &str) -> Settings {
        let args = Overrides {
            quota_share: share,
            ..Overrides::default()
        };
        Settings::from_toml(&args, toml).unwrap()
    }

    #[test]
    fn quotas_come_from_the_share_the_file_and_cognito_rps() {
        let defaults = quota_settings(&settings(None, ""), None).unwrap();
        assert_eq!(defaults.rate(QuotaCategory::UserList), 24.0);
        assert_eq!(defaults.rate(QuotaCategory::UserRead), 96.0);
        assert_eq!(defaults.rate(QuotaCategory::UserResourceRead), 40.0);

        let file =
            "[cognito]\nquota_share = 0.5\n[cognito.quotas]\nUserRead = 300\nuserlist = 28\n";
        let from_file = quota_settings(&settings(None, file), None).unwrap();
        assert_eq!(from_file.rate(QuotaCategory::UserRead), 300.0, "as given");
        assert_eq!(from_file.rate(QuotaCategory::UserList), 28.0);
        assert_eq!(from_file.rate(QuotaCategory::UserResourceRead), 25.0);

        // The flag's share wins over the file's; --cognito-rps over the file's UserList.
        let flags = quota_settings(&settings(Some(0.25), file), Some(10.0)).unwrap();
        assert_eq!(flags.quota_share, 0.25);
        assert_eq!(flags.rate(QuotaCategory::UserList), 10.0);
        assert_eq!(flags.rate(QuotaCategory::UserPoolRead), 3.75);
    }

    #[test]
    fn invalid_quota_settings_say_what_to_fix() {
        let unknown =
            quota_settings(&settings(None, "[cognito.quotas]\nUsers = 30\n"), None).unwrap_err();
        let shown = format!("{unknown:#}");
        assert!(shown.contains("[cognito.quotas]"), "{shown}");
        assert!(shown.contains("\"Users\""), "{shown}");
        assert!(
            shown.contains("UserResourceRead"),
            "lists the valid names: {shown}"
        );

        for share in [0.0, -0.5, 1.5, f64::NAN] {
            let err = quota_settings(&settings(Some(share), ""), None).unwrap_err();
            assert!(format!("{err:#}").contains("--quota-share"), "{err:#}");
        }
        let file_share = quota_settings(&settings(None, "[cognito]\nquota_share = 2\n"), None);
        assert!(file_share.is_err());
        assert!(quota_settings(&settings(None, ""), Some(0.0)).is_err());
        let negative =
            quota_settings(&settings(None, "[cognito.quotas]\nUserRead = -1\n"), None).unwrap_err();
        assert!(format!("{negative:#}").contains("UserRead"), "{negative:#}");
        assert!(
            Settings::from_toml(&Overrides::default(), "[cognito]\nshare = 0.5\n").is_err(),
            "unknown keys are refused"
        );
    }
}
