//! Two real `daemon` processes on one pool, one mirror and one lease, reconciling every
//! minute on the minute: at each tick exactly one of them reconciles while the other finds
//! the lease busy, runs never overlap, drift made between ticks with no event (a user added,
//! one deleted) is repaired by the next tick, and when the lease holder is killed with SIGKILL
//! the survivor takes the unreleased lease over at the next tick, once it expired.
//!
//! It runs on the wall clock over three minute boundaries: two to three and a half minutes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;
use testbed::{CreatedUser, TestBed, UserSpec};
use uuid::Uuid;

use common::process::Process;
use common::{assert_exact_mirror, command};

/// Every minute, on the minute.
const SCHEDULE: &str = "0 * * * * *";
/// Far less than the minute between ticks: a dead holder's lease has expired by the next one.
const LEASE_TTL_SECONDS: &str = "20";
/// Enough users that deleting one stays under the safety brake (10% of the live users).
const USERS: usize = 12;
/// How long after its tick a run may take to finish before the test gives up.
const RUN_BOUND: TimeDelta = TimeDelta::seconds(45);

// The scheduler's log messages (src/daemon/scheduler.rs, src/telemetry/reconcile.rs).
const SCHEDULER_ON: &str = "scheduled reconcile on";
const LEASE_BUSY: &str = "another scanner holds the pool's scan lease";
const RUN_DONE: &str = "scheduled reconcile done";
const LEASE_LOST: &str = "reconcile lease lost; stopping the run";

/// One daemon process (killed when dropped) and the JSON log lines it has written to stderr.
struct Replica {
    name: &'static str,
    process: Process,
}

impl Replica {
    fn start(bed: &TestBed, name: &'static str) -> anyhow::Result<Replica> {
        let mut cmd = command(bed, &bed.aws_endpoint, &bed.hasura.endpoint);
        cmd.env("LOG_FORMAT", "json")
            // The scheduler's debug line names each run it finished: run rows map to processes.
            .env(
                "RUST_LOG",
                "info,cognito_hasura_sync::daemon::scheduler=debug",
            )
            // The lease holder's name starts with the host name: readable failure messages.
            .env("HOSTNAME", name)
            .args([
                "daemon",
                "--queue-url",
                &bed.queue_url,
                "--listen",
                "127.0.0.1:0",
                "--wait-time",
                "1",
                "--reconcile-schedule",
                SCHEDULE,
                "--reconcile-lease-ttl",
                LEASE_TTL_SECONDS,
            ]);
        Ok(Replica {
            name,
            process: Process::spawn(name, cmd)?,
        })
    }

    /// The events logged so far with `message`.
    fn events(&self, message: &str) -> Vec<Value> {
        self.process
            .lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["message"] == message)
            .collect()
    }

    /// This process's name in the lease, once its scheduler has started.
    fn holder(&self) -> Option<String> {
        self.events(SCHEDULER_ON)
            .first()
            .and_then(|e| e["holder"].as_str())
            .map(str::to_owned)
    }

    /// The ticks at which this process found the lease held by another.
    fn busy_ticks(&self) -> anyhow::Result<Vec<DateTime<Utc>>> {
        self.events(LEASE_BUSY)
            .iter()
            .map(|e| {
                let at: DateTime<Utc> = e["timestamp"]
                    .as_str()
                    .context("a log line without a timestamp")?
                    .parse()?;
                tick_of(at)
            })
            .collect()
    }

    /// Whether this process ran (and finished) the run `id`.
    fn ran(&self, id: Uuid) -> bool {
        let id = id.to_string();
        self.events(RUN_DONE)
            .iter()
            .any(|e| e["run"].as_str() == Some(id.as_str()))
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    async fn terminate(&mut self) -> anyhow::Result<()> {
        self.process.terminate()?;
        self.process.succeed(Duration::from_secs(60)).await
    }
}

/// The logs of every replica, for failure messages.
fn logs(replicas: &[Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- {} ---\n{}", r.name, r.process.tail()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The minute boundary nearest to `at`: the tick a run or a log line belongs to.
fn tick_of(at: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    Ok(at.duration_round(TimeDelta::minutes(1))?)
}

/// A reconcile row of `cognito_sync_runs`.
#[derive(Debug)]
struct Run {
    id: Uuid,
    tick: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: String,
    counters: Value,
}

/// Every reconcile run so far, by start.
async fn runs(bed: &TestBed) -> anyhow::Result<Vec<Run>> {
    let rows = bed
        .db
        .client()
        .await?
        .query(
            "SELECT id, started_at, finished_at, status, counters FROM cognito_sync_runs \
             WHERE kind = 'reconcile' ORDER BY started_at",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Run {
                id: r.get(0),
                tick: tick_of(r.get(1))?,
                started_at: r.get(1),
                finished_at: r.get(2),
                status: r.get(3),
                counters: r.get(4),
            })
        })
        .collect()
}

/// Waits for the run of `tick` to end (at most [`RUN_BOUND`] after the tick); it must succeed.
async fn finished_run(
    bed: &TestBed,
    tick: DateTime<Utc>,
    replicas: &[Replica],
) -> anyhow::Result<Run> {
    loop {
        let run = runs(bed)
            .await?
            .into_iter()
            .find(|r| r.tick == tick && r.status != "running");
        if let Some(run) = run {
            ensure!(
                run.status == "succeeded",
                "the run of {tick} ended {}: {run:?}\n{}",
                run.status,
                logs(replicas)
            );
            return Ok(run);
        }
        ensure!(
            Utc::now() < tick + RUN_BOUND,
            "no run of the tick at {tick} finished\n{}",
            logs(replicas)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (bounded) until `check` holds.
async fn eventually(
    what: &str,
    replicas: &[Replica],
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs(replicas)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The holder named in the pool's reconcile lease, if there is one.
async fn lease_holder(bed: &TestBed) -> anyhow::Result<Option<String>> {
    let row = bed
        .db
        .client()
        .await?
        .query_opt(
            "SELECT holder FROM cognito_sync_leases WHERE name = $1",
            &[&format!("scan:{}", bed.pool_id)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Drift no event announces: `gone` is deleted from Cognito and `username` created; returns
/// the new user.
async fn drift(bed: &TestBed, gone: &CreatedUser, username: &str) -> anyhow::Result<CreatedUser> {
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&gone.username)
        .send()
        .await?;
    let mut created = bed.create_users([UserSpec::new(username)]).await?;
    created.pop().context("no user created")
}

/// `run` repaired [`drift`]: `gone` tombstoned, `added` mirrored, and nothing else written.
async fn assert_repaired(
    bed: &TestBed,
    run: &Run,
    gone: &CreatedUser,
    added: &CreatedUser,
) -> anyhow::Result<()> {
    let tombstone = bed
        .mirror_user(gone.sub)
        .await?
        .context("gone from the mirror")?;
    ensure!(
        tombstone.deleted_at.is_some(),
        "{} was not tombstoned",
        gone.username
    );
    let new = bed
        .mirror_user(added.sub)
        .await?
        .with_context(|| format!("{} is not mirrored", added.username))?;
    ensure!(
        new.deleted_at.is_none() && new.username == added.username,
        "{new:?} is not {}",
        added.username
    );
    let counter = |name: &str| run.counters[name].as_u64().unwrap_or(0);
    ensure!(
        (
            counter("inserted"),
            counter("tombstoned"),
            counter("updated")
        ) == (1, 1, 0),
        "{run:?}"
    );
    Ok(())
}

/// Two replicas with a one-minute schedule never reconcile at the same time, and one
/// takes over when the other is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_reconcile_one_at_a_time_and_the_survivor_takes_over() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let users = bed.populate(USERS, UserSpec::numbered).await?;
    let mut replicas = [
        Replica::start(&bed, "replica-a")?,
        Replica::start(&bed, "replica-b")?,
    ];
    eventually("both schedulers to start", &replicas, || {
        replicas.iter().all(|r| r.holder().is_some())
    })
    .await?;
    let holders: Vec<String> = replicas.iter().filter_map(Replica::holder).collect();
    ensure!(
        holders[0] != holders[1],
        "one holder name for two processes"
    );
    // The first minute boundary that both schedulers surely wait for, and the next two.
    let first = (Utc::now() + TimeDelta::seconds(2)).duration_trunc(TimeDelta::minutes(1))?
        + TimeDelta::minutes(1);
    let ticks = [
        first,
        first + TimeDelta::minutes(1),
        first + TimeDelta::minutes(2),
    ];

    // Tick 1 (if not an earlier tick of one process) mirrors the pool; then drift.
    finished_run(&bed, ticks[0], &replicas).await?;
    assert_exact_mirror(&bed, &BTreeMap::new()).await?;
    let added = drift(&bed, &users[0], "drift-1").await?;

    // Tick 2 repairs it.
    let run = finished_run(&bed, ticks[1], &replicas).await?;
    assert_repaired(&bed, &run, &users[0], &added).await?;

    // The holder of the lease, which ran tick 2, is killed: it cannot release the lease.
    let holder = lease_holder(&bed).await?.context("no lease after a run")?;
    let dead = holders
        .iter()
        .position(|h| *h == holder)
        .with_context(|| format!("the lease holder {holder} is neither replica"))?;
    let survivor = 1 - dead;
    eventually(
        "the lease holder to log the run of tick 2",
        &replicas,
        || replicas[dead].ran(run.id),
    )
    .await?;
    for replica in &mut replicas {
        replica.ensure_running()?;
    }
    tokio::time::timeout(Duration::from_secs(30), replicas[dead].process.kill())
        .await
        .context("the killed daemon did not exit")??;
    let killed_at = Utc::now();
    ensure!(
        lease_holder(&bed).await?.as_ref() == Some(&holder),
        "the killed holder's lease changed hands at once"
    );

    // More drift; the survivor takes the expired lease over at tick 3 and repairs it.
    let added = drift(&bed, &users[1], "drift-2").await?;
    let run = finished_run(&bed, ticks[2], &replicas).await?;
    assert_repaired(&bed, &run, &users[1], &added).await?;
    eventually("the survivor to log the run of tick 3", &replicas, || {
        replicas[survivor].ran(run.id)
    })
    .await?;
    ensure!(
        lease_holder(&bed).await? == Some(holders[survivor].clone()),
        "the survivor does not hold the lease after its run"
    );

    // A clean shutdown gives the lease up.
    replicas[survivor].terminate().await?;
    ensure!(
        lease_holder(&bed).await?.is_none(),
        "the lease was not released on shutdown"
    );

    // The whole history: one run per minute, one after the other, each by one process.
    let runs = runs(&bed).await?;
    ensure!(runs.iter().all(|r| r.status == "succeeded"), "{runs:#?}");
    for pair in runs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        ensure!(
            after.tick - before.tick == TimeDelta::minutes(1),
            "not exactly one run per tick: {runs:#?}"
        );
        ensure!(
            before
                .finished_at
                .is_some_and(|end| end <= after.started_at),
            "runs overlap: {before:?} and {after:?}"
        );
    }
    let mut runners = BTreeMap::new();
    for run in &runs {
        let by: Vec<usize> = (0..replicas.len())
            .filter(|&i| replicas[i].ran(run.id))
            .collect();
        ensure!(
            by.len() == 1,
            "run {run:?} ran by {by:?}\n{}",
            logs(&replicas)
        );
        ensure!(
            run.started_at < killed_at || by[0] == survivor,
            "a run after the kill not by the survivor: {run:?}"
        );
        runners.insert(run.tick, by[0]);
    }
    // At each tick both were up for, the other one found the lease busy; no one else ever did.
    for (i, replica) in replicas.iter().enumerate() {
        let busy = replica.busy_ticks()?;
        for tick in &ticks[..2] {
            ensure!(
                busy.contains(tick) == (runners[tick] != i),
                "{} at {tick}: busy ticks {busy:?}, runners {runners:?}",
                replica.name
            );
        }
        for tick in &busy {
            ensure!(
                runners.get(tick).is_some_and(|&r| r != i),
                "{} found the lease busy at {tick} with no run by the other: {runners:?}",
                replica.name
            );
        }
        ensure!(
            replica.events(LEASE_LOST).is_empty(),
            "{} lost the lease during a run:\n{}",
            replica.name,
            replica.process.tail()
        );
    }
    Ok(())
}
