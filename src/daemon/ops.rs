//! The operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the health state behind
//! `/readyz`, fed by the consumer loops and the periodic probe.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

use crate::telemetry::daemon::ReadinessChanged;

/// What `/readyz` decides from. Consecutive failed batches make the daemon unready after
/// `unready_after`; one good batch makes it ready again.
#[derive(Debug)]
pub struct Health {
    unready_after: u32,
    /// A poll loop that has not finished a receive for this long is stuck.
    stuck_after: Duration,
    state: Mutex<HealthState>,
}

#[derive(Debug)]
struct HealthState {
    consecutive_failures: u32,
    queue_error: Option<String>,
    hasura_error: Option<String>,
    last_poll: Instant,
    last_answer: Option<bool>,
}

impl Health {
    pub fn new(unready_after: u32, stuck_after: Duration) -> Self {
        Health {
            unready_after: unready_after.max(1),
            stuck_after,
            state: Mutex::new(HealthState {
                consecutive_failures: 0,
                queue_error: None,
                hasura_error: None,
                last_poll: Instant::now(),
                last_answer: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receive finished (with or without messages).
    pub fn polled(&self) {
        let mut state = self.lock();
        state.last_poll = Instant::now();
        state.queue_error = None;
    }

    /// A batch was applied (or had nothing to apply).
    pub fn batch_succeeded(&self) {
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.hasura_error = None;
    }

    /// A batch could not be applied because a dependency failed.
    pub fn batch_failed(&self) {
        self.lock().consecutive_failures += 1;
    }

    /// The result of a queue probe or receive: `None` when it answered, else what is wrong
    /// first (`unreachable: …`, `does not exist: …`).
    pub fn queue_reachable(&self, error: Option<String>) {
        self.lock().queue_error = error;
    }

    /// The result of a Hasura probe: `None` when it answered, else what is wrong first
    /// (`unreachable: …`, `rejects the credentials: …`, see [`HasuraError::problem`]).
    ///
    /// [`HasuraError::problem`]: crate::hasura::HasuraError::problem
    pub fn hasura_reachable(&self, error: Option<String>) {
        self.lock().hasura_error = error;
    }

    /// `Ok` when ready, else why not. Logs each change of answer once.
    pub fn readiness(&self) -> Result<(), String> {
        let mut state = self.lock();
        let verdict = if let Some(error) = &state.queue_error {
            Err(format!("queue {error}"))
        } else if let Some(error) = &state.hasura_error {
            Err(format!("hasura {error}"))
        } else if state.consecutive_failures >= self.unready_after {
            Err(format!(
                "{} consecutive batches failed",
                state.consecutive_failures
            ))
        } else if state.last_poll.elapsed() > self.stuck_after {
            Err(format!(
                "no receive finished for {} s",
                state.last_poll.elapsed().as_secs()
            ))
        } else {
            Ok(())
        };
        let ready = verdict.is_ok();
        if state.last_answer != Some(ready) {
            state.last_answer = Some(ready);
            let why = verdict.as_ref().err().map_or("ok", String::as_str);
            ReadinessChanged { ready, why }.emit();
        }
        verdict
    }
}

#[derive(Clone)]
struct OpsState {
    health: Arc<Health>,
    metrics: PrometheusHandle,
}

/// The router of the operations listener.
pub fn router(health: Arc<Health>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { health, metrics })
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unready_after_consecutive_failures_and_back() {
        let health = Health::new(3, Duration::from_secs(60));
        assert!(health.readiness().is_ok());
        health.batch_failed();
        health.batch_failed();
        assert!(health.readiness().is_ok());
        health.batch_failed();
        assert!(health.readiness().unwrap_err().contains("3 consecutive"));
        health.batch_succeeded();
        assert!(health.readiness().is_ok());
        health.hasura_reachable(Some("rejects the credentials: invalid secret".into()));
        assert_eq!(
            health.readiness().unwrap_err(),
            "hasura rejects the credentials: invalid secret"
        );
        health.hasura_reachable(None);
        health.queue_reachable(Some("unreachable: timeout".into()));
        assert_eq!(
            health.readiness().unwrap_err(),
            "queue unreachable: timeout"
        );
        health.polled();
        assert!(health.readiness().is_ok());
    }
}
