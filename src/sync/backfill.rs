//! The backfill: streams the whole pool into the mirror, resumably.
//!
//! 1. DescribeUserPool (the pool exists; its estimated size drives the progress bar).
//! 2. Find the latest unfinished backfill of the pool and resume it (or start a new run;
//!    `--restart` marks the old one aborted).
//! 3. ListGroups and every group's members (re-read on resume); upsert the groups.
//! 4. One task per unfinished shard pages through ListUsers under the reader's shared rate
//!    limit, joins each user's groups and pushes pages into a bounded channel; reading only
//!    waits when the channel is full. This task batches pages into upserts of up to
//!    `batch_size` users, `concurrency` of them in flight, and saves the checkpoint (only
//!    ever over committed pages) every few seconds.
//! 5. Mark the run succeeded, or failed with the error (it is then resumed next time).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::ProgressMode;
use crate::cognito::{CallStats, CognitoReader, Memberships, Shard};
use crate::config::BackfillSettings;
use crate::hasura::operations::{GroupDigests, UpsertGroups, group_digests, upsert_groups};
use crate::hasura::{HasuraClient, HasuraError, HasuraStats};
use crate::model::{GroupRecord, UserRecord};
use crate::state::{Checkpoint, RunCounters, RunKind, RunStatus, RunStore};
use crate::sync::progress::Progress;
use crate::sync::scan::{ShardEvent, scan_shard};
use crate::sync::writer::{BatchOutcome, CommitTracker, PageRef, write_users};

/// Groups whose member lists are read at once.
const MEMBERSHIP_CONCURRENCY: usize = 4;
/// Save the checkpoint at most this often while it moves...
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// ...and at least this often (heartbeat).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// How to run a backfill.
#[derive(Debug, Clone, Copy)]
pub struct BackfillOptions {
    pub settings: BackfillSettings,
    /// Compare with the mirror and count, but write nothing (no run record either).
    pub dry_run: bool,
    /// Abort the unfinished run instead of resuming it.
    pub restart: bool,
    pub progress: ProgressMode,
}

/// What one backfill process did. In a dry run, inserted/updated say what would be written.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillSummary {
    pub user_pool_id: String,
    pub run_id: Option<uuid::Uuid>,
    pub resumed: bool,
    pub dry_run: bool,
    pub users_seen: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped_older: u64,
    pub groups_seen: u64,
    pub groups_written: u64,
    pub shard_restarts: u64,
    /// The run's counters over every process that worked on it.
    pub run_totals: RunCounters,
    pub cognito: CallStats,
    pub hasura: HasuraStats,
    pub elapsed_seconds: f64,
    pub users_per_second: f64,
}

impl fmt::Display for BackfillSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = super::report_header(f, "backfill", &self.user_pool_id, self.dry_run)?;
        let mut row = |label: &str, value: String| writeln!(f, "  {label:<24} {value}");
        if let Some(id) = self.run_id {
            row(
                "run",
                format!("{id}{}", if self.resumed { " (resumed)" } else { "" }),
            )?;
        }
        row("users seen", self.users_seen.to_string())?;
        row(&format!("{would}inserted"), self.inserted.to_string())?;
        row(&format!("{would}updated"), self.updated.to_string())?;
        row("unchanged", self.unchanged.to_string())?;
        if self.skipped_older > 0 {
            row(
                "kept newer",
                format!(
                    "{} (the mirror already had a later state)",
                    self.skipped_older
                ),
            )?;
        }
        row(
            "groups",
            format!(
                "{} seen, {} {would}written",
                self.groups_seen, self.groups_written
            ),
        )?;
        if self.shard_restarts > 0 {
            row(
                "shard restarts",
                format!("{} (pagination token rejected)", self.shard_restarts),
            )?;
        }
        let calls: Vec<String> = self
            .cognito
            .calls
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        row(
            "cognito calls",
            format!(
                "{} ({}; {} throttled, {} retried)",
                self.cognito.total_calls(),
                calls.join(", "),
                self.cognito.throttled,
                self.cognito.retries
            ),
        )?;
        let requests: Vec<String> = self
            .hasura
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        row(
            "hasura requests",
            format!(
                "{} ({}; {} retried)",
                self.hasura.total_requests(),
                requests.join(", "),
                self.hasura.retries
            ),
        )?;
        write!(
            f,
            "  {:<24} {:.1}s ({:.0} users/s)",
            "elapsed", self.elapsed_seconds, self.users_per_second
        )
    }
}

/// One upsert in flight: the pages it commits, and how it went.
type BatchWrite = BoxFuture<'static, (Vec<PageRef>, Result<BatchOutcome, HasuraError>)>;

/// Runs a backfill of the reader's pool into the mirror until done, failed or `shutdown`.
pub async fn backfill(
    reader: CognitoReader,
    hasura: HasuraClient,
    options: BackfillOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<BackfillSummary> {
    let started = Instant::now();
    let pool_id = reader.user_pool_id().to_owned();
    let settings = options.settings;
    let pool = reader
        .describe_pool()
        .await
        .context("cannot read the user pool")?;
    let runs = RunStore::new(hasura.clone());

    // Which run, and where it stands.
    let (run_id, checkpoint, mut counters, resumed) = if options.dry_run {
        (
            None,
            fresh_checkpoint(settings.shards)?,
            RunCounters::default(),
            false,
        )
    } else {
        let unfinished = runs
            .unfinished(&pool_id)
            .await
            .context("cannot read earlier runs from Hasura")?;
        match unfinished {
            Some(run) if !options.restart => {
                // Nothing stops two backfills of one pool (they would share this run's
                // checkpoint); a live heartbeat is the hint that one may still be running.
                let since_heartbeat = (chrono::Utc::now() - run.heartbeat_at)
                    .to_std()
                    .unwrap_or_default();
                if run.status == RunStatus::Running.as_str()
                    && since_heartbeat < 2 * HEARTBEAT_EVERY
                {
                    tracing::warn!(
                        run = %run.id,
                        heartbeat_seconds_ago = since_heartbeat.as_secs(),
                        "the unfinished backfill was alive moments ago: if another backfill of this pool is still running, stop one of them"
                    );
                }
                tracing::info!(
                    run = %run.id,
                    status = run.status,
                    started_at = %run.started_at,
                    done_shards = run.checkpoint.done_shards(),
                    shards = run.checkpoint.shard_count,
                    "resuming the unfinished backfill"
                );
                if run.checkpoint.shard_count != settings.shards {
                    tracing::info!(
                        requested = settings.shards,
                        kept = run.checkpoint.shard_count,
                        "a resumed run keeps its shard count"
                    );
                }
                let mut counters = run.counters;
                counters.resumes += 1;
                (Some(run.id), run.checkpoint, counters, true)
            }
            other => {
                if let Some(old) = other {
                    runs.finish(
                        old.id,
                        RunStatus::Aborted,
                        None,
                        None::<&RunCounters>,
                        Some("superseded by backfill --restart".into()),
                    )
                    .await
                    .context("cannot mark the unfinished run aborted")?;
                    tracing::info!(run = %old.id, "unfinished backfill aborted (--restart)");
                }
                let checkpoint = fresh_checkpoint(settings.shards)?;
                let counters = RunCounters::default();
                let id = runs
                    .begin(
                        RunKind::Backfill,
                        &pool_id,
                        None,
                        Some(&checkpoint),
                        &counters,
                    )
                    .await
                    .context("cannot record the run in Hasura")?;
                tracing::info!(run = %id, pool = pool_id, estimated_users = pool.estimated_users, "backfill started");
                (Some(id), checkpoint, counters, false)
            }
        }
    };

    let mut here = BatchOutcome::default();
    let mut summary_groups = (0u64, 0u64);
    let mut seen_here = 0u64;
    let mut shard_restarts_here = 0u64;
    // The error, and the checkpoint to save with it once the scans had started.
    let result: Result<CommitTracker, (anyhow::Error, Option<Checkpoint>)> = async {
        // Groups first: their members are joined to every user read afterwards.
        let early = |err: anyhow::Error| (err, None);
        tracing::info!("reading groups and their members (ListGroups, ListUsersInGroup)");
        let groups = reader.list_groups().await.context("cannot list the pool's groups").map_err(early)?;
        let memberships: Arc<Memberships> = Arc::new(
            reader
                .memberships(&groups, MEMBERSHIP_CONCURRENCY)
                .await
                .context("cannot read group memberships")
                .map_err(early)?,
        );
        tracing::info!(
            groups = groups.len(),
            members = memberships.values().map(Vec::len).sum::<usize>(),
            "read groups and memberships"
        );
        let written = sync_groups(&hasura, &pool_id, &groups, options.dry_run).await.map_err(early)?;
        summary_groups = (groups.len() as u64, written);
        counters.groups_seen = groups.len() as u64;
        counters.groups_written += if options.dry_run { 0 } else { written };

        let open: Vec<(Shard, Option<String>)> = checkpoint
            .shards
            .iter()
            .filter(|(_, cp)| !cp.done)
            .map(|(prefix, cp)| Ok((Shard::parse(prefix)?, cp.token.clone())))
            .collect::<Result<_, crate::cognito::InvalidShardPrefix>>()
            .context("the run's checkpoint names an invalid shard; use --restart")
            .map_err(early)?;
        let remaining = pool.estimated_users.max(0) as u64 * open.len() as u64 / checkpoint.shards.len().max(1) as u64;
        let mut progress = Progress::new(options.progress, remaining);

        let pages_per_batch = settings.batch_size.div_ceil(60);
        let (tx, mut rx) = mpsc::channel::<ShardEvent>((2 * pages_per_batch * settings.concurrency).max(16));
        let scan_cancel = shutdown.child_token();
        let mut scans = JoinSet::new();
        for (shard, token) in open {
            scans.spawn(scan_shard(reader.clone(), shard, token, memberships.clone(), tx.clone(), scan_cancel.clone()));
        }
        drop(tx);

        let mut tracker = CommitTracker::new(&checkpoint);
        let mut batch_users: Vec<UserRecord> = Vec::new();
        let mut batch_pages: Vec<PageRef> = Vec::new();
        let mut batch_started = Instant::now();
        let mut inflight: FuturesUnordered<BatchWrite> = FuturesUnordered::new();
        let mut channel_open = true;
        let mut failure: Option<anyhow::Error> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_save = Instant::now();
        let shard_total = tracker.checkpoint().shards.len();

        let dispatch = |users: &mut Vec<UserRecord>, pages: &mut Vec<PageRef>, inflight: &mut FuturesUnordered<_>| {
            let users = std::mem::take(users);
            let pages = std::mem::take(pages);
            let hasura = hasura.clone();
            let dry_run = options.dry_run;
            inflight.push(async move { (pages, write_users(&hasura, users, dry_run).await) }.boxed());
        };

        loop {
            if !channel_open && scans.is_empty() && inflight.is_empty() && batch_pages.is_empty() {
                break;
            }
            tokio::select! {
                Some((pages, result)) = inflight.next(), if !inflight.is_empty() => match result {
                    Ok(outcome) => {
                        outcome.add_to(&mut counters);
                        add(&mut here, &outcome);
                        tracker.committed(&pages);
                    }
                    Err(err) => {
                        if failure.is_none() {
                            failure = Some(anyhow!(err).context("writing users to Hasura failed"));
                        }
                        scan_cancel.cancel();
                        batch_users.clear();
                        batch_pages.clear();
                    }
                },
                Some(joined) = scans.join_next(), if !scans.is_empty() => {
                    let err = match joined {
                        Ok(Ok(())) => None,
                        Ok(Err(err)) => Some(anyhow!(err).context("reading users from Cognito failed")),
                        Err(join) => Some(anyhow!("a shard scan panicked: {join}")),
                    };
                    if let Some(err) = err {
                        if failure.is_none() {
                            failure = Some(err);
                        }
                        scan_cancel.cancel();
                        batch_users.clear();
                        batch_pages.clear();
                    }
                }
                event = rx.recv(), if channel_open && inflight.len() < settings.concurrency => match event {
                    Some(ShardEvent::Page { shard, users, next_token }) => {
                        let count = users.len() as u64;
                        progress.read(count);
                        seen_here += count;
                        counters.users_seen += count;
                        let page = tracker.page_read(&shard, next_token);
                        if failure.is_none() {
                            // Batches are filled to exactly batch_size: a page that does not
                            // fit is split, and counts as committed once both parts are.
                            let mut users = users;
                            loop {
                                let room = settings.batch_size - batch_users.len();
                                let rest = users.split_off(users.len().min(room));
                                if batch_users.is_empty() {
                                    batch_started = Instant::now();
                                }
                                batch_users.append(&mut users);
                                batch_pages.push(page.clone());
                                if batch_users.len() >= settings.batch_size {
                                    dispatch(&mut batch_users, &mut batch_pages, &mut inflight);
                                }
                                if rest.is_empty() {
                                    break;
                                }
                                tracker.split(&page);
                                users = rest;
                            }
                        }
                    }
                    Some(ShardEvent::Restarted { shard }) => {
                        tracker.restart(&shard);
                        counters.shard_restarts += 1;
                        shard_restarts_here += 1;
                    }
                    None => {
                        channel_open = false;
                        if failure.is_none() && !batch_pages.is_empty() {
                            dispatch(&mut batch_users, &mut batch_pages, &mut inflight);
                        }
                    }
                },
                _ = tick.tick() => {
                    // A partial batch is written once it has waited SAVE_EVERY, so slow reads
                    // still checkpoint while fast ones fill whole batches.
                    if failure.is_none() && !batch_pages.is_empty() && inflight.len() < settings.concurrency
                        && batch_started.elapsed() >= SAVE_EVERY
                    {
                        dispatch(&mut batch_users, &mut batch_pages, &mut inflight);
                    }
                    let due = (tracker.is_dirty() && last_save.elapsed() >= SAVE_EVERY) || last_save.elapsed() >= HEARTBEAT_EVERY;
                    if let (Some(id), true) = (run_id, due) {
                        last_save = Instant::now();
                        let checkpoint = tracker.take_checkpoint();
                        if let Err(err) = runs.save(id, &checkpoint, &counters).await {
                            tracing::warn!(error = format!("{err:#}"), "cannot save the checkpoint; will try again");
                        }
                    }
                    progress.update(&counters, seen_here, tracker.checkpoint().done_shards(), shard_total);
                }
            }
        }
        if failure.is_none() && shutdown.is_cancelled() {
            failure = Some(anyhow!("interrupted; run backfill again to resume from the checkpoint"));
        }
        match failure {
            Some(err) => Err((err, Some(tracker.take_checkpoint()))),
            None => Ok(tracker),
        }
    }
    .await;

    let mut tracker = match result {
        Ok(tracker) => tracker,
        Err((err, checkpoint)) => {
            // The run stays resumable: `failed` runs are picked up by the next backfill.
            if let Some(id) = run_id {
                let error = Some(format!("{err:#}"));
                if let Err(save) = runs
                    .finish(
                        id,
                        RunStatus::Failed,
                        checkpoint.as_ref(),
                        Some(&counters),
                        error,
                    )
                    .await
                {
                    tracing::warn!(
                        error = format!("{save:#}"),
                        "cannot record the failure in Hasura"
                    );
                }
            }
            return Err(err);
        }
    };
    let checkpoint = tracker.take_checkpoint();
    if let Some(id) = run_id {
        runs.finish(
            id,
            RunStatus::Succeeded,
            Some(&checkpoint),
            Some(&counters),
            None,
        )
        .await
        .context("cannot mark the run succeeded")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let summary = BackfillSummary {
        user_pool_id: pool_id,
        run_id,
        resumed,
        dry_run: options.dry_run,
        users_seen: seen_here,
        inserted: here.inserted,
        updated: here.updated,
        unchanged: here.unchanged,
        skipped_older: here.skipped_older,
        groups_seen: summary_groups.0,
        groups_written: summary_groups.1,
        shard_restarts: shard_restarts_here,
        run_totals: counters,
        cognito: reader.stats(),
        hasura: hasura.stats(),
        elapsed_seconds: elapsed,
        users_per_second: seen_here as f64 / elapsed.max(0.001),
    };
    tracing::info!(
        pool = summary.user_pool_id,
        users_seen = summary.users_seen,
        inserted = summary.inserted,
        updated = summary.updated,
        unchanged = summary.unchanged,
        elapsed_seconds = summary.elapsed_seconds,
        "backfill finished"
    );
    Ok(summary)
}

fn add(total: &mut BatchOutcome, outcome: &BatchOutcome) {
    total.users += outcome.users;
    total.inserted += outcome.inserted;
    total.updated += outcome.updated;
    total.unchanged += outcome.unchanged;
    total.skipped_older += outcome.skipped_older;
}

fn fresh_checkpoint(shards: usize) -> anyhow::Result<Checkpoint> {
    let prefixes = Shard::split(shards)?.into_iter().map(|s| s.prefix);
    Ok(Checkpoint::new(prefixes, shards))
}

/// Upserts the groups that are new or changed; returns how many (would) change.
async fn sync_groups(
    hasura: &HasuraClient,
    pool: &str,
    groups: &[GroupRecord],
    dry_run: bool,
) -> anyhow::Result<u64> {
    let mirror: HashMap<String, group_digests::GroupDigestsCognitoGroups> = hasura
        .post::<GroupDigests>(group_digests::Variables {
            pool: pool.to_owned(),
        })
        .await
        .context("cannot read the mirrored groups")?
        .cognito_groups
        .into_iter()
        .map(|row| (row.name.clone(), row))
        .collect();
    let changed: Vec<_> = groups
        .iter()
        .filter(|g| {
            mirror
                .get(&g.name)
                .is_none_or(|row| row.content_hash != g.content_hash || row.deleted_at.is_some())
        })
        .collect();
    if dry_run || changed.is_empty() {
        return Ok(changed.len() as u64);
    }
    let mut written = 0;
    for chunk in changed.chunks(500) {
        let objects = chunk.iter().map(|group| (*group).into()).collect();
        let data = hasura
            .post::<UpsertGroups>(upsert_groups::Variables { objects })
            .await
            .context("cannot write the groups to Hasura")?;
        written += data
            .insert_cognito_groups
            .map_or(0, |r| r.affected_rows.max(0) as u64);
    }
    Ok(written)
}
