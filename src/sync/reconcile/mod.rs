//! `reconcile`: diffs Cognito against the mirror and writes only the difference,
//! tombstoning users gone from Cognito, behind a safety brake. Memory is bounded by a few
//! shards, never the pool.
//!
//! 1. Note the start time `started_at` and record a `reconcile` run; read the mirror's
//!    groups, its row count and its first page of user digests ([`mirror::MirrorCursor`]).
//! 2. Read the groups and their members ([`scan::read_groups_ahead`]); upsert the groups
//!    that differ. While the last group's members are listed, shards are read ahead on disk
//!    with the quota that listing leaves ([`read_ahead`]), spread over the key space.
//! 3. Shard by shard, [`SHARDS_AT_ONCE`] at a time, in key order: the shard's digests (read
//!    from the cursor by key, ceil(rows / page) requests over the whole run) against its
//!    ListUsers pages (`sub ^= "prefix"`, under the reader's shared rate limit; Cognito
//!    does not list by `sub`, so a shard's verdicts are kept until it ends). Each user is
//!    compared as it arrives ([`plan::Differ`]); users that differ are upserted in batches
//!    as they come. When the shard ends, its live rows Cognito no longer has that were
//!    observed before `started_at` are the shard's tombstones (a user written meanwhile by
//!    an event is left alone). A pool larger than [`SHARD_USERS`] users per shard is split
//!    finer than `--shards`.
//! 4. Tombstones wait for the whole pool: only their ids are kept (16 bytes each, and no
//!    more than the brake allows), then the safety brake ([`plan::brake`]) refuses a run
//!    that empties the pool or tombstones more than `--max-delete-fraction` of it, unless
//!    `--allow-mass-delete` (then each shard's tombstones are written with the shard).
//!    A braked run has written the users Cognito does have, and tombstoned nothing.
//! 5. Tombstone (or delete, or scrub) users and groups; `--dry-run` writes nothing and
//!    prints the plan (which grows with the drift it lists).
//!
//! An unchanged pool costs the scan's Cognito calls plus one DescribeUserPool,
//! ceil(rows / page) Hasura reads, and no write to the mirror: the only mutations are the
//! two of the run record.

pub mod mirror;
pub mod plan;
pub mod review;

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CallStats, CognitoReader, PAGE_LIMIT, Shard};
use crate::hasura::{HasuraClient, HasuraStats};
use crate::model::UserRecord;
use crate::state::{RunKind, RunStatus, RunStore};
use crate::sync::read_ahead::{self, Spooled};
use crate::sync::scan::{self, Joined, ShardEvent, ShardStart, scan_from};
use crate::telemetry::reconcile::{ReconcileBraked, ReconcileFinished};

use mirror::{Applied, MirrorCursor};
use plan::{Differ, GroupPlan, PlannedUser, UserDigest};
pub use plan::{OnDelete, Plan, PlannedChange};

/// User digests per Hasura read: small rows (about 150 bytes), so a page stays under 1 MB.
pub const DIGEST_PAGE_SIZE: usize = 5000;
/// Default largest share of the mirror's live users one run may tombstone.
pub const DEFAULT_MAX_DELETE_FRACTION: f64 = 0.1;
/// Most users a shard should hold: a shard being diffed holds its digests and verdicts
/// (about 250 bytes a user), so a larger pool is split into more shards than `--shards`
/// (256 shards from 131,073 users on).
pub const SHARD_USERS: u64 = 8192;
/// Shards diffed at once: enough ListUsers chains to keep Cognito's quota busy at 50 ms a
/// round trip while some of them write, few enough that memory stays at a few shards.
pub const SHARDS_AT_ONCE: usize = 8;

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
    /// Counts users gone and earlier tombstones as `--on-delete` removes or scrubs them;
    /// `tombstoned` and `purged` are set by the caller.
    fn count_removals(&mut self, gone: u64, earlier: u64, on_delete: OnDelete) {
        self.scrubbed = if on_delete == OnDelete::Scrub {
            gone + earlier
        } else {
            0
        };
        self.deleted = if on_delete == OnDelete::Delete {
            gone + earlier
        } else {
            0
        };
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
    /// Whether the counters' changes were written. A dry run writes nothing; a braked run
    /// wrote the users Cognito has but removed nothing: its counters of users gone (and
    /// earlier tombstones) are what the run would have done.
    pub written: bool,
    /// Why the safety brake stopped the run (in a dry run: would stop it).
    pub brake: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Shards the pool was scanned in: `--shards`, or more for a large pool.
    pub shards: usize,
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
    /// ListUsers pages read ahead, on disk, while the last group's members were listed.
    pub pages_read_ahead: usize,
    pub elapsed_seconds: f64,
}

impl ReconcileReport {
    pub fn braked(&self) -> bool {
        self.brake.is_some()
    }
}

/// Reconciles the reader's pool into the mirror once. A run stopped by the safety brake
/// returns `Ok` with [`ReconcileReport::brake`] set and nothing tombstoned.
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
    let mut pass = Pass::new(&hasura, &pool, started_at, options);
    if let Err(err) = pass.scan(&reader, &shutdown).await {
        return Err(fail(&hasura, &pool, run_id, clock, err, &pass.counters).await);
    }
    let brake = plan::brake(
        &pool,
        pass.counters.scanned,
        pass.mirror_live,
        pass.gone,
        options.max_delete_fraction,
    )
    .filter(|_| !options.allow_mass_delete);
    if let Some(reason) = &brake {
        ReconcileBraked {
            pool: &pool,
            reason,
        }
        .emit();
    }
    let result = if options.dry_run {
        "dry_run"
    } else if let Some(reason) = &brake {
        if let Some(id) = run_id {
            RunStore::new(hasura.clone())
                .finish(
                    id,
                    RunStatus::Failed,
                    None,
                    Some(&pass.counters),
                    Some(format!("safety brake: {reason}")),
                )
                .await
                .context("cannot finish the run record")?;
        }
        "braked"
    } else {
        if let Err(err) = pass.remove_gone().await {
            return Err(fail(&hasura, &pool, run_id, clock, err, &pass.counters).await);
        }
        if let Some(id) = run_id {
            RunStore::new(hasura.clone())
                .finish(id, RunStatus::Succeeded, None, Some(&pass.counters), None)
                .await
                .context("cannot finish the run record")?;
        }
        "succeeded"
    };
    let counters = pass.counters;
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
        shards: pass.shards,
        counters,
        plan: pass.listed,
        changes: Vec::new(),
        cognito: reader.stats(),
        hasura: hasura.stats(),
        mirror_reads: pass.mirror_reads,
        pages_read_ahead: pass.pages_read_ahead,
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

/// The shard count for a pool of `users`: `requested`, or more when a shard would hold
/// more than [`SHARD_USERS`]. A count [`Shard::split`] refuses is returned as it is.
fn shard_count(requested: usize, users: u64) -> usize {
    if !matches!(requested, 1 | 16 | 256) {
        return requested;
    }
    [1, 16, 256]
        .into_iter()
        .filter(|&count| count >= requested)
        .find(|&count| users.div_ceil(count as u64) <= SHARD_USERS)
        .unwrap_or(256)
}

/// One reconcile's pass over the pool: what it counted and wrote, and the tombstones it
/// defers until the whole pool has passed the brake.
struct Pass {
    hasura: HasuraClient,
    pool: String,
    started_at: DateTime<Utc>,
    options: ReconcileOptions,
    counters: ReconcileCounters,
    mirror_live: u64,
    mirror_reads: u64,
    pages_read_ahead: usize,
    shards: usize,
    /// The mirror's rows as far as known (see [`MirrorCursor::rows`]).
    mirror_rows: u64,
    /// Live rows Cognito no longer has, over the shards done.
    gone: u64,
    /// Their ids, until the brake is certain to fire (then only counted); written per
    /// shard instead with `--allow-mass-delete`.
    gone_ids: Vec<uuid::Uuid>,
    /// Whether ids were left out of `gone_ids` because the brake was certain to fire.
    gone_ids_capped: bool,
    /// Rows tombstoned earlier that `--on-delete delete|scrub` purges.
    earlier_ids: Vec<uuid::Uuid>,
    /// What removing users gone (and earlier tombstones) did so far.
    removed: Applied,
    /// Records the shards left (each its last, partial batch), written in full batches.
    pending: Vec<(UserRecord, Upsert)>,
    /// The groups' plan; its tombstones wait for the brake like the users'.
    groups: GroupPlan,
    /// A dry run's plan, listed in its report.
    listed: Option<Plan>,
}

/// One shard diffed: its plan (lists of the users concerned; the records of its last,
/// partial batch, which the pass writes with other shards') and what writing its full
/// batches did.
struct ShardDiff {
    plan: Plan,
    applied: Applied,
}

/// What a planned upsert is, to count a user the mirror refuses as planned.
#[derive(Debug, Clone, Copy)]
enum Upsert {
    Insert,
    Update,
    Revive,
}

impl Pass {
    fn new(
        hasura: &HasuraClient,
        pool: &str,
        started_at: DateTime<Utc>,
        options: ReconcileOptions,
    ) -> Self {
        Pass {
            hasura: hasura.clone(),
            pool: pool.to_owned(),
            started_at,
            options,
            counters: ReconcileCounters::default(),
            mirror_live: 0,
            mirror_reads: 0,
            pages_read_ahead: 0,
            shards: 0,
            mirror_rows: 0,
            gone: 0,
            gone_ids: Vec::new(),
            gone_ids_capped: false,
            earlier_ids: Vec::new(),
            removed: Applied::default(),
            pending: Vec::new(),
            groups: GroupPlan::default(),
            listed: options.dry_run.then(Plan::default),
        }
    }

    /// Steps 1 to 3: the mirror's first page, the groups, then every shard diffed and its
    /// upserts written. Counters stay up to date, so a failure records how far it got.
    async fn scan(
        &mut self,
        reader: &CognitoReader,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let options = self.options;
        let (mut cursor, mirror_groups) =
            MirrorCursor::open(&self.hasura, &self.pool, options.page_size).await?;
        let estimated = reader
            .describe_pool()
            .await
            .context("cannot read the user pool")?
            .estimated_users
            .max(0) as u64;
        let shards = Shard::split(shard_count(options.shards, cursor.rows().max(estimated)))?;
        self.shards = shards.len();
        tracing::info!(
            pool = self.pool,
            rows = cursor.rows(),
            estimated_users = estimated,
            shards = shards.len(),
            "read the mirror's first digests"
        );
        let ahead = read_ahead::order(&shards, SHARDS_AT_ONCE)
            .into_iter()
            .map(|shard| (shard, None))
            .collect();
        let (groups, joined, mut read_ahead) =
            scan::read_groups_ahead(reader, ahead, shutdown).await?;
        self.pages_read_ahead = read_ahead.pages();
        self.groups = plan::diff_groups(groups, mirror_groups, self.started_at);
        self.counters.groups_scanned = self.groups.scanned;
        self.counters.groups_written = self.groups.upsert.len() as u64;
        self.counters.groups_tombstoned = self.groups.tombstone.len() as u64;
        if !options.dry_run {
            let applied =
                mirror::write_groups(&self.hasura, &self.groups.records, options.batch_size)
                    .await?;
            self.counters.groups_written = applied.groups_written;
        }

        let cancel = shutdown.child_token();
        let mut waiting = shards.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < SHARDS_AT_ONCE {
                let Some(shard) = waiting.next() else { break };
                let digests = cursor.shard(&shard).await?;
                running.spawn(diff_shard(ShardJob {
                    reader: reader.clone(),
                    hasura: self.hasura.clone(),
                    read_ahead: read_ahead.take(&shard),
                    shard,
                    digests,
                    joined: joined.clone(),
                    started_at: self.started_at,
                    options,
                    cancel: cancel.clone(),
                }));
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let diff = done.map_err(|join| anyhow!("a shard scan panicked: {join}"))??;
            self.mirror_rows = cursor.rows();
            self.add(diff).await?;
        }
        self.mirror_reads = cursor.reads();
        if shutdown.is_cancelled() {
            bail!("interrupted before the scan finished; nothing was tombstoned");
        }
        self.write_pending(true).await?;
        if let Some(listed) = &mut self.listed {
            listed.groups = std::mem::take(&mut self.groups);
            listed.sort_lists();
        }
        Ok(())
    }

    /// A shard done: counted, its tombstones written (`--allow-mass-delete`) or deferred.
    async fn add(&mut self, diff: ShardDiff) -> anyhow::Result<()> {
        let ShardDiff { mut plan, applied } = diff;
        if !self.options.dry_run {
            let ids = |users: &[PlannedUser]| users.iter().map(|u| u.id).collect::<HashSet<_>>();
            let (inserts, revives) = (ids(&plan.insert), ids(&plan.revive));
            for record in std::mem::take(&mut plan.upserts) {
                let kind = if inserts.contains(&record.id) {
                    Upsert::Insert
                } else if revives.contains(&record.id) {
                    Upsert::Revive
                } else {
                    Upsert::Update
                };
                self.pending.push((record, kind));
            }
        }
        let gone: Vec<uuid::Uuid> = plan.tombstone.iter().map(|u| u.id).collect();
        let earlier: Vec<uuid::Uuid> = plan.purge.iter().map(|u| u.id).collect();
        let c = &mut self.counters;
        c.scanned += plan.scanned;
        c.inserted += plan.insert.len() as u64 - applied.refused_inserts;
        c.updated += plan.update.len() as u64 - applied.refused_updates;
        c.revived += plan.revive.len() as u64 - applied.refused_revives;
        c.unchanged += plan.unchanged;
        c.kept_newer += plan.kept_newer;
        c.skipped_older += applied.skipped_older;
        c.skipped_bad_data += applied.skipped_bad_data;
        self.mirror_live += plan.mirror_live;
        self.gone += gone.len() as u64;
        if let Some(listed) = &mut self.listed {
            listed.absorb(plan);
        }
        if self.options.dry_run {
            c.tombstoned = self.gone;
            c.purged += earlier.len() as u64;
            c.count_removals(c.tombstoned, c.purged, self.options.on_delete);
        } else if self.options.allow_mass_delete {
            let removed = mirror::remove_users(
                &self.hasura,
                &self.pool,
                &gone,
                &earlier,
                self.options.on_delete,
                self.started_at,
                self.options.batch_size,
            )
            .await?;
            self.removed.add(removed);
            self.count_removed();
        } else {
            c.tombstoned = self.gone;
            c.purged += earlier.len() as u64;
            c.count_removals(c.tombstoned, c.purged, self.options.on_delete);
            self.earlier_ids.extend(earlier);
            // Past this many the brake fires whatever the rest of the pool holds (its live
            // rows are at most its rows): the ids will not be needed.
            if self.gone as f64 > self.options.max_delete_fraction * self.mirror_rows as f64 {
                self.gone_ids_capped = true;
                self.gone_ids = Vec::new();
            } else {
                self.gone_ids.extend(gone);
            }
        }
        self.write_pending(false).await
    }

    /// Writes the shards' leftover records in full batches (`all`: the last one too), and
    /// counts the users the mirror refused as not written.
    async fn write_pending(&mut self, all: bool) -> anyhow::Result<()> {
        let batch_size = self.options.batch_size.max(1);
        while self.pending.len() >= batch_size || (all && !self.pending.is_empty()) {
            let rest = self.pending.split_off(batch_size.min(self.pending.len()));
            let batch = std::mem::replace(&mut self.pending, rest);
            let kinds: Vec<(uuid::Uuid, Upsert)> = batch.iter().map(|(r, k)| (r.id, *k)).collect();
            let records = batch.into_iter().map(|(record, _)| record).collect();
            let mut refused = HashSet::new();
            let written =
                mirror::write_upserts(&self.hasura, records, batch_size, &mut refused).await?;
            let c = &mut self.counters;
            c.skipped_older += written.skipped_older;
            c.skipped_bad_data += written.skipped_bad_data;
            for (_, kind) in kinds.iter().filter(|(id, _)| refused.contains(id)) {
                match kind {
                    Upsert::Insert => c.inserted -= 1,
                    Upsert::Update => c.updated -= 1,
                    Upsert::Revive => c.revived -= 1,
                }
            }
        }
        Ok(())
    }

    /// Sets the counters of users gone and earlier tombstones from what was removed.
    fn count_removed(&mut self) {
        let (removed, c) = (&self.removed, &mut self.counters);
        c.tombstoned = removed.tombstoned;
        c.purged = removed.deleted + removed.scrubbed;
        c.scrubbed = removed.gone_scrubbed + removed.scrubbed;
        c.deleted = if self.options.on_delete == OnDelete::Delete {
            removed.tombstoned + removed.deleted
        } else {
            0
        };
    }

    /// Step 5, once the brake let the run through: the deferred tombstones (and purges),
    /// then the groups Cognito no longer has.
    async fn remove_gone(&mut self) -> anyhow::Result<()> {
        let options = self.options;
        if !options.allow_mass_delete {
            if self.gone_ids_capped {
                bail!(
                    "the mirror of pool {} grew during the run ({} rows) and the safety brake's count of \
                     {} users gone no longer applies; nothing was tombstoned: run reconcile again",
                    self.pool,
                    self.mirror_rows,
                    self.gone
                );
            }
            let removed = mirror::remove_users(
                &self.hasura,
                &self.pool,
                &self.gone_ids,
                &self.earlier_ids,
                options.on_delete,
                self.started_at,
                options.batch_size,
            )
            .await?;
            self.removed = removed;
            self.count_removed();
        }
        self.counters.groups_tombstoned = mirror::remove_groups(
            &self.hasura,
            &self.pool,
            &self.groups.tombstone,
            options.on_delete,
            self.started_at,
            options.batch_size,
        )
        .await?;
        Ok(())
    }
}

/// What a shard's diff needs.
struct ShardJob {
    reader: CognitoReader,
    hasura: HasuraClient,
    shard: Shard,
    /// The shard's first pages, when they were read ahead.
    read_ahead: Option<Spooled>,
    digests: Vec<UserDigest>,
    joined: Joined,
    started_at: DateTime<Utc>,
    options: ReconcileOptions,
    cancel: CancellationToken,
}

/// Scans one shard against its digests, upserting what differs in batches as the pages
/// come (not in a dry run). Holds the shard's digests and verdicts and at most two batches
/// of records: the scan reads a batch ahead while the last one is written, so that writing
/// does not stall the shard's ListUsers chain.
async fn diff_shard(job: ShardJob) -> anyhow::Result<ShardDiff> {
    let ShardJob {
        reader,
        hasura,
        shard,
        read_ahead,
        digests,
        joined,
        started_at,
        options,
        cancel,
    } = job;
    let mut differ = Differ::new(digests, started_at, options.on_delete);
    let mut applied = Applied::default();
    let mut refused = HashSet::new();
    let pages_ahead = options.batch_size.div_ceil(PAGE_LIMIT as usize) + 1;
    let (tx, mut pages) = mpsc::channel(pages_ahead);
    let start = ShardStart {
        shard: shard.clone(),
        token: None,
        read_ahead,
    };
    let read = scan_from(reader, start, joined, tx, cancel.clone());
    let diff = async {
        while let Some(event) = pages.recv().await {
            // A shard that starts over brings its pages again; the differ keeps one verdict
            // per user.
            let ShardEvent::Page { users, .. } = event else {
                continue;
            };
            users.into_iter().for_each(|user| differ.observe(user));
            // A dry run keeps its records: the review names the fields they change.
            if options.dry_run {
                continue;
            }
            while let Some(batch) = differ.take_upserts(options.batch_size) {
                let written =
                    mirror::write_upserts(&hasura, batch, options.batch_size, &mut refused).await?;
                applied.add(written);
            }
        }
        anyhow::Ok(())
    };
    let (read, diffed) = tokio::join!(read, diff);
    read?;
    diffed.with_context(|| format!("writing users of shard {shard} to Hasura failed"))?;
    if cancel.is_cancelled() {
        bail!("interrupted while scanning shard {shard}; nothing was tombstoned");
    }
    let plan = differ.finish();
    if !options.dry_run {
        let refused_of =
            |users: &[PlannedUser]| users.iter().filter(|u| refused.contains(&u.id)).count() as u64;
        applied.refused_inserts = refused_of(&plan.insert);
        applied.refused_updates = refused_of(&plan.update);
        applied.refused_revives = refused_of(&plan.revive);
    }
    Ok(ShardDiff { plan, applied })
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counters;
        let would = crate::sync::report_header(
            f,
            "reconcile",
            &self.user_pool_id,
            self.dry_run.then_some("dry run"),
        )?;
        // A braked run wrote the users Cognito has and removed nothing.
        let would_remove = if self.braked() { "would be " } else { would };
        let mut row = |label: &str, value: String| writeln!(f, "  {label:<24} {value}");
        if let Some(id) = self.run_id {
            row("run", id.to_string())?;
        }
        row("result", self.result.to_owned())?;
        row("shards", self.shards.to_string())?;
        if let Some(read_ahead) = read_ahead::describe(self.pages_read_ahead) {
            row("pages read ahead", read_ahead)?;
        }
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
        row(&format!("{would_remove}{gone}"), c.tombstoned.to_string())?;
        if c.purged > 0 {
            row(
                &format!("{would_remove}purged (earlier)"),
                c.purged.to_string(),
            )?;
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
                "{} seen, {} {would}written, {} {would_remove}tombstoned",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HasuraAuth, HasuraSettings, Secret};
    use crate::sync::reconcile::plan::tests::{at, digest, user};

    #[test]
    fn a_large_pool_is_split_finer_than_asked() {
        assert_eq!(shard_count(16, 0), 16);
        assert_eq!(shard_count(16, 16 * SHARD_USERS), 16);
        assert_eq!(shard_count(16, 16 * SHARD_USERS + 1), 256);
        assert_eq!(shard_count(1, SHARD_USERS), 1);
        assert_eq!(shard_count(1, 100_000), 16);
        assert_eq!(shard_count(256, 10), 256, "never fewer than asked");
        assert_eq!(shard_count(8, 10), 8, "left for Shard::split to refuse");
        for users in [0, 5_000, 131_072, 1_000_000, 2_000_000] {
            let shards = shard_count(16, users) as u64;
            assert!(
                users.div_ceil(shards) <= SHARD_USERS,
                "{users} users in {shards} shards"
            );
        }
    }

    /// 16 shards of 10 users each, each missing `gone(shard)` of them in Cognito; passed
    /// shard by shard through a pass with a 10% brake.
    async fn pass_over_shards(gone: impl Fn(u128) -> u128) -> Pass {
        let hasura = HasuraClient::new(&HasuraSettings {
            endpoint: "http://127.0.0.1:9/v1/graphql".into(),
            auth: HasuraAuth::AdminSecret(Secret::new("unused")),
            role: crate::config::DEFAULT_HASURA_ROLE.to_owned(),
            retries: 0,
        })
        .unwrap();
        let options = ReconcileOptions {
            max_delete_fraction: 0.1,
            ..ReconcileOptions::default()
        };
        let mut pass = Pass::new(&hasura, "p", at(10), options);
        pass.mirror_rows = 160;
        for shard in 0..16u128 {
            let users: Vec<_> = (0..10u128)
                .map(|i| user((shard << 124) | i, &format!("u{shard}-{i}"), 1))
                .collect();
            let mirror = users.iter().map(|u| digest(u, false, 1)).collect();
            let mut differ = Differ::new(mirror, at(10), OnDelete::Tombstone);
            users
                .into_iter()
                .skip(gone(shard) as usize)
                .for_each(|u| differ.observe(u));
            let diff = ShardDiff {
                plan: differ.finish(),
                applied: Applied::default(),
            };
            pass.add(diff)
                .await
                .expect("nothing to write before the brake");
        }
        pass
    }

    fn braked(pass: &Pass) -> Option<String> {
        plan::brake(
            "p",
            pass.counters.scanned,
            pass.mirror_live,
            pass.gone,
            pass.options.max_delete_fraction,
        )
    }

    #[tokio::test]
    async fn the_brake_counts_a_mass_delete_spread_across_shards() {
        // One user gone in each shard: 16 of 160, exactly 10%: allowed, every id kept.
        let pass = pass_over_shards(|_| 1).await;
        assert_eq!(braked(&pass), None);
        assert_eq!(pass.gone_ids.len(), 16);
        assert!(!pass.gone_ids_capped);

        // Two in each shard: 32 of 160. No shard alone says much; the pool is over 10%.
        let pass = pass_over_shards(|_| 2).await;
        assert!(
            braked(&pass).is_some_and(|b| b.contains("32 of the mirror's 160")),
            "{:?}",
            braked(&pass)
        );
        assert_eq!(pass.counters.tombstoned, 32, "counted, not written");
        assert!(
            pass.gone_ids.is_empty() && pass.gone_ids_capped,
            "ids dropped once the brake is certain"
        );

        // Everything gone from half the shards, nothing from the others.
        let pass = pass_over_shards(|shard| if shard < 8 { 10 } else { 0 }).await;
        assert!(braked(&pass).is_some_and(|b| b.contains("80 of the mirror's 160")));
    }
}
