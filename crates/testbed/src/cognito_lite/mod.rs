//! cognito-lite: a fast in-memory Cognito user pool emulator for BENCHMARKS.
//!
//! moto, the emulator the tests use, filters the whole pool in Python on every ListUsers
//! call: about 21 list calls per second at 10,000 users and far fewer at 100,000, so a
//! backfill, reconcile or daemon benchmark against moto measures moto. cognito-lite answers
//! the same calls in microseconds, so that the limits a benchmark sees are the ones a
//! [`crate::FaultProxy`] in front of it injects (Cognito's 30 RPS `UserList` quota,
//! latency) and those of the code under test. It is a benchmark stand-in, as hasura-lite is
//! for Hasura: the tests keep using moto, and production talks to Cognito.
//!
//! What it owns: the AWS JSON 1.1 protocol over HTTP on 127.0.0.1 (`POST /` with
//! `X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>`), for the operations the
//! sync engine and the test bed use (`api.rs`); errors in the shape real Cognito sends
//! (status 400, `x-amzn-ErrorType`, `{"__type", "message"}`) so the SDK raises the same typed
//! errors; and a bulk import (`POST /__cognito-lite/import`, [`PoolImport`]) that seeds a
//! pool of any size, federated (`EXTERNAL_PROVIDER`) users included, in one request.
//!
//! What it does like Cognito: `Limit` 0..=60 on list operations, ListUsers filters on the
//! searchable attributes only (`filter.rs`), pagination tokens valid only for the request
//! they came from (`token.rs`), a token after every full page (the next page may be empty),
//! username or a local user's `sub` accepted wherever a username is (a federated user's `sub`
//! is not: `UserNotFoundException`), attributes checked against the schema,
//! the default password policy. What it does not: authentication (signatures are not
//! checked), token expiry, triggers, email or SMS, `AttributesToGet` (rejected),
//! case-insensitive usernames, operations not listed in `api.rs` (`UnknownOperationException`).

mod api;
mod error;
mod filter;
mod import;
mod store;
mod token;

use std::sync::Arc;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};

pub use self::error::ApiError;
pub use self::import::{GroupImport, Imported, PoolImport, UserImport};
use self::store::Store;
use crate::served::Served;

/// Where the bulk import is posted.
pub const IMPORT_PATH: &str = "/__cognito-lite/import";
/// Largest request body: an import of a few hundred thousand users.
const MAX_BODY: usize = 1024 * 1024 * 1024;

/// A running cognito-lite; it stops when dropped.
#[derive(Debug)]
pub struct CognitoLite {
    store: Arc<Store>,
    served: Served,
}

impl CognitoLite {
    /// Serves on `127.0.0.1:<free port>`.
    pub async fn start() -> anyhow::Result<CognitoLite> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a port for cognito-lite")?;
        CognitoLite::serve(listener)
    }

    /// Serves on `listener`, with no pools.
    pub fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<CognitoLite> {
        let store = Arc::new(Store::new());
        let router = Router::new()
            .route("/", post(api_handler))
            .route(IMPORT_PATH, post(import_handler))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(store.clone());
        Ok(CognitoLite {
            store,
            served: Served::start(listener, router)?,
        })
    }

    /// `http://127.0.0.1:<port>`: the AWS endpoint URL (or a proxy's upstream).
    pub fn endpoint(&self) -> &str {
        self.served.url()
    }

    /// Creates a pool from `import` in-process (what `POST /__cognito-lite/import` does).
    pub fn import(&self, import: PoolImport) -> Result<Imported, ApiError> {
        self.store.import(import)
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.served.stop("cognito-lite").await
    }
}

async fn api_handler(State(store): State<Arc<Store>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix(api::TARGET_PREFIX) else {
        return ApiError::unknown_operation(target).into_response();
    };
    match api::call(&store, operation, &body) {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
            }
            response
        }
        Err(err) => err.into_response(),
    }
}

async fn import_handler(
    State(store): State<Arc<Store>>,
    body: Bytes,
) -> Result<Json<Imported>, Response> {
    // Parsing and indexing 100,000 users takes a while: off the async workers.
    let imported = tokio::task::spawn_blocking(move || {
        let import: PoolImport = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_parameter(format!("import: {e}")))?;
        store.import(import)
    })
    .await
    .map_err(|e| {
        crate::proxy::aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalErrorException",
            &format!("import task failed: {e}"),
        )
    })?;
    imported.map(Json).map_err(ApiError::into_response)
}
