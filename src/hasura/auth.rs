//! Access tokens of a Cognito machine client, for `HASURA_AUTH=client-credentials`.
//!
//! [`TokenSource`] owns the one token of a process: it asks the pool domain's `/oauth2/token`
//! for one with the OAuth 2.0 client credentials grant (a form POST of
//! `grant_type=client_credentials` and the scopes, the client authenticated with HTTP Basic,
//! as Cognito expects), keeps it, and fetches the next one once 80% of its lifetime has
//! passed, so that no request goes out with a token about to expire. Every clone of a
//! [`super::HasuraClient`] shares it: concurrent requests wait for one fetch instead of each
//! starting their own. A token Hasura rejects anyway (revoked, a clock off) is dropped with
//! [`TokenSource::reject`] and the request sent once more with a fresh one.

use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::{ClientCredentials, redacted_url};
use crate::telemetry::hasura::AccessTokenFetched;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Share of a token's lifetime after which the next one is fetched.
const REFRESH_AT: f64 = 0.8;
/// Lifetime assumed when the endpoint does not say (`expires_in` is optional in OAuth 2.0).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot reach the token endpoint {endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error(
        "the token endpoint {endpoint} refused client {client_id}: {code}{}; check COGNITO_CLIENT_ID, COGNITO_CLIENT_SECRET and COGNITO_OAUTH_SCOPES",
        .description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Refused {
        endpoint: String,
        client_id: String,
        status: u16,
        /// The OAuth 2.0 `error` code (`invalid_client`, `invalid_scope`, ...).
        code: String,
        description: Option<String>,
    },
    #[error("the token endpoint {endpoint} answered HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("unusable answer from the token endpoint {endpoint}: {message}")]
    Decode { endpoint: String, message: String },
}

impl TokenError {
    /// Whether asking again may succeed: the endpoint was unreachable, failed or throttled.
    pub fn is_retryable(&self) -> bool {
        match self {
            TokenError::Unreachable { .. } => true,
            TokenError::Status { status, .. } => *status >= 500 || *status == 429,
            TokenError::Refused { .. } | TokenError::Decode { .. } => false,
        }
    }

    /// Whether the client's settings are wrong (refused, or the URL is not a token endpoint).
    pub fn is_configuration(&self) -> bool {
        match self {
            TokenError::Refused { .. } => true,
            TokenError::Status { status, .. } => matches!(status, 401 | 403 | 404 | 405),
            TokenError::Unreachable { .. } | TokenError::Decode { .. } => false,
        }
    }
}

/// An access token ready to send, `Authorization: Bearer ...` (marked sensitive).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(HeaderValue);

impl AccessToken {
    pub fn header(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

struct Current {
    token: AccessToken,
    refresh_at: Instant,
}

/// The machine client's current access token, fetched when missing or due.
pub struct TokenSource {
    http: reqwest::Client,
    client: ClientCredentials,
    /// The endpoint as errors show it.
    shown: String,
    current: Mutex<Option<Current>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("endpoint", &self.shown)
            .field("client_id", &self.client.client_id)
            .finish()
    }
}

/// The token endpoint's JSON, success or error (RFC 6749 sections 5.1 and 5.2).
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSource {
    pub fn new(client: ClientCredentials) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("cognito-hasura-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TokenSource {
            http,
            shown: redacted_url(&client.token_endpoint),
            client,
            current: Mutex::default(),
        })
    }

    /// The current token, or a new one when there is none or it is due for renewal.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        // Held across the fetch: whoever comes meanwhile waits for this one fetch.
        let mut current = self.current.lock().await;
        if let Some(held) = current.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(held.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    /// Forgets `token` after Hasura refused it, so that the next [`TokenSource::token`]
    /// fetches another; a newer token fetched meanwhile is kept.
    pub async fn reject(&self, token: &AccessToken) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| &c.token == token) {
            *current = None;
        }
    }

    async fn fetch(&self) -> Result<Current, TokenError> {
        let endpoint = || self.shown.clone();
        let scope = self.client.scopes.join(" ");
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let unreachable = |err: reqwest::Error| TokenError::Unreachable {
            endpoint: endpoint(),
            message: super::error_chain(&err),
        };
        let started = Instant::now();
        let response = self
            .http
            .post(&self.client.token_endpoint)
            .basic_auth(
                &self.client.client_id,
                Some(self.client.client_secret.expose()),
            )
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        let answer = serde_json::from_slice::<TokenAnswer>(&body).ok();
        let (access_token, token_type, expires_in) = match answer {
            Some(TokenAnswer {
                error: Some(code),
                error_description,
                ..
            }) => {
                return Err(TokenError::Refused {
                    endpoint: endpoint(),
                    client_id: self.client.client_id.clone(),
                    status,
                    code,
                    description: error_description,
                });
            }
            Some(TokenAnswer {
                access_token: Some(token),
                token_type,
                expires_in,
                ..
            }) if (200..300).contains(&status) => (token, token_type, expires_in),
            _ if (200..300).contains(&status) => {
                return Err(TokenError::Decode {
                    endpoint: endpoint(),
                    message: "no access_token in the answer".to_owned(),
                });
            }
            _ => {
                return Err(TokenError::Status {
                    endpoint: endpoint(),
                    status,
                    body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
                });
            }
        };
        if !token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
            return Err(TokenError::Decode {
                endpoint: endpoint(),
                message: "the token is not a bearer token (token_type)".to_owned(),
            });
        }
        let mut header = HeaderValue::try_from(format!("Bearer {access_token}")).map_err(|_| {
            TokenError::Decode {
                endpoint: endpoint(),
                message: "the access token has characters not allowed in a header".to_owned(),
            }
        })?;
        header.set_sensitive(true);
        AccessTokenFetched {
            client_id: &self.client.client_id,
            expires_in: expires_in.map(Duration::from_secs),
            elapsed: started.elapsed(),
        }
        .emit();
        Ok(Current {
            token: AccessToken(header),
            refresh_at: renewal_due(started, expires_in),
        })
    }
}

/// When a token fetched at `fetched` (the request's start) that lives `expires_in` seconds
/// is replaced.
fn renewal_due(fetched: Instant, expires_in: Option<u64>) -> Instant {
    fetched
        + expires_in
            .map_or(ASSUMED_LIFETIME, Duration::from_secs)
            .mul_f64(REFRESH_AT)
}

/// A configured credential (the admin secret, `Bearer <jwt>`) as a header value that logs
/// and `Debug` never show.
pub fn credential_header(value: &str) -> anyhow::Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        anyhow::anyhow!("the Hasura credential contains characters not allowed in an HTTP header")
    })?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    use super::*;
    use crate::config::Secret;

    /// What the test endpoint answers and what it saw.
    #[derive(Default)]
    struct Endpoint {
        fetches: AtomicUsize,
        seen: std::sync::Mutex<Vec<(Option<String>, String)>>,
        answer: std::sync::Mutex<Option<(StatusCode, String)>>,
    }

    async fn token_route(
        State(endpoint): State<Arc<Endpoint>>,
        headers: HeaderMap,
        body: String,
    ) -> impl IntoResponse {
        let n = endpoint.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        endpoint.seen.lock().unwrap().push((authorization, body));
        let answer = endpoint.answer.lock().unwrap().clone();
        answer.unwrap_or_else(|| {
            (
                StatusCode::OK,
                format!(r#"{{"access_token":"token-{n}","expires_in":100,"token_type":"Bearer"}}"#),
            )
        })
    }

    async fn serve() -> (Arc<Endpoint>, String) {
        let endpoint = Arc::new(Endpoint::default());
        let app = axum::Router::new()
            .route("/oauth2/token", axum::routing::post(token_route))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (endpoint, url)
    }

    fn source(url: &str, scopes: &[&str]) -> TokenSource {
        TokenSource::new(ClientCredentials {
            token_endpoint: url.to_owned(),
            client_id: "client-1".into(),
            client_secret: Secret::new("s3cret"),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        })
        .unwrap()
    }

    fn bearer(token: &AccessToken) -> &str {
        token.header().to_str().unwrap()
    }

    #[tokio::test]
    async fn the_grant_is_a_form_post_with_basic_client_authentication() {
        let (endpoint, url) = serve().await;
        let tokens = source(&url, &["sync/write", "sync/read"]);
        assert_eq!(bearer(&tokens.token().await.unwrap()), "Bearer token-1");
        let seen = endpoint.seen.lock().unwrap().clone();
        // base64("client-1:s3cret")
        assert_eq!(seen[0].0.as_deref(), Some("Basic Y2xpZW50LTE6czNjcmV0"));
        assert_eq!(
            seen[0].1,
            "grant_type=client_credentials&scope=sync%2Fwrite+sync%2Fread"
        );
        assert!(!format!("{tokens:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn one_token_serves_every_task_until_it_is_due() {
        let (endpoint, url) = serve().await;
        let tokens = Arc::new(source(&url, &[]));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.token().await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(bearer(&task.await.unwrap()), "Bearer token-1");
        }
        assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(
            endpoint.seen.lock().unwrap()[0].1,
            "grant_type=client_credentials"
        );

        // A token that lives 0 s is due at once: every call fetches.
        *endpoint.answer.lock().unwrap() = Some((
            StatusCode::OK,
            r#"{"access_token":"short","expires_in":0,"token_type":"bearer"}"#.into(),
        ));
        tokens.reject(&tokens.token().await.unwrap()).await;
        tokens.token().await.unwrap();
        tokens.token().await.unwrap();
        assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_token_is_renewed_at_four_fifths_of_its_lifetime() {
        let fetched = Instant::now();
        assert_eq!(
            renewal_due(fetched, Some(3600)) - fetched,
            Duration::from_secs(2880)
        );
        assert_eq!(
            renewal_due(fetched, None) - fetched,
            ASSUMED_LIFETIME.mul_f64(REFRESH_AT)
        );
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_once() {
        let (endpoint, url) = serve().await;
        let tokens = source(&url, &[]);
        let first = tokens.token().await.unwrap();
        tokens.reject(&first).await;
        let second = tokens.token().await.unwrap();
        assert_eq!(bearer(&second), "Bearer token-2");
        // A late rejection of the old token keeps the new one.
        tokens.reject(&first).await;
        assert_eq!(tokens.token().await.unwrap(), second);
        assert_eq!(endpoint.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refusal_shows_the_oauth_error_and_never_the_secret() {
        let (endpoint, url) = serve().await;
        *endpoint.answer.lock().unwrap() = Some((
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
                .into(),
        ));
        let err = source(&url, &[]).token().await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("invalid_client")
                && text.contains("Client authentication failed")
                && text.contains("client-1")
                && text.contains("COGNITO_CLIENT_SECRET"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(err.is_configuration() && !err.is_retryable());

        *endpoint.answer.lock().unwrap() = Some((StatusCode::BAD_GATEWAY, "upstream".into()));
        let err = source(&url, &[]).token().await.unwrap_err();
        assert!(err.is_retryable() && !err.is_configuration(), "{err}");

        *endpoint.answer.lock().unwrap() = Some((
            StatusCode::OK,
            r#"{"access_token":"t","token_type":"mac"}"#.into(),
        ));
        let err = source(&url, &[]).token().await.unwrap_err();
        assert!(matches!(err, TokenError::Decode { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_retryable() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = source(&format!("http://{closed}/oauth2/token"), &[])
            .token()
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::Unreachable { .. }), "{err}");
        assert!(err.is_retryable());
    }
}
