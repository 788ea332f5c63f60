//! The scheduled reconcile inside the daemon: a cron schedule (`tokio-cron-scheduler`), a
//! lease shared by the replicas, and early runs when the event path asks for them
//! ([`ReconcileRequests`], debounced there).
//!
//! One loop per process runs the reconciles, so two never overlap in a process; a tick that
//! arrives during a run is dropped, not queued (a request is kept: it may postdate the
//! scan). Each run first takes the pool's scan lease ([`crate::state::lease::scan_lease`]), the
//! one every scanner of the pool holds (a backfill or a command-line reconcile too): a
//! replica that cannot take it skips the tick.
//! The holder renews the lease every third of its time to live while it runs and cancels the
//! run when the lease is lost (a run still scanning stops without writing; one already
//! writing finishes its guarded, idempotent writes); after a run it keeps the lease until it
//! expires, so a replica whose clock fires a little later does not run the same tick again.
//! A holder that died stops renewing; its lease expires and another replica takes over at
//! its next tick. On shutdown the lease is released.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::requests::ReconcileRequests;
use crate::cognito::CognitoReader;
use crate::hasura::HasuraClient;
use crate::state::lease::{Lease, scan_lease};
use crate::sync::reconcile::{ReconcileOptions, reconcile};
use crate::telemetry::reconcile::ReconcileLeaseBusy;

/// Every hour, on the hour (seconds field first, as `tokio-cron-scheduler` reads it).
pub const DEFAULT_SCHEDULE: &str = "0 0 * * * *";

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The cron expression; `None` disables scheduled (and requested) runs.
    pub schedule: Option<String>,
    pub lease_ttl: Duration,
    /// This process's name in the lease.
    pub holder: String,
    pub reconcile: ReconcileOptions,
}

impl SchedulerOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.reconcile.max_delete_fraction) {
            anyhow::bail!(
                "--reconcile-max-delete-fraction must be between 0 and 1, not {}",
                self.reconcile.max_delete_fraction
            );
        }
        Ok(())
    }
}

/// `off` (any case) → `None`; otherwise the expression, if the scheduler accepts it.
pub fn parse_schedule(text: &str) -> anyhow::Result<Option<String>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    Job::new_async(text, |_, _| Box::pin(async {})).with_context(|| {
        format!("invalid --reconcile-schedule {text:?}: expected cron with seconds, e.g. {DEFAULT_SCHEDULE:?}, or off")
    })?;
    Ok(Some(text.to_owned()))
}

/// Runs reconciles of the reader's pool on the schedule and on `requests` until `shutdown`
/// (with the schedule `off`, only waits for `shutdown`). Failed or braked runs are logged and counted; the scheduler goes on.
pub async fn run_scheduler(
    reader: CognitoReader,
    hasura: HasuraClient,
    options: SchedulerOptions,
    requests: ReconcileRequests,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(schedule) = options.schedule.clone() else {
        tracing::info!("scheduled reconcile is off");
        shutdown.cancelled().await;
        return Ok(());
    };
    let ticks = Arc::new(Notify::new());
    let mut scheduler = JobScheduler::new()
        .await
        .context("cannot start the reconcile scheduler")?;
    let notify = ticks.clone();
    let job = Job::new_async(schedule.as_str(), move |_, _| {
        let notify = notify.clone();
        Box::pin(async move { notify.notify_one() })
    })
    .with_context(|| format!("invalid reconcile schedule {schedule:?}"))?;
    scheduler
        .add(job)
        .await
        .context("cannot schedule the reconcile")?;
    scheduler
        .start()
        .await
        .context("cannot start the reconcile scheduler")?;
    let lease = Lease::new(
        hasura.clone(),
        scan_lease(reader.user_pool_id()),
        options.holder.clone(),
        options.lease_ttl,
    );
    tracing::info!(schedule, holder = lease.holder(), "scheduled reconcile on");

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.notified() => {}
            covered = requests.next() => tracing::info!(requests = covered, "early reconcile requested"),
        }
        run_leased(&lease, &reader, &hasura, options.reconcile, &shutdown).await;
        // A tick that came during the run is covered by it.
        let _ = ticks.notified().now_or_never();
    }
    if let Err(err) = scheduler.shutdown().await {
        tracing::warn!(error = %err, "cannot stop the reconcile scheduler cleanly");
    }
    match lease.release().await {
        Ok(_) => {}
        Err(err) => tracing::warn!(
            error = format!("{err:#}"),
            "cannot release the reconcile lease; it will expire"
        ),
    }
    Ok(())
}

/// One reconcile under the lease, if this replica gets it.
async fn run_leased(
    lease: &Lease,
    reader: &CognitoReader,
    hasura: &HasuraClient,
    options: ReconcileOptions,
    shutdown: &CancellationToken,
) {
    match lease.acquire().await {
        Ok(true) => {}
        Ok(false) => {
            ReconcileLeaseBusy {
                lease: lease.name(),
            }
            .emit();
            return;
        }
        Err(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                "cannot take the reconcile lease; skipping this run"
            );
            return;
        }
    }
    let run_cancel = shutdown.child_token();
    // Aborted when the run ends, and also when this future is dropped (the scheduler's task
    // aborted): a renewal outliving its run would hold the lease forever.
    let heartbeat = AbortOnDropHandle::new(tokio::spawn({
        let lease = lease.clone();
        let run = run_cancel.clone();
        async move { lease.keep(run).await }
    }));
    let result = reconcile(reader.clone(), hasura.clone(), options, run_cancel.clone()).await;
    drop(heartbeat);
    match result {
        Ok(report) if report.braked() => {}
        Ok(report) => tracing::debug!(
            run = report.run_id.map(|id| id.to_string()),
            "scheduled reconcile done"
        ),
        Err(err) => tracing::error!(error = format!("{err:#}"), "scheduled reconcile failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_or_say_why_not() {
        assert_eq!(parse_schedule("off").unwrap(), None);
        assert_eq!(parse_schedule(" OFF ").unwrap(), None);
        assert_eq!(
            parse_schedule(DEFAULT_SCHEDULE).unwrap().as_deref(),
            Some(DEFAULT_SCHEDULE)
        );
        assert_eq!(
            parse_schedule("0 */15 * * * *").unwrap().as_deref(),
            Some("0 */15 * * * *")
        );
        let err = parse_schedule("every hour").unwrap_err();
        assert!(
            format!("{err:#}").contains("--reconcile-schedule"),
            "{err:#}"
        );
    }
}
