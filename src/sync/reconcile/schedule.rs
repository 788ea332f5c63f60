//! The scheduled reconcile inside the daemon: a cron schedule (`tokio-cron-scheduler`), a
//! lease shared by the replicas, and early runs when the event path asks for them
//! ([`ReconcileRequests`], debounced there).
//!
//! One loop per process runs the reconciles, so two never overlap in a process; a tick that
//! arrives during a run is dropped, not queued (a request is kept: it may postdate the
//! scan). Each run first takes the lease `reconcile:<pool>` ([`crate::state::lease`]): a
//! replica that cannot take it skips the tick.
//! The holder renews the lease every third of its time to live while it runs and cancels the
//! run when the lease is lost (a run still scanning stops without writing; one already
//! writing finishes its guarded, idempotent writes); after a run it keeps the lease until it
//! expires, so a replica whose clock fires a little later does not run the same tick again.
//! A holder that died stops renewing; its lease expires and another replica takes over at
//! its next tick. On shutdown the lease is released.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::FutureExt;
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::cognito::CognitoReader;
use crate::daemon::reconcile::ReconcileRequests;
use crate::hasura::HasuraClient;
use crate::state::lease::{Lease, process_holder};
use crate::sync::reconcile::{DEFAULT_MAX_DELETE_FRACTION, OnDelete, ReconcileOptions, reconcile};
use crate::telemetry::reconcile::{ReconcileLeaseBusy, ReconcileLeaseLost};

/// Every hour, on the hour (seconds field first, as `tokio-cron-scheduler` reads it).
pub const DEFAULT_SCHEDULE: &str = "0 0 * * * *";

/// The daemon's flags for the scheduled reconcile.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// When to reconcile, in cron syntax with a seconds field (`sec min hour day month weekday`,
    /// UTC), e.g. `0 */15 * * * *` for every 15 minutes; `off` disables the scheduled reconcile.
    #[arg(long, env = "RECONCILE_SCHEDULE", default_value = DEFAULT_SCHEDULE, value_name = "CRON")]
    pub reconcile_schedule: String,

    /// How long the reconcile lease outlives its last renewal: another replica takes over
    /// that long after the holder died.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub reconcile_lease_ttl: u64,

    /// What the scheduled reconcile does with users Cognito no longer has (as `reconcile
    /// --on-delete`).
    #[arg(long, env = "RECONCILE_ON_DELETE", value_enum, default_value_t = OnDelete::Tombstone, value_name = "ACTION")]
    pub reconcile_on_delete: OnDelete,

    /// The scheduled reconcile's safety brake (as `reconcile --max-delete-fraction`). Nothing
    /// releases it unattended: a braked run is logged and counted, and waits for a person
    /// to run `reconcile --allow-mass-delete`.
    #[arg(
        long,
        env = "RECONCILE_MAX_DELETE_FRACTION",
        default_value_t = DEFAULT_MAX_DELETE_FRACTION,
        value_name = "FRACTION"
    )]
    pub reconcile_max_delete_fraction: f64,
}

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
    /// Options from the daemon's flags; the schedule is validated here.
    pub fn from_args(args: &ScheduleArgs, reconcile: ReconcileOptions) -> anyhow::Result<Self> {
        if !(0.0..=1.0).contains(&args.reconcile_max_delete_fraction) {
            anyhow::bail!(
                "--reconcile-max-delete-fraction must be between 0 and 1, not {}",
                args.reconcile_max_delete_fraction
            );
        }
        let reconcile = ReconcileOptions {
            on_delete: args.reconcile_on_delete,
            max_delete_fraction: args.reconcile_max_delete_fraction,
            allow_mass_delete: false,
            ..reconcile
        };
        Ok(SchedulerOptions {
            schedule: parse_schedule(&args.reconcile_schedule)?,
            lease_ttl: Duration::from_secs(args.reconcile_lease_ttl.max(3)),
            holder: process_holder(),
            reconcile,
        })
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
        format!("reconcile:{}", reader.user_pool_id()),
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
    let heartbeat =
        AbortOnDropHandle::new(tokio::spawn(keep_lease(lease.clone(), run_cancel.clone())));
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

/// Renews the lease every third of its time to live; cancels the run once it is lost (the
/// holder changed, or no renewal succeeded for a whole time to live).
async fn keep_lease(lease: Lease, run: CancellationToken) {
    let every = lease.ttl() / 3;
    let mut last_renewal = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match lease.heartbeat().await {
            Ok(true) => last_renewal = Instant::now(),
            Ok(false) => {
                ReconcileLeaseLost {
                    lease: lease.name(),
                    reason: "another replica holds it",
                }
                .emit();
                run.cancel();
                return;
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "cannot renew the reconcile lease"
                );
                if last_renewal.elapsed() >= lease.ttl() {
                    ReconcileLeaseLost {
                        lease: lease.name(),
                        reason: "not renewed for a whole time to live",
                    }
                    .emit();
                    run.cancel();
                    return;
                }
            }
        }
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
