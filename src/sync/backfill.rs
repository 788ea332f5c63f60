//! The backfill: streams the whole pool into the mirror, resumably.
//!
//! 1. DescribeUserPool (the pool exists; its estimated size drives the progress bar).
//! 2. Find the latest unfinished backfill of the pool and resume it (or start a new run;
//!    `--restart` marks the old one aborted).
//! 3. ListGroups and every group's members (re-read on resume); upsert the groups.
//! 4. One task per unfinished shard pages through ListUsers under the reader's shared rate
//!    limit, joins each user's groups and pushes pages into a bounded channel; reading only
//!    waits when the channel is full. The [`Pipeline`] batches pages into upserts of
//!    `batch_size` users, `concurrency` of them in flight, and saves the checkpoint (only
//!    ever over committed pages) every few seconds.
//! 5. Mark the run succeeded, or failed with the error (it is then resumed next time).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CallStats, CognitoReader, Shard};
use crate::config::ScanSettings;
use crate::hasura::operations::{GroupDigests, UpsertGroups, group_digests, upsert_groups};
use crate::hasura::{HasuraClient, HasuraError, HasuraStats};
use crate::model::{GroupRecord, UserRecord};
use crate::state::{Checkpoint, RunCounters, RunKind, RunStatus, RunStore};
use crate::sync::progress::{Progress, ProgressMode};
use crate::sync::read_ahead;
use crate::sync::scan::{PoolScan, ShardEvent, start_pool_scan};
use crate::sync::writer::{BatchOutcome, CommitTracker, PageRef, write_users};

/// Save the checkpoint at most this often while it moves...
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// ...and at least this often (heartbeat).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// How to run a backfill.
#[derive(Debug, Clone, Copy)]
pub struct BackfillOptions {
    pub settings: ScanSettings,
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
    /// Users the mirror refused because of their data: left out, logged.
    pub skipped_bad_data: u64,
    pub groups_seen: u64,
    pub groups_written: u64,
    pub shard_restarts: u64,
    /// ListUsers pages read ahead, on disk, while the last group's members were listed.
    pub pages_read_ahead: usize,
    /// The run's counters over every process that worked on it.
    pub run_totals: RunCounters,
    pub cognito: CallStats,
    pub hasura: HasuraStats,
    pub elapsed_seconds: f64,
    pub users_per_second: f64,
}

impl fmt::Display for BackfillSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = super::report_header(
            f,
            "backfill",
            &self.user_pool_id,
            self.dry_run.then_some("dry run"),
        )?;
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
        if self.skipped_bad_data > 0 {
            row(
                "skipped (bad data)",
                super::bad_data_note(self.skipped_bad_data),
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
        if let Some(read_ahead) = read_ahead::describe(self.pages_read_ahead) {
            row("pages read ahead", read_ahead)?;
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

/// The run a backfill works on, and where it stands.
struct OpenRun {
    /// `None` in a dry run (no run record).
    id: Option<uuid::Uuid>,
    checkpoint: Checkpoint,
    counters: RunCounters,
    resumed: bool,
}

/// What this process did, for its summary (the run's counters sum over every process).
#[derive(Default)]
struct Here {
    outcome: BatchOutcome,
    users_seen: u64,
    shard_restarts: u64,
    pages_read_ahead: usize,
    groups_seen: u64,
    groups_written: u64,
}

/// Runs a backfill of the reader's pool into the mirror until done, failed or `shutdown`,
/// in four stages: open (or resume) the run, read the groups and their members, scan the
/// shards into batched upserts, finish the run.
pub async fn backfill(
    reader: CognitoReader,
    hasura: HasuraClient,
    options: BackfillOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<BackfillSummary> {
    let started = Instant::now();
    let pool_id = reader.user_pool_id().to_owned();
    let pool = reader
        .describe_pool()
        .await
        .context("cannot read the user pool")?;
    let runs = RunStore::new(hasura.clone());
    let mut run = open_run(&runs, &pool_id, &options, pool.estimated_users).await?;
    let mut here = Here::default();
    let result = scan(
        &reader,
        &hasura,
        &options,
        pool.estimated_users,
        &mut run,
        &mut here,
        &shutdown,
    )
    .await;
    finish_run(&runs, &run, result).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let summary = BackfillSummary {
        user_pool_id: pool_id,
        run_id: run.id,
        resumed: run.resumed,
        dry_run: options.dry_run,
        users_seen: here.users_seen,
        inserted: here.outcome.inserted,
        updated: here.outcome.updated,
        unchanged: here.outcome.unchanged,
        skipped_older: here.outcome.skipped_older,
        skipped_bad_data: here.outcome.skipped_bad_data,
        groups_seen: here.groups_seen,
        groups_written: here.groups_written,
        shard_restarts: here.shard_restarts,
        pages_read_ahead: here.pages_read_ahead,
        run_totals: run.counters,
        cognito: reader.stats(),
        hasura: hasura.stats(),
        elapsed_seconds: elapsed,
        users_per_second: here.users_seen as f64 / elapsed.max(0.001),
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

/// Stage 1: the latest unfinished backfill of the pool, resumed (or aborted with
/// `--restart`), else a new run. A dry run records nothing.
async fn open_run(
    runs: &RunStore,
    pool_id: &str,
    options: &BackfillOptions,
    estimated_users: i64,
) -> anyhow::Result<OpenRun> {
    let shards = options.settings.shards;
    if options.dry_run {
        return Ok(OpenRun {
            id: None,
            checkpoint: fresh_checkpoint(shards)?,
            counters: RunCounters::default(),
            resumed: false,
        });
    }
    let unfinished = runs
        .unfinished(pool_id)
        .await
        .context("cannot read earlier runs from Hasura")?;
    match unfinished {
        Some(run) if !options.restart => {
            // Nothing stops two backfills of one pool (they would share this run's
            // checkpoint); a live heartbeat is the hint that one may still be running.
            let since_heartbeat = (chrono::Utc::now() - run.heartbeat_at)
                .to_std()
                .unwrap_or_default();
            if run.status == RunStatus::Running.as_str() && since_heartbeat < 2 * HEARTBEAT_EVERY {
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
            if run.checkpoint.shard_count != shards {
                tracing::info!(
                    requested = shards,
                    kept = run.checkpoint.shard_count,
                    "a resumed run keeps its shard count"
                );
            }
            let mut counters = run.counters;
            counters.resumes += 1;
            Ok(OpenRun {
                id: Some(run.id),
                checkpoint: run.checkpoint,
                counters,
                resumed: true,
            })
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
            let checkpoint = fresh_checkpoint(shards)?;
            let counters = RunCounters::default();
            let id = runs
                .begin(
                    RunKind::Backfill,
                    pool_id,
                    None,
                    Some(&checkpoint),
                    &counters,
                )
                .await
                .context("cannot record the run in Hasura")?;
            tracing::info!(run = %id, pool = pool_id, estimated_users, "backfill started");
            Ok(OpenRun {
                id: Some(id),
                checkpoint,
                counters,
                resumed: false,
            })
        }
    }
}

/// Stages 2 and 3: the groups and their members, then the shards still open in the run's
/// checkpoint, written in batches. On failure, the error and (once the scans had started)
/// the checkpoint to save with it.
async fn scan(
    reader: &CognitoReader,
    hasura: &HasuraClient,
    options: &BackfillOptions,
    estimated_users: i64,
    run: &mut OpenRun,
    here: &mut Here,
    shutdown: &CancellationToken,
) -> Result<Checkpoint, (anyhow::Error, Option<Checkpoint>)> {
    let early = |err: anyhow::Error| (err, None);
    let settings = options.settings;
    let open: Vec<(Shard, Option<String>)> = run
        .checkpoint
        .shards
        .iter()
        .filter(|(_, cp)| !cp.done)
        .map(|(prefix, cp)| Ok((Shard::parse(prefix)?, cp.token.clone())))
        .collect::<Result<_, crate::cognito::InvalidShardPrefix>>()
        .context("the run's checkpoint names an invalid shard; use --restart")
        .map_err(early)?;
    let remaining = estimated_users.max(0) as u64 * open.len() as u64
        / run.checkpoint.shards.len().max(1) as u64;
    let pages_per_batch = settings.batch_size.div_ceil(60);
    let channel = (2 * pages_per_batch * settings.concurrency).max(16);
    let pool_scan = start_pool_scan(reader, open, channel, shutdown)
        .await
        .map_err(early)?;
    let written = sync_groups(
        hasura,
        reader.user_pool_id(),
        &pool_scan.groups,
        options.dry_run,
    )
    .await
    .map_err(early)?;
    here.groups_seen = pool_scan.groups.len() as u64;
    here.pages_read_ahead = pool_scan.pages_read_ahead;
    here.groups_written = written;
    run.counters.groups_seen = here.groups_seen;
    run.counters.groups_written += if options.dry_run { 0 } else { written };

    let runs = RunStore::new(hasura.clone());
    let mut pipeline = Pipeline {
        hasura,
        runs: &runs,
        options,
        run_id: run.id,
        counters: &mut run.counters,
        here,
        tracker: CommitTracker::new(&run.checkpoint),
        batch_users: Vec::new(),
        batch_pages: Vec::new(),
        batch_started: Instant::now(),
        ready: VecDeque::new(),
        inflight: FuturesUnordered::new(),
        failure: None,
        progress: Progress::new(options.progress, remaining),
        last_save: Instant::now(),
    };
    pipeline.run(pool_scan).await;
    if pipeline.failure.is_none() && shutdown.is_cancelled() {
        pipeline.failure = Some(anyhow!(
            "interrupted; run backfill again to resume from the checkpoint"
        ));
    }
    let checkpoint = pipeline.tracker.take_checkpoint();
    match pipeline.failure {
        Some(err) => Err((err, Some(checkpoint))),
        None => Ok(checkpoint),
    }
}

/// Stage 3's state: pages batched into upserts of exactly `batch_size` users, `concurrency`
/// of them in flight, and the checkpoint saved (only ever over committed pages) every few
/// seconds.
struct Pipeline<'a> {
    hasura: &'a HasuraClient,
    runs: &'a RunStore,
    options: &'a BackfillOptions,
    run_id: Option<uuid::Uuid>,
    counters: &'a mut RunCounters,
    here: &'a mut Here,
    tracker: CommitTracker,
    batch_users: Vec<UserRecord>,
    batch_pages: Vec<PageRef>,
    batch_started: Instant,
    /// Full batches waiting for a free write slot: `--concurrency` is a hard limit, also
    /// when one page fills several batches.
    ready: VecDeque<(Vec<UserRecord>, Vec<PageRef>)>,
    inflight: FuturesUnordered<BatchWrite>,
    /// The first error; once set, nothing more is dispatched and the scans are cancelled.
    failure: Option<anyhow::Error>,
    progress: Progress,
    last_save: Instant,
}

impl Pipeline<'_> {
    /// Until every shard is done and every batch has landed, or the first failure has
    /// drained what was in flight.
    async fn run(&mut self, scan: PoolScan) {
        let PoolScan {
            pages: mut rx,
            shards: mut scans,
            cancel,
            ..
        } = scan;
        let concurrency = self.options.settings.concurrency;
        let shard_total = self.tracker.checkpoint().shards.len();
        let mut channel_open = true;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if !channel_open
                && scans.is_empty()
                && self.inflight.is_empty()
                && self.batch_pages.is_empty()
            {
                break;
            }
            tokio::select! {
                Some((pages, result)) = self.inflight.next(), if !self.inflight.is_empty() => match result {
                    Ok(outcome) => {
                        outcome.add_to(self.counters);
                        add(&mut self.here.outcome, &outcome);
                        self.tracker.committed(&pages);
                        self.launch();
                    }
                    Err(err) => self.fail(anyhow!(err).context("writing users to Hasura failed"), &cancel),
                },
                Some(joined) = scans.join_next(), if !scans.is_empty() => match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => self.fail(err, &cancel),
                    Err(join) => self.fail(anyhow!("a shard scan panicked: {join}"), &cancel),
                },
                event = rx.recv(), if channel_open && self.ready.is_empty() && self.inflight.len() < concurrency => match event {
                    Some(ShardEvent::Page { shard, users, next_token }) => self.page(&shard, users, next_token),
                    Some(ShardEvent::Restarted { shard }) => {
                        self.tracker.restart(&shard);
                        self.counters.shard_restarts += 1;
                        self.here.shard_restarts += 1;
                    }
                    None => {
                        channel_open = false;
                        if self.failure.is_none() && !self.batch_pages.is_empty() {
                            self.dispatch();
                        }
                    }
                },
                _ = tick.tick() => self.tick(shard_total).await,
            }
        }
    }

    /// A page read: counted, and its users added to the batch, which is dispatched each
    /// time it fills (a page that does not fit is split, and counts as committed once both
    /// parts are).
    fn page(&mut self, shard: &str, mut users: Vec<UserRecord>, next_token: Option<String>) {
        let count = users.len() as u64;
        self.progress.read(count);
        self.here.users_seen += count;
        self.counters.users_seen += count;
        let page = self.tracker.page_read(shard, next_token);
        if self.failure.is_some() {
            return;
        }
        let batch_size = self.options.settings.batch_size;
        loop {
            let room = batch_size - self.batch_users.len();
            let rest = users.split_off(users.len().min(room));
            if self.batch_users.is_empty() {
                self.batch_started = Instant::now();
            }
            self.batch_users.append(&mut users);
            self.batch_pages.push(page.clone());
            if self.batch_users.len() >= batch_size {
                self.dispatch();
            }
            if rest.is_empty() {
                break;
            }
            self.tracker.split(&page);
            users = rest;
        }
    }

    /// Queues the batch for writing as one upsert, and writes what the limit allows.
    fn dispatch(&mut self) {
        let users = std::mem::take(&mut self.batch_users);
        let pages = std::mem::take(&mut self.batch_pages);
        self.ready.push_back((users, pages));
        self.launch();
    }

    /// Starts queued batches while fewer than `--concurrency` writes are in flight.
    fn launch(&mut self) {
        while self.inflight.len() < self.options.settings.concurrency {
            let Some((users, pages)) = self.ready.pop_front() else {
                return;
            };
            let hasura = self.hasura.clone();
            let dry_run = self.options.dry_run;
            self.inflight
                .push(async move { (pages, write_users(&hasura, users, dry_run).await) }.boxed());
        }
    }

    /// The first failure stops the scans and drops the batch being filled; what is in
    /// flight still lands (and moves the checkpoint).
    fn fail(&mut self, err: anyhow::Error, cancel: &CancellationToken) {
        self.failure.get_or_insert(err);
        cancel.cancel();
        self.batch_users.clear();
        self.batch_pages.clear();
        self.ready.clear();
    }

    /// Every second: a partial batch that has waited SAVE_EVERY is written (so slow reads
    /// still checkpoint while fast ones fill whole batches), the checkpoint is saved when it
    /// moved (at least every HEARTBEAT_EVERY, as the run's heartbeat), and progress shown.
    async fn tick(&mut self, shard_total: usize) {
        if self.failure.is_none()
            && !self.batch_pages.is_empty()
            && self.ready.is_empty()
            && self.inflight.len() < self.options.settings.concurrency
            && self.batch_started.elapsed() >= SAVE_EVERY
        {
            self.dispatch();
        }
        let due = (self.tracker.is_dirty() && self.last_save.elapsed() >= SAVE_EVERY)
            || self.last_save.elapsed() >= HEARTBEAT_EVERY;
        if let (Some(id), true) = (self.run_id, due) {
            self.last_save = Instant::now();
            let checkpoint = self.tracker.take_checkpoint();
            if let Err(err) = self.runs.save(id, &checkpoint, self.counters).await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "cannot save the checkpoint; will try again"
                );
            }
        }
        self.progress.update(
            self.counters,
            self.here.users_seen,
            self.tracker.checkpoint().done_shards(),
            shard_total,
        );
    }
}

/// Stage 4: the run marked succeeded with its final checkpoint, or failed with the error
/// (a failed run stays resumable: the next backfill picks it up).
async fn finish_run(
    runs: &RunStore,
    run: &OpenRun,
    result: Result<Checkpoint, (anyhow::Error, Option<Checkpoint>)>,
) -> anyhow::Result<()> {
    let Some(id) = run.id else {
        return result.map(drop).map_err(|(err, _)| err);
    };
    match result {
        Ok(checkpoint) => runs
            .finish(
                id,
                RunStatus::Succeeded,
                Some(&checkpoint),
                Some(&run.counters),
                None,
            )
            .await
            .context("cannot mark the run succeeded"),
        Err((err, checkpoint)) => {
            let error = Some(format!("{err:#}"));
            if let Err(save) = runs
                .finish(
                    id,
                    RunStatus::Failed,
                    checkpoint.as_ref(),
                    Some(&run.counters),
                    error,
                )
                .await
            {
                tracing::warn!(
                    error = format!("{save:#}"),
                    "cannot record the failure in Hasura"
                );
            }
            Err(err)
        }
    }
}

fn add(total: &mut BatchOutcome, outcome: &BatchOutcome) {
    total.users += outcome.users;
    total.inserted += outcome.inserted;
    total.updated += outcome.updated;
    total.unchanged += outcome.unchanged;
    total.skipped_older += outcome.skipped_older;
    total.skipped_bad_data += outcome.skipped_bad_data;
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
