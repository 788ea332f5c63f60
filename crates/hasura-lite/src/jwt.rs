//! JWT mode: parses `HASURA_GRAPHQL_JWT_SECRET` (the `jwk_url` form), fetches and caches
//! the JWKS, verifies bearer tokens and turns their Hasura claims into a [`Claims`] value
//! (allowed roles, default role, `x-hasura-*` session variables), failing with Hasura's
//! `invalid-jwt` / `jwt-missing-role-claims` errors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::error::{Code, HasuraError};

/// Hasura's default claims namespace.
pub const DEFAULT_NAMESPACE: &str = "https://hasura.io/jwt/claims";
/// How long keys are kept when the JWKS response names no `max-age`.
const DEFAULT_KEY_TTL: Duration = Duration::from_secs(300);
/// Least time between two fetches caused by tokens with unknown key ids, so that such
/// tokens cannot make this server hammer the key endpoint.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// How the claims object is stored under its namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimsFormat {
    /// A JSON object.
    #[default]
    Json,
    /// A string holding a JSON object (Cognito's Pre Token Generation V1 can only add strings).
    StringifiedJson,
}

/// A string or a list of strings (`audience`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `HASURA_GRAPHQL_JWT_SECRET` as Hasura documents it; only the `jwk_url` key source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    #[serde(rename = "type")]
    algorithm: String,
    jwk_url: Option<String>,
    key: Option<String>,
    claims_namespace: Option<String>,
    claims_namespace_path: Option<String>,
    #[serde(default)]
    claims_format: ClaimsFormat,
    issuer: Option<String>,
    audience: Option<OneOrMany>,
    allowed_skew: Option<u64>,
    header: Option<Json>,
    claims_map: Option<Json>,
}

/// Where the Hasura claims are in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Namespace {
    /// A top-level claim name.
    Key(String),
    /// `claims_namespace_path`, as its object keys (`$` = the whole payload).
    Path(Vec<String>),
}

/// A parsed JWT secret.
#[derive(Debug, Clone)]
pub struct JwtSecret {
    algorithm: Algorithm,
    jwk_url: String,
    namespace: Namespace,
    format: ClaimsFormat,
    issuer: Option<String>,
    audience: Option<Vec<String>>,
    allowed_skew: u64,
}

impl JwtSecret {
    /// Parses the JSON of `HASURA_GRAPHQL_JWT_SECRET`.
    pub fn parse(json: &str) -> anyhow::Result<Self> {
        let raw: RawSecret = serde_json::from_str(json)
            .map_err(|e| anyhow::anyhow!("HASURA_GRAPHQL_JWT_SECRET is not valid: {e}"))?;
        let algorithm = match raw.algorithm.as_str() {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            other => anyhow::bail!(
                "HASURA_GRAPHQL_JWT_SECRET: type {other:?} is not supported by hasura-lite (RS256, RS384, RS512)"
            ),
        };
        if raw.key.is_some() || raw.header.is_some() || raw.claims_map.is_some() {
            anyhow::bail!(
                "HASURA_GRAPHQL_JWT_SECRET: hasura-lite supports only jwk_url keys with claims in a namespace (no key, header or claims_map)"
            );
        }
        let jwk_url = raw
            .jwk_url
            .ok_or_else(|| anyhow::anyhow!("HASURA_GRAPHQL_JWT_SECRET: jwk_url is required"))?;
        let namespace = match (raw.claims_namespace, raw.claims_namespace_path) {
            (Some(_), Some(_)) => anyhow::bail!(
                "HASURA_GRAPHQL_JWT_SECRET: claims_namespace and claims_namespace_path are mutually exclusive"
            ),
            (_, Some(path)) => Namespace::Path(parse_path(&path)?),
            (Some(key), None) => Namespace::Key(key),
            (None, None) => Namespace::Key(DEFAULT_NAMESPACE.to_owned()),
        };
        Ok(Self {
            algorithm,
            jwk_url,
            namespace,
            format: raw.claims_format,
            issuer: raw.issuer,
            audience: raw.audience.map(|a| match a {
                OneOrMany::One(one) => vec![one],
                OneOrMany::Many(many) => many,
            }),
            allowed_skew: raw.allowed_skew.unwrap_or(0),
        })
    }
}

/// `$.a.b` or `$['a'].b` into `["a", "b"]`.
fn parse_path(path: &str) -> anyhow::Result<Vec<String>> {
    let invalid =
        || anyhow::anyhow!("HASURA_GRAPHQL_JWT_SECRET: unsupported claims_namespace_path {path:?}");
    let mut rest = path.strip_prefix('$').ok_or_else(invalid)?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']").ok_or_else(invalid)?;
            keys.push(after[..end].to_owned());
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(invalid());
            }
            keys.push(after[..end].to_owned());
            rest = &after[end..];
        } else {
            return Err(invalid());
        }
    }
    Ok(keys)
}

/// The Hasura claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `x-hasura-allowed-roles`.
    pub allowed_roles: Vec<String>,
    /// `x-hasura-default-role`.
    pub default_role: String,
    /// Every other `x-hasura-*` claim, names lower-cased.
    pub session_variables: BTreeMap<String, String>,
}

/// Verifies tokens against the keys at `jwk_url`, fetched on first use and refetched when
/// they expire (`Cache-Control: max-age`) or a token names an unknown key id.
pub struct JwtVerifier {
    secret: JwtSecret,
    http: reqwest::Client,
    keys: Mutex<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    set: Option<JwkSet>,
    expires: Option<Instant>,
    fetched: Option<Instant>,
}

impl JwtVerifier {
    /// A verifier for `secret`; fetches nothing yet.
    pub fn new(secret: JwtSecret) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| anyhow::anyhow!("building the JWKS HTTP client: {e}"))?;
        Ok(Self {
            secret,
            http,
            keys: Mutex::new(KeyCache::default()),
        })
    }

    /// Verifies `token` (signature, `exp`, `nbf`, issuer, audience) and reads its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, HasuraError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid_jwt(&e))?;
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(self.secret.algorithm);
        // Hasura does not require `exp`, but checks it (and `nbf`) when present.
        validation.required_spec_claims.clear();
        validation.validate_nbf = true;
        validation.leeway = self.secret.allowed_skew;
        match &self.secret.audience {
            Some(audience) => validation.set_audience(audience),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.secret.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data =
            jsonwebtoken::decode::<Json>(token, &key, &validation).map_err(|e| invalid_jwt(&e))?;
        self.claims(&data.claims)
    }

    /// The decoding key for `kid`, refetching the key set when it is stale or lacks `kid`.
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, HasuraError> {
        let mut cache = self.keys.lock().await;
        let now = Instant::now();
        let fresh = cache.expires.is_some_and(|e| e > now);
        let known = cache.set.as_ref().and_then(|set| find(set, kid)).is_some();
        let may_refetch = cache
            .fetched
            .is_none_or(|at| now.duration_since(at) >= MIN_REFETCH_INTERVAL);
        if (!fresh || !known) && may_refetch {
            match self.fetch().await {
                Ok((set, ttl)) => {
                    cache.set = Some(set);
                    cache.expires = Some(now + ttl);
                    cache.fetched = Some(now);
                }
                // Stale keys beat none: keep serving what was fetched before.
                Err(e) if cache.set.is_some() => {
                    tracing::warn!(url = %self.secret.jwk_url, error = %e, "refreshing the JWKS failed");
                }
                Err(e) => {
                    return Err(HasuraError::new(
                        Code::InvalidJwt,
                        "$",
                        format!("Could not verify JWT: fetching the JWKS failed: {e}"),
                    ));
                }
            }
        }
        let jwk = cache
            .set
            .as_ref()
            .and_then(|set| find(set, kid))
            .ok_or_else(|| {
                HasuraError::new(
                    Code::InvalidJwt,
                    "$",
                    "Could not verify JWT: JWSError JWSInvalidSignature",
                )
            })?;
        DecodingKey::from_jwk(jwk).map_err(|e| invalid_jwt(&e))
    }

    async fn fetch(&self) -> anyhow::Result<(JwkSet, Duration)> {
        let response = self
            .http
            .get(&self.secret.jwk_url)
            .send()
            .await?
            .error_for_status()?;
        let ttl = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_KEY_TTL);
        let set: JwkSet = response.json().await?;
        Ok((set, ttl))
    }

    /// Reads the Hasura claims out of the verified payload.
    fn claims(&self, payload: &Json) -> Result<Claims, HasuraError> {
        let (value, name) = match &self.secret.namespace {
            Namespace::Key(key) => (payload.get(key), key.clone()),
            Namespace::Path(keys) => (
                keys.iter().try_fold(payload, |v, k| v.get(k)),
                format!("$.{}", keys.join(".")),
            ),
        };
        let value = value.ok_or_else(|| {
            HasuraError::new(
                Code::JwtMissingRoleClaims,
                "$",
                format!("claims key: '{name}' not found"),
            )
        })?;
        let parsed;
        let object = match (self.secret.format, value) {
            (ClaimsFormat::Json, Json::Object(object)) => object,
            (ClaimsFormat::StringifiedJson, Json::String(text)) => {
                parsed = serde_json::from_str::<Json>(text).map_err(|e| {
                    HasuraError::new(
                        Code::InvalidJwt,
                        "$",
                        format!("Could not verify JWT: claims are not stringified JSON: {e}"),
                    )
                })?;
                parsed.as_object().ok_or_else(|| not_object(&name))?
            }
            _ => return Err(not_object(&name)),
        };
        let mut allowed_roles = None;
        let mut default_role = None;
        let mut session_variables = BTreeMap::new();
        for (key, value) in object {
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                "x-hasura-allowed-roles" => {
                    allowed_roles = value.as_array().map(|roles| {
                        roles
                            .iter()
                            .filter_map(|r| r.as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                    });
                }
                "x-hasura-default-role" => default_role = value.as_str().map(str::to_owned),
                name if name.starts_with("x-hasura-") => {
                    let text = match value {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    session_variables.insert(key, text);
                }
                _ => {}
            }
        }
        let allowed_roles = allowed_roles.ok_or_else(|| missing_claim("x-hasura-allowed-roles"))?;
        let default_role = default_role.ok_or_else(|| missing_claim("x-hasura-default-role"))?;
        Ok(Claims {
            allowed_roles,
            default_role,
            session_variables,
        })
    }
}

fn find<'a>(set: &'a JwkSet, kid: Option<&str>) -> Option<&'a jsonwebtoken::jwk::Jwk> {
    match kid {
        Some(kid) => set.find(kid),
        // A token without `kid` is checked against the only key, when there is one.
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
}

/// `max-age=N` of a `Cache-Control` header.
fn max_age(header: &str) -> Option<Duration> {
    header.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            value.trim().parse().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

/// Hasura's wording (its JOSE library's error names) for a token that does not verify.
fn invalid_jwt(err: &jsonwebtoken::errors::Error) -> HasuraError {
    let reason = match err.kind() {
        ErrorKind::ExpiredSignature => "JWTExpired".to_owned(),
        ErrorKind::ImmatureSignature => "JWTNotYetValid".to_owned(),
        ErrorKind::InvalidIssuer => "JWTNotInIssuer".to_owned(),
        ErrorKind::InvalidAudience => "JWTNotInAudience".to_owned(),
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
            "JWSError JWSInvalidSignature".to_owned()
        }
        _ => format!("JWSError (CompactDecodeError {err})"),
    };
    HasuraError::new(
        Code::InvalidJwt,
        "$",
        format!("Could not verify JWT: {reason}"),
    )
}

fn not_object(name: &str) -> HasuraError {
    HasuraError::new(
        Code::InvalidJwt,
        "$",
        format!(
            "Could not verify JWT: the claims under '{name}' are not a JSON object in the configured claims_format"
        ),
    )
}

fn missing_claim(claim: &str) -> HasuraError {
    HasuraError::new(
        Code::JwtMissingRoleClaims,
        "$",
        format!("JWT claim does not contain {claim}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cognito_style_secret() {
        let secret = JwtSecret::parse(
            r#"{"type":"RS256","jwk_url":"http://127.0.0.1/jwks.json","claims_format":"stringified_json","issuer":"https://cognito-idp.us-east-1.amazonaws.com/pool","audience":["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(secret.format, ClaimsFormat::StringifiedJson);
        assert_eq!(
            secret.namespace,
            Namespace::Key(DEFAULT_NAMESPACE.to_owned())
        );
        assert_eq!(secret.audience, Some(vec!["a".to_owned(), "b".to_owned()]));
        let one = JwtSecret::parse(r#"{"type":"RS256","jwk_url":"u","audience":"a"}"#).unwrap();
        assert_eq!(one.audience, Some(vec!["a".to_owned()]));
    }

    #[test]
    fn rejects_what_it_cannot_verify() {
        assert!(JwtSecret::parse(r#"{"type":"HS256","key":"k"}"#).is_err());
        assert!(JwtSecret::parse(r#"{"type":"RS256"}"#).is_err());
        assert!(
            JwtSecret::parse(r#"{"type":"RS256","jwk_url":"u","claims_format":"xml"}"#).is_err()
        );
    }

    #[test]
    fn namespace_paths() {
        assert_eq!(parse_path("$").unwrap(), Vec::<String>::new());
        assert_eq!(parse_path("$.hasura.claims").unwrap(), ["hasura", "claims"]);
        assert_eq!(
            parse_path("$['https://x.io/claims'].h").unwrap(),
            ["https://x.io/claims", "h"]
        );
        assert!(parse_path("hasura").is_err());
        assert!(parse_path("$..a").is_err());
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=3600, must-revalidate"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-cache"), None);
    }
}
