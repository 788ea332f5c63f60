//! Command line: subcommands and flags (clap derive).
//!
//! Every connection setting can also come from the environment (the variable is named on
//! the flag) or from a `--config` TOML file; [`crate::config`] resolves them, flags first.
//! Tuning flags are optional here so that a config file can set them too; their defaults
//! live in [`crate::config`] and are spelled out in each flag's help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keeps a Hasura (GraphQL over PostgreSQL) mirror of an AWS Cognito user pool.
///
/// AWS credentials come from the default chain (environment, profile, SSO, container or
/// instance role); `AWS_REGION` and `AWS_ENDPOINT_URL` are honoured as by every AWS tool.
#[derive(Debug, Parser)]
#[command(name = "cognito-hasura-sync", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the pool and the mirror are; shared by every subcommand.
#[derive(Clone, Default, Args)]
pub struct ConnectionArgs {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(
        long,
        global = true,
        env = "COGNITO_HASURA_SYNC_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// The Cognito user pool to mirror, e.g. `eu-west-1_AbCdEf123`.
    #[arg(long, global = true, env = "COGNITO_USER_POOL_ID", value_name = "ID")]
    pub user_pool_id: Option<String>,

    /// AWS region of the pool [default: from the AWS configuration, else the pool id's prefix].
    #[arg(long, global = true, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// Hasura GraphQL endpoint: the full URL ending in `/v1/graphql`.
    #[arg(
        long,
        global = true,
        env = "HASURA_GRAPHQL_ENDPOINT",
        value_name = "URL"
    )]
    pub hasura_endpoint: Option<String>,

    /// Hasura admin secret, sent as `x-hasura-admin-secret`.
    #[arg(
        long,
        global = true,
        env = "HASURA_GRAPHQL_ADMIN_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub hasura_admin_secret: Option<String>,

    /// A JWT sent as `Authorization: Bearer` instead of the admin secret.
    #[arg(
        long,
        global = true,
        env = "HASURA_GRAPHQL_JWT",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub hasura_jwt: Option<String>,

    /// Retries of a Hasura request that failed retryably (connection, timeout, 5xx) [default: 8].
    #[arg(long, global = true, value_name = "N")]
    pub hasura_retries: Option<usize>,
}

impl std::fmt::Debug for ConnectionArgs {
    // Hand-written so that secrets never reach a log line or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("ConnectionArgs")
            .field("config", &self.config)
            .field("user_pool_id", &self.user_pool_id)
            .field("region", &self.region)
            .field("hasura_endpoint", &self.hasura_endpoint)
            .field("hasura_admin_secret", &redacted(&self.hasura_admin_secret))
            .field("hasura_jwt", &redacted(&self.hasura_jwt))
            .field("hasura_retries", &self.hasura_retries)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream the whole pool into Hasura; resumes the latest unfinished backfill of the pool.
    Backfill(BackfillArgs),
    /// Show recent runs and mirror counts.
    Status(StatusArgs),
    /// Verify configuration, AWS credentials, the pool, Hasura and its tables.
    Check,
    /// Print the HASURA_GRAPHQL_JWT_SECRET JSON for the pool (no network, no credentials).
    JwtSecret(JwtSecretArgs),
    /// Apply change events from SQS within seconds and run the scheduled reconcile; serves /healthz, /readyz and /metrics.
    Daemon(crate::daemon::DaemonArgs),
    /// Diff Cognito against the mirror and write only the difference; tombstones users gone from Cognito.
    Reconcile(crate::sync::reconcile::ReconcileArgs),
}

/// How a whole-pool scan is tuned; `backfill` and `reconcile` share these flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ScanArgs {
    /// Parallel ListUsers scans, split by the first hex digits of `sub`: 1, 16 or 256 [default: 16].
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Cognito read requests per second over all scans [default: 25, under the 30 RPS ListUsers quota].
    #[arg(long, value_name = "RPS")]
    pub cognito_rps: Option<f64>,

    /// Users per Hasura write: upsert, tombstone or delete [default: 500].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// Hasura write requests in flight at once [default: 4].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Read everything and report what would change, without writing.
    #[arg(long)]
    pub dry_run: bool,

    /// Start over instead of resuming; the unfinished run is marked aborted.
    #[arg(long)]
    pub restart: bool,

    /// Print the final summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// When to draw a progress bar (otherwise a log line every few seconds).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// How many recent runs to show.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub runs: i64,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct JwtSecretArgs {
    /// Where Hasura finds its claims in the token [default: Hasura's `https://hasura.io/jwt/claims`].
    #[arg(long, value_name = "KEY")]
    pub claims_namespace: Option<String>,

    /// The app client id the tokens are for (checked against `aud`).
    #[arg(long, value_name = "CLIENT_ID")]
    pub audience: Option<String>,

    /// How the claims are encoded: Pre Token Generation V1 can only add strings.
    #[arg(long, value_enum, default_value_t = ClaimsFormat::StringifiedJson)]
    pub claims_format: ClaimsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClaimsFormat {
    StringifiedJson,
    Json,
}

impl ClaimsFormat {
    /// The value Hasura expects in `claims_format`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimsFormat::StringifiedJson => "stringified_json",
            ClaimsFormat::Json => "json",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_never_shows_secret_values() {
        // SAFETY: no other test of this binary reads or writes these variables.
        unsafe {
            std::env::set_var("HASURA_GRAPHQL_ADMIN_SECRET", "s3cr3t-from-env");
            std::env::set_var("HASURA_GRAPHQL_JWT", "jwt-from-env");
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("HASURA_GRAPHQL_ADMIN_SECRET"), "{help}");
        assert!(!help.contains("s3cr3t-from-env"), "{help}");
        assert!(!help.contains("jwt-from-env"), "{help}");
    }

    #[test]
    fn global_flags_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "cognito-hasura-sync",
            "backfill",
            "--user-pool-id",
            "us-east-1_abc",
            "--shards",
            "256",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(
            cli.connection.user_pool_id.as_deref(),
            Some("us-east-1_abc")
        );
        match cli.command {
            Command::Backfill(args) => {
                assert_eq!(args.scan.shards, Some(256));
                assert!(args.dry_run);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
