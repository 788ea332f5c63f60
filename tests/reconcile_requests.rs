//! Early reconcile requests from pool-wide events are durable: recorded in the mirror with
//! the batch that carried them, served by whichever daemon holds the pool's lease (also with
//! the cron schedule off), after a restart too, and shown by `status` while they wait.

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use testbed::{TestBed, UserSpec, UserState};
use uuid::Uuid;

use common::process::{Process, daemon_via};
use common::{command, eventually};

/// `status --json`'s field that lists the early reconcile requests not served yet.
const PENDING_REQUESTS_FIELD: &str = "reconcile_requests";

/// A daemon on the bed's queue with the cron schedule off, tuned for tests (short
/// long-polls and backoffs); `debounce` in seconds.
fn daemon(bed: &TestBed, name: &str, debounce: u64) -> anyhow::Result<Process> {
    daemon_via(
        bed,
        &bed.aws_endpoint,
        name,
        "off",
        &["--reconcile-debounce", &debounce.to_string()],
    )
}

/// One row of `cognito_sync_requests`.
#[derive(Debug)]
struct Request {
    reason: String,
    served_at: Option<chrono::DateTime<chrono::Utc>>,
    served_by: Option<Uuid>,
}

async fn requests(bed: &TestBed) -> anyhow::Result<Vec<Request>> {
    let rows = bed
        .db
        .client()
        .await?
        .query(
            "SELECT reason, served_at, served_by FROM cognito_sync_requests \
             WHERE user_pool_id = $1 ORDER BY requested_at",
            &[&bed.pool_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Request {
            reason: r.get(0),
            served_at: r.get(1),
            served_by: r.get(2),
        })
        .collect())
}

/// Reconcile runs of the pool that succeeded.
async fn succeeded_reconciles(bed: &TestBed) -> anyhow::Result<Vec<Uuid>> {
    let rows = bed
        .db
        .client()
        .await?
        .query(
            "SELECT id FROM cognito_sync_runs \
             WHERE user_pool_id = $1 AND kind = 'reconcile' AND status = 'succeeded'",
            &[&bed.pool_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What `status --json` says in [`PENDING_REQUESTS_FIELD`].
async fn pending_in_status(bed: &TestBed) -> anyhow::Result<Value> {
    let mut cmd = command(bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.args(["status", "--json"]);
    let output = common::run(cmd).await?;
    ensure!(
        output.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: Value = serde_json::from_slice(&output.stdout)?;
    Ok(status[PENDING_REQUESTS_FIELD].clone())
}

/// A `DeleteGroup` event asks for a reconcile of the whole pool (the group's former members
/// are not named). With the cron schedule off, and the daemon killed right after the message
/// was consumed, the request is still served: by the next daemon, after its debounce, so the
/// deleted group disappears from its former members. While it waits, `status` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_reconcile_request_survives_a_restart_with_the_schedule_off() -> anyhow::Result<()>
{
    let bed = TestBed::start().await?;
    let specs: Vec<UserSpec> = (0..20)
        .map(|i| {
            let spec = UserSpec::numbered(i).state(UserState::ForceChangePassword);
            match i % 4 {
                0 => spec.group("legacy-beta").group("staff"),
                1 => spec.group("legacy-beta"),
                2 => spec.group("staff"),
                _ => spec,
            }
        })
        .collect();
    let users = bed.create_users(specs).await?;
    common::backfill(command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint), &[]).await?;

    // Long debounce: the first daemon cannot serve the request before it is killed.
    let mut first = daemon(&bed, "first", 120)?;
    bed.cognito
        .delete_group()
        .user_pool_id(&bed.pool_id)
        .group_name("legacy-beta")
        .send()
        .await?;
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/events/eventbridge_delete_group.json"),
    )?
    .replace("us-east-1_Ab12Cd34E", &bed.pool_id);
    bed.send_event(&fixture).await?;
    eventually("the queue drained", Duration::from_secs(30), async || {
        first.ensure_running()?;
        Ok(bed.queue_depth(&bed.queue_url).await? == (0, 0))
    })
    .await?;
    first.kill().await?;

    // The message is gone, so its request must already be in the mirror.
    let recorded = requests(&bed).await?;
    ensure!(
        recorded.len() == 1 && recorded[0].reason == "DeleteGroup",
        "one DeleteGroup request recorded before its message was deleted: {recorded:?}"
    );
    ensure!(
        recorded[0].served_at.is_none(),
        "served before the debounce: {recorded:?}"
    );
    let shown = pending_in_status(&bed).await?;
    ensure!(
        shown.as_array().is_some_and(|a| a.len() == 1)
            && shown[0]["reason"] == "DeleteGroup"
            && shown[0]["requested_at"].is_string(),
        "status --json shows the pending request in `{PENDING_REQUESTS_FIELD}`: {shown}"
    );

    let mut second = daemon(&bed, "second", 1)?;
    eventually(
        "legacy-beta gone from its former members",
        Duration::from_secs(45),
        async || {
            second.ensure_running()?;
            let rows = bed.mirror_users().await?;
            Ok(rows
                .iter()
                .all(|u| !u.group_names().contains(&"legacy-beta".to_owned())))
        },
    )
    .await?;
    eventually(
        "the request marked served",
        Duration::from_secs(30),
        async || {
            second.ensure_running()?;
            Ok(requests(&bed).await?.iter().all(|r| r.served_at.is_some()))
        },
    )
    .await?;
    second.kill().await?;

    let runs = succeeded_reconciles(&bed).await?;
    let served_by = requests(&bed).await?[0].served_by;
    ensure!(
        served_by.is_some_and(|run| runs.contains(&run)),
        "served by {served_by:?}, not one of the succeeded reconciles {runs:?}"
    );
    ensure!(
        pending_in_status(&bed).await? == serde_json::json!([]),
        "status still shows pending requests"
    );
    for user in &users {
        let want: Vec<String> = user
            .spec
            .groups
            .iter()
            .filter(|g| *g == "staff")
            .cloned()
            .collect();
        let mirrored = bed
            .mirror_user(user.sub)
            .await?
            .with_context(|| format!("{} is not mirrored", user.username))?;
        ensure!(
            mirrored.group_names() == want,
            "{} lost a group that still exists",
            user.username
        );
    }
    Ok(())
}

/// A daemon that cannot take the pool's lease leaves a pending request for the holder: it
/// runs no reconcile while another replica holds the lease, and serves the request once that
/// lease expired (the holder gone) and it took it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_the_lease_leaves_the_request_to_the_holder() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_users((0..3).map(UserSpec::numbered)).await?;
    let client = bed.db.client().await?;
    let held_for = Duration::from_secs(8);
    let expires = chrono::Utc::now() + chrono::Duration::from_std(held_for)?;
    client
        .execute(
            "INSERT INTO cognito_sync_leases (name, holder, expires_at) VALUES ($1, 'elsewhere', $2)",
            &[&format!("scan:{}", bed.pool_id), &expires],
        )
        .await?;
    client
        .execute(
            "INSERT INTO cognito_sync_requests (user_pool_id, reason) VALUES ($1, 'StartUserImportJob')",
            &[&bed.pool_id],
        )
        .await?;

    let mut daemon = daemon(&bed, "replica", 1)?;
    eventually(
        "the request served by the daemon",
        Duration::from_secs(60),
        async || {
            daemon.ensure_running()?;
            Ok(requests(&bed).await?.iter().all(|r| r.served_at.is_some()))
        },
    )
    .await?;
    daemon.kill().await?;

    let first_run: chrono::DateTime<chrono::Utc> = client
        .query_one(
            "SELECT min(started_at) FROM cognito_sync_runs WHERE user_pool_id = $1",
            &[&bed.pool_id],
        )
        .await?
        .get(0);
    ensure!(
        first_run >= expires,
        "a reconcile started at {first_run} while another replica held the lease until {expires}"
    );
    let served = requests(&bed).await?;
    let runs = succeeded_reconciles(&bed).await?;
    ensure!(
        served[0].served_by.is_some_and(|run| runs.contains(&run)),
        "{served:?} not served by one of {runs:?}"
    );
    Ok(())
}
