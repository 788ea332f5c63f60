//! `check`: verifies, in order, the configuration, AWS credentials, the pool, the mirror's
//! scope, Hasura (reachable, accepting the credentials) and the mirror's tables and columns.
//! One line per check; a failed check says what to do, and the command exits non-zero.

use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::config::ProvideCredentials;

use super::READ_ONLY_HASURA_RETRIES;
use crate::cognito::{CognitoError, CognitoReader, ReadLimits, RetryPolicy};
use crate::config::{HasuraAuth, Settings};
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

/// Runs every check whose prerequisites passed; `on_line` sees each result as it is known.
pub async fn run(settings: &Settings, mut on_line: impl FnMut(&CheckLine)) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    let mut push = |l: CheckLine| {
        on_line(&l);
        lines.push(l);
    };

    // Cognito side.
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
    let (hasura, auth) = match settings.require_hasura().and_then(|h| {
        let client = HasuraClient::with_retries(&h, h.retries.min(READ_ONLY_HASURA_RETRIES))?;
        Ok((client, h.auth))
    }) {
        Err(err) => {
            push(line(false, "hasura config", format!("{err:#}")));
            return lines;
        }
        Ok(built) => built,
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
            push(line(false, "hasura schema", missing_schema(&err, &auth)));
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

/// What to do when Hasura does not show a table or column the worker uses. Hasura hides from
/// a role every table and column it has no select permission on, so for a request that is not
/// admin the likelier cause is the role, not the migrations.
fn missing_schema(err: &HasuraError, auth: &HasuraAuth) -> String {
    match auth {
        HasuraAuth::AdminSecret(_) => format!(
            "{err}; the admin sees no such table or column, so the mirror's schema is not there: apply the migrations and metadata in deploy/hasura (hasura migrate apply && hasura metadata apply)"
        ),
        HasuraAuth::Bearer(_) => format!(
            "{err}; the request runs as the JWT's role (its x-hasura-default-role), and Hasura hides the tables and columns a role may not select: give that role select (and insert/update) permissions on the cognito_* tables in the metadata, or run with HASURA_GRAPHQL_ADMIN_SECRET; if the admin does not see them either, apply the migrations in deploy/hasura"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn a_missing_table_blames_the_role_for_a_jwt_and_the_migrations_for_the_admin() {
        let err = HasuraError::GraphQl {
            operation: "CheckSchema".into(),
            code: "validation-failed".into(),
            path: Some("$.selectionSet.cognito_users".into()),
            message: "field 'cognito_users' not found in type: 'query_root'".into(),
        };
        let jwt = missing_schema(&err, &HasuraAuth::Bearer(Secret::new("t")));
        assert!(
            jwt.contains("the JWT's role")
                && jwt.contains("select")
                && jwt.contains("HASURA_GRAPHQL_ADMIN_SECRET"),
            "{jwt}"
        );
        let admin = missing_schema(&err, &HasuraAuth::AdminSecret(Secret::new("s")));
        assert!(
            admin.contains("hasura migrate apply") && !admin.contains("JWT"),
            "{admin}"
        );
    }
}
