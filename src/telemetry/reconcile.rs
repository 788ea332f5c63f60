//! Telemetry events of reconcile and its scheduler: the last run's time, duration, result
//! and drift as Prometheus gauges, the safety brake, and the lease.
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series.

use std::time::Duration;

/// A reconcile ended (succeeded, failed or stopped by the safety brake).
#[derive(Debug)]
pub struct ReconcileFinished<'a> {
    pub pool: &'a str,
    /// `succeeded`, `braked`, `failed` or `dry_run`.
    pub result: &'static str,
    pub duration: Duration,
    pub scanned: u64,
    pub inserted: u64,
    pub updated: u64,
    pub revived: u64,
    pub tombstoned: u64,
    pub unchanged: u64,
}

/// Every result a run can end with; the `reconcile_last_result` gauge is 1 for the last one.
pub const RESULTS: [&str; 4] = ["succeeded", "braked", "failed", "dry_run"];

impl ReconcileFinished<'_> {
    pub fn emit(&self) {
        tracing::info!(
            pool = self.pool,
            result = self.result,
            elapsed_seconds = self.duration.as_secs_f64(),
            scanned = self.scanned,
            inserted = self.inserted,
            updated = self.updated,
            revived = self.revived,
            tombstoned = self.tombstoned,
            unchanged = self.unchanged,
            "reconcile finished"
        );
        metrics::counter!("reconcile_runs_total", "result" => self.result).increment(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!("reconcile_last_finished_timestamp_seconds").set(now.as_secs_f64());
        metrics::gauge!("reconcile_last_duration_seconds").set(self.duration.as_secs_f64());
        for result in RESULTS {
            metrics::gauge!("reconcile_last_result", "result" => result)
                .set(if result == self.result { 1.0 } else { 0.0 });
        }
        let drift = [
            ("inserted", self.inserted),
            ("updated", self.updated),
            ("revived", self.revived),
            ("tombstoned", self.tombstoned),
            ("unchanged", self.unchanged),
        ];
        for (kind, count) in drift {
            metrics::gauge!("reconcile_last_users", "kind" => kind).set(count as f64);
        }
        metrics::gauge!("reconcile_last_users_scanned").set(self.scanned as f64);
    }
}

/// The safety brake stopped a reconcile before it wrote anything.
#[derive(Debug)]
pub struct ReconcileBraked<'a> {
    pub pool: &'a str,
    pub reason: &'a str,
}

impl ReconcileBraked<'_> {
    pub fn emit(&self) {
        tracing::error!(
            pool = self.pool,
            reason = self.reason,
            "reconcile safety brake: nothing tombstoned"
        );
        metrics::counter!("reconcile_brakes_total").increment(1);
    }
}

/// A scheduled reconcile was skipped because another replica holds the lease.
#[derive(Debug)]
pub struct ReconcileLeaseBusy<'a> {
    pub lease: &'a str,
}

impl ReconcileLeaseBusy<'_> {
    pub fn emit(&self) {
        tracing::info!(
            lease = self.lease,
            "another scanner holds the pool's scan lease"
        );
        metrics::counter!("reconcile_lease_busy_total").increment(1);
    }
}

/// The lease was lost while a reconcile ran (heartbeat refused or failing): the run stops.
#[derive(Debug)]
pub struct ReconcileLeaseLost<'a> {
    pub lease: &'a str,
    pub reason: &'a str,
}

impl ReconcileLeaseLost<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            lease = self.lease,
            reason = self.reason,
            "scan lease lost; stopping the run"
        );
        metrics::counter!("reconcile_lease_lost_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    #[test]
    fn the_last_run_is_exported_as_gauges() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let run = |result, tombstoned| ReconcileFinished {
                pool: "us-east-1_P",
                result,
                duration: Duration::from_millis(2500),
                scanned: 100,
                inserted: 1,
                updated: 2,
                revived: 0,
                tombstoned,
                unchanged: 97,
            };
            run("braked", 40).emit();
            run("succeeded", 3).emit();
        });
        let text = handle.render();
        for line in [
            "reconcile_last_result{result=\"succeeded\"} 1",
            "reconcile_last_result{result=\"braked\"} 0",
            "reconcile_last_users{kind=\"tombstoned\"} 3",
            "reconcile_last_duration_seconds 2.5",
            "reconcile_runs_total{result=\"braked\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            text.contains("reconcile_last_finished_timestamp_seconds"),
            "{text}"
        );
    }
}
