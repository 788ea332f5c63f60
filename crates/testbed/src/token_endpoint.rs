//! [`TokenEndpoint`]: a user pool domain's OAuth 2.0 token endpoint for one machine client,
//! served on 127.0.0.1, with the JWKS that verifies its tokens.
//!
//! It answers the client credentials grant as Cognito's `/oauth2/token` does: a form POST of
//! `grant_type=client_credentials` and optional `scope`, the client authenticated with HTTP
//! Basic, an `invalid_client` / `invalid_scope` / `unsupported_grant_type` error otherwise. Its
//! access tokens carry Cognito's access token claims (`sub` = `client_id`, `token_use`,
//! `scope`, no `aud`) plus the Hasura claims the project's pre token generation Lambda adds to
//! a V3 `TokenGeneration_ClientCredentials` event: the real handler is run once at start, with
//! the scope mapped to the role as the Terraform module maps it. hasura-lite in JWT mode with
//! [`TokenEndpoint::hasura_jwt_secret`] accepts them, as Hasura would with the module's
//! `hasura_graphql_jwt_secret` output.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, ensure};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::served::Served;

const SIGNING_KEY: &[u8] = include_bytes!("../fixtures/machine-client.pem");
const JWKS: &str = include_str!("../fixtures/machine-client-jwks.json");
const KEY_ID: &str = "testbed-machine-client";
/// The resource server and scope the Terraform module creates (`<name>/sync`).
const SCOPE: &str = "cognito-hasura-sync/sync";
/// The role the module maps that scope to.
const ROLE: &str = "cognito_sync";

/// How the endpoint issues tokens.
#[derive(Debug, Clone)]
pub struct TokenEndpointOptions {
    /// The tokens' lifetime in seconds, as `expires_in` and in their `exp`.
    pub expires_in: u64,
    /// How many of the first tokens are issued already expired (`exp` a minute ago, though
    /// `expires_in` says otherwise), as after a clock jump: Hasura refuses them.
    pub stale_tokens: usize,
}

impl Default for TokenEndpointOptions {
    fn default() -> Self {
        TokenEndpointOptions {
            expires_in: 3600,
            stale_tokens: 0,
        }
    }
}

/// The one machine client of a [`TokenEndpoint`].
#[derive(Debug, Clone)]
pub struct MachineClient {
    pub client_id: String,
    pub client_secret: String,
    /// The scope it may request, `<resource server>/<scope>`.
    pub scope: String,
}

/// A running token endpoint; stops on drop.
#[derive(Debug)]
pub struct TokenEndpoint {
    /// `http://127.0.0.1:<port>/oauth2/token`.
    pub token_url: String,
    /// `http://127.0.0.1:<port>/.well-known/jwks.json`.
    pub jwks_url: String,
    /// The `iss` of the tokens: the pool's Cognito issuer URL.
    pub issuer: String,
    pub client: MachineClient,
    state: Arc<EndpointState>,
    served: Served,
}

struct EndpointState {
    client: MachineClient,
    issuer: String,
    options: TokenEndpointOptions,
    /// The Hasura claims, under their namespace, as the Lambda answered.
    hasura_claims: serde_json::Map<String, Value>,
    key: EncodingKey,
    issued: AtomicUsize,
    refused: AtomicUsize,
}

impl TokenEndpoint {
    /// Serves the endpoint for `pool_id`'s machine client on a kernel-chosen port.
    pub async fn start(pool_id: &str, options: TokenEndpointOptions) -> anyhow::Result<Self> {
        let region = pool_id.split_once('_').map_or("us-east-1", |(r, _)| r);
        let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}");
        let client = MachineClient {
            client_id: format!("machine{}", crate::unique_suffix()),
            client_secret: format!("secret{}", uuid::Uuid::new_v4().simple()),
            scope: SCOPE.to_owned(),
        };
        let hasura_claims = lambda_claims(pool_id, &client.client_id)?;
        let state = Arc::new(EndpointState {
            client: client.clone(),
            issuer: issuer.clone(),
            options,
            hasura_claims,
            key: EncodingKey::from_rsa_pem(SIGNING_KEY).context("the test bed's signing key")?,
            issued: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/oauth2/token", post(token))
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a port for the token endpoint")?;
        let served = Served::start(listener, router)?;
        Ok(TokenEndpoint {
            token_url: format!("{}/oauth2/token", served.url()),
            jwks_url: format!("{}/.well-known/jwks.json", served.url()),
            issuer,
            client,
            state,
            served,
        })
    }

    /// The `HASURA_GRAPHQL_JWT_SECRET` that accepts these tokens (claims as JSON: the V3
    /// trigger writes objects).
    pub fn hasura_jwt_secret(&self) -> String {
        json!({
            "type": "RS256",
            "jwk_url": self.jwks_url,
            "claims_format": "json",
            "issuer": self.issuer,
        })
        .to_string()
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Token requests refused so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Stops serving.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.served.stop("the token endpoint").await
    }
}

impl std::fmt::Debug for EndpointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointState")
            .field("client_id", &self.client.client_id)
            .field("options", &self.options)
            .field("issued", &self.issued)
            .finish()
    }
}

/// An OAuth 2.0 error answer (RFC 6749 section 5.2).
struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl Refusal {
    fn bad_request(code: &'static str, description: &str) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.to_owned(),
        }
    }
}

async fn token(
    State(state): State<Arc<EndpointState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match issue(&state, &headers, &form) {
        Ok(token) => Json(token).into_response(),
        Err(refusal) => {
            state.refused.fetch_add(1, Ordering::SeqCst);
            (
                refusal.status,
                Json(json!({ "error": refusal.code, "error_description": refusal.description })),
            )
                .into_response()
        }
    }
}

fn issue(
    state: &EndpointState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            state.client.client_id, state.client.client_secret
        ))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err(Refusal::bad_request(
            "invalid_client",
            "Client authentication failed",
        ));
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(Refusal::bad_request(
            "unsupported_grant_type",
            "only client_credentials",
        ));
    }
    // No scope asks for every scope the client is allowed.
    let requested = form.get("scope").map_or(state.client.scope.as_str(), |s| s);
    if requested
        .split(' ')
        .any(|scope| scope != state.client.scope)
    {
        return Err(Refusal::bad_request(
            "invalid_scope",
            "scope not allowed for this client",
        ));
    }
    let serial = state.issued.fetch_add(1, Ordering::SeqCst);
    let now = chrono::Utc::now().timestamp();
    let exp = if serial < state.options.stale_tokens {
        now - 60
    } else {
        now + state.options.expires_in as i64
    };
    let mut claims = json!({
        "sub": state.client.client_id,
        "client_id": state.client.client_id,
        "token_use": "access",
        "scope": state.client.scope,
        "auth_time": now,
        "iss": state.issuer,
        "exp": exp,
        "iat": now,
        "version": 2,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    for (name, value) in &state.hasura_claims {
        claims[name] = value.clone();
    }
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KEY_ID.to_owned());
    let access_token =
        jsonwebtoken::encode(&header, &claims, &state.key).map_err(|err| Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "server_error",
            description: err.to_string(),
        })?;
    Ok(json!({
        "access_token": access_token,
        "expires_in": state.options.expires_in,
        "token_type": "Bearer",
    }))
}

async fn jwks() -> impl IntoResponse {
    ([("content-type", "application/json")], JWKS)
}

fn python() -> PathBuf {
    let venv = crate::workspace_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs the project's pre token generation handler on a V3 client credentials event for
/// `client_id` with the module's scope mapping; returns the claims it adds to the token.
fn lambda_claims(pool_id: &str, client_id: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
event = {
    "version": "3",
    "triggerSource": "TokenGeneration_ClientCredentials",
    "region": "us-east-1",
    "userPoolId": sys.argv[2],
    "userName": None,
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": sys.argv[3]},
    "request": {"userAttributes": {}, "groupConfiguration": None, "scopes": [sys.argv[4]], "clientMetadata": {}},
    "response": {"claimsAndScopeOverrideDetails": None},
}
details = handler.handler(event, None)["response"]["claimsAndScopeOverrideDetails"]
print(json.dumps(details["accessTokenGeneration"]["claimsToAddOrOverride"]))
"#;
    let handler_dir = crate::workspace_root().join("deploy/lambdas/pre_token_generation");
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&handler_dir)
        .arg(pool_id)
        .arg(client_id)
        .arg(SCOPE)
        .env(
            "CLIENT_CREDENTIALS_SCOPE_ROLES",
            json!({ SCOPE: ROLE }).to_string(),
        )
        .env("CLAIMS_FORMAT", "json")
        .output()
        .context("running the pre_token_generation handler")?;
    ensure!(
        output.status.success(),
        "the pre_token_generation handler failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("the handler's claims are not a JSON object")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issues_tokens_with_the_lambdas_claims_to_its_client_only() {
        let endpoint = TokenEndpoint::start("us-east-1_test", TokenEndpointOptions::default())
            .await
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let client = &endpoint.client;
        let request = async |secret: &str, scope: Option<&str>| -> Value {
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            form.extend(scope.map(|s| ("scope", s.to_owned())));
            let response = http
                .post(&endpoint.token_url)
                .basic_auth(&client.client_id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            response.json().await.unwrap()
        };
        let answer = request(&client.client_secret, Some(&client.scope)).await;
        assert_eq!(answer["token_type"], "Bearer");
        assert_eq!(answer["expires_in"], 3600);
        let token = answer["access_token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            payload["https://hasura.io/jwt/claims"],
            json!({ "x-hasura-allowed-roles": [ROLE], "x-hasura-default-role": ROLE })
        );
        assert_eq!(payload["token_use"], "access");
        assert!(payload.get("aud").is_none());

        assert_eq!(request("wrong", None).await["error"], "invalid_client");
        let scope = request(&client.client_secret, Some("other/scope")).await;
        assert_eq!(scope["error"], "invalid_scope");
        assert_eq!((endpoint.issued(), endpoint.refused()), (1, 2));
        endpoint.stop().await.unwrap();
    }
}
