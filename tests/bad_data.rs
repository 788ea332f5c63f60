//! Bad data is contained: a value PostgreSQL cannot store is stored cleaned, and a record the
//! mirror refuses holds back nothing but itself, in the daemon's batches and in a backfill.
//!
//! A user with U+0000 in an attribute (Cognito and moto accept it, PostgreSQL text and jsonb
//! do not) shows the cleaning. Cleaning leaves no value that PostgreSQL refuses, so the split
//! of a refused write is shown with a trigger in the test database that refuses one username
//! with a data exception, as PostgreSQL refuses a bad value.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::json;
use testbed::{CreatedUser, TestBed, TestBedOptions, UserSpec};
use tokio::process::Child;

use common::command;

/// A value with U+0000 (Cognito and moto accept it; PostgreSQL text cannot hold it).
const NUL_NAME: &str = "Nul\u{0}Name";

/// The username the trigger of [`refuse_username`] refuses.
const POISONED: &str = "poisoned-user";

/// Makes PostgreSQL refuse any write of a user named `username` with SQLSTATE 22023
/// (`invalid_parameter_value`, a data exception, as a value it cannot store would be).
async fn refuse_username(bed: &TestBed, username: &str) -> anyhow::Result<()> {
    let sql = format!(
        "CREATE FUNCTION refuse_username() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF NEW.username = '{username}' THEN \
             RAISE EXCEPTION 'value refused by the test' USING ERRCODE = '22023'; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER refuse_username BEFORE INSERT OR UPDATE ON cognito_users \
           FOR EACH ROW EXECUTE FUNCTION refuse_username();"
    );
    bed.db.client().await?.batch_execute(&sql).await?;
    Ok(())
}

/// The daemon on the bed's queue: one poller (so one receive takes a whole batch), short
/// long-polls and backoffs, no scheduled reconcile.
fn daemon(bed: &TestBed) -> anyhow::Result<Child> {
    let mut cmd = command(bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.args([
        "daemon",
        "--queue-url",
        &bed.queue_url,
        "--listen",
        "127.0.0.1:0",
        "--pollers",
        "1",
        "--wait-time",
        "1",
        "--retry-backoff",
        "1",
        "--retry-backoff-max",
        "1",
        "--probe-interval",
        "1",
        "--reconcile-schedule",
        "off",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd.spawn().context("cannot start the daemon")
}

/// Sends one native event per user, before the daemon starts: its first receive takes them all.
async fn send_events(bed: &TestBed, users: &[&CreatedUser]) -> anyhow::Result<()> {
    for user in users {
        let event = json!({ "user_pool_id": bed.pool_id, "sub": user.sub, "reason": "batch" });
        bed.send_event(&event.to_string()).await?;
    }
    Ok(())
}

/// Waits (bounded, never a timing assertion) until the sync queue is empty and the dead-letter
/// queue holds `dead` messages; the daemon must keep running meanwhile.
async fn settled(
    bed: &TestBed,
    daemon: &mut Child,
    dead: u64,
    bound: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = daemon.try_wait()? {
            anyhow::bail!("the daemon exited ({status})");
        }
        let queue = bed.queue_depth(&bed.queue_url).await?;
        let dlq = bed.queue_depth(&bed.dlq_url).await?.0;
        if queue == (0, 0) && dlq == dead {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "after {bound:?}: queue {queue:?}, {dlq} in the dead-letter queue (expected {dead})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Which of `users` the mirror lacks, by username.
async fn missing(bed: &TestBed, users: &[CreatedUser]) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for user in users {
        if bed.mirror_user(user.sub).await?.is_none() {
            missing.push(user.username.clone());
        }
    }
    Ok(missing)
}

/// A NUL character in one user's attribute: the backfill succeeds, that user is stored with
/// the NUL removed and every other user is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_is_removed_and_the_backfill_completes() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.populate(30, UserSpec::numbered).await?;
    let bad = bed
        .pool()
        .create_user(UserSpec::new("nul-user").attr("given_name", NUL_NAME))
        .await?;
    common::backfill(command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint), &[]).await?;
    let row = bed
        .mirror_user(bad.sub)
        .await?
        .context("the user with a NUL was not stored")?;
    ensure!(
        row.given_name.as_deref() == Some("NulName") && row.attributes["given_name"] == "NulName",
        "stored as {:?} / {}",
        row.given_name,
        row.attributes
    );
    let rows = bed.mirror_users().await?;
    ensure!(rows.len() == 31, "{} of 31 users stored", rows.len());
    Ok(())
}

/// A NUL character in one user's attribute, in one batch of events with healthy users: every
/// user is applied (the bad one without the NUL), every message is deleted, nothing reaches
/// the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_holds_back_no_message_of_its_batch() -> anyhow::Result<()> {
    let bed = TestBed::start_with(TestBedOptions::default().max_receive_count(2)).await?;
    let healthy = bed.populate(6, UserSpec::numbered).await?;
    let bad = bed
        .pool()
        .create_user(UserSpec::new("nul-user").attr("given_name", NUL_NAME))
        .await?;
    send_events(&bed, &healthy.iter().chain([&bad]).collect::<Vec<_>>()).await?;
    let mut daemon = daemon(&bed)?;
    settled(&bed, &mut daemon, 0, Duration::from_secs(60)).await?;
    daemon.kill().await?;
    let missing = missing(&bed, &healthy).await?;
    ensure!(missing.is_empty(), "healthy users not applied: {missing:?}");
    let stored = bed
        .mirror_user(bad.sub)
        .await?
        .context("the user with a NUL was not stored")?;
    ensure!(
        stored.given_name.as_deref() == Some("NulName"),
        "stored as {:?}",
        stored.given_name
    );
    Ok(())
}

/// The mirror refuses one user of a batch of events: the healthy users are applied and their
/// messages deleted; only the refused user's message fails, comes back after its backoff and
/// reaches the dead-letter queue alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_fails_only_its_own_message() -> anyhow::Result<()> {
    let bed = TestBed::start_with(TestBedOptions::default().max_receive_count(2)).await?;
    refuse_username(&bed, POISONED).await?;
    let healthy = bed.populate(6, UserSpec::numbered).await?;
    let poisoned = bed.pool().create_user(UserSpec::new(POISONED)).await?;
    send_events(&bed, &healthy.iter().chain([&poisoned]).collect::<Vec<_>>()).await?;
    let mut daemon = daemon(&bed)?;
    settled(&bed, &mut daemon, 1, Duration::from_secs(60)).await?;
    daemon.kill().await?;
    let missing = missing(&bed, &healthy).await?;
    ensure!(missing.is_empty(), "healthy users not applied: {missing:?}");
    ensure!(
        bed.mirror_user(poisoned.sub).await?.is_none(),
        "the refused user was stored"
    );
    let dead = bed
        .sqs
        .receive_message()
        .queue_url(&bed.dlq_url)
        .max_number_of_messages(10)
        .send()
        .await?;
    let bodies: Vec<&str> = dead.messages().iter().filter_map(|m| m.body()).collect();
    ensure!(
        bodies.len() == 1 && bodies[0].contains(&poisoned.sub.to_string()),
        "the dead-letter queue holds {bodies:?}"
    );
    Ok(())
}

/// Runs the binary with `args` (a backfill or a reconcile, `--json`) over a pool of which the
/// mirror refuses one user: it must succeed, write every other user and report the one it
/// skipped, in its summary's `counters` (at `counters`) and in its run's record.
async fn a_scan_skips_a_refused_user(args: &[&str], counters: &str) -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    refuse_username(&bed, POISONED).await?;
    let healthy = bed.populate(30, UserSpec::numbered).await?;
    let poisoned = bed.pool().create_user(UserSpec::new(POISONED)).await?;
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.args(args);
    let output = common::run(cmd).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "{args:?} failed:\n{stderr}");
    ensure!(
        stderr.contains("the mirror rejected a record's data")
            && stderr.contains(&poisoned.sub.to_string()),
        "the skip is not reported:\n{stderr}"
    );
    let missing = missing(&bed, &healthy).await?;
    ensure!(missing.is_empty(), "users not written: {missing:?}");
    ensure!(
        bed.mirror_user(poisoned.sub).await?.is_none(),
        "the refused user was stored"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let run_id = summary["run_id"].as_str().context("no run id")?;
    let record = common::run_record(
        command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint),
        run_id,
    )
    .await?;
    for (what, counts) in [
        ("summary", &summary[counters]),
        ("run record", &record["counters"]),
    ] {
        ensure!(
            counts["inserted"] == 30 && counts["skipped_bad_data"] == 1,
            "the {what} counts {counts}"
        );
    }
    Ok(())
}

/// The mirror refuses one user of a backfill's page: the page's other users are written, the
/// refused one is skipped and reported, and the backfill succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_is_skipped_and_the_backfill_succeeds() -> anyhow::Result<()> {
    a_scan_skips_a_refused_user(&["backfill", "--json", "--progress", "never"], "run_totals").await
}

/// Likewise for a reconcile's upserts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_user_is_skipped_and_the_reconcile_succeeds() -> anyhow::Result<()> {
    a_scan_skips_a_refused_user(&["reconcile", "--json"], "counters").await
}
