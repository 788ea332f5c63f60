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
//! cognito_rps = 25.0
//! batch_size = 500
//! concurrency = 4
//!
//! [mirror]
//! exclude_attributes = ["phone_number", "custom:national_id"]
//! include_groups = ["admins", "staff"]   # omit for every group
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// Default parallel ListUsers scans.
pub const DEFAULT_SHARDS: usize = 16;
/// Default Cognito read rate: under the 30 RPS ListUsers/ListUsersInGroup account quota.
pub const DEFAULT_COGNITO_RPS: f64 = 25.0;
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
    /// Attributes left out of the mirror.
    pub exclude_attributes: Option<Vec<String>>,
    /// The only groups mirrored.
    pub include_groups: Option<Vec<String>>,
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

/// The path Hasura serves its GraphQL API at.
pub const HASURA_GRAPHQL_PATH: &str = "/v1/graphql";

/// The endpoint a Hasura URL most likely should have been (credentials redacted), when its
/// path is one Hasura never serves GraphQL at but a near miss of it: none (`https://host`),
/// `/`, `/v1` or a trailing slash (`/v1/graphql/`). `None` for `/v1/graphql` and for any other
/// path, which a proxy in front of Hasura may serve GraphQL at.
pub fn likely_hasura_endpoint(endpoint: &str) -> Option<String> {
    let shown = redacted_url(endpoint);
    let (scheme, rest) = shown.split_once("://")?;
    let path_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_start);
    if path.contains(['?', '#']) {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    let fixed = match trimmed {
        "" | "/v1" => HASURA_GRAPHQL_PATH.to_owned(),
        _ if trimmed.ends_with(HASURA_GRAPHQL_PATH) && trimmed != path => trimmed.to_owned(),
        _ => return None,
    };
    Some(format!("{scheme}://{authority}{fixed}"))
}

/// The region a Cognito user pool id names: pool ids are `<region>_<id>`
/// (`eu-west-1_AbCdEf123`), and a pool exists only in that region.
pub fn pool_region(pool: &str) -> Option<&str> {
    let (region, _) = pool.split_once('_')?;
    let parts: Vec<&str> = region.split('-').collect();
    let looks_like_region = parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    looks_like_region.then_some(region)
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
    /// Attributes left out of the mirror (flag, else `[mirror]`); validated where the
    /// scope is built (`model::MirrorScope`).
    pub exclude_attributes: Vec<String>,
    /// The only groups mirrored; `None`: every group.
    pub include_groups: Option<Vec<String>>,
}

/// Tuning of a whole-pool scan (backfill or reconcile), defaults applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanSettings {
    pub shards: usize,
    pub cognito_rps: f64,
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
    mirror: MirrorFile,
}

/// The `[mirror]` table of a config file: what the mirror holds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorFile {
    exclude_attributes: Option<Vec<String>>,
    include_groups: Option<Vec<String>>,
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
            exclude_attributes: args
                .exclude_attributes
                .clone()
                .or(file.mirror.exclude_attributes)
                .unwrap_or_default(),
            include_groups: args.include_groups.clone().or(file.mirror.include_groups),
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

    /// An error when the AWS SDK would call `region` but the configured pool id names another
    /// one: Cognito would only answer that the pool does not exist. `region` is the one the
    /// SDK resolved (the configured region, else the AWS profile, else the pool id's prefix).
    pub fn require_pool_region(&self, region: Option<&str>) -> anyhow::Result<()> {
        let (Some(pool), Some(region)) = (self.user_pool_id.as_deref(), region) else {
            return Ok(());
        };
        match pool_region(pool) {
            Some(expected) if expected != region => {
                let source = if self.region.is_some() {
                    "the configured region (--region, AWS_REGION or the config file) is"
                } else {
                    "the AWS configuration (AWS_DEFAULT_REGION or the profile) says"
                };
                bail!(
                    "user pool {pool} belongs to region {expected} but {source} {region}: set AWS_REGION={expected}"
                )
            }
            _ => Ok(()),
        }
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
        if let Some(likely) = likely_hasura_endpoint(&endpoint) {
            // Not refused: a proxy may serve GraphQL at any path; Hasura answers 404 here.
            tracing::warn!(
                endpoint = redacted_url(&endpoint),
                likely,
                "the Hasura endpoint does not end in {HASURA_GRAPHQL_PATH}, where Hasura serves GraphQL"
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
            cognito_rps: args
                .cognito_rps
                .or(file.cognito_rps)
                .unwrap_or(DEFAULT_COGNITO_RPS),
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
        if !(settings.cognito_rps.is_finite() && settings.cognito_rps > 0.0) {
            bail!(
                "--cognito-rps must be a positive number, not {}",
                settings.cognito_rps
            );
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
        assert_eq!(backfill.cognito_rps, DEFAULT_COGNITO_RPS);
    }

    #[test]
    fn the_mirror_table_sets_the_scope_and_flags_win() {
        let file = r#"
            [mirror]
            exclude_attributes = ["phone_number"]
            include_groups = ["admins"]
        "#;
        let settings = Settings::from_toml(&Overrides::default(), file).unwrap();
        assert_eq!(settings.exclude_attributes, ["phone_number"]);
        assert_eq!(settings.include_groups, Some(vec!["admins".to_owned()]));
        let args = Overrides {
            exclude_attributes: Some(vec!["custom:ssn".into()]),
            ..Default::default()
        };
        let settings = Settings::from_toml(&args, file).unwrap();
        assert_eq!(settings.exclude_attributes, ["custom:ssn"]);
        let everything = Settings::from_toml(&Overrides::default(), "").unwrap();
        assert!(everything.exclude_attributes.is_empty() && everything.include_groups.is_none());
        assert!(Settings::from_toml(&Overrides::default(), "[mirror]\nexclude = [\"x\"]").is_err());
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
    fn near_misses_of_the_graphql_path_get_the_likely_endpoint() {
        for (given, likely) in [
            (
                "https://h.example.com",
                Some("https://h.example.com/v1/graphql"),
            ),
            (
                "https://h.example.com/",
                Some("https://h.example.com/v1/graphql"),
            ),
            ("http://h:8080/v1", Some("http://h:8080/v1/graphql")),
            (
                "http://h:8080/v1/graphql/",
                Some("http://h:8080/v1/graphql"),
            ),
            (
                "https://u:pw@h/base/v1/graphql/",
                Some("https://***@h/base/v1/graphql"),
            ),
            ("http://h:8080/v1/graphql", None),
            ("https://proxy.example.com/hasura/graphql", None),
            ("not a url", None),
        ] {
            assert_eq!(likely_hasura_endpoint(given).as_deref(), likely, "{given}");
        }
    }

    #[test]
    fn a_region_other_than_the_pools_is_refused_with_the_fix() {
        assert_eq!(pool_region("eu-west-1_AbCdEf123"), Some("eu-west-1"));
        assert_eq!(pool_region("us-gov-west-1_Abc"), Some("us-gov-west-1"));
        assert_eq!(pool_region("local_Abc"), None);
        assert_eq!(pool_region("NoUnderscore"), None);
        let settings = Settings {
            user_pool_id: Some("eu-west-1_AbCdEf123".into()),
            region: Some("us-east-1".into()),
            ..Settings::default()
        };
        let err = settings
            .require_pool_region(Some("us-east-1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eu-west-1_AbCdEf123 belongs to region eu-west-1")
                && err.contains("AWS_REGION or the config file) is us-east-1")
                && err.contains("set AWS_REGION=eu-west-1"),
            "{err}"
        );
        assert!(settings.require_pool_region(Some("eu-west-1")).is_ok());
        let from_profile = Settings {
            region: None,
            ..settings
        };
        let err = from_profile
            .require_pool_region(Some("ap-south-1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profile") && err.contains("ap-south-1"),
            "{err}"
        );
        assert!(from_profile.require_pool_region(None).is_ok());
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
