//! `check`: verifies, in order, the configuration, AWS credentials, the pool, the mirror's
//! scope, Hasura (reachable, accepting the credentials) and the mirror's tables and columns.
//! One line per check; a failed check says what to do, and the command exits non-zero.

use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::config::ProvideCredentials;

use super::READ_ONLY_HASURA_RETRIES;
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
                    push(pool_line(settings, &sdk, pool, region.as_deref()).await);
                }
            }
        }
    }

    // What the mirror holds: every mode reads within this scope.
    match super::mirror_scope(settings) {
        Ok(scope) => push(line(true, "mirror scope", scope.to_string())),
        Err(err) => push(line(false, "mirror scope", format!("{err:#}"))),
    }

    // Hasura side.
    let (hasura, role) = match settings.require_hasura().and_then(|h| {
        let client = HasuraClient::with_retries(&h, h.retries.min(READ_ONLY_HASURA_RETRIES))?;
        Ok((client, h.role))
    }) {
        Err(err) => {
            push(line(false, "hasura config", format!("{err:#}")));
            return lines;
        }
        Ok(built) => built,
    };
    push(line(
        true,
        "hasura config",
        format!("{} as role {role}", hasura.shown_endpoint()),
    ));
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
            push(line(false, "hasura schema", missing_schema(&err, &role)));
        }
        Err(err) => push(line(false, "hasura access", err.to_string())),
    }
    lines
}

/// The pool's line: in the region the SDK calls (the pool id's own region, or an error saying
/// to set it), DescribeUserPool proves both that the credentials are accepted and that the pool
/// exists.
async fn pool_line(
    settings: &Settings,
    sdk: &SdkConfig,
    pool: &str,
    region: Option<&str>,
) -> CheckLine {
    if let Err(err) = settings.require_pool_region(region) {
        return line(false, "cognito pool", format!("{err:#}"));
    }
    let reader = CognitoReader::new(
        sdk,
        pool,
        ReadLimits {
            retry: RetryPolicy::Capped(2),
            ..ReadLimits::default()
        },
    );
    let region = region.unwrap_or("?");
    match reader.describe_pool().await {
        Ok(summary) => line(
            true,
            "cognito pool",
            format!(
                "{} {:?} in {region}, about {} users",
                summary.id, summary.name, summary.estimated_users
            ),
        ),
        Err(CognitoError::PoolNotFound { pool }) => line(
            false,
            "cognito pool",
            format!(
                "user pool {pool} does not exist in region {region} for these credentials: check COGNITO_USER_POOL_ID and that the credentials are of the pool's account"
            ),
        ),
        Err(err) => line(false, "cognito pool", format!("{err}")),
    }
}

/// What to do when Hasura does not show a table or column the worker uses. Every request
/// runs as the configured role (`x-hasura-role`), and Hasura hides from a role every table and
/// column it may not select, so unless that role is `admin` the cause may be the role's
/// permissions as well as the migrations.
fn missing_schema(err: &HasuraError, role: &str) -> String {
    const ADOPT: &str = "apply the migration (hasura migrate apply --project deploy/hasura) and merge the tables' metadata as deploy/hasura/ADOPTING.md describes (not `hasura metadata apply`, which replaces a server's own metadata)";
    if role == "admin" {
        format!(
            "{err}; the admin sees no such table or column, so the mirror's schema is not there: {ADOPT}"
        )
    } else {
        format!(
            "{err}; requests run as the role {role:?} (HASURA_ROLE), and Hasura hides the tables and columns a role may not select: either the mirror's schema is not there ({ADOPT}), or the metadata lacks the {role:?} permissions on the cognito_* tables that deploy/hasura defines; `check` with HASURA_ROLE=admin and the admin secret tells the two apart"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_table_blames_the_role_or_the_migrations_for_a_role_and_the_migrations_for_the_admin()
     {
        let err = HasuraError::GraphQl {
            operation: "CheckSchema".into(),
            code: "validation-failed".into(),
            path: Some("$.selectionSet.cognito_users".into()),
            message: "field 'cognito_users' not found in type: 'query_root'".into(),
        };
        let role = missing_schema(&err, "cognito_sync");
        assert!(
            role.contains("\"cognito_sync\" (HASURA_ROLE)")
                && role.contains("permissions")
                && role.contains("ADOPTING.md"),
            "{role}"
        );
        let admin = missing_schema(&err, "admin");
        assert!(
            admin.contains("hasura migrate apply")
                && admin.contains("ADOPTING.md")
                && !admin.contains("permissions"),
            "{admin}"
        );
    }
}
