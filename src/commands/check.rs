//! `check`: verifies, in order, the configuration, AWS credentials, the pool, Hasura (reachable,
//! accepting the credentials) and the mirror's tables and columns. One line per check; a
//! failed check says what to do, and the command exits non-zero.

use std::fmt;

use aws_sdk_cognitoidentityprovider::config::ProvideCredentials;

use crate::cognito::{
    CognitoError, CognitoReader, QuotaCategory, QuotaSettings, ReadLimits, RetryPolicy,
};
use crate::config::Settings;
use crate::hasura::operations::{CheckSchema, check_schema};
use crate::hasura::{HasuraClient, HasuraError};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub ok: bool,
    pub what: &'static str,
    pub detail: String,
}

impl fmt::Display for CheckLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {:<18} {}",
            if self.ok { "ok  " } else { "FAIL" },
            self.what,
            self.detail
        )
    }
}

fn line(ok: bool, what: &'static str, detail: impl Into<String>) -> CheckLine {
    CheckLine {
        ok,
        what,
        detail: detail.into(),
    }
}

/// The rates a reader uses per quota category, e.g. `UserList 24/s, UserRead 96/s, ...
/// (0.8 of the default quotas)`.
fn effective_rates(quotas: &QuotaSettings) -> String {
    let rates: Vec<String> = QuotaCategory::ALL
        .into_iter()
        .map(|category| {
            let overridden = if quotas.rps.contains_key(&category) {
                " (set)"
            } else {
                ""
            };
            format!("{category} {}/s{overridden}", quotas.rate(category))
        })
        .collect();
    format!(
        "{} ({} of the default quotas; --cognito-rps sets UserList)",
        rates.join(", "),
        quotas.quota_share
    )
}

/// Runs every check whose prerequisites passed; `on_line` sees each result as it is known.
pub async fn run(settings: &Settings, mut on_line: impl FnMut(&CheckLine)) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let mut push = |l: CheckLine| {
        on_line(&l);
        lines.push(l);
    };

    // Cognito side.
    match super::quota_settings(settings, None) {
        Ok(quotas) => push(line(true, "cognito quotas", effective_rates(&quotas))),
        Err(err) => push(line(false, "cognito quotas", format!("{err:#}"))),
    }
    match settings.require_pool() {
        Err(err) => push(line(false, "user pool id", format!("{err:#}"))),
        Ok(pool) => {
            push(line(true, "user pool id", pool));
            let sdk = super::aws_config(settings).await;
            let region = sdk.region().map(|r| r.to_string());
            let credentials = match sdk.credentials_provider() {
                None => Err("no AWS credentials provider configured".to_owned()),
                Some(provider) => provider.provide_credentials().await.map_err(|e| {
                    format!("no AWS credentials found ({e}); set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a role")
                }),
            };
            match credentials {
                Err(err) => push(line(false, "aws credentials", err)),
                Ok(_) => {
                    push(line(true, "aws credentials", "found in the default chain"));
                    // DescribeUserPool proves both that the credentials are accepted and that the pool exists.
                    let reader = CognitoReader::new(
                        &sdk,
                        pool,
                        ReadLimits {
                            retry: RetryPolicy::Capped(2),
                            ..ReadLimits::default()
                        },
                    );
                    match reader.describe_pool().await {
                        Ok(summary) => push(line(
                            true,
                            "cognito pool",
                            format!(
                                "{} {:?} in {}, about {} users",
                                summary.id,
                                summary.name,
                                region.as_deref().unwrap_or("?"),
                                summary.estimated_users
                            ),
                        )),
                        Err(CognitoError::PoolNotFound { pool }) => push(line(
                            false,
                            "cognito pool",
                            format!(
                                "user pool {pool} does not exist in region {}",
                                region.as_deref().unwrap_or("?")
                            ),
                        )),
                        Err(err) => push(line(false, "cognito pool", format!("{err}"))),
                    }
                }
            }
        }
    }

    // Hasura side.
    let hasura = match settings
        .require_hasura()
        .and_then(|h| HasuraClient::with_retries(&h, 1))
    {
        Err(err) => {
            push(line(false, "hasura config", format!("{err:#}")));
            return lines;
        }
        Ok(client) => client,
    };
    push(line(true, "hasura config", hasura.shown_endpoint()));
    match hasura.post::<CheckSchema>(check_schema::Variables {}).await {
        Ok(_) => {
            push(line(true, "hasura access", "the credentials are accepted"));
            push(line(
                true,
                "hasura schema",
                "cognito_users, cognito_groups, cognito_sync_runs, cognito_sync_leases, cognito_sync_requests have every column",
            ));
        }
        Err(err @ HasuraError::Unreachable { .. }) => {
            push(line(false, "hasura access", err.to_string()))
        }
        Err(err)
            if matches!(
                err.code(),
                Some("access-denied" | "invalid-jwt" | "invalid-headers" | "jwt-invalid-claims")
            ) =>
        {
            push(line(false, "hasura access", err.to_string()))
        }
        Err(err) if err.code() == Some("validation-failed") => {
            push(line(true, "hasura access", "the credentials are accepted"));
            push(line(
                false,
                "hasura schema",
                format!(
                    "{err}; apply the migrations and metadata in deploy/hasura (hasura migrate apply && hasura metadata apply)"
                ),
            ));
        }
        Err(err) => push(line(false, "hasura access", err.to_string())),
    }
    lines
}
