//! [`FaultProxy`]: an HTTP proxy in front of moto or hasura-lite that counts what the code
//! under test sends and injects what the emulators never do.
//!
//! Per request it: classifies the call ([`classify`]: AWS operation from `X-Amz-Target`,
//! GraphQL query or mutation), counts it, waits the configured latency, then answers in
//! place of the upstream when a rule applies, in this order:
//! 1. a request-rate quota of the operation is exhausted ([`quota`]) → Cognito's
//!    `TooManyRequestsException` (400, "Rate exceeded");
//! 2. `Limit` above 60 (or below 0) on a Cognito list operation → Cognito's
//!    `InvalidParameterException` (400) with the service's validation message;
//! 3. the seeded dice say fail → HTTP 500, before or after forwarding ([`FailPoint`]).
//!
//! Errors use the AWS JSON protocol shape the SDKs parse: status 400/500, header
//! `x-amzn-ErrorType: <Code>`, body `{"__type":"<Code>","message":"..."}`, so the code
//! under test sees the same typed errors as against real Cognito. Settings can change
//! while the proxy runs; `GET /__proxy/stats` returns the counts as JSON and
//! `POST /__proxy/reset` zeroes them.

pub mod classify;
pub mod quota;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use serde_json::json;

use self::classify::{Call, Service};
use self::quota::TokenBucket;
use crate::served::Served;

pub use self::classify::{GRAPHQL_OP, OTHER_OP};

/// Cognito's maximum `Limit` on list operations.
pub const COGNITO_MAX_LIMIT: i64 = 60;
/// The Cognito operations whose `Limit` must be between 0 and [`COGNITO_MAX_LIMIT`].
pub const LIMITED_OPERATIONS: [&str; 4] = [
    "ListUsers",
    "ListUsersInGroup",
    "ListGroups",
    "AdminListGroupsForUser",
];
/// The operations Cognito counts against its `UserList` quota (30 RPS, not adjustable).
pub const COGNITO_USER_LIST_OPERATIONS: [&str; 2] = ["ListUsers", "ListUsersInGroup"];
/// Cognito's `UserList` quota in requests per second.
pub const COGNITO_USER_LIST_RPS: f64 = 30.0;
/// Largest request body the proxy buffers.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// When an injected failure happens relative to the upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum FailPoint {
    /// The upstream never sees the request (a connection that broke on the way in).
    #[default]
    BeforeUpstream,
    /// The upstream handles the request, the answer is replaced by a 500 (the effect
    /// happened but the caller cannot know: the retry must be harmless).
    AfterUpstream,
}

/// The proxy's initial behaviour; everything can also be changed while it runs.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Added before answering every request.
    pub latency: Duration,
    /// Fraction (0..=1) of requests answered with HTTP 500.
    pub fail_fraction: f64,
    /// Seed of the failure dice, for a reproducible sequence; random when `None`.
    pub fail_seed: Option<u64>,
    /// Whether injected failures happen before or after the upstream call.
    pub fail_point: FailPoint,
    /// Operations failures apply to (for example `ListUsers`, [`GRAPHQL_OP`]); all when `None`.
    pub fail_ops: Option<BTreeSet<String>>,
    /// Only requests whose body contains this text can fail (one user's reads, say); any
    /// request when `None`.
    pub fail_matching: Option<String>,
    /// Request-rate quotas: operations sharing one bucket, and its requests per second.
    pub quotas: Vec<(Vec<String>, f64)>,
    /// Reject `Limit` outside 0..=60 on [`LIMITED_OPERATIONS`] as Cognito does.
    pub enforce_limits: bool,
}

impl Default for ProxySettings {
    fn default() -> ProxySettings {
        ProxySettings {
            latency: Duration::ZERO,
            fail_fraction: 0.0,
            fail_seed: None,
            fail_point: FailPoint::BeforeUpstream,
            fail_ops: None,
            fail_matching: None,
            quotas: Vec::new(),
            enforce_limits: true,
        }
    }
}

impl ProxySettings {
    /// Adds Cognito's `UserList` quota: 30 RPS shared by ListUsers and ListUsersInGroup.
    pub fn with_cognito_user_list_quota(mut self) -> ProxySettings {
        self.quotas.push((
            COGNITO_USER_LIST_OPERATIONS.map(String::from).to_vec(),
            COGNITO_USER_LIST_RPS,
        ));
        self
    }
}

/// Counts of one operation since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpStats {
    /// Requests received, whatever happened to them.
    pub calls: u64,
    /// Requests that reached the upstream (including those failed after it).
    pub forwarded: u64,
    /// Answered `TooManyRequestsException` (quota).
    pub throttled: u64,
    /// Answered `InvalidParameterException` (`Limit` out of range).
    pub rejected: u64,
    /// Answered with an injected HTTP 500.
    pub failed: u64,
    /// The upstream could not be reached (answered 502).
    pub upstream_errors: u64,
    /// The largest `Limit` seen in a request body.
    pub max_limit: Option<i64>,
    /// The most requests that were in the proxy at once (latency and upstream included).
    pub max_in_flight: u64,
}

/// Everything counted since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyStats {
    /// Per operation (`ListUsers`, `ReceiveMessage`, [`GRAPHQL_OP`], [`OTHER_OP`]).
    pub ops: BTreeMap<String, OpStats>,
    /// Sums over all operations.
    pub total: OpStats,
    /// HTTP requests to `/v1/graphql`.
    pub graphql_requests: u64,
    /// GraphQL query operations (a batched request counts each operation).
    pub graphql_queries: u64,
    /// GraphQL mutation operations.
    pub graphql_mutations: u64,
    /// GraphQL operations by name (`operationName`); unnamed ones are not listed.
    pub graphql_operations: BTreeMap<String, u64>,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    served: Served,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    latency: Duration,
    fail_fraction: f64,
    fail_point: FailPoint,
    fail_ops: Option<BTreeSet<String>>,
    fail_matching: Option<String>,
    rng: StdRng,
    enforce_limits: bool,
    /// Buckets by key (the sorted operation names joined with `+`).
    buckets: HashMap<String, TokenBucket>,
    bucket_of: HashMap<String, String>,
    /// Requests in the proxy now, per operation.
    in_flight: HashMap<String, u64>,
    stats: ProxyStats,
}

/// What to do with one request, decided under the lock.
enum Verdict {
    Throttle,
    Reject(i64),
    Fail(FailPoint),
    Forward,
}

impl FaultProxy {
    /// A proxy on `127.0.0.1:<free port>` in front of `upstream` with default settings.
    pub async fn start(upstream: &str) -> anyhow::Result<FaultProxy> {
        FaultProxy::start_with(upstream, ProxySettings::default()).await
    }

    /// A proxy on `127.0.0.1:<free port>` in front of `upstream`.
    pub async fn start_with(upstream: &str, settings: ProxySettings) -> anyhow::Result<FaultProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy port")?;
        FaultProxy::serve(listener, upstream, settings)
    }

    /// A proxy serving on `listener` in front of `upstream` (an `http://host:port` URL).
    pub fn serve(
        listener: tokio::net::TcpListener,
        upstream: &str,
        settings: ProxySettings,
    ) -> anyhow::Result<FaultProxy> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the upstream HTTP client")?;
        let rng = match settings.fail_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let mut inner = Inner {
            latency: settings.latency,
            fail_fraction: settings.fail_fraction,
            fail_point: settings.fail_point,
            fail_ops: settings.fail_ops,
            fail_matching: settings.fail_matching,
            rng,
            enforce_limits: settings.enforce_limits,
            buckets: HashMap::new(),
            bucket_of: HashMap::new(),
            in_flight: HashMap::new(),
            stats: ProxyStats::default(),
        };
        for (ops, rps) in &settings.quotas {
            inner.set_quota(ops, *rps);
        }
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            http,
            inner: Mutex::new(inner),
        });
        let router = Router::new()
            .route("/__proxy/stats", get(stats_handler))
            .route("/__proxy/reset", post(reset_handler))
            .fallback(proxy_handler)
            .with_state(shared.clone());
        Ok(FaultProxy {
            shared,
            served: Served::start(listener, router)?,
        })
    }

    /// `http://127.0.0.1:<port>`: use it as the endpoint instead of the upstream's.
    pub fn url(&self) -> &str {
        self.served.url()
    }

    /// The URL requests are forwarded to.
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Latency added before answering every request.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Fraction (0..=1) of requests answered with HTTP 500.
    pub fn set_fail_fraction(&self, fraction: f64) {
        self.shared.lock().fail_fraction = fraction.clamp(0.0, 1.0);
    }

    /// Restarts the failure dice from `seed` (a reproducible sequence of failures).
    pub fn set_fail_seed(&self, seed: u64) {
        self.shared.lock().rng = StdRng::seed_from_u64(seed);
    }

    /// Whether injected failures happen before or after the upstream call.
    pub fn set_fail_point(&self, point: FailPoint) {
        self.shared.lock().fail_point = point;
    }

    /// Limits injected failures to these operations (all operations when `None`).
    pub fn set_fail_ops(&self, ops: Option<&[&str]>) {
        self.shared.lock().fail_ops = ops.map(|ops| ops.iter().map(|op| op.to_string()).collect());
    }

    /// Limits injected failures to requests whose body contains `text` (any request when `None`).
    pub fn set_fail_matching(&self, text: Option<&str>) {
        self.shared.lock().fail_matching = text.map(str::to_owned);
    }

    /// A request-rate quota of `rps` requests per second on one operation.
    pub fn set_quota(&self, op: &str, rps: f64) {
        self.set_shared_quota(&[op], rps);
    }

    /// One quota of `rps` requests per second shared by several operations.
    pub fn set_shared_quota(&self, ops: &[&str], rps: f64) {
        let ops: Vec<String> = ops.iter().map(|op| op.to_string()).collect();
        self.shared.lock().set_quota(&ops, rps);
    }

    /// Removes the quota of an operation.
    pub fn clear_quota(&self, op: &str) {
        self.shared.lock().clear_quota(op);
    }

    /// Turns Cognito's `Limit` validation on or off.
    pub fn set_enforce_limits(&self, enforce: bool) {
        self.shared.lock().enforce_limits = enforce;
    }

    /// Zeroes every count (settings are kept).
    pub fn reset_counts(&self) {
        self.shared.lock().stats = ProxyStats::default();
    }

    /// A snapshot of every count.
    pub fn stats(&self) -> ProxyStats {
        self.shared.lock().stats.clone()
    }

    /// The counts of one operation.
    pub fn op_stats(&self, op: &str) -> OpStats {
        self.shared
            .lock()
            .stats
            .ops
            .get(op)
            .cloned()
            .unwrap_or_default()
    }

    /// Requests received for an operation, whatever happened to them.
    pub fn calls(&self, op: &str) -> u64 {
        self.op_stats(op).calls
    }

    /// Requests of an operation that reached the upstream.
    pub fn forwarded(&self, op: &str) -> u64 {
        self.op_stats(op).forwarded
    }

    /// Requests of an operation answered `TooManyRequestsException`.
    pub fn throttled(&self, op: &str) -> u64 {
        self.op_stats(op).throttled
    }

    /// Requests of an operation answered `InvalidParameterException` for their `Limit`.
    pub fn rejected(&self, op: &str) -> u64 {
        self.op_stats(op).rejected
    }

    /// Requests of an operation answered with an injected 500.
    pub fn failed(&self, op: &str) -> u64 {
        self.op_stats(op).failed
    }

    /// The largest `Limit` seen on an operation.
    pub fn max_limit_seen(&self, op: &str) -> Option<i64> {
        self.op_stats(op).max_limit
    }

    /// HTTP requests to `/v1/graphql`.
    pub fn graphql_requests(&self) -> u64 {
        self.shared.lock().stats.graphql_requests
    }

    /// GraphQL query operations received.
    pub fn graphql_queries(&self) -> u64 {
        self.shared.lock().stats.graphql_queries
    }

    /// GraphQL mutation operations received.
    pub fn graphql_mutations(&self) -> u64 {
        self.shared.lock().stats.graphql_mutations
    }

    /// GraphQL operations received with this `operationName`.
    pub fn graphql_operation(&self, name: &str) -> u64 {
        self.shared
            .lock()
            .stats
            .graphql_operations
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.served.stop("the proxy").await
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent enough to
        // matter to a test; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn set_quota(&mut self, ops: &[String], rps: f64) {
        for op in ops {
            self.clear_quota(op);
        }
        let mut sorted = ops.to_vec();
        sorted.sort();
        let key = sorted.join("+");
        self.buckets.insert(key.clone(), TokenBucket::new(rps));
        for op in ops {
            self.bucket_of.insert(op.clone(), key.clone());
        }
    }

    fn clear_quota(&mut self, op: &str) {
        if self.bucket_of.remove(op).is_some() {
            let used: BTreeSet<&String> = self.bucket_of.values().collect();
            self.buckets.retain(|key, _| used.contains(key));
        }
    }

    /// Counts the call and decides its fate.
    fn admit(&mut self, call: &Call, body: &[u8]) -> Verdict {
        let stats = self.stats.ops.entry(call.op.clone()).or_default();
        stats.calls += 1;
        if call.limit.is_some() {
            stats.max_limit = stats.max_limit.max(call.limit);
        }
        self.stats.total.calls += 1;
        if call.limit.is_some() {
            self.stats.total.max_limit = self.stats.total.max_limit.max(call.limit);
        }
        if call.op == GRAPHQL_OP {
            self.stats.graphql_requests += 1;
            for op in &call.graphql {
                if op.mutation {
                    self.stats.graphql_mutations += 1;
                } else {
                    self.stats.graphql_queries += 1;
                }
                if let Some(name) = &op.name {
                    *self
                        .stats
                        .graphql_operations
                        .entry(name.clone())
                        .or_default() += 1;
                }
            }
        }

        let now = Instant::now();
        let bucket = self
            .bucket_of
            .get(&call.op)
            .and_then(|key| self.buckets.get_mut(key));
        if bucket.is_some_and(|bucket| !bucket.try_take(now)) {
            return Verdict::Throttle;
        }
        let limit_checked = self.enforce_limits
            && call.service == Service::Cognito
            && LIMITED_OPERATIONS.contains(&call.op.as_str());
        if let Some(limit) = call
            .limit
            .filter(|l| limit_checked && !(0..=COGNITO_MAX_LIMIT).contains(l))
        {
            return Verdict::Reject(limit);
        }
        let applies = self
            .fail_ops
            .as_ref()
            .is_none_or(|ops| ops.contains(&call.op))
            && self.fail_matching.as_ref().is_none_or(|text| {
                let text = text.as_bytes();
                !text.is_empty() && body.windows(text.len()).any(|window| window == text)
            });
        if applies && self.fail_fraction > 0.0 && self.rng.random::<f64>() < self.fail_fraction {
            return Verdict::Fail(self.fail_point);
        }
        Verdict::Forward
    }

    fn count(&mut self, op: &str, bump: impl Fn(&mut OpStats)) {
        bump(self.stats.ops.entry(op.to_string()).or_default());
        bump(&mut self.stats.total);
    }
}

async fn stats_handler(State(shared): State<Arc<Shared>>) -> Json<ProxyStats> {
    Json(shared.lock().stats.clone())
}

async fn reset_handler(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().stats = ProxyStats::default();
    StatusCode::NO_CONTENT
}

async fn proxy_handler(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("testbed proxy: reading the request body: {e}"),
            )
                .into_response();
        }
    };
    let call = classify::classify(&parts.method, parts.uri.path(), &parts.headers, &body);
    let _in_flight = InFlight::enter(&shared, &call.op);
    let (verdict, latency) = {
        let mut inner = shared.lock();
        (inner.admit(&call, &body), inner.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match verdict {
        Verdict::Throttle => {
            shared.lock().count(&call.op, |s| s.throttled += 1);
            throttled_response(&call)
        }
        Verdict::Reject(limit) => {
            shared.lock().count(&call.op, |s| s.rejected += 1);
            limit_response(limit)
        }
        Verdict::Fail(FailPoint::BeforeUpstream) => {
            shared.lock().count(&call.op, |s| s.failed += 1);
            failure_response(&call)
        }
        Verdict::Fail(FailPoint::AfterUpstream) => {
            let forwarded = forward(&shared, &parts, body).await;
            shared.lock().count(&call.op, |s| {
                if forwarded.is_ok() {
                    s.forwarded += 1;
                }
                s.failed += 1;
            });
            failure_response(&call)
        }
        Verdict::Forward => match forward(&shared, &parts, body).await {
            Ok(response) => {
                shared.lock().count(&call.op, |s| s.forwarded += 1);
                response
            }
            Err(e) => {
                shared.lock().count(&call.op, |s| s.upstream_errors += 1);
                (
                    StatusCode::BAD_GATEWAY,
                    format!("testbed proxy: upstream {}: {e:#}", shared.upstream),
                )
                    .into_response()
            }
        },
    }
}

/// One request inside the proxy: counted in its operation's in-flight number, which feeds
/// [`OpStats::max_in_flight`], until dropped.
struct InFlight<'a> {
    shared: &'a Shared,
    op: String,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, op: &str) -> Self {
        let mut inner = shared.lock();
        let now = {
            let n = inner.in_flight.entry(op.to_owned()).or_default();
            *n += 1;
            *n
        };
        let total: u64 = inner.in_flight.values().sum();
        let stats = inner.stats.ops.entry(op.to_owned()).or_default();
        stats.max_in_flight = stats.max_in_flight.max(now);
        inner.stats.total.max_in_flight = inner.stats.total.max_in_flight.max(total);
        InFlight {
            shared,
            op: op.to_owned(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.shared.lock().in_flight.get_mut(&self.op) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Sends the buffered request to the upstream and buffers its answer.
async fn forward(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> anyhow::Result<Response> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", shared.upstream);
    let upstream = shared
        .http
        .request(parts.method.clone(), &url)
        .headers(end_to_end(&parts.headers))
        .body(body)
        .send()
        .await
        .with_context(|| format!("{} {url}", parts.method))?;
    let status = upstream.status();
    let headers = end_to_end(upstream.headers());
    let body = upstream
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The headers of a message without hop-by-hop ones and the length (recomputed).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// An AWS JSON protocol error as Cognito sends it (cognito-lite answers with it too).
pub(crate) fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "__type": code, "message": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(code) = HeaderValue::from_str(code) {
        headers.insert(HeaderName::from_static("x-amzn-errortype"), code);
    }
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    response
}

fn throttled_response(call: &Call) -> Response {
    match call.service {
        Service::Cognito => aws_error(
            StatusCode::BAD_REQUEST,
            "TooManyRequestsException",
            "Rate exceeded",
        ),
        Service::OtherAws => aws_error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        ),
        Service::NotAws => (
            StatusCode::TOO_MANY_REQUESTS,
            "testbed proxy: rate exceeded",
        )
            .into_response(),
    }
}

fn limit_response(limit: i64) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterException",
        &limit_message(limit),
    )
}

/// Cognito's validation message for a `Limit` outside 0..=[`COGNITO_MAX_LIMIT`].
pub(crate) fn limit_message(limit: i64) -> String {
    let constraint = if limit < 0 {
        "Member must have value greater than or equal to 0".to_string()
    } else {
        format!("Member must have value less than or equal to {COGNITO_MAX_LIMIT}")
    };
    format!(
        "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: {constraint}"
    )
}

fn failure_response(call: &Call) -> Response {
    const MESSAGE: &str = "failure injected by the testbed proxy";
    match call.service {
        Service::Cognito => aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalErrorException",
            MESSAGE,
        ),
        Service::OtherAws => aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            MESSAGE,
        ),
        Service::NotAws => (StatusCode::INTERNAL_SERVER_ERROR, MESSAGE).into_response(),
    }
}
