//! Backfill under adverse conditions, with the real binary: Cognito's request quota and
//! injected server errors on both sides, and a process killed with SIGKILL mid-way.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use testbed::{FailPoint, FaultProxy, ProxySettings, TestBed, UserSpec};

use common::{assert_exact_mirror, backfill, command, groups_by_username, num, run};

fn population(count: usize) -> Vec<UserSpec> {
    (0..count)
        .map(|i| {
            if i % 7 == 0 {
                UserSpec::numbered(i).group("staff")
            } else {
                UserSpec::numbered(i)
            }
        })
        .collect()
}

/// Waits until the running backfill has checkpointed `pages` committed pages.
async fn wait_for_committed_pages(
    db: &tokio_postgres::Client,
    child: &mut tokio::process::Child,
    pages: u64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint within 2 minutes"
        );
        ensure!(
            child.try_wait()?.is_none(),
            "the backfill ended before it could be stopped"
        );
        let rows = db
            .query(
                "SELECT checkpoint FROM cognito_sync_runs WHERE status = 'running'",
                &[],
            )
            .await?;
        let committed: u64 = rows
            .iter()
            .map(|r| r.get::<_, serde_json::Value>(0))
            .flat_map(|cp| {
                cp["shards"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                    .into_values()
            })
            .map(|shard| shard["pages"].as_u64().unwrap_or(0))
            .sum();
        if committed >= pages {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A slow backfill (4 Cognito calls per second, 50 ms each, one page per upsert) that can be
/// caught mid-way.
fn slow_backfill(bed: &TestBed, proxy: &FaultProxy) -> anyhow::Result<tokio::process::Child> {
    let mut cmd = command(bed, proxy.url(), &bed.hasura.endpoint);
    cmd.args([
        "backfill",
        "--progress",
        "never",
        "--cognito-rps",
        "4",
        "--batch-size",
        "60",
        // A killed process's lease is free again soon after.
        "--lease-ttl",
        "3",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd.spawn().context("cannot start the binary")
}

/// Cognito's 30 RPS quota on ListUsers/ListUsersInGroup (the reader is allowed to ask for
/// more, so it gets throttled), 5% of Cognito calls answered 500 before they arrive, 5% of
/// Hasura requests answered 500 after they were applied: the result is still exact. The
/// seeds make the dice fail early requests (Cognito's first call, Hasura's run insert), so
/// the retries are exercised on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_under_quota_and_injected_errors_is_exact() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let specs = population(700);
    let groups = groups_by_username(&specs);
    bed.create_users(specs).await?;

    let cognito = FaultProxy::start_with(
        &bed.aws_endpoint,
        ProxySettings {
            fail_fraction: 0.05,
            fail_seed: Some(7),
            ..ProxySettings::default()
        }
        .with_cognito_user_list_quota(),
    )
    .await?;
    let hasura = FaultProxy::start_with(
        bed.hasura.base_url(),
        ProxySettings {
            fail_fraction: 0.05,
            fail_seed: Some(9),
            fail_point: FailPoint::AfterUpstream,
            ..ProxySettings::default()
        },
    )
    .await?;
    let hasura_endpoint = format!("{}/v1/graphql", hasura.url());
    let summary = backfill(
        command(&bed, cognito.url(), &hasura_endpoint),
        &["--cognito-rps", "200", "--batch-size", "120"],
    )
    .await?;
    assert_exact_mirror(&bed, &groups).await?;
    assert_eq!(num(&summary, &["users_seen"]), 700, "{summary}");
    let runs = bed
        .db
        .client()
        .await?
        .query("SELECT status FROM cognito_sync_runs", &[])
        .await?;
    let statuses: Vec<String> = runs.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        statuses,
        vec!["succeeded".to_owned()],
        "a retried run insert left a second run"
    );
    assert!(
        cognito.stats().total.failed > 0,
        "no Cognito failure was injected"
    );
    assert!(
        hasura.stats().total.failed > 0,
        "no Hasura failure was injected"
    );
    assert_eq!(
        num(&summary, &["cognito", "throttled"]),
        cognito.throttled("ListUsers") + cognito.throttled("ListUsersInGroup")
    );
    Ok(())
}

/// What the interruption tests start from: a backfill running, some pages committed.
struct Interrupted {
    bed: TestBed,
    groups: BTreeMap<String, Vec<String>>,
    proxy: FaultProxy,
    child: tokio::process::Child,
    db: tokio_postgres::Client,
}

/// A pool of `users` and a backfill of it, slowed by 50 ms per Cognito call, that has
/// committed `pages` pages.
async fn backfill_past_its_first_pages(users: usize, pages: u64) -> anyhow::Result<Interrupted> {
    let bed = TestBed::start().await?;
    let specs = population(users);
    let groups = groups_by_username(&specs);
    bed.create_users(specs).await?;
    let proxy = FaultProxy::start_with(
        &bed.aws_endpoint,
        ProxySettings {
            latency: Duration::from_millis(50),
            ..ProxySettings::default()
        },
    )
    .await?;
    let mut child = slow_backfill(&bed, &proxy)?;
    let db = bed.db.client().await?;
    wait_for_committed_pages(&db, &mut child, pages).await?;
    Ok(Interrupted {
        bed,
        groups,
        proxy,
        child,
        db,
    })
}

/// A backfill killed with SIGKILL after its first checkpoint resumes from it (reading less
/// than the whole pool again) and ends with exactly Cognito's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfill_resumes_to_the_exact_result() -> anyhow::Result<()> {
    let Interrupted {
        bed,
        groups,
        proxy,
        mut child,
        db,
    } = backfill_past_its_first_pages(1_200, 3).await?;
    child.start_kill()?; // SIGKILL: no cleanup, no final checkpoint
    child.wait().await?;
    let partial = bed.mirror_users().await?.len();
    assert!(
        partial < 1_200,
        "the first process finished before the kill"
    );

    let mut resume = command(&bed, proxy.url(), &bed.hasura.endpoint);
    // The killed process still holds the pool's scan lease until it expires.
    resume.args([
        "backfill",
        "--json",
        "--progress",
        "never",
        "--wait",
        "--lease-ttl",
        "3",
    ]);
    let output = run(resume).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the resumed backfill failed:\n{stderr}"
    );
    // The killed run's heartbeat is seconds old: it could be another backfill still running.
    assert!(
        stderr.contains("if another backfill of this pool is still running"),
        "no warning about a run that was alive moments ago:\n{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(summary["resumed"], true, "{summary}");
    assert!(
        num(&summary, &["users_seen"]) < 1_200,
        "the resumed run read the whole pool again: {summary}"
    );
    assert_exact_mirror(&bed, &groups).await?;
    let runs = db
        .query("SELECT status FROM cognito_sync_runs", &[])
        .await?;
    let statuses: Vec<String> = runs.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        statuses,
        vec!["succeeded".to_owned()],
        "one run, resumed and finished"
    );
    Ok(())
}

/// A checkpoint whose pagination tokens Cognito no longer accepts (they expire after about an
/// hour) restarts each shard from its first page and still ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_pagination_tokens_restart_their_shards() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let specs = population(300);
    let groups = groups_by_username(&specs);
    bed.create_users(specs).await?;
    let shards: serde_json::Map<String, serde_json::Value> = "0123456789abcdef"
        .chars()
        .map(|c| {
            (
                c.to_string(),
                serde_json::json!({"token": "ZXhwaXJlZCB0b2tlbg==", "pages": 1, "done": false}),
            )
        })
        .collect();
    let checkpoint = serde_json::json!({"shard_count": 16, "shards": shards});
    let db = bed.db.client().await?;
    db.execute(
        "INSERT INTO cognito_sync_runs (kind, user_pool_id, status, checkpoint) VALUES ('backfill', $1, 'running', $2)",
        &[&bed.pool_id, &checkpoint],
    )
    .await?;

    let summary = backfill(command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint), &[]).await?;
    assert_eq!(summary["resumed"], true, "{summary}");
    assert_eq!(num(&summary, &["shard_restarts"]), 16, "{summary}");
    assert_eq!(num(&summary, &["users_seen"]), 300, "{summary}");
    assert_exact_mirror(&bed, &groups).await?;
    Ok(())
}

/// SIGTERM stops a backfill cleanly: the writes in flight finish, the checkpoint is saved,
/// the run is marked failed ("interrupted"), the exit is non-zero; the next run resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_saves_the_checkpoint_and_the_next_run_resumes() -> anyhow::Result<()> {
    let Interrupted {
        bed,
        groups,
        proxy,
        child,
        db,
    } = backfill_past_its_first_pages(900, 2).await?;
    let pid = child.id().context("the child has no pid")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -TERM failed");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error:") && l.contains("interrupted")),
        "{stderr}"
    );
    let row = db
        .query_one("SELECT status, error FROM cognito_sync_runs", &[])
        .await?;
    assert_eq!(row.get::<_, String>(0), "failed");
    assert!(
        row.get::<_, Option<String>>(1)
            .unwrap_or_default()
            .contains("interrupted")
    );

    let summary = backfill(command(&bed, proxy.url(), &bed.hasura.endpoint), &[]).await?;
    assert_eq!(summary["resumed"], true, "{summary}");
    assert!(num(&summary, &["users_seen"]) < 900, "{summary}");
    assert_exact_mirror(&bed, &groups).await?;
    // The resumed run succeeded: the interruption's error no longer describes it.
    let row = db
        .query_one("SELECT status, error FROM cognito_sync_runs", &[])
        .await?;
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<String>>(1)),
        ("succeeded".to_owned(), None)
    );
    Ok(())
}

/// `--concurrency` bounds the upserts in flight also when one page of 60 users fills several
/// batches (here six of 10): slow Hasura answers make any overlap visible at the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_a_hard_limit_when_a_page_fills_several_batches() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_users((0..120).map(UserSpec::numbered)).await?;
    let hasura = FaultProxy::start_with(
        bed.hasura.base_url(),
        ProxySettings {
            latency: Duration::from_millis(150),
            ..ProxySettings::default()
        },
    )
    .await?;
    let mut cmd = command(
        &bed,
        &bed.aws_endpoint,
        &format!("{}/v1/graphql", hasura.url()),
    );
    cmd.args([
        "backfill",
        "--progress",
        "never",
        "--shards",
        "1",
        "--batch-size",
        "10",
        "--concurrency",
        "1",
    ]);
    let output = run(cmd).await?;
    ensure!(
        output.status.success(),
        "backfill failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(bed.mirror_users().await?.len(), 120);
    // One batch's digest read and upsert at a time, plus at most the checkpoint save beside
    // them; before, one page sent its six batches at once.
    let in_flight = hasura.op_stats(testbed::proxy::GRAPHQL_OP).max_in_flight;
    assert!(
        in_flight <= 2,
        "{in_flight} Hasura requests in flight with --concurrency 1"
    );
    Ok(())
}
