//! Telemetry events of the Cognito reader: calls, throttling and rate-limit changes per quota
//! category, retries, restarted listings, and the path of each single-user read.
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series, so
//! the log line and the counter can never disagree.

use std::time::Duration;

/// One Cognito API request finished (each retry is a request of its own).
#[derive(Debug)]
pub struct CognitoCallCompleted<'a> {
    pub pool: &'a str,
    pub operation: &'static str,
    /// The quota category Cognito counts the operation against (`UserList`, ...).
    pub category: &'static str,
    /// `ok`, `throttled`, `transient` (retryable failure) or `error` (permanent failure).
    pub outcome: &'static str,
    pub elapsed: Duration,
}

impl CognitoCallCompleted<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pool = self.pool,
            operation = self.operation,
            category = self.category,
            outcome = self.outcome,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "cognito call completed"
        );
        metrics::counter!(
            "cognito_calls_total",
            "operation" => self.operation,
            "category" => self.category,
            "outcome" => self.outcome
        )
        .increment(1);
    }
}

/// Cognito answered TooManyRequestsException (or LimitExceededException).
#[derive(Debug)]
pub struct CognitoThrottled<'a> {
    pub pool: &'a str,
    pub operation: &'static str,
    /// The quota category that was throttled, and is slowed down.
    pub category: &'static str,
    pub code: &'a str,
    /// The category's rate after this throttle was taken into account.
    pub rate_per_second: f64,
}

impl CognitoThrottled<'_> {
    pub fn emit(&self) {
        tracing::info!(
            pool = self.pool,
            operation = self.operation,
            category = self.category,
            reason = self.code,
            rate_per_second = self.rate_per_second,
            "cognito throttled the request; slowing its quota category down"
        );
        metrics::counter!(
            "cognito_throttled_total",
            "operation" => self.operation,
            "category" => self.category
        )
        .increment(1);
    }
}

/// A failed request is sent again after a backoff delay.
#[derive(Debug)]
pub struct CognitoRetry<'a> {
    pub pool: &'a str,
    pub operation: &'static str,
    /// `throttled`, `server_error`, `timeout`, `network` or `bad_response`.
    pub reason: &'static str,
    /// 1 for the first retry.
    pub attempt: u32,
    pub delay: Duration,
    pub message: &'a str,
}

impl CognitoRetry<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pool = self.pool,
            operation = self.operation,
            reason = self.reason,
            attempt = self.attempt,
            delay_ms = self.delay.as_millis() as u64,
            error = self.message,
            "retrying cognito call"
        );
        metrics::counter!(
            "cognito_retries_total",
            "operation" => self.operation,
            "reason" => self.reason
        )
        .increment(1);
    }
}

/// A Cognito call failed for good: a permanent error, or retries exhausted.
#[derive(Debug)]
pub struct CognitoCallFailed<'a> {
    pub pool: &'a str,
    pub operation: &'static str,
    pub reason: &'a str,
    pub message: &'a str,
}

impl CognitoCallFailed<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            pool = self.pool,
            operation = self.operation,
            reason = self.reason,
            error = self.message,
            "cognito call failed"
        );
        metrics::counter!(
            "cognito_call_failures_total",
            "operation" => self.operation,
            "reason" => self.reason.to_owned()
        )
        .increment(1);
    }
}

/// A quota category's client-side rate changed (halved on throttling, raised while healthy).
#[derive(Debug)]
pub struct CognitoRateChanged<'a> {
    pub pool: &'a str,
    pub category: &'static str,
    pub rate_per_second: f64,
    pub ceiling_per_second: f64,
}

impl CognitoRateChanged<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pool = self.pool,
            category = self.category,
            rate_per_second = self.rate_per_second,
            ceiling_per_second = self.ceiling_per_second,
            "cognito read rate changed"
        );
        metrics::gauge!("cognito_read_rate_per_second", "category" => self.category)
            .set(self.rate_per_second);
        metrics::counter!("cognito_rate_changes_total", "category" => self.category).increment(1);
    }
}

/// Cognito rejected the pagination token of a listing (a member deleted while it was paged
/// through, an expired token); the listing starts over from its first page.
#[derive(Debug)]
pub struct CognitoListingRestarted<'a> {
    pub pool: &'a str,
    pub operation: &'static str,
    /// What is listed, e.g. `members of group "admins"`.
    pub listing: &'a str,
    /// 1 for the first restart of this listing.
    pub restart: u32,
    /// Restarts allowed before the listing fails.
    pub max_restarts: u32,
    pub message: &'a str,
}

impl CognitoListingRestarted<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            pool = self.pool,
            operation = self.operation,
            listing = self.listing,
            restart = self.restart,
            max_restarts = self.max_restarts,
            error = self.message,
            "pagination token rejected; restarting the listing from its first page"
        );
        metrics::counter!("cognito_listing_restarts_total", "operation" => self.operation)
            .increment(1);
    }
}

/// A single user was read, by the path named: `admin_get_user_by_sub` (AdminGetUser with the
/// `sub`, UserRead), `sub_filter` (ListUsers `sub = "..."`, UserList, after AdminGetUser
/// answered UserNotFound) or `admin_get_user_by_username`.
#[derive(Debug)]
pub struct CognitoUserRead<'a> {
    pub pool: &'a str,
    pub path: &'static str,
    /// Whether Cognito has the user.
    pub found: bool,
}

impl CognitoUserRead<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pool = self.pool,
            path = self.path,
            found = self.found,
            "cognito user read"
        );
        metrics::counter!(
            "cognito_user_reads_total",
            "path" => self.path,
            "found" => if self.found { "true" } else { "false" }
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    use super::*;

    /// Counter increments and gauge values by `name{label=value,...}`.
    #[derive(Default)]
    struct Captured(Mutex<Vec<(String, f64)>>);

    struct Handle {
        key: String,
        sink: Arc<Captured>,
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.sink
                .0
                .lock()
                .unwrap()
                .push((self.key.clone(), value as f64));
        }
        fn absolute(&self, value: u64) {
            CounterFn::increment(self, value);
        }
    }

    impl GaugeFn for Handle {
        fn increment(&self, value: f64) {
            self.sink.0.lock().unwrap().push((self.key.clone(), value));
        }
        fn decrement(&self, value: f64) {
            self.sink.0.lock().unwrap().push((self.key.clone(), -value));
        }
        fn set(&self, value: f64) {
            self.sink.0.lock().unwrap().push((self.key.clone(), value));
        }
    }

    struct TestRecorder(Arc<Captured>);

    impl TestRecorder {
        fn handle(&self, key: &Key) -> Arc<Handle> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let key = format!("{}{{{}}}", key.name(), labels.join(","));
            Arc::new(Handle {
                key,
                sink: self.0.clone(),
            })
        }
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.handle(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.handle(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn events_count_under_their_names_and_labels() {
        let sink = Arc::new(Captured::default());
        let recorder = TestRecorder(sink.clone());
        metrics::with_local_recorder(&recorder, || {
            let pool = "us-east-1_X";
            let operation = "ListUsers";
            let category = "UserList";
            CognitoCallCompleted {
                pool,
                operation,
                category,
                outcome: "ok",
                elapsed: Duration::ZERO,
            }
            .emit();
            CognitoThrottled {
                pool,
                operation,
                category,
                code: "TooManyRequestsException",
                rate_per_second: 12.5,
            }
            .emit();
            CognitoRetry {
                pool,
                operation,
                reason: "throttled",
                attempt: 1,
                delay: Duration::from_millis(100),
                message: "Rate exceeded",
            }
            .emit();
            CognitoCallFailed {
                pool,
                operation,
                reason: "access_denied",
                message: "no",
            }
            .emit();
            CognitoRateChanged {
                pool,
                category,
                rate_per_second: 12.5,
                ceiling_per_second: 25.0,
            }
            .emit();
            CognitoListingRestarted {
                pool,
                operation: "ListUsersInGroup",
                listing: "members of group \"admins\"",
                restart: 1,
                max_restarts: 5,
                message: "InvalidToken",
            }
            .emit();
            CognitoUserRead {
                pool,
                path: "sub_filter",
                found: true,
            }
            .emit();
        });
        let captured = sink.0.lock().unwrap().clone();
        let expected: Vec<(String, f64)> = [
            (
                "cognito_calls_total{operation=ListUsers,category=UserList,outcome=ok}",
                1.0,
            ),
            (
                "cognito_throttled_total{operation=ListUsers,category=UserList}",
                1.0,
            ),
            (
                "cognito_retries_total{operation=ListUsers,reason=throttled}",
                1.0,
            ),
            (
                "cognito_call_failures_total{operation=ListUsers,reason=access_denied}",
                1.0,
            ),
            ("cognito_read_rate_per_second{category=UserList}", 12.5),
            ("cognito_rate_changes_total{category=UserList}", 1.0),
            (
                "cognito_listing_restarts_total{operation=ListUsersInGroup}",
                1.0,
            ),
            ("cognito_user_reads_total{path=sub_filter,found=true}", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(captured, expected);
    }
}
