//! `jwt-secret`: the `HASURA_GRAPHQL_JWT_SECRET` value that makes Hasura accept the pool's
//! tokens. Computed from the pool id alone: no credentials, no network.

use anyhow::bail;
use serde::Serialize;

use crate::config::Settings;

/// How Hasura finds the claims in a token: Pre Token Generation V1 can only add strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What `jwt-secret` is asked for.
#[derive(Debug, Clone)]
pub struct JwtSecretRequest {
    /// Where Hasura finds its claims; `None` (or Hasura's default) leaves the field out.
    pub claims_namespace: Option<String>,
    /// The app client id the tokens are for.
    pub audience: Option<String>,
    pub claims_format: ClaimsFormat,
}

/// Hasura's JWT secret configuration, fields in the order Hasura documents them.
#[derive(Debug, Serialize)]
pub struct JwtSecret {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub jwk_url: String,
    pub claims_format: &'static str,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims_namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Where Hasura looks for its claims unless told otherwise.
pub const HASURA_CLAIMS_NAMESPACE: &str = "https://hasura.io/jwt/claims";

/// Builds the secret for the configured pool. The region is the pool id's prefix (what
/// Cognito's issuer uses), else `--region`.
pub fn run(settings: &Settings, args: &JwtSecretRequest) -> anyhow::Result<JwtSecret> {
    let pool = settings.require_pool()?;
    let region = pool
        .split_once('_')
        .map(|(region, _)| region.to_owned())
        .filter(|r| !r.is_empty())
        .or_else(|| settings.region.clone());
    let Some(region) = region else {
        bail!("cannot tell the region of user pool {pool:?}: set --region or AWS_REGION");
    };
    let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool}");
    Ok(JwtSecret {
        kind: "RS256",
        jwk_url: format!("{issuer}/.well-known/jwks.json"),
        claims_format: args.claims_format.as_str(),
        issuer,
        // Hasura's default is left out, as the Terraform module's output does, so both give
        // the same JSON.
        claims_namespace: args
            .claims_namespace
            .clone()
            .filter(|namespace| namespace != HASURA_CLAIMS_NAMESPACE),
        audience: args.audience.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pool: &str) -> Settings {
        Settings {
            user_pool_id: Some(pool.into()),
            ..Default::default()
        }
    }

    #[test]
    fn prints_hasura_jwt_secret_json() {
        let args = JwtSecretRequest {
            claims_namespace: None,
            audience: None,
            claims_format: ClaimsFormat::StringifiedJson,
        };
        let secret = run(&settings("eu-west-1_AbC123"), &args).unwrap();
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            r#"{"type":"RS256","jwk_url":"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json","claims_format":"stringified_json","issuer":"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"}"#
        );
    }

    #[test]
    fn options_are_added() {
        let args = JwtSecretRequest {
            claims_namespace: Some("https://example.com/claims".into()),
            audience: Some("client123".into()),
            claims_format: ClaimsFormat::Json,
        };
        let json = serde_json::to_value(run(&settings("us-east-1_X"), &args).unwrap()).unwrap();
        assert_eq!(json["claims_format"], "json");
        assert_eq!(json["claims_namespace"], "https://example.com/claims");
        assert_eq!(json["audience"], "client123");
        let default_namespace = JwtSecretRequest {
            claims_namespace: Some(HASURA_CLAIMS_NAMESPACE.into()),
            ..args
        };
        let json = serde_json::to_value(run(&settings("us-east-1_X"), &default_namespace).unwrap())
            .unwrap();
        assert!(json.get("claims_namespace").is_none());
    }

    #[test]
    fn a_pool_id_without_region_needs_one() {
        let args = JwtSecretRequest {
            claims_namespace: None,
            audience: None,
            claims_format: ClaimsFormat::Json,
        };
        assert!(run(&settings("nounderscore"), &args).is_err());
        let with_region = Settings {
            region: Some("ap-south-1".into()),
            ..settings("nounderscore")
        };
        assert!(
            run(&with_region, &args)
                .unwrap()
                .issuer
                .contains("ap-south-1")
        );
    }
}
