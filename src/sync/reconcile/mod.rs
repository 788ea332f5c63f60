//! `reconcile`: diffs Cognito against the mirror and writes only the difference,
//! tombstoning users gone from Cognito, behind a safety brake.
//!
//! 1. Note the start time `started_at`, record a `reconcile` run, and read the mirror's
//!    digests of the pool by key ([`mirror::read_mirror`]).
//! 2. Scan the pool as backfill does: groups and their members, then ListUsers over
//!    `--shards` parallel shards under the reader's shared rate limit. Each user is compared
//!    with its digest as it arrives ([`plan::Differ`]); only users that differ are kept.
//! 3. The plan: insert, update, revive, and tombstone the live rows Cognito no longer has
//!    that were observed before `started_at` (a user written meanwhile by an event is left
//!    alone). Groups the same way.
//! 4. The safety brake ([`plan::Plan::brake`]) refuses a plan that empties the pool or
//!    tombstones more than `--max-delete-fraction` of it, unless `--allow-mass-delete`.
//! 5. Write ([`mirror::apply`]), or with `--dry-run` only print the plan.
//!
//! An unchanged pool costs the scan's Cognito calls, ceil(rows / page) Hasura reads, and no
//! write to the mirror: the only mutations are the two of the run record.

pub mod mirror;
pub mod plan;
pub mod review;

use std::fmt;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CallStats, CognitoReader, Shard};
use crate::hasura::{HasuraClient, HasuraStats};
use crate::state::{RunKind, RunStatus, RunStore};
use crate::sync::scan::{PoolScan, ShardEvent, start_pool_scan};
use crate::telemetry::reconcile::{ReconcileBraked, ReconcileFinished};

pub use plan::{OnDelete, Plan, PlannedChange};

/// User digests per Hasura read: small rows (about 150 bytes), so a page stays under 1 MB.
pub const DIGEST_PAGE_SIZE: usize = 5000;
/// Default largest share of the mirror's live users one run may tombstone.
pub const DEFAULT_MAX_DELETE_FRACTION: f64 = 0.1;

/// How to run a reconcile.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileOptions {
    pub shards: usize,
    pub batch_size: usize,
    /// User digests per Hasura read.
    pub page_size: usize,
    pub on_delete: OnDelete,
    pub max_delete_fraction: f64,
    pub allow_mass_delete: bool,
    /// Plan only: no write, no run record.
    pub dry_run: bool,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        ReconcileOptions {
            shards: crate::config::DEFAULT_SHARDS,
            batch_size: crate::config::DEFAULT_BATCH_SIZE,
            page_size: DIGEST_PAGE_SIZE,
            on_delete: OnDelete::Tombstone,
            max_delete_fraction: DEFAULT_MAX_DELETE_FRACTION,
            allow_mass_delete: false,
            dry_run: false,
        }
    }
}

/// The counters of a reconcile, as stored in its run record. In a dry run or a braked run,
/// what would be. Users the mirror refused because of their data count in
/// `skipped_bad_data`, not in the kind they were planned as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileCounters {
    pub scanned: u64,
    pub inserted: u64,
    pub updated: u64,
    pub revived: u64,
    /// Users gone from Cognito, tombstoned (or removed, with `--on-delete delete`).
    pub tombstoned: u64,
    /// Rows whose personal data was blanked (`--on-delete scrub`): users gone now and
    /// earlier tombstones.
    pub scrubbed: u64,
    /// Rows removed (`--on-delete delete`): users gone now and earlier tombstones.
    pub deleted: u64,
    pub unchanged: u64,
    /// Absent from Cognito but written after the scan started: left for the next run.
    pub kept_newer: u64,
    /// Sent, but the mirror already had a newer state (row guard).
    pub skipped_older: u64,
    /// Users and groups the mirror refused because of their data: left out, logged.
    pub skipped_bad_data: u64,
    /// Tombstones of earlier runs removed (`--on-delete delete`) or scrubbed (`scrub`).
    pub purged: u64,
    pub groups_scanned: u64,
    pub groups_written: u64,
    pub groups_tombstoned: u64,
}

impl ReconcileCounters {
    /// What `plan` would do.
    fn planned(plan: &Plan, on_delete: OnDelete) -> Self {
        let gone = (plan.tombstone.len() + plan.purge.len()) as u64;
        ReconcileCounters {
            scanned: plan.scanned,
            inserted: plan.insert.len() as u64,
            updated: plan.update.len() as u64,
            revived: plan.revive.len() as u64,
            tombstoned: plan.tombstone.len() as u64,
            scrubbed: if on_delete == OnDelete::Scrub {
                gone
            } else {
                0
            },
            deleted: if on_delete == OnDelete::Delete {
                gone
            } else {
                0
            },
            unchanged: plan.unchanged,
            kept_newer: plan.kept_newer,
            skipped_older: 0,
            skipped_bad_data: 0,
            purged: plan.purge.len() as u64,
            groups_scanned: plan.groups.scanned,
            groups_written: plan.groups.upsert.len() as u64,
            groups_tombstoned: plan.groups.tombstone.len() as u64,
        }
    }

    /// The planned counts corrected by what writing the plan did.
    fn record(&mut self, applied: &mirror::Applied, on_delete: OnDelete) {
        self.inserted -= applied.refused_inserts;
        self.updated -= applied.refused_updates;
        self.revived -= applied.refused_revives;
        self.skipped_older = applied.skipped_older;
        self.skipped_bad_data = applied.skipped_bad_data;
        self.tombstoned = applied.tombstoned;
        self.purged = applied.deleted + applied.scrubbed;
        self.scrubbed = applied.gone_scrubbed + applied.scrubbed;
        self.deleted = if on_delete == OnDelete::Delete {
            applied.tombstoned + applied.deleted
        } else {
            0
        };
        self.groups_written = applied.groups_written;
        self.groups_tombstoned = applied.groups_tombstoned;
    }
}

/// What one reconcile did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    pub user_pool_id: String,
    pub run_id: Option<uuid::Uuid>,
    pub dry_run: bool,
    pub on_delete: OnDelete,
    /// `succeeded`, `braked` or `dry_run` (a dry run says in `brake` whether it would brake).
    pub result: &'static str,
    /// Whether the counters' changes were written. A dry run and a braked run write nothing:
    /// their counters are what the run would have written.
    pub written: bool,
    /// Why the safety brake stopped the run (in a dry run: would stop it).
    pub brake: Option<String>,
    pub started_at: DateTime<Utc>,
    pub counters: ReconcileCounters,
    /// The users and groups concerned; filled by a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Each planned user's change ([`review::review`]), when the caller asked for it.
    #[serde(skip)]
    pub changes: Vec<PlannedChange>,
    pub cognito: CallStats,
    pub hasura: HasuraStats,
    /// Hasura requests that read the mirror's digests.
    pub mirror_reads: u64,
    pub elapsed_seconds: f64,
}

impl ReconcileReport {
    pub fn braked(&self) -> bool {
        self.brake.is_some()
    }
}

/// Reconciles the reader's pool into the mirror once. A run stopped by the safety brake
/// returns `Ok` with [`ReconcileReport::brake`] set and nothing written.
pub async fn reconcile(
    reader: CognitoReader,
    hasura: HasuraClient,
    options: ReconcileOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<ReconcileReport> {
    let clock = Instant::now();
    let pool = reader.user_pool_id().to_owned();
    // Truncated to what PostgreSQL stores, so every state read after it compares as later.
    let started_at = Utc::now()
        .duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or_else(|_| Utc::now());
    let run_id = if options.dry_run {
        None
    } else {
        Some(
            RunStore::new(hasura.clone())
                .begin(
                    RunKind::Reconcile,
                    &pool,
                    Some(started_at),
                    None,
                    &ReconcileCounters::default(),
                )
                .await
                .context("cannot record the run in Hasura")?,
        )
    };
    let planned = plan(&reader, &hasura, &pool, started_at, options, &shutdown).await;
    let (plan, mirror_reads) = match planned {
        Ok(planned) => planned,
        Err(err) => {
            return Err(fail(
                &hasura,
                &pool,
                run_id,
                clock,
                err,
                &ReconcileCounters::default(),
            )
            .await);
        }
    };
    let mut counters = ReconcileCounters::planned(&plan, options.on_delete);
    let brake = plan
        .brake(&pool, options.max_delete_fraction)
        .filter(|_| !options.allow_mass_delete);
    if let Some(reason) = &brake {
        ReconcileBraked {
            pool: &pool,
            reason,
        }
        .emit();
    }
    let (result, kept_plan) = if options.dry_run {
        ("dry_run", Some(plan))
    } else if let Some(reason) = &brake {
        if let Some(id) = run_id {
            RunStore::new(hasura.clone())
                .finish(
                    id,
                    RunStatus::Failed,
                    None,
                    Some(&counters),
                    Some(format!("safety brake: {reason}")),
                )
                .await
                .context("cannot finish the run record")?;
        }
        ("braked", None)
    } else {
        let applied = mirror::apply(
            &hasura,
            &pool,
            plan,
            options.on_delete,
            started_at,
            options.batch_size,
        )
        .await;
        let applied = match applied {
            Ok(applied) => applied,
            Err(err) => return Err(fail(&hasura, &pool, run_id, clock, err, &counters).await),
        };
        counters.record(&applied, options.on_delete);
        if let Some(id) = run_id {
            RunStore::new(hasura.clone())
                .finish(id, RunStatus::Succeeded, None, Some(&counters), None)
                .await
                .context("cannot finish the run record")?;
        }
        ("succeeded", None)
    };
    emit_finished(&pool, result, clock, &counters);
    Ok(ReconcileReport {
        user_pool_id: pool,
        run_id,
        dry_run: options.dry_run,
        on_delete: options.on_delete,
        result,
        written: result == "succeeded",
        brake,
        started_at,
        counters,
        plan: kept_plan,
        changes: Vec::new(),
        cognito: reader.stats(),
        hasura: hasura.stats(),
        mirror_reads,
        elapsed_seconds: clock.elapsed().as_secs_f64(),
    })
}

/// Records a failed run and counts it; returns the error.
async fn fail(
    hasura: &HasuraClient,
    pool: &str,
    run_id: Option<uuid::Uuid>,
    clock: Instant,
    err: anyhow::Error,
    counters: &ReconcileCounters,
) -> anyhow::Error {
    if let Some(id) = run_id {
        if let Err(save) = RunStore::new(hasura.clone())
            .finish(
                id,
                RunStatus::Failed,
                None,
                Some(counters),
                Some(format!("{err:#}")),
            )
            .await
        {
            tracing::warn!(
                error = format!("{save:#}"),
                "cannot record the failure in Hasura"
            );
        }
    }
    emit_finished(pool, "failed", clock, counters);
    err
}

fn emit_finished(pool: &str, result: &'static str, clock: Instant, counters: &ReconcileCounters) {
    ReconcileFinished {
        pool,
        result,
        duration: clock.elapsed(),
        scanned: counters.scanned,
        inserted: counters.inserted,
        updated: counters.updated,
        revived: counters.revived,
        tombstoned: counters.tombstoned,
        unchanged: counters.unchanged,
    }
    .emit();
}

/// Reads the mirror, scans the pool and diffs them; returns the plan and the mirror reads.
async fn plan(
    reader: &CognitoReader,
    hasura: &HasuraClient,
    pool: &str,
    started_at: DateTime<Utc>,
    options: ReconcileOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Plan, u64)> {
    let snapshot = mirror::read_mirror(hasura, pool, options.page_size).await?;
    tracing::info!(
        pool,
        rows = snapshot.users.len(),
        groups = snapshot.groups.len(),
        "read the mirror's digests"
    );
    let shards = Shard::split(options.shards)?
        .into_iter()
        .map(|shard| (shard, None))
        .collect();
    let PoolScan {
        groups,
        pages: mut rx,
        shards: mut scans,
        cancel,
    } = start_pool_scan(reader, shards, 64, shutdown).await?;
    let group_plan = plan::diff_groups(groups, snapshot.groups, started_at);
    let mut differ = plan::Differ::new(snapshot.users, started_at, options.on_delete);
    let mut failure: Option<anyhow::Error> = None;
    loop {
        tokio::select! {
            page = rx.recv() => match page {
                Some(ShardEvent::Page { users, .. }) => users.into_iter().for_each(|u| differ.observe(u)),
                // The shard's pages come again; the differ keeps one verdict per user.
                Some(ShardEvent::Restarted { .. }) => {}
                None => break,
            },
            Some(joined) = scans.join_next(), if !scans.is_empty() => {
                let err = match joined {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(anyhow!(err).context("reading users from Cognito failed")),
                    Err(join) => Some(anyhow!("a shard scan panicked: {join}")),
                };
                if let Some(err) = err {
                    failure.get_or_insert(err);
                    cancel.cancel();
                }
            }
        }
    }
    while let Some(joined) = scans.join_next().await {
        if let Ok(Err(err)) = joined {
            failure.get_or_insert(anyhow!(err).context("reading users from Cognito failed"));
        }
    }
    if let Some(err) = failure {
        return Err(err);
    }
    if shutdown.is_cancelled() {
        bail!("interrupted before the scan finished; nothing was written");
    }
    let mut plan = differ.finish();
    plan.groups = group_plan;
    Ok((plan, snapshot.reads))
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        let unwritten = if self.dry_run {
            Some("dry run")
        } else if self.braked() {
            Some("safety brake")
        } else {
            None
        };
        let would = crate::sync::report_header(f, "reconcile", &self.user_pool_id, unwritten)?;
        let mut row = |label: &str, value: String| writeln!(f, "  {label:<24} {value}");
        if let Some(id) = self.run_id {
            row("run", id.to_string())?;
        }
        row("result", self.result.to_owned())?;
        if let Some(reason) = &self.brake {
            row("safety brake", reason.clone())?;
        }
        row("users scanned", c.scanned.to_string())?;
        row(&format!("{would}inserted"), c.inserted.to_string())?;
        row(&format!("{would}updated"), c.updated.to_string())?;
        row(&format!("{would}revived"), c.revived.to_string())?;
        let gone = match self.on_delete {
            OnDelete::Tombstone => "tombstoned",
            OnDelete::Delete => "deleted",
            OnDelete::Scrub => "tombstoned + scrubbed",
        };
        row(&format!("{would}{gone}"), c.tombstoned.to_string())?;
        if c.purged > 0 {
            row(&format!("{would}purged (earlier)"), c.purged.to_string())?;
        }
        row("unchanged", c.unchanged.to_string())?;
        if c.kept_newer > 0 {
            row("kept (written meanwhile)", c.kept_newer.to_string())?;
        }
        if c.skipped_older > 0 {
            row(
                "kept newer",
                format!("{} (the mirror already had a later state)", c.skipped_older),
            )?;
        }
        if c.skipped_bad_data > 0 {
            row(
                "skipped (bad data)",
                crate::sync::bad_data_note(c.skipped_bad_data),
            )?;
        }
        row(
            "groups",
            format!(
                "{} seen, {} {would}written, {} {would}tombstoned",
                c.groups_scanned, c.groups_written, c.groups_tombstoned
            ),
        )?;
        let calls: Vec<String> = self
            .cognito
            .calls
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        row(
            "cognito calls",
            format!("{} ({})", self.cognito.total_calls(), calls.join(", ")),
        )?;
        let requests: Vec<String> = self
            .hasura
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        row(
            "hasura requests",
            format!("{} ({})", self.hasura.total_requests(), requests.join(", ")),
        )?;
        row("elapsed", format!("{:.1}s", self.elapsed_seconds))?;
        if let Some(plan) = &self.plan {
            let lists = [
                ("insert", &plan.insert),
                ("update", &plan.update),
                ("revive", &plan.revive),
                (gone, &plan.tombstone),
                ("purge", &plan.purge),
            ];
            for (action, users) in lists {
                for user in users {
                    writeln!(f, "  {action:<10} {}  {}", user.id, user.username)?;
                }
            }
            for name in &plan.groups.upsert {
                writeln!(f, "  {:<10} group {name}", "upsert")?;
            }
            for name in &plan.groups.tombstone {
                writeln!(f, "  {:<10} group {name}", "tombstone")?;
            }
        }
        Ok(())
    }
}
