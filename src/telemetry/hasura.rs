//! Telemetry events of the Hasura writer: requests by outcome, retries, committed batches,
//! and the machine client's access tokens.
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series.

use std::time::Duration;

/// One GraphQL request to Hasura finished (each retry is a request of its own).
#[derive(Debug)]
pub struct HasuraRequestCompleted<'a> {
    pub operation: &'a str,
    /// `ok`, `transient` (retryable failure) or `error` (permanent failure).
    pub outcome: &'static str,
    pub elapsed: Duration,
}

impl HasuraRequestCompleted<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            operation = self.operation,
            outcome = self.outcome,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "hasura request completed"
        );
        metrics::counter!(
            "hasura_requests_total",
            "operation" => self.operation.to_owned(),
            "outcome" => self.outcome
        )
        .increment(1);
    }
}

/// A failed request is sent again after a backoff delay.
#[derive(Debug)]
pub struct HasuraRetry<'a> {
    pub operation: &'a str,
    /// 1 for the first retry.
    pub attempt: u32,
    pub delay: Duration,
    pub error: &'a str,
}

impl HasuraRetry<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            operation = self.operation,
            attempt = self.attempt,
            delay_ms = self.delay.as_millis() as u64,
            error = self.error,
            "retrying hasura request"
        );
        metrics::counter!("hasura_retries_total", "operation" => self.operation.to_owned())
            .increment(1);
    }
}

/// The machine client got an access token from the token endpoint.
#[derive(Debug)]
pub struct AccessTokenFetched<'a> {
    pub client_id: &'a str,
    /// The lifetime the endpoint gave (`expires_in`), when it gave one.
    pub expires_in: Option<Duration>,
    pub elapsed: Duration,
}

impl AccessTokenFetched<'_> {
    pub fn emit(&self) {
        tracing::info!(
            client_id = self.client_id,
            expires_in_s = self.expires_in.map(|d| d.as_secs()),
            elapsed_ms = self.elapsed.as_millis() as u64,
            "fetched a Hasura access token"
        );
        metrics::counter!("hasura_access_tokens_total").increment(1);
    }
}

/// Hasura refused the current access token; the request is sent once more with a new one.
#[derive(Debug)]
pub struct AccessTokenRejected<'a> {
    pub operation: &'a str,
    pub error: &'a str,
}

impl AccessTokenRejected<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            operation = self.operation,
            error = self.error,
            "Hasura rejected the access token; sending again with a new one"
        );
        metrics::counter!("hasura_access_tokens_rejected_total").increment(1);
    }
}

/// A batch of users was committed to the mirror.
#[derive(Debug)]
pub struct UsersBatchCommitted {
    pub users: usize,
    /// Rows the upsert inserted or updated (unchanged and older states are skipped by the row guard).
    pub written: u64,
}

impl UsersBatchCommitted {
    pub fn emit(&self) {
        tracing::debug!(
            users = self.users,
            written = self.written,
            "user batch committed"
        );
        metrics::counter!("sync_users_seen_total").increment(self.users as u64);
        metrics::counter!("sync_users_written_total").increment(self.written);
    }
}
