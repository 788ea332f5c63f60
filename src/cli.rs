//! Command line: subcommands and flags (clap derive). The only module that knows clap.
//!
//! Every connection setting can also come from the environment (the variable is named on
//! the flag) or from a `--config` TOML file; [`crate::config`] resolves them, flags first.
//! Tuning flags are optional here so that a config file can set them too; their defaults
//! live in [`crate::config`] and are spelled out in each flag's help. Each `*Args` turns
//! into the plain request its [`crate::commands`] module takes; nothing below this module
//! sees a clap type.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::backfill::BackfillRequest;
use crate::commands::daemon::DaemonRequest;
use crate::commands::jwt_secret::{ClaimsFormat, JwtSecretRequest};
use crate::commands::reconcile::ReconcileRequest;
use crate::commands::sync_user::SyncUserRequest;
use crate::commands::{LeaseRequest, QueueUrls};
use crate::config::{HasuraAuthMode, MachineClientOverrides, Overrides, ScanOverrides, Secret};
use crate::daemon::DaemonOptions;
use crate::daemon::scheduler::{DEFAULT_SCHEDULE, SchedulerOptions, parse_schedule};
use crate::state::lease::process_holder;
use crate::sync::progress::ProgressMode;
use crate::sync::reconcile::{DEFAULT_MAX_DELETE_FRACTION, OnDelete, ReconcileOptions};

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

    /// Retries of a Hasura request that failed retryably (connection, timeout, 5xx), with
    /// backoff [default: 8; `status` and `check` use at most 2 and the daemon at most 3, so
    /// they fail fast].
    #[arg(long, global = true, env = "HASURA_RETRIES", value_name = "N")]
    pub hasura_retries: Option<usize>,

    /// Attributes never copied into the mirror, comma-separated (e.g.
    /// `phone_number,custom:national_id`): they reach neither their column nor `attributes`,
    /// in every mode. `sub` and `username` identify the user and cannot be excluded. After a
    /// change, the next reconcile rewrites exactly the users whose mirrored content changes.
    #[arg(
        long,
        global = true,
        env = "SYNC_EXCLUDE_ATTRIBUTES",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub exclude_attributes: Option<Vec<String>>,

    /// Mirror only these groups, comma-separated: in users' `groups` and in `cognito_groups`
    /// (a group left out is tombstoned by the next reconcile) [default: every group].
    #[arg(
        long,
        global = true,
        env = "SYNC_INCLUDE_GROUPS",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub include_groups: Option<Vec<String>>,

    /// The Hasura role every request runs as (`x-hasura-role`), whatever the credential [default: cognito_sync].
    #[arg(long, global = true, env = "HASURA_ROLE", value_name = "ROLE")]
    pub hasura_role: Option<String>,

    /// Which credential to use [default: the admin secret, a JWT or a machine client, whichever is set].
    #[arg(
        long,
        global = true,
        env = "HASURA_AUTH",
        value_enum,
        value_name = "MODE"
    )]
    pub hasura_auth: Option<HasuraAuthMode>,

    /// client-credentials: the pool domain's token URL, `https://<domain>/oauth2/token`.
    #[arg(
        long,
        global = true,
        env = "COGNITO_TOKEN_ENDPOINT",
        value_name = "URL"
    )]
    pub cognito_token_endpoint: Option<String>,

    /// client-credentials: the machine client's app client id.
    #[arg(long, global = true, env = "COGNITO_CLIENT_ID", value_name = "ID")]
    pub cognito_client_id: Option<String>,

    /// client-credentials: the machine client's secret.
    #[arg(
        long,
        global = true,
        env = "COGNITO_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub cognito_client_secret: Option<String>,

    /// client-credentials: scopes to request, space-separated [default: all the client is allowed].
    #[arg(
        long,
        global = true,
        env = "COGNITO_OAUTH_SCOPES",
        value_name = "SCOPES"
    )]
    pub cognito_oauth_scopes: Option<String>,

    /// Fraction (0, 1] of each Cognito quota category's default rate this process may use;
    /// the rest is left to your application [default: 0.8]. `[cognito.quotas]` in the config
    /// file sets a category's rate absolutely (a raised quota), `--cognito-rps` the UserList one.
    #[arg(long, global = true, env = "SYNC_QUOTA_SHARE", value_name = "FRACTION")]
    pub quota_share: Option<f64>,
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
            .field("exclude_attributes", &self.exclude_attributes)
            .field("include_groups", &self.include_groups)
            .field("hasura_role", &self.hasura_role)
            .field("hasura_auth", &self.hasura_auth)
            .field("cognito_token_endpoint", &self.cognito_token_endpoint)
            .field("cognito_client_id", &self.cognito_client_id)
            .field(
                "cognito_client_secret",
                &redacted(&self.cognito_client_secret),
            )
            .field("cognito_oauth_scopes", &self.cognito_oauth_scopes)
            .field("quota_share", &self.quota_share)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream the whole pool into Hasura; resumes the latest unfinished backfill of the pool.
    Backfill(BackfillArgs),
    /// Show recent runs, mirror counts and (with --queue-url) the queues' depths.
    Status(StatusArgs),
    /// Verify configuration, AWS credentials, the pool, Hasura and its tables.
    Check,
    /// Print the HASURA_GRAPHQL_JWT_SECRET JSON for the pool (no network, no credentials).
    JwtSecret(JwtSecretArgs),
    /// Apply change events from SQS within seconds and run the scheduled reconcile; serves /healthz, /readyz and /metrics.
    Daemon(DaemonArgs),
    /// Diff Cognito against the mirror and write only the difference; tombstones users gone from Cognito.
    Reconcile(ReconcileArgs),
    /// Re-read the named users from Cognito now and write them as the daemon does; prints what changed.
    ///
    /// Each user is read as the daemon reads a user an event names (AdminGetUser, the
    /// ListUsers `sub =` filter, AdminListGroupsForUser, under the daemon's quota limits) and
    /// written through the daemon's guarded write: a user Cognito no longer has is tombstoned,
    /// and a newer read already in the mirror is kept. Prints per user: inserted, updated (with
    /// the changed fields), tombstoned, unchanged, superseded, not found or failed. Exits
    /// non-zero when a user could not be read or written, or is known neither to Cognito nor
    /// to the mirror.
    SyncUser(SyncUserArgs),
    /// Move the dead-letter queue's messages back to the sync queue (after an outage).
    ///
    /// Uses SQS's message move task (StartMessageMoveTask, waiting for it with
    /// ListMessageMoveTasks); where the endpoint has none (emulators), receives, sends to the
    /// sync queue and only then deletes, a batch of 10 at a time. Bodies and message
    /// attributes are kept. Progress is logged every few seconds; Ctrl-C stops after the batch
    /// in flight (a move task keeps running in SQS).
    Redrive(RedriveArgs),
}

impl ConnectionArgs {
    /// What these flags set, for [`crate::config::Settings::load`].
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            user_pool_id: self.user_pool_id.clone(),
            region: self.region.clone(),
            hasura_endpoint: self.hasura_endpoint.clone(),
            hasura_admin_secret: self.hasura_admin_secret.clone().map(Secret::new),
            hasura_jwt: self.hasura_jwt.clone().map(Secret::new),
            hasura_retries: self.hasura_retries,
            exclude_attributes: names(&self.exclude_attributes),
            include_groups: names(&self.include_groups),
            hasura_auth: self.hasura_auth,
            hasura_role: self.hasura_role.clone(),
            machine_client: MachineClientOverrides {
                token_endpoint: self.cognito_token_endpoint.clone(),
                client_id: self.cognito_client_id.clone(),
                client_secret: self.cognito_client_secret.clone().map(Secret::new),
                oauth_scopes: self.cognito_oauth_scopes.clone(),
            },
            quota_share: self.quota_share,
        }
    }
}

/// A comma-separated list as given, `None` when it names nothing (an empty variable is unset).
fn names(list: &Option<Vec<String>>) -> Option<Vec<String>> {
    list.clone()
        .filter(|names| names.iter().any(|name| !name.trim().is_empty()))
}

/// How a whole-pool scan is tuned; `backfill` and `reconcile` share these flags.
#[derive(Debug, Clone, Default, Args)]
pub struct ScanArgs {
    /// Parallel ListUsers scans, split by the first hex digits of `sub`: 1, 16 or 256 [default: 16].
    /// A reconcile splits finer when a shard would hold more than 8,192 users.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// ListUsers + ListUsersInGroup requests per second (Cognito's UserList quota, 30 RPS by
    /// default), used as given [default: 30 × --quota-share = 24].
    #[arg(long, value_name = "RPS")]
    pub cognito_rps: Option<f64>,

    /// Users per Hasura write: upsert, tombstone or delete [default: 500].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// When another scan of the pool (a backfill, a reconcile, the daemon's scheduled
    /// reconcile) holds the pool's lease, wait for it instead of exiting non-zero.
    #[arg(long)]
    pub wait: bool,

    /// Seconds the pool's scan lease outlives its last renewal: after a crash, another scan
    /// may start that long after.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub lease_ttl: u64,
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

impl ScanArgs {
    fn overrides(&self, concurrency: Option<usize>) -> ScanOverrides {
        ScanOverrides {
            shards: self.shards,
            cognito_rps: self.cognito_rps,
            batch_size: self.batch_size,
            concurrency,
        }
    }

    fn lease(&self) -> LeaseRequest {
        LeaseRequest {
            wait: self.wait,
            ttl: Duration::from_secs(self.lease_ttl.max(3)),
        }
    }
}

impl BackfillArgs {
    pub fn request(&self) -> BackfillRequest {
        BackfillRequest {
            scan: self.scan.overrides(self.concurrency),
            lease: self.scan.lease(),
            dry_run: self.dry_run,
            restart: self.restart,
            progress: self.progress,
        }
    }
}

impl ValueEnum for ProgressMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ProgressMode::Auto,
            ProgressMode::Always,
            ProgressMode::Never,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            ProgressMode::Auto => {
                PossibleValue::new("auto").help("A bar when stderr is a terminal")
            }
            ProgressMode::Always => PossibleValue::new("always"),
            ProgressMode::Never => PossibleValue::new("never"),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// How many recent runs to show.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub runs: i64,

    /// Show one run's record instead: status, times, error and its counts by kind
    /// (inserted, updated, tombstoned, scrubbed, unchanged, skipped as bad data, ...).
    #[arg(long, value_name = "ID")]
    pub run: Option<uuid::Uuid>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub queues: QueueArgs,
}

/// The sync queue and its dead-letter queue (`status`, `redrive`).
#[derive(Debug, Clone, Default, Args)]
pub struct QueueArgs {
    /// The sync queue's URL (`status` shows its depth when set).
    #[arg(long, env = "SYNC_SQS_QUEUE_URL", value_name = "URL")]
    pub queue_url: Option<String>,

    /// The dead-letter queue's URL [default: the one the sync queue's RedrivePolicy names].
    #[arg(long, env = "SYNC_SQS_DLQ_URL", value_name = "URL")]
    pub dlq_url: Option<String>,
}

impl QueueArgs {
    pub fn urls(&self) -> QueueUrls {
        QueueUrls {
            queue_url: self.queue_url.clone(),
            dlq_url: self.dlq_url.clone(),
        }
    }
}

/// `sync-user`: re-sync the named users now.
#[derive(Debug, Clone, Args)]
pub struct SyncUserArgs {
    /// Users to sync: a `sub` (a UUID) or a username each.
    #[arg(value_name = "SUB_OR_USERNAME", required_unless_present = "stdin")]
    pub users: Vec<String>,

    /// Also read users from stdin, one a line (blank lines and `#` comments skipped).
    #[arg(long)]
    pub stdin: bool,

    /// Print the differences between Cognito and the mirror; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl SyncUserArgs {
    pub fn request(&self) -> SyncUserRequest {
        SyncUserRequest {
            identifiers: self.users.clone(),
            stdin: self.stdin,
            dry_run: self.dry_run,
        }
    }
}

/// `redrive`: move the dead-letter queue back to the sync queue.
#[derive(Debug, Clone, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub queues: QueueArgs,

    /// Print the report as JSON on stdout.
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

    /// How the claims are encoded: `json` for a V2/V3 trigger whose Lambda writes JSON (`CLAIMS_FORMAT=json`), else `stringified-json` (V1 can only add strings).
    #[arg(long, value_enum, default_value_t = ClaimsFormat::StringifiedJson)]
    pub claims_format: ClaimsFormat,
}

impl JwtSecretArgs {
    pub fn request(&self) -> JwtSecretRequest {
        JwtSecretRequest {
            claims_namespace: self.claims_namespace.clone(),
            audience: self.audience.clone(),
            claims_format: self.claims_format,
        }
    }
}

impl ValueEnum for ClaimsFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[ClaimsFormat::StringifiedJson, ClaimsFormat::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            ClaimsFormat::StringifiedJson => "stringified-json",
            ClaimsFormat::Json => "json",
        }))
    }
}

impl ValueEnum for HasuraAuthMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            HasuraAuthMode::AdminSecret,
            HasuraAuthMode::Jwt,
            HasuraAuthMode::ClientCredentials,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            HasuraAuthMode::AdminSecret => "admin-secret",
            HasuraAuthMode::Jwt => "jwt",
            HasuraAuthMode::ClientCredentials => "client-credentials",
        }))
    }
}

impl ValueEnum for OnDelete {
    fn value_variants<'a>() -> &'a [Self] {
        &[OnDelete::Tombstone, OnDelete::Delete, OnDelete::Scrub]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            OnDelete::Tombstone => "tombstone",
            OnDelete::Delete => "delete",
            OnDelete::Scrub => "scrub",
        }))
    }
}

/// `reconcile`: repair drift between Cognito and the mirror.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// What to do with users (and groups) of the pool that Cognito no longer has.
    /// `tombstone` sets `deleted_at` and keeps the row; `delete` removes the row (and rows
    /// tombstoned by earlier runs); `scrub` tombstones and blanks the personal data
    /// (username, email, phone number, names, attributes) of these and earlier tombstones,
    /// keeping `id`, groups and dates. Only rows read before the scan started are touched.
    #[arg(long, value_enum, default_value_t = OnDelete::Tombstone)]
    pub on_delete: OnDelete,

    /// Safety brake: tombstone nothing (and exit non-zero) when more than this share of the
    /// mirror's live users would be tombstoned, or when Cognito returns no users at all.
    /// Users Cognito does have are still written.
    #[arg(long, default_value_t = DEFAULT_MAX_DELETE_FRACTION, value_name = "FRACTION")]
    pub max_delete_fraction: f64,

    /// Release the safety brake: tombstone however many users Cognito no longer has.
    #[arg(long)]
    pub allow_mass_delete: bool,

    /// Read everything and print the plan, without writing.
    #[arg(long)]
    pub dry_run: bool,

    /// With --dry-run, list the users that would be inserted, updated, revived and tombstoned.
    #[arg(long)]
    pub verbose: bool,

    /// Print the report as JSON on stdout. With --dry-run, first one JSON object per line for
    /// each planned user (`sub`, `username`, `kind`: insert, update, revive, tombstone, delete
    /// or scrub, and `changed`: the names, never the values, of the fields it writes), then
    /// the summary as the last line.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub scan: ScanArgs,
}

impl ReconcileArgs {
    pub fn request(&self) -> ReconcileRequest {
        ReconcileRequest {
            scan: self.scan.overrides(None),
            lease: self.scan.lease(),
            on_delete: self.on_delete,
            max_delete_fraction: self.max_delete_fraction,
            allow_mass_delete: self.allow_mass_delete,
            dry_run: self.dry_run,
            review: self.dry_run && self.json,
        }
    }
}

/// `daemon`: apply change events from SQS within seconds.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// The sync queue's URL.
    #[arg(long, env = "SYNC_SQS_QUEUE_URL", value_name = "URL")]
    pub queue_url: String,

    /// Concurrent receive loops.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub pollers: usize,

    /// Address of the /healthz, /readyz and /metrics listener.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Seconds a received message stays invisible while its batch is applied.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub visibility_timeout: u32,

    /// Seconds to finish the batches in flight after SIGTERM (ECS's stop timeout is 30).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub shutdown_timeout: u64,

    /// Long-poll wait of one receive, 0 to 20 seconds.
    #[arg(long, default_value_t = 20, value_name = "SECONDS")]
    pub wait_time: u32,

    /// Messages per receive, 1 to 10.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub batch_size: u32,

    /// ListUsers + ListUsersInGroup requests per second of the whole process, consumer and
    /// scheduled reconcile together (Cognito's UserList quota, 30 RPS by default, is shared
    /// with every tool of the account), used as given [default: 30 × --quota-share = 24].
    #[arg(long, value_name = "RPS")]
    pub cognito_rps: Option<f64>,

    /// First retry delay of a message that failed; doubles with each receive.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub retry_backoff: u64,

    /// Longest retry delay. With the queue's maxReceiveCount it bounds how long a dependency
    /// may be down before messages reach the dead-letter queue.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub retry_backoff_max: u64,

    /// Consecutive failed batches after which /readyz answers 503.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub unready_after: u32,

    /// Seconds between queue backlog and Hasura probes.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub probe_interval: u64,

    /// Seconds over which requests for an early reconcile are folded into one.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub reconcile_debounce: u64,

    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// The daemon's flags for the scheduled reconcile.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// When to reconcile, as cron in UTC: five fields (`min hour day month weekday`, e.g.
    /// `*/15 * * * *` for every 15 minutes) or six with seconds first (`0 */15 * * * *`); `off`
    /// disables the scheduled runs (early reconcile requests are still served).
    #[arg(long, env = "RECONCILE_SCHEDULE", default_value = DEFAULT_SCHEDULE, value_name = "CRON")]
    pub reconcile_schedule: String,

    /// How long the reconcile lease outlives its last renewal: another replica takes over
    /// that long after the holder died.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub reconcile_lease_ttl: u64,

    /// What the scheduled reconcile does with users Cognito no longer has (as `reconcile
    /// --on-delete`).
    #[arg(long, env = "RECONCILE_ON_DELETE", value_enum, default_value_t = OnDelete::Tombstone, value_name = "ACTION")]
    pub reconcile_on_delete: OnDelete,

    /// The scheduled reconcile's safety brake (as `reconcile --max-delete-fraction`). Nothing
    /// releases it unattended: a braked run is logged and counted, and waits for a person
    /// to run `reconcile --allow-mass-delete`.
    #[arg(
        long,
        env = "RECONCILE_MAX_DELETE_FRACTION",
        default_value_t = DEFAULT_MAX_DELETE_FRACTION,
        value_name = "FRACTION"
    )]
    pub reconcile_max_delete_fraction: f64,
}

impl DaemonArgs {
    /// The daemon's request; the schedule is parsed here, the rest validated by the command.
    pub fn request(&self) -> anyhow::Result<DaemonRequest> {
        let schedule = &self.schedule;
        Ok(DaemonRequest {
            listen: self.listen,
            cognito_rps: self.cognito_rps,
            options: DaemonOptions {
                queue_url: self.queue_url.clone(),
                pollers: self.pollers,
                visibility_timeout_seconds: i32::try_from(self.visibility_timeout)
                    .unwrap_or(i32::MAX),
                shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
                wait_time_seconds: i32::try_from(self.wait_time).unwrap_or(i32::MAX),
                batch_size: i32::try_from(self.batch_size).unwrap_or(i32::MAX),
                retry_backoff: Duration::from_secs(self.retry_backoff),
                retry_backoff_max: Duration::from_secs(self.retry_backoff_max),
                unready_after: self.unready_after.max(1),
                probe_interval: Duration::from_secs(self.probe_interval.max(1)),
                reconcile_debounce: Duration::from_secs(self.reconcile_debounce),
                scheduler: SchedulerOptions {
                    schedule: parse_schedule(&schedule.reconcile_schedule)?,
                    lease_ttl: Duration::from_secs(schedule.reconcile_lease_ttl.max(3)),
                    holder: process_holder(),
                    // Unattended: the brake is never released (see the flag's help).
                    reconcile: ReconcileOptions {
                        on_delete: schedule.reconcile_on_delete,
                        max_delete_fraction: schedule.reconcile_max_delete_fraction,
                        allow_mass_delete: false,
                        ..ReconcileOptions::default()
                    },
                },
            },
        })
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

    fn parse(args: &[&str]) -> Command {
        let mut argv = vec!["cognito-hasura-sync"];
        argv.extend(args);
        Cli::try_parse_from(argv).unwrap().command
    }

    fn daemon_request(flags: &[&str]) -> anyhow::Result<DaemonRequest> {
        let mut args = vec!["daemon"];
        if !flags.contains(&"--queue-url") {
            args.extend(["--queue-url", "http://q"]);
        }
        args.extend(flags);
        match parse(&args) {
            Command::Daemon(args) => args.request(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn daemon_flags_do_not_clash_with_the_global_ones() {
        let cli = Cli::try_parse_from([
            "x",
            "daemon",
            "--queue-url",
            "http://q",
            "--user-pool-id",
            "us-east-1_abc",
            "--pollers",
            "4",
        ])
        .unwrap();
        let Command::Daemon(args) = cli.command else {
            panic!("not the daemon");
        };
        assert_eq!(args.pollers, 4);
        assert_eq!(
            cli.connection.user_pool_id.as_deref(),
            Some("us-east-1_abc")
        );
    }

    #[test]
    fn daemon_defaults_and_backoff() {
        let request = daemon_request(&[]).unwrap();
        assert_eq!(request.listen.to_string(), "0.0.0.0:8080");
        let options = request.options;
        options.validate().unwrap();
        assert_eq!(options.pollers, 2);
        assert_eq!(options.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(options.wait_time_seconds, 20);
        assert_eq!(options.batch_size, 10);
        assert_eq!(options.backoff(1), Duration::from_secs(5));
        assert_eq!(options.backoff(3), Duration::from_secs(20));
        assert_eq!(options.backoff(30), Duration::from_secs(300));
        let reconcile = options.scheduler.reconcile;
        assert_eq!(reconcile.on_delete, OnDelete::Tombstone);
        assert_eq!(reconcile.max_delete_fraction, 0.1);
        assert!(!reconcile.allow_mass_delete);
    }

    #[test]
    fn the_scheduled_reconcile_takes_its_delete_policy_but_never_releases_the_brake() {
        let reconcile = daemon_request(&[
            "--reconcile-on-delete",
            "scrub",
            "--reconcile-max-delete-fraction",
            "0.25",
        ])
        .unwrap()
        .options
        .scheduler
        .reconcile;
        assert_eq!(reconcile.on_delete, OnDelete::Scrub);
        assert_eq!(reconcile.max_delete_fraction, 0.25);
        assert!(!reconcile.allow_mass_delete);
    }

    #[test]
    fn out_of_range_daemon_settings_are_refused() {
        for flags in [
            ["--batch-size", "11"],
            ["--wait-time", "21"],
            ["--pollers", "0"],
            ["--retry-backoff", "0"],
            ["--queue-url", " "],
            ["--reconcile-max-delete-fraction", "1.5"],
        ] {
            let refused = daemon_request(&flags).and_then(|r| r.options.validate());
            assert!(refused.is_err(), "{flags:?}");
        }
        assert!(daemon_request(&["--reconcile-schedule", "every hour"]).is_err());
    }

    #[test]
    fn sync_user_needs_a_user_or_stdin() {
        assert!(Cli::try_parse_from(["x", "sync-user"]).is_err());
        let Command::SyncUser(args) = parse(&["sync-user", "alice", "bob", "--dry-run"]) else {
            panic!("not sync-user");
        };
        let request = args.request();
        assert_eq!(request.identifiers, ["alice", "bob"]);
        assert!(request.dry_run && !request.stdin);
        let Command::SyncUser(args) = parse(&["sync-user", "--stdin"]) else {
            panic!("not sync-user");
        };
        assert!(args.request().stdin && args.request().identifiers.is_empty());
    }

    #[test]
    fn redrive_takes_the_queues_from_flags() {
        let Command::Redrive(args) = parse(&["redrive", "--queue-url", "q", "--dlq-url", "d"])
        else {
            panic!("not redrive");
        };
        let urls = args.queues.urls();
        assert_eq!(urls.queue_url.as_deref(), Some("q"));
        assert_eq!(urls.dlq_url.as_deref(), Some("d"));
    }

    #[test]
    fn reconcile_flags_parse_with_their_defaults() {
        let Command::Reconcile(args) = parse(&["reconcile"]) else {
            panic!("not reconcile");
        };
        assert_eq!(args.on_delete, OnDelete::Tombstone);
        assert_eq!(args.max_delete_fraction, DEFAULT_MAX_DELETE_FRACTION);
        assert!(!args.allow_mass_delete && !args.dry_run);
        let Command::Reconcile(args) = parse(&[
            "reconcile",
            "--on-delete",
            "scrub",
            "--max-delete-fraction",
            "0.25",
            "--allow-mass-delete",
            "--dry-run",
            "--json",
            "--shards",
            "256",
        ]) else {
            panic!("not reconcile");
        };
        let request = args.request();
        assert_eq!(request.on_delete, OnDelete::Scrub);
        assert_eq!(request.max_delete_fraction, 0.25);
        assert_eq!(request.scan.shards, Some(256));
        assert!(request.allow_mass_delete && request.dry_run);
        assert!(Cli::try_parse_from(["x", "reconcile", "--on-delete", "purge"]).is_err());
        let help = Cli::command()
            .find_subcommand_mut("reconcile")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("blanks the personal data"), "{help}");
    }

    #[test]
    fn scope_flags_are_comma_separated_and_global() {
        let cli = Cli::try_parse_from([
            "x",
            "reconcile",
            "--exclude-attributes",
            "phone_number,custom:ssn",
            "--include-groups",
            "",
        ])
        .unwrap();
        let overrides = cli.connection.overrides();
        assert_eq!(
            overrides.exclude_attributes,
            Some(vec!["phone_number".to_owned(), "custom:ssn".to_owned()])
        );
        assert_eq!(
            overrides.include_groups, None,
            "an empty list names nothing"
        );
        let Command::Status(args) =
            parse(&["status", "--run", "00000000-0000-4000-8000-000000000001"])
        else {
            panic!("not status");
        };
        assert!(args.run.is_some());
        assert!(Cli::try_parse_from(["x", "status", "--run", "yesterday"]).is_err());
    }
}
