//! Writing and reading the mirror through Hasura: typed GraphQL operations and one client that sends them.
//!
//! [`HasuraClient::post`] is the only place a request is made: it sends a typed operation,
//! checks the HTTP status, decodes the response and turns GraphQL `errors` into a
//! [`HasuraError`] carrying Hasura's `extensions.code` and `path`. One classifier,
//! [`HasuraError::is_retryable`], decides what is retried with backoff (connection failures,
//! timeouts, 5xx, 429, code `unexpected`); everything else (validation-failed, access-denied,
//! constraint-violation, data-exception, invalid-jwt, an answer that does not decode, ...) stops
//! the caller with a clear message. Next to it, [`HasuraError::blames_data`] tells the errors
//! caused by the values sent, which [`bisect`] narrows down to the records holding them, and
//! [`HasuraError::problem`] says in a few words what a health check reports (unreachable,
//! rejected credentials, misconfigured).

pub mod bisect;
pub mod daemon_ops;
pub mod operations;
pub mod reconcile_ops;
pub mod records;
pub mod scalars;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use graphql_client::GraphQLQuery;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;

use crate::config::{
    HASURA_GRAPHQL_PATH, HasuraAuth, HasuraSettings, likely_hasura_endpoint, redacted_url,
};
use crate::telemetry::hasura::{HasuraRequestCompleted, HasuraRetry};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Hasura request that failed for good (after retries, when retryable).
#[derive(Debug, thiserror::Error)]
pub enum HasuraError {
    #[error("cannot reach Hasura at {endpoint} ({operation}): {message}")]
    Unreachable {
        endpoint: String,
        operation: String,
        message: String,
        timeout: bool,
    },
    #[error("Hasura at {endpoint} answered {operation} with HTTP {status}{}{}", body_suffix(.body), status_hint(*.status, .endpoint))]
    Status {
        endpoint: String,
        operation: String,
        status: u16,
        body: String,
    },
    #[error("Hasura rejected {operation}: {message} (code {code}{}){}", path_suffix(.path), hint(.code, .message))]
    GraphQl {
        operation: String,
        code: String,
        path: Option<String>,
        message: String,
    },
    #[error("unusable response from Hasura to {operation}: {message}")]
    Decode { operation: String, message: String },
}

fn path_suffix(path: &Option<String>) -> String {
    path.as_ref()
        .map(|p| format!(", path {p}"))
        .unwrap_or_default()
}

fn body_suffix(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// What to do about an HTTP status that is not Hasura's own answer to a GraphQL request.
fn status_hint(status: u16, endpoint: &str) -> String {
    match status {
        404 => format!(
            "; nothing serves GraphQL at {endpoint}: HASURA_GRAPHQL_ENDPOINT must be the full GraphQL URL, ending in {HASURA_GRAPHQL_PATH}{}",
            likely_hasura_endpoint(endpoint)
                .map(|likely| format!(" (did you mean {likely}?)"))
                .unwrap_or_default()
        ),
        401 | 403 => "; the credentials are refused: check HASURA_GRAPHQL_ADMIN_SECRET or HASURA_GRAPHQL_JWT (and what a proxy in front of Hasura expects)".to_owned(),
        _ => String::new(),
    }
}

/// What to do about a Hasura error code, told to whoever reads the error.
fn hint(code: &str, message: &str) -> &'static str {
    match code {
        "access-denied" | "invalid-headers"
            if message.contains("secret") || message.contains("access-key") =>
        {
            "; check HASURA_GRAPHQL_ADMIN_SECRET"
        }
        "access-denied" if message.contains("Authorization") || message.contains("role") => {
            "; check HASURA_GRAPHQL_JWT (its role must be one of its allowed roles)"
        }
        "access-denied" => "; check HASURA_GRAPHQL_ADMIN_SECRET or HASURA_GRAPHQL_JWT",
        "invalid-jwt" | "jwt-invalid-claims" | "jwt-missing-role-claims" => {
            "; check HASURA_GRAPHQL_JWT"
        }
        // Hasura hides what a role may not select, so a missing field has two causes.
        "validation-failed" if message.contains("not found in type") => {
            "; are the deploy/hasura migrations applied and the metadata reloaded, and may the request's role select it?"
        }
        _ => "",
    }
}

impl HasuraError {
    /// The one classifier: whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            HasuraError::Unreachable { .. } => true,
            // An answer that does not match the generated types never will.
            HasuraError::Decode { .. } => false,
            HasuraError::Status { status, .. } => *status >= 500 || *status == 429,
            // `unexpected` covers Hasura's own failures (database connection lost, ...);
            // the other codes describe the request itself and would fail again.
            HasuraError::GraphQl { code, .. } => {
                matches!(code.as_str(), "unexpected" | "connection-error")
            }
        }
    }

    /// Whether PostgreSQL refused the values sent. Hasura v2 answers `data-exception` for
    /// SQLSTATE class 22 (`invalid input syntax`, `unsupported Unicode escape sequence`, a NUL
    /// byte in text, ...), `constraint-violation` for class 23, except a check violation, which
    /// it answers as `permission-error` with a "Check constraint violation." message. The same
    /// request fails again, but the same request without the offending record can succeed.
    pub fn blames_data(&self) -> bool {
        match self {
            HasuraError::GraphQl { code, message, .. } => match code.as_str() {
                "data-exception" | "constraint-violation" => true,
                "permission-error" => message.starts_with("Check constraint violation."),
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether the request fails because of how the worker is configured (credentials, the
    /// endpoint, the schema), so that it fails the same way until someone changes it.
    pub fn is_configuration(&self) -> bool {
        self.rejects_credentials()
            || match self {
                HasuraError::Status { status, .. } => *status == 404,
                HasuraError::GraphQl { code, .. } => code == "validation-failed",
                HasuraError::Unreachable { .. } | HasuraError::Decode { .. } => false,
            }
    }

    /// Whether Hasura (or a proxy in front of it) refuses the credentials the worker sends.
    pub fn rejects_credentials(&self) -> bool {
        match self {
            HasuraError::Status { status, .. } => matches!(status, 401 | 403),
            HasuraError::GraphQl { code, .. } => matches!(
                code.as_str(),
                "access-denied"
                    | "invalid-headers"
                    | "invalid-jwt"
                    | "jwt-invalid-claims"
                    | "jwt-missing-role-claims"
            ),
            HasuraError::Unreachable { .. } | HasuraError::Decode { .. } => false,
        }
    }

    /// What is wrong, in a few words, ahead of the error where a health check reports it:
    /// `unreachable` (connection failed or timed out), `rejects the credentials`,
    /// `misconfigured` (the endpoint or the schema) or `failing` (anything else).
    pub fn problem(&self) -> &'static str {
        match self {
            HasuraError::Unreachable { .. } => "unreachable",
            _ if self.rejects_credentials() => "rejects the credentials",
            _ if self.is_configuration() => "misconfigured",
            _ => "failing",
        }
    }

    /// Hasura's `extensions.code`, when it answered with GraphQL errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            HasuraError::GraphQl { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Requests sent per operation name, retries and failures: for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HasuraStats {
    pub requests: BTreeMap<String, u64>,
    pub retries: u64,
    pub failures: u64,
}

impl HasuraStats {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// Sends typed operations to one Hasura endpoint. Cheap to clone; clones share statistics.
#[derive(Clone)]
pub struct HasuraClient {
    http: reqwest::Client,
    endpoint: String,
    /// The endpoint as logs and errors show it: without credentials.
    shown: String,
    retries: usize,
    stats: Arc<Mutex<HasuraStats>>,
}

impl fmt::Debug for HasuraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HasuraClient")
            .field("endpoint", &self.endpoint)
            .field("retries", &self.retries)
            .finish()
    }
}

/// The body of a Hasura answer: `data` and/or `errors`.
#[derive(serde::Deserialize)]
struct Answer<T> {
    data: Option<T>,
    errors: Option<Vec<AnswerError>>,
}

#[derive(serde::Deserialize)]
struct AnswerError {
    message: String,
    #[serde(default)]
    extensions: Option<AnswerExtensions>,
}

#[derive(serde::Deserialize)]
struct AnswerExtensions {
    code: Option<String>,
    path: Option<String>,
}

impl HasuraClient {
    /// A client for `settings`, retrying retryable failures `settings.retries` times.
    pub fn new(settings: &HasuraSettings) -> anyhow::Result<Self> {
        Self::with_retries(settings, settings.retries)
    }

    /// A client retrying retryable failures `retries` times (0: never).
    pub fn with_retries(settings: &HasuraSettings, retries: usize) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        let (name, value) = match &settings.auth {
            HasuraAuth::AdminSecret(secret) => {
                ("x-hasura-admin-secret", secret.expose().to_owned())
            }
            HasuraAuth::Bearer(jwt) => ("authorization", format!("Bearer {}", jwt.expose())),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            anyhow::anyhow!(
                "the Hasura credential contains characters not allowed in an HTTP header"
            )
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("cognito-hasura-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HasuraClient {
            http,
            endpoint: settings.endpoint.clone(),
            shown: redacted_url(&settings.endpoint),
            retries,
            stats: Arc::default(),
        })
    }

    /// The endpoint, credentials redacted, for display.
    pub fn shown_endpoint(&self) -> &str {
        &self.shown
    }

    /// A snapshot of the requests sent so far by this client and its clones.
    pub fn stats(&self) -> HasuraStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends `Q`, retrying retryable failures with jittered exponential backoff.
    pub async fn post<Q: GraphQLQuery>(
        &self,
        variables: Q::Variables,
    ) -> Result<Q::ResponseData, HasuraError> {
        let body = Q::build_query(variables);
        let operation = body.operation_name;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.retries)
            .with_jitter();
        let mut attempt = 0;
        (|| self.attempt::<Q>(operation, &body))
            .retry(backoff)
            .when(HasuraError::is_retryable)
            .notify(|err, delay| {
                attempt += 1;
                HasuraRetry {
                    operation,
                    attempt,
                    delay,
                    error: &err.to_string(),
                }
                .emit();
            })
            .await
    }

    /// One request, counted and timed.
    async fn attempt<Q: GraphQLQuery>(
        &self,
        operation: &'static str,
        body: &graphql_client::QueryBody<Q::Variables>,
    ) -> Result<Q::ResponseData, HasuraError> {
        let started = Instant::now();
        let result = self.send_once::<Q>(operation, body).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_retryable() => "transient",
            Err(_) => "error",
        };
        self.count(operation, outcome);
        HasuraRequestCompleted {
            operation,
            outcome,
            elapsed: started.elapsed(),
        }
        .emit();
        result
    }

    fn count(&self, operation: &str, outcome: &str) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *stats.requests.entry(operation.to_owned()).or_default() += 1;
        match outcome {
            "transient" => stats.retries += 1,
            "error" => stats.failures += 1,
            _ => {}
        }
    }

    async fn send_once<Q: GraphQLQuery>(
        &self,
        operation: &str,
        body: &graphql_client::QueryBody<Q::Variables>,
    ) -> Result<Q::ResponseData, HasuraError> {
        let unreachable = |err: reqwest::Error| HasuraError::Unreachable {
            endpoint: self.shown.clone(),
            operation: operation.to_owned(),
            message: error_chain(&err),
            timeout: err.is_timeout(),
        };
        let response = self
            .http
            .post(&self.endpoint)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        decode::<Q::ResponseData>(&self.shown, operation, status.as_u16(), &bytes)
    }
}

/// Turns an HTTP answer into data or a typed error. GraphQL errors win over the status, since
/// Hasura says what went wrong in them whatever the status.
fn decode<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    operation: &str,
    status: u16,
    body: &[u8],
) -> Result<T, HasuraError> {
    match serde_json::from_slice::<Answer<T>>(body) {
        Ok(Answer {
            errors: Some(errors),
            ..
        }) if !errors.is_empty() => {
            let first = &errors[0];
            let extensions = first.extensions.as_ref();
            Err(HasuraError::GraphQl {
                operation: operation.to_owned(),
                code: extensions
                    .and_then(|e| e.code.clone())
                    .unwrap_or_else(|| "unknown".to_owned()),
                path: extensions.and_then(|e| e.path.clone()),
                message: first.message.clone(),
            })
        }
        Ok(Answer {
            data: Some(data), ..
        }) if (200..300).contains(&status) => Ok(data),
        Ok(_) if (200..300).contains(&status) => Err(HasuraError::Decode {
            operation: operation.to_owned(),
            message: "neither data nor errors in the response".to_owned(),
        }),
        Err(err) if (200..300).contains(&status) => Err(HasuraError::Decode {
            operation: operation.to_owned(),
            message: err.to_string(),
        }),
        _ => Err(HasuraError::Status {
            endpoint: endpoint.to_owned(),
            operation: operation.to_owned(),
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        }),
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); show the chain.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "http://h:8080/v1/graphql";

    #[derive(Debug, serde::Deserialize)]
    struct Rows {
        affected_rows: i64,
    }

    #[test]
    fn graphql_errors_carry_code_and_path() {
        let body = br#"{"errors":[{"extensions":{"path":"$.selectionSet.insert_cognito_users.args.objects[0].nope","code":"validation-failed"},"message":"field 'nope' not found in type: 'cognito_users_insert_input'"}]}"#;
        let err = decode::<Rows>(E, "UpsertUsers", 200, body).unwrap_err();
        assert_eq!(err.code(), Some("validation-failed"));
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.contains("UpsertUsers") && text.contains("objects[0].nope"),
            "{text}"
        );
        assert!(text.contains("migrations"), "{text}");
    }

    #[test]
    fn the_classifier_retries_only_what_can_succeed_later() {
        let gql = |code: &str| HasuraError::GraphQl {
            operation: "Op".into(),
            code: code.into(),
            path: None,
            message: "m".into(),
        };
        assert!(gql("unexpected").is_retryable());
        for code in [
            "validation-failed",
            "access-denied",
            "constraint-violation",
            "data-exception",
            "invalid-jwt",
        ] {
            assert!(!gql(code).is_retryable(), "{code}");
        }
        let status = |status| HasuraError::Status {
            endpoint: E.into(),
            operation: "Op".into(),
            status,
            body: String::new(),
        };
        assert!(status(502).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        let unreachable = HasuraError::Unreachable {
            endpoint: "http://x".into(),
            operation: "Op".into(),
            message: "refused".into(),
            timeout: false,
        };
        assert!(unreachable.is_retryable());
    }

    #[test]
    fn data_and_status_errors_decode() {
        let rows: Rows = decode(E, "Op", 200, br#"{"data":{"affected_rows":3}}"#).unwrap();
        assert_eq!(rows.affected_rows, 3);
        let err = decode::<Rows>(E, "Op", 503, b"upstream down").unwrap_err();
        assert!(matches!(err, HasuraError::Status { status: 503, .. }));
        assert!(err.is_retryable());
        let denied = decode::<Rows>(
            E,
            "Op",
            200,
            br#"{"errors":[{"extensions":{"path":"$","code":"access-denied"},"message":"invalid x-hasura-admin-secret/x-hasura-access-key"}]}"#,
        )
        .unwrap_err();
        assert!(!denied.is_retryable());
        assert!(
            denied.to_string().contains("HASURA_GRAPHQL_ADMIN_SECRET"),
            "{denied}"
        );
    }

    #[test]
    fn a_404_says_the_endpoint_must_be_the_graphql_url() {
        // What Hasura answers on a path it does not serve (its root, or a trailing slash).
        let not_found = br#"{"path":"$","error":"resource does not exist","code":"not-found"}"#;
        for (endpoint, likely) in [
            (
                "https://h.example.com/v1/graphql/",
                "https://h.example.com/v1/graphql",
            ),
            ("https://h.example.com", "https://h.example.com/v1/graphql"),
        ] {
            let err = decode::<Rows>(endpoint, "CheckSchema", 404, not_found).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("at {endpoint} answered CheckSchema with HTTP 404"))
                    && text.contains("HASURA_GRAPHQL_ENDPOINT must be the full GraphQL URL")
                    && text.contains("ending in /v1/graphql")
                    && text.contains(&format!("did you mean {likely}?")),
                "{text}"
            );
            assert!(err.is_configuration() && !err.is_retryable());
            assert_eq!(err.problem(), "misconfigured");
        }
        // A custom path gets the rule but no guess; an empty body is not shown as ": ".
        let text = decode::<Rows>("https://p.example.com/gql", "Op", 404, b"")
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("HTTP 404; nothing serves GraphQL at https://p.example.com/gql")
                && !text.contains("did you mean"),
            "{text}"
        );
    }

    #[test]
    fn health_checks_tell_rejected_credentials_from_an_unreachable_hasura() {
        let unreachable = HasuraError::Unreachable {
            endpoint: E.into(),
            operation: "DaemonProbe".into(),
            message: "connection refused".into(),
            timeout: false,
        };
        assert_eq!(unreachable.problem(), "unreachable");
        let secret = decode::<Rows>(
            E,
            "DaemonProbe",
            200,
            br#"{"errors":[{"extensions":{"path":"$","code":"access-denied"},"message":"invalid x-hasura-admin-secret/x-hasura-access-key"}]}"#,
        )
        .unwrap_err();
        assert_eq!(secret.problem(), "rejects the credentials");
        assert!(secret.to_string().contains("HASURA_GRAPHQL_ADMIN_SECRET"));
        let jwt = decode::<Rows>(
            E,
            "DaemonProbe",
            200,
            br#"{"errors":[{"extensions":{"path":"$","code":"invalid-jwt"},"message":"Could not verify JWT: JWTExpired"}]}"#,
        )
        .unwrap_err();
        assert_eq!(jwt.problem(), "rejects the credentials");
        assert!(jwt.to_string().contains("HASURA_GRAPHQL_JWT"), "{jwt}");
        let proxy = decode::<Rows>(E, "DaemonProbe", 401, b"Unauthorized").unwrap_err();
        assert_eq!(proxy.problem(), "rejects the credentials");
        assert!(
            proxy
                .to_string()
                .contains("HASURA_GRAPHQL_ADMIN_SECRET or HASURA_GRAPHQL_JWT"),
            "{proxy}"
        );
        let schema = decode::<Rows>(
            E,
            "DaemonProbe",
            200,
            br#"{"errors":[{"extensions":{"path":"$.selectionSet.cognito_users","code":"validation-failed"},"message":"field 'cognito_users' not found in type: 'query_root'"}]}"#,
        )
        .unwrap_err();
        assert_eq!(schema.problem(), "misconfigured");
        let down = decode::<Rows>(E, "DaemonProbe", 503, b"").unwrap_err();
        assert_eq!(down.problem(), "failing");
    }

    #[test]
    fn an_answer_that_does_not_match_the_types_is_not_retried() {
        let err =
            decode::<Rows>(E, "Op", 200, br#"{"data":{"affected_rows":"three"}}"#).unwrap_err();
        assert!(matches!(err, HasuraError::Decode { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(!err.blames_data());
        let empty = decode::<Rows>(E, "Op", 200, br#"{}"#).unwrap_err();
        assert!(!empty.is_retryable());
    }

    #[test]
    fn errors_caused_by_the_values_sent_blame_the_data() {
        // What Hasura answers when PostgreSQL refuses a value (SQLSTATE classes 22 and 23).
        let nul = br#"{"errors":[{"extensions":{"path":"$","code":"data-exception"},"message":"unsupported Unicode escape sequence"}]}"#;
        let err = decode::<Rows>(E, "UpsertUsers", 200, nul).unwrap_err();
        assert!(err.blames_data() && !err.is_retryable());
        let unique = br#"{"errors":[{"extensions":{"path":"$","code":"constraint-violation"},"message":"Uniqueness violation. duplicate key value violates unique constraint"}]}"#;
        assert!(
            decode::<Rows>(E, "Op", 200, unique)
                .unwrap_err()
                .blames_data()
        );
        let check = br#"{"errors":[{"extensions":{"path":"$","code":"permission-error"},"message":"Check constraint violation. new row violates check constraint"}]}"#;
        assert!(
            decode::<Rows>(E, "Op", 200, check)
                .unwrap_err()
                .blames_data()
        );
        let permission = br#"{"errors":[{"extensions":{"path":"$","code":"permission-error"},"message":"permission denied"}]}"#;
        assert!(
            !decode::<Rows>(E, "Op", 200, permission)
                .unwrap_err()
                .blames_data()
        );
        for code in [
            "validation-failed",
            "unexpected",
            "access-denied",
            "invalid-jwt",
        ] {
            let err = HasuraError::GraphQl {
                operation: "Op".into(),
                code: code.into(),
                path: None,
                message: "m".into(),
            };
            assert!(!err.blames_data(), "{code}");
        }
        let status = HasuraError::Status {
            endpoint: E.into(),
            operation: "Op".into(),
            status: 400,
            body: "data-exception".into(),
        };
        assert!(!status.blames_data());
    }
}
