//! Telemetry events of the Cognito reader: calls, throttling, retries, rate-limit changes.
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series, so
//! the log line and the counter can never disagree.

use std::time::Duration;

/// One Cognito API request finished (each retry is a request of its own).
#[derive(Debug)]
pub struct CognitoCallCompleted<'a> {
    pub pool: &'a str,
    pub operation: &'static str,
    /// `ok`, `throttled`, `transient` (retryable failure) or `error` (permanent failure).
    pub outcome: &'static str,
    pub elapsed: Duration,
}

impl CognitoCallCompleted<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pool = self.pool,
            operation = self.operation,
            outcome = self.outcome,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "cognito call completed"
        );
        metrics::counter!(
            "cognito_calls_total",
            "operation" => self.operation,
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
    pub code: &'a str,
    /// The shared read rate after this throttle was taken into account.
    pub rate_per_second: f64,
}

impl CognitoThrottled<'_> {
    pub fn emit(&self) {
        tracing::info!(
            pool = self.pool,
            operation = self.operation,
            reason = self.code,
            rate_per_second = self.rate_per_second,
            "cognito throttled the request; slowing down"
        );
        metrics::counter!("cognito_throttled_total", "operation" => self.operation).increment(1);
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

/// The shared client-side read rate changed (halved on throttling, raised while healthy).
#[derive(Debug)]
pub struct CognitoRateChanged<'a> {
    pub pool: &'a str,
    pub rate_per_second: f64,
    pub ceiling_per_second: f64,
}

impl CognitoRateChanged<'_> {
    pub fn emit(&self) {
        tracing::debug!(
            pool = self.pool,
            rate_per_second = self.rate_per_second,
            ceiling_per_second = self.ceiling_per_second,
            "cognito read rate changed"
        );
        metrics::gauge!("cognito_read_rate_per_second").set(self.rate_per_second);
        metrics::counter!("cognito_rate_changes_total").increment(1);
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
            CognitoCallCompleted {
                pool,
                operation,
                outcome: "ok",
                elapsed: Duration::ZERO,
            }
            .emit();
            CognitoThrottled {
                pool,
                operation,
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
                rate_per_second: 12.5,
                ceiling_per_second: 25.0,
            }
            .emit();
        });
        let captured = sink.0.lock().unwrap().clone();
        let expected: Vec<(String, f64)> = [
            ("cognito_calls_total{operation=ListUsers,outcome=ok}", 1.0),
            ("cognito_throttled_total{operation=ListUsers}", 1.0),
            (
                "cognito_retries_total{operation=ListUsers,reason=throttled}",
                1.0,
            ),
            (
                "cognito_call_failures_total{operation=ListUsers,reason=access_denied}",
                1.0,
            ),
            ("cognito_read_rate_per_second{}", 12.5),
            ("cognito_rate_changes_total{}", 1.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(captured, expected);
    }
}
