//! Settings resolved from flags, environment and an optional TOML file, flags winning.
//!
//! clap already folds each flag's environment variable into the flag, so the order is:
//! flag, then environment, then `--config` file, then the documented default. Secrets are
//! held in [`Secret`], whose `Debug` never shows the value.
//!
//! ```toml
//! user_pool_id = "eu-west-1_AbCdEf123"
//! region = "eu-west-1"
//!
//! [hasura]
//! endpoint = "https://hasura.example.com/v1/graphql"
//! admin_secret = "..."        # or jwt = "..."
//! retries = 8
//!
//! [backfill]
//! shards = 16
//! batch_size = 500
//! concurrency = 4
//!
//! [cognito]
//! quota_share = 0.8           # of every quota category's default rate
//!
//! [cognito.quotas]            # absolute requests per second, e.g. a raised quota
//! UserRead = 200
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Default parallel ListUsers scans.
pub const DEFAULT_SHARDS: usize = 16;
/// Default users per Hasura upsert.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Default Hasura write requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Largest upsert accepted: bigger requests only risk Hasura's body limit and long transactions.
pub const MAX_BATCH_SIZE: usize = 5000;
/// Default retries of a Hasura request that failed retryably.
pub const DEFAULT_HASURA_RETRIES: usize = 8;

/// What the command line (a flag or its environment variable) sets; `None` where it is silent.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The TOML file to read the rest from.
    pub config: Option<PathBuf>,
    pub user_pool_id: Option<String>,
    pub region: Option<String>,
    pub hasura_endpoint: Option<String>,
    pub hasura_admin_secret: Option<Secret>,
    pub hasura_jwt: Option<Secret>,
    pub hasura_retries: Option<usize>,
    /// The fraction of every Cognito quota category this process may use.
    pub quota_share: Option<f64>,
}

/// A scan's tuning as the command line sets it; `None` where it is silent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOverrides {
    pub shards: Option<usize>,
    pub cognito_rps: Option<f64>,
    pub batch_size: Option<usize>,
    pub concurrency: Option<usize>,
}

/// `url` with any credentials in it (`https://user:password@host/...`) replaced by `***`, for
/// logs and messages: an endpoint is never printed whole.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// A credential: shown as `<redacted>` by `Debug`, read only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests to Hasura authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HasuraAuth {
    /// `x-hasura-admin-secret`.
    AdminSecret(Secret),
    /// `Authorization: Bearer <jwt>`.
    Bearer(Secret),
}

/// Where Hasura is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HasuraSettings {
    /// The full GraphQL URL, ending in `/v1/graphql`.
    pub endpoint: String,
    pub auth: HasuraAuth,
    /// Retries of a retryable failure.
    pub retries: usize,
}

/// Connection settings shared by every subcommand. Each is optional here: a subcommand asks
/// for what it needs with the `require_*` methods, which say how to set what is missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub user_pool_id: Option<String>,
    /// Set explicitly; otherwise the AWS configuration decides, then the pool id's prefix.
    pub region: Option<String>,
    pub hasura_endpoint: Option<String>,
    pub hasura_admin_secret: Option<Secret>,
    pub hasura_jwt: Option<Secret>,
    /// Retries of a retryable Hasura failure.
    pub hasura_retries: usize,
    /// The `[backfill]` table of the config file, for [`ScanSettings::resolve`].
    pub backfill_file: BackfillFile,
    /// `--quota-share` (or `SYNC_QUOTA_SHARE`), else `[cognito] quota_share`; `None`: the
    /// default share.
    pub quota_share: Option<f64>,
    /// `[cognito.quotas]`: requests per second by quota category name, used as given.
    pub quota_rates: BTreeMap<String, f64>,
}

/// Tuning of a whole-pool scan (backfill or reconcile), defaults applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanSettings {
    pub shards: usize,
    /// `--cognito-rps` or `[backfill] cognito_rps`: the `UserList` rate, used as given;
    /// `None` leaves it to the quota settings.
    pub cognito_rps: Option<f64>,
    pub batch_size: usize,
    pub concurrency: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    user_pool_id: Option<String>,
    region: Option<String>,
    #[serde(default)]
    hasura: HasuraFile,
    #[serde(default)]
    backfill: BackfillFile,
    #[serde(default)]
    cognito: CognitoFile,
}

/// The `[cognito]` table of a config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CognitoFile {
    quota_share: Option<f64>,
    #[serde(default)]
    quotas: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HasuraFile {
    endpoint: Option<String>,
    admin_secret: Option<Secret>,
    jwt: Option<Secret>,
    retries: Option<usize>,
}

/// The `[backfill]` table of a config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillFile {
    shards: Option<usize>,
    cognito_rps: Option<f64>,
    batch_size: Option<usize>,
    concurrency: Option<usize>,
}

impl Settings {
    /// Resolves the connection flags (environment already folded in by clap) over the
    /// `--config` file, if any.
    pub fn load(args: &Overrides) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Ok(Self::merge(args, file))
    }

    /// Resolves from a config file's text instead of a path (used by tests).
    pub fn from_toml(args: &Overrides, text: &str) -> anyhow::Result<Self> {
        let file: FileConfig = toml::from_str(text).context("invalid config file")?;
        Ok(Self::merge(args, file))
    }

    fn merge(args: &Overrides, file: FileConfig) -> Self {
        let nonempty = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
        let nonempty_secret =
            |v: &Option<Secret>| v.as_ref().filter(|s| !s.0.trim().is_empty()).cloned();
        Settings {
            user_pool_id: nonempty(&args.user_pool_id).or(file.user_pool_id),
            region: nonempty(&args.region).or(file.region),
            hasura_endpoint: nonempty(&args.hasura_endpoint).or(file.hasura.endpoint),
            hasura_admin_secret: nonempty_secret(&args.hasura_admin_secret)
                .or(file.hasura.admin_secret),
            hasura_jwt: nonempty_secret(&args.hasura_jwt).or(file.hasura.jwt),
            hasura_retries: args
                .hasura_retries
                .or(file.hasura.retries)
                .unwrap_or(DEFAULT_HASURA_RETRIES),
            backfill_file: file.backfill,
            quota_share: args.quota_share.or(file.cognito.quota_share),
            quota_rates: file.cognito.quotas,
        }
    }

    /// The pool id, or an error saying how to set it.
    pub fn require_pool(&self) -> anyhow::Result<&str> {
        match self.user_pool_id.as_deref() {
            Some(pool) => Ok(pool),
            None => bail!("no user pool configured: set --user-pool-id or COGNITO_USER_POOL_ID"),
        }
    }

    /// The region explicitly configured, else the one a pool id starts with (`eu-west-1_...`).
    pub fn region_or_pool_prefix(&self) -> Option<String> {
        self.region.clone().or_else(|| {
            self.user_pool_id
                .as_deref()
                .and_then(|pool| pool.split_once('_'))
                .map(|(region, _)| region.to_owned())
                .filter(|region| !region.is_empty())
        })
    }

    /// Hasura's endpoint and credentials, or an error saying what is missing.
    pub fn require_hasura(&self) -> anyhow::Result<HasuraSettings> {
        let Some(endpoint) = self.hasura_endpoint.clone() else {
            bail!(
                "no Hasura endpoint configured: set --hasura-endpoint or HASURA_GRAPHQL_ENDPOINT (the full /v1/graphql URL)"
            );
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bail!(
                "Hasura endpoint {:?} is not an http(s) URL",
                redacted_url(&endpoint)
            );
        }
        let auth = match (&self.hasura_admin_secret, &self.hasura_jwt) {
            (Some(secret), _) => HasuraAuth::AdminSecret(secret.clone()),
            (None, Some(jwt)) => HasuraAuth::Bearer(jwt.clone()),
            (None, None) => bail!(
                "no Hasura credentials configured: set --hasura-admin-secret or HASURA_GRAPHQL_ADMIN_SECRET (or HASURA_GRAPHQL_JWT)"
            ),
        };
        Ok(HasuraSettings {
            endpoint,
            auth,
            retries: self.hasura_retries,
        })
    }
}

impl ScanSettings {
    /// Flags over the config file over the defaults, validated.
    pub fn resolve(args: &ScanOverrides, file: &BackfillFile) -> anyhow::Result<Self> {
        let settings = ScanSettings {
            shards: args.shards.or(file.shards).unwrap_or(DEFAULT_SHARDS),
            cognito_rps: args.cognito_rps.or(file.cognito_rps),
            batch_size: args
                .batch_size
                .or(file.batch_size)
                .unwrap_or(DEFAULT_BATCH_SIZE),
            concurrency: args
                .concurrency
                .or(file.concurrency)
                .unwrap_or(DEFAULT_CONCURRENCY),
        };
        if !matches!(settings.shards, 1 | 16 | 256) {
            bail!("--shards must be 1, 16 or 256, not {}", settings.shards);
        }
        if let Some(rps) = settings.cognito_rps
            && !(rps.is_finite() && rps > 0.0)
        {
            bail!("--cognito-rps must be a positive number, not {rps}");
        }
        if !(1..=MAX_BATCH_SIZE).contains(&settings.batch_size) {
            bail!(
                "--batch-size must be between 1 and {MAX_BATCH_SIZE}, not {}",
                settings.batch_size
            );
        }
        if !(1..=64).contains(&settings.concurrency) {
            bail!(
                "--concurrency must be between 1 and 64, not {}",
                settings.concurrency
            );
        }
        Ok(settings)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        user_pool_id = "eu-west-1_FromFile"
        [hasura]
        endpoint = "http://file:8080/v1/graphql"
        admin_secret = "file-secret"
        [backfill]
        shards = 256
        batch_size = 1000
    "#;

    #[test]
    fn flags_win_over_the_file() {
        let args = Overrides {
            user_pool_id: Some("us-east-1_FromFlag".into()),
            hasura_admin_secret: Some(Secret::new("flag-secret")),
            ..Default::default()
        };
        let settings = Settings::from_toml(&args, FILE).unwrap();
        assert_eq!(settings.require_pool().unwrap(), "us-east-1_FromFlag");
        let hasura = settings.require_hasura().unwrap();
        assert_eq!(hasura.endpoint, "http://file:8080/v1/graphql");
        assert_eq!(
            hasura.auth,
            HasuraAuth::AdminSecret(Secret::new("flag-secret"))
        );
        assert_eq!(
            settings.region_or_pool_prefix().as_deref(),
            Some("us-east-1")
        );

        let backfill = ScanSettings::resolve(
            &ScanOverrides {
                batch_size: Some(700),
                ..Default::default()
            },
            &settings.backfill_file,
        )
        .unwrap();
        assert_eq!(backfill.shards, 256);
        assert_eq!(backfill.batch_size, 700);
        assert_eq!(backfill.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(backfill.cognito_rps, None);
    }

    #[test]
    fn missing_settings_say_how_to_set_them() {
        let settings = Settings::from_toml(&Overrides::default(), "").unwrap();
        assert!(
            settings
                .require_pool()
                .unwrap_err()
                .to_string()
                .contains("COGNITO_USER_POOL_ID")
        );
        assert!(
            settings
                .require_hasura()
                .unwrap_err()
                .to_string()
                .contains("HASURA_GRAPHQL_ENDPOINT")
        );
        let no_secret = Settings {
            hasura_endpoint: Some("http://h/v1/graphql".into()),
            ..settings
        };
        assert!(
            no_secret
                .require_hasura()
                .unwrap_err()
                .to_string()
                .contains("HASURA_GRAPHQL_ADMIN_SECRET")
        );
    }

    #[test]
    fn urls_are_printed_without_their_credentials() {
        assert_eq!(
            redacted_url("https://admin:s3cret@hasura.example.com/v1/graphql"),
            "https://***@hasura.example.com/v1/graphql"
        );
        assert_eq!(
            redacted_url("http://h:8080/v1/graphql?a=b@c"),
            "http://h:8080/v1/graphql?a=b@c"
        );
        assert_eq!(redacted_url("not a url"), "not a url");
        let settings = Settings {
            hasura_endpoint: Some("ftp://user:pw@h/x".into()),
            hasura_admin_secret: Some(Secret::new("s")),
            ..Settings::default()
        };
        let err = settings.require_hasura().unwrap_err().to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let args = Overrides {
            hasura_jwt: Some(Secret::new("eyJ-secret-token")),
            ..Default::default()
        };
        let settings = Settings::from_toml(&args, FILE).unwrap();
        let shown = format!(
            "{settings:?} {:?} {args:?}",
            settings.require_hasura().unwrap()
        );
        assert!(!shown.contains("file-secret"), "{shown}");
        assert!(!shown.contains("eyJ-secret-token"), "{shown}");
    }

    #[test]
    fn invalid_tuning_and_unknown_keys_are_rejected() {
        for args in [
            ScanOverrides {
                shards: Some(8),
                ..Default::default()
            },
            ScanOverrides {
                batch_size: Some(0),
                ..Default::default()
            },
            ScanOverrides {
                concurrency: Some(0),
                ..Default::default()
            },
            ScanOverrides {
                cognito_rps: Some(0.0),
                ..Default::default()
            },
        ] {
            assert!(
                ScanSettings::resolve(&args, &BackfillFile::default()).is_err(),
                "{args:?}"
            );
        }
        assert!(Settings::from_toml(&Overrides::default(), "user_pool = \"x\"").is_err());
    }
}
