//! The scheduled reconcile inside the daemon: a cron schedule (`tokio-cron-scheduler`), a
//! lease shared by the replicas, and early runs that pool-wide events ask for (rows of
//! `cognito_sync_requests`, [`crate::state::requests`]).
//!
//! One loop per process runs the reconciles, so two never overlap in a process; a tick that
//! arrives during a run is dropped, not queued. The loop runs also with the schedule `off`
//! (no cron, but requests are still served): it wakes on a cron tick, when this process's
//! consumer recorded a request ([`ReconcileRequests`]), and at least every
//! [`ReconcileRequests::poll_every`] to look at the pool's pending requests, which any
//! replica may have recorded. It runs once the oldest is a debounce old ([`due`]), so a burst
//! makes one run, and no sooner than the early-scan budget's interval after this process's
//! last run (`requests` module docs): requests arriving meanwhile fold into that run. Before a run it reads the pending requests; a run that succeeded marks
//! exactly those served (never one recorded later: it may postdate the scan), a braked or
//! failed one leaves them for the next.
//! Each run first takes the pool's scan lease ([`crate::state::lease::scan_lease`]), the one
//! every scanner of the pool holds (a backfill or a command-line reconcile too): a replica
//! that cannot take it skips the tick and leaves the requests to the holder.
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

use super::coalesce::{Rates, ShapeCache, pool_scan_seconds};
use super::requests::{Budget, Due, ReconcileRequests, due, early_scan_interval};
use crate::cognito::CognitoReader;
use crate::hasura::HasuraClient;
use crate::state::lease::{Lease, scan_lease};
use crate::state::requests::{PendingRequest, RequestStore};
use crate::sync::reconcile::{ReconcileOptions, reconcile};
use crate::telemetry::daemon::{
    EarlyReconcileDeferred, EarlyReconcileStarted, ReconcileRequestsLeft, ReconcileRequestsServed,
};
use crate::telemetry::reconcile::ReconcileLeaseBusy;

/// Every hour, on the hour (seconds field first, as `tokio-cron-scheduler` reads it).
pub const DEFAULT_SCHEDULE: &str = "0 0 * * * *";

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The cron expression; `None` disables scheduled runs (requested ones still run).
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

/// `off` (any case) → `None`; otherwise the expression in the scheduler's six-field form, if
/// it accepts it. Standard five-field cron (`min hour day month weekday`, as crontab and
/// most schedulers write it) gets a zero seconds field first.
pub fn parse_schedule(text: &str) -> anyhow::Result<Option<String>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let schedule = match text.split_whitespace().count() {
        5 => format!("0 {text}"),
        _ => text.to_owned(),
    };
    Job::new_async(schedule.as_str(), |_, _| Box::pin(async {})).with_context(|| {
        format!(
            "invalid --reconcile-schedule {text:?}: expected cron in UTC, five fields (`min hour day month weekday`, e.g. \"0 * * * *\") or six with seconds first (e.g. {DEFAULT_SCHEDULE:?}), or off"
        )
    })?;
    Ok(Some(schedule))
}

/// Runs reconciles of the reader's pool on the schedule and on pending requests until
/// `shutdown`. Failed or braked runs are logged and counted; the scheduler goes on.
pub async fn run_scheduler(
    reader: CognitoReader,
    hasura: HasuraClient,
    options: SchedulerOptions,
    requests: ReconcileRequests,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ticks = Arc::new(Notify::new());
    let mut scheduler = match options.schedule.as_deref() {
        Some(schedule) => Some(start_cron(schedule, ticks.clone()).await?),
        None => None,
    };
    let lease = Lease::new(
        hasura.clone(),
        scan_lease(reader.user_pool_id()),
        options.holder.clone(),
        options.lease_ttl,
    );
    match options.schedule.as_deref() {
        Some(schedule) => {
            tracing::info!(schedule, holder = lease.holder(), "scheduled reconcile on")
        }
        None => tracing::info!(
            holder = lease.holder(),
            "scheduled reconcile off; early reconcile requests are still served"
        ),
    }
    let store = RequestStore::new(hasura.clone());
    let pool = reader.user_pool_id().to_owned();
    // Requests recorded before this process started are looked at at once.
    let mut look_in = Duration::ZERO;
    let shapes = ShapeCache::default();
    let mut last_run = None;
    let mut deferral_logged = false;
    loop {
        let ticked = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.notified() => true,
            _ = requests.wait() => false,
            _ = tokio::time::sleep(look_in) => false,
        };
        // Read before the run starts: only these may be marked served by it.
        let pending = match store.pending(&pool).await {
            Ok(pending) => pending,
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "cannot read the early reconcile requests"
                );
                Vec::new()
            }
        };
        let budget = Budget {
            last_run,
            min_interval: if pending.is_empty() {
                Duration::ZERO
            } else {
                scan_interval(&shapes, &reader).await
            },
        };
        let decision = due(&pending, chrono::Utc::now(), requests.debounce(), budget);
        look_in = match decision {
            Due::Wait(left) | Due::Deferred(left) => left.min(requests.poll_every()),
            Due::Idle | Due::Run => requests.poll_every(),
        };
        if let Due::Deferred(retry_in) = decision
            && !deferral_logged
        {
            deferral_logged = true;
            EarlyReconcileDeferred {
                pending: pending.len(),
                retry_in,
                min_interval: budget.min_interval,
            }
            .emit();
        }
        if ticked || decision == Due::Run {
            if decision == Due::Run {
                EarlyReconcileStarted {
                    pending: pending.len(),
                    min_interval: budget.min_interval,
                }
                .emit();
            }
            let started = chrono::Utc::now();
            let end = run_leased(&lease, &reader, &hasura, options.reconcile, &shutdown).await;
            if let Some(end) = end {
                last_run = Some(started);
                deferral_logged = false;
                serve(&store, &pending, end).await;
            }
            // A tick that came during the run is covered by it.
            let _ = ticks.notified().now_or_never();
        }
    }
    if let Some(scheduler) = scheduler.as_mut()
        && let Err(err) = scheduler.shutdown().await
    {
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

/// The early-scan budget's interval for the reader's pool (zero, and a warning, when the
/// pool cannot be sized: requests are then served at the debounce as before).
async fn scan_interval(shapes: &ShapeCache, reader: &CognitoReader) -> Duration {
    match shapes.get(reader).await {
        Ok(shape) => {
            early_scan_interval(pool_scan_seconds(shape, Rates::current(reader.limiter())))
        }
        Err(err) => {
            tracing::warn!(
                error = %err,
                "cannot size the pool for the early-scan budget; not deferring"
            );
            Duration::ZERO
        }
    }
}

/// Starts the cron schedule, which notifies `ticks`.
async fn start_cron(schedule: &str, ticks: Arc<Notify>) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new()
        .await
        .context("cannot start the reconcile scheduler")?;
    let job = Job::new_async(schedule, move |_, _| {
        let notify = ticks.clone();
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
    Ok(scheduler)
}

/// Marks `pending` served after a successful run, or says why they stay pending.
async fn serve(store: &RequestStore, pending: &[PendingRequest], end: Result<RunEnd, ()>) {
    if pending.is_empty() {
        return;
    }
    let why = match end {
        Ok(RunEnd::Succeeded(run)) => match store.serve(pending, run).await {
            Ok(served) => {
                ReconcileRequestsServed { run, served }.emit();
                return;
            }
            Err(err) => {
                // The next run serves them: harmless, only later.
                tracing::warn!(error = format!("{err:#}"), "cannot mark requests served");
                "failed"
            }
        },
        Ok(RunEnd::Braked) => "braked",
        Ok(RunEnd::DryRun) => "dry_run",
        Err(()) => "failed",
    };
    ReconcileRequestsLeft {
        pending: pending.len(),
        why,
    }
    .emit();
}

/// How a reconcile that ran ended.
enum RunEnd {
    Succeeded(uuid::Uuid),
    Braked,
    /// A dry run writes nothing, so it serves no request.
    DryRun,
}

/// One reconcile under the lease, if this replica gets it (`None` when it does not).
async fn run_leased(
    lease: &Lease,
    reader: &CognitoReader,
    hasura: &HasuraClient,
    options: ReconcileOptions,
    shutdown: &CancellationToken,
) -> Option<Result<RunEnd, ()>> {
    match lease.acquire().await {
        Ok(true) => {}
        Ok(false) => {
            ReconcileLeaseBusy {
                lease: lease.name(),
            }
            .emit();
            return None;
        }
        Err(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                "cannot take the reconcile lease; skipping this run"
            );
            return None;
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
    Some(match result {
        Ok(report) if report.braked() => Ok(RunEnd::Braked),
        Ok(report) => {
            tracing::debug!(
                run = report.run_id.map(|id| id.to_string()),
                "scheduled reconcile done"
            );
            Ok(report.run_id.map_or(RunEnd::DryRun, RunEnd::Succeeded))
        }
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "scheduled reconcile failed");
            Err(())
        }
    })
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
        // Five fields are standard cron: seconds 0.
        assert_eq!(
            parse_schedule("0 * * * *").unwrap().as_deref(),
            Some("0 0 * * * *")
        );
        assert_eq!(
            parse_schedule("17 3 * * Mon").unwrap().as_deref(),
            Some("0 17 3 * * Mon")
        );
        let err = parse_schedule("every hour").unwrap_err();
        assert!(
            format!("{err:#}").contains("--reconcile-schedule"),
            "{err:#}"
        );
    }
}
