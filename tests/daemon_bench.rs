//! The daemon benchmark (run by `bench/daemon.sh`; ignored by a plain `cargo test`): a steady
//! stream of `DAEMON_BENCH_RATE` events/s (default 100) for `DAEMON_BENCH_SECONDS` (default
//! 60), then a burst of `DAEMON_BENCH_BURST` events (default 10,000), each event naming a
//! user new to the mirror. The daemon runs in-process with Cognito+SQS and Hasura each behind
//! a counting proxy. Prints p50/p99 apply latency (send → the row's `synced_at`, stamped in
//! the committing transaction), events/s, SQS and Hasura requests per event, CPU seconds and
//! peak RSS of this process (which also runs hasura-lite and the load generator).
//!
//! Events name users by username (AdminGetUser) unless `DAEMON_BENCH_BY=sub`: moto answers
//! ListUsers `Filter: sub = "..."` by scanning the whole pool in Python, which measures moto,
//! not the daemon, once the pool holds thousands of users.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use cognito_hasura_sync::cognito::{CognitoReader, ReadLimits};
use cognito_hasura_sync::config::{HasuraAuth, HasuraSettings, Secret};
use cognito_hasura_sync::daemon::{Daemon, DaemonArgs, DaemonOptions, install_metrics};
use cognito_hasura_sync::hasura::HasuraClient;
use cognito_hasura_sync::sync::reconcile::schedule::ScheduleArgs;
use futures::{StreamExt, TryStreamExt};
use testbed::{CreatedUser, FaultProxy, TestBed, UserSpec};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends one native event per user, ten per SendMessageBatch; returns when each was sent.
async fn send(
    bed: &TestBed,
    users: &[CreatedUser],
    by_sub: bool,
) -> anyhow::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let entries: Vec<SendMessageBatchRequestEntry> = users
        .iter()
        .enumerate()
        .map(|(n, user)| {
            let (key, value) = if by_sub {
                ("sub", user.sub.to_string())
            } else {
                ("username", user.username.clone())
            };
            SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(format!(
                    r#"{{"user_pool_id":"{}","{key}":"{value}","reason":"bench"}}"#,
                    bed.pool_id
                ))
                .build()
                .context("entry")
        })
        .collect::<anyhow::Result<_>>()?;
    let sent_at = Utc::now();
    let out = bed
        .sqs
        .send_message_batch()
        .queue_url(&bed.queue_url)
        .set_entries(Some(entries))
        .send()
        .await?;
    if !out.failed().is_empty() {
        bail!("SendMessageBatch failed for {} entries", out.failed().len());
    }
    Ok(users.iter().map(|user| (user.sub, sent_at)).collect())
}

/// Waits until every sub is mirrored; returns each row's `synced_at`.
async fn committed(bed: &TestBed, subs: &[Uuid]) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
    let db = bed.db.client().await?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let rows = db
            .query(
                "SELECT id, synced_at FROM cognito_users WHERE id = ANY($1)",
                &[&subs],
            )
            .await?;
        if rows.len() == subs.len() {
            return rows
                .iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("synced_at")?)))
                .collect();
        }
        if Instant::now() > deadline {
            bail!("only {} of {} events applied", rows.len(), subs.len());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// utime + stime of this process in seconds, and its peak RSS in MiB (Linux /proc).
fn cpu_and_peak_rss() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12; the clock is 100 Hz.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm_kib / 1024.0)
}

fn report(
    name: &str,
    latencies: &mut [f64],
    elapsed: Duration,
    aws: &FaultProxy,
    hasura: &FaultProxy,
) {
    latencies.sort_by(f64::total_cmp);
    let events = latencies.len() as f64;
    let per_event = |n: u64| n as f64 / events;
    println!("\n== {name}: {} events ==", latencies.len());
    println!(
        "apply latency         p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0)
    );
    println!(
        "throughput            {:.1} events/s over {:.1} s",
        events / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    for op in [
        "ReceiveMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibilityBatch",
        "GetQueueAttributes",
        "ListUsers",
        "AdminGetUser",
        "AdminListGroupsForUser",
    ] {
        println!(
            "{op:<29} {:>7} ({:.3} per event)",
            aws.calls(op),
            per_event(aws.calls(op))
        );
    }
    let apply = hasura.graphql_operation("ApplyEvents");
    println!(
        "{:<29} {:>7} ({:.3} per event)",
        "Hasura ApplyEvents",
        apply,
        per_event(apply)
    );
    println!(
        "{:<29} {:>7} ({:.3} per event)",
        "Hasura requests (all)",
        hasura.graphql_requests(),
        per_event(hasura.graphql_requests())
    );
    let receives = aws.calls("ReceiveMessage").max(1) as f64;
    println!("events per receive            {:.2}", events / receives);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/daemon.sh"]
async fn daemon_benchmark() -> anyhow::Result<()> {
    let rate = env_number("DAEMON_BENCH_RATE", 100);
    let seconds = env_number("DAEMON_BENCH_SECONDS", 60);
    let burst = env_number("DAEMON_BENCH_BURST", 10_000);
    let bed = TestBed::start().await?;
    let total = rate * seconds + burst;
    println!("creating {total} users in moto");
    let created = bed.populate(total, UserSpec::numbered).await?;
    let (steady, bursty) = created.split_at(rate * seconds);
    let subs = |users: &[CreatedUser]| users.iter().map(|u| u.sub).collect::<Vec<Uuid>>();
    let by_sub = std::env::var("DAEMON_BENCH_BY").is_ok_and(|v| v == "sub");

    let aws = FaultProxy::start(&bed.aws_endpoint).await?;
    let hasura = FaultProxy::start(bed.hasura.base_url()).await?;
    let sdk = testbed::sdk_config(aws.url()).await;
    // moto has no quota: the client-side limit is lifted so that the daemon itself is measured.
    // Against real Cognito a sub is re-read with ListUsers (30 RPS per account), which bounds
    // distinct users per second whatever the daemon does.
    let reader = CognitoReader::new(
        &sdk,
        &bed.pool_id,
        ReadLimits {
            rps: 2_000.0,
            max_retries: Some(3),
        },
    );
    let settings = HasuraSettings {
        endpoint: format!("{}/v1/graphql", hasura.url()),
        auth: HasuraAuth::AdminSecret(Secret::new(&bed.hasura.admin_secret)),
        retries: 3,
    };
    let args = DaemonArgs {
        queue_url: bed.queue_url.clone(),
        pollers: env_number("DAEMON_BENCH_POLLERS", 4),
        listen: "127.0.0.1:0".parse()?,
        visibility_timeout: 60,
        shutdown_timeout: 30,
        wait_time: 20,
        batch_size: 10,
        cognito_rps: 2_000.0,
        retry_backoff: 5,
        retry_backoff_max: 300,
        unready_after: 5,
        probe_interval: 15,
        reconcile_debounce: 60,
        schedule: ScheduleArgs {
            reconcile_schedule: "off".into(),
            reconcile_lease_ttl: 60,
        },
    };
    let daemon = Daemon::new(
        aws_sdk_sqs::Client::new(&sdk),
        reader,
        HasuraClient::new(&settings)?,
        HasuraClient::with_retries(&settings, 0)?,
        DaemonOptions::from_args(&args)?,
    );
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let task = tokio::spawn(daemon.serve(listener, install_metrics()?, shutdown.clone()));
    let (cpu_start, _) = cpu_and_peak_rss();

    // Steady: rate/10 SendMessageBatch calls of 10 per second.
    let by = if by_sub { "sub" } else { "username" };
    println!(
        "steady stream: {rate} events/s for {seconds} s (pollers {}, users named by {by})",
        args.pollers
    );
    aws.reset_counts();
    hasura.reset_counts();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut sent = Vec::new();
    for chunk in steady.chunks((rate / 10).clamp(1, 10)) {
        ticker.tick().await;
        sent.extend(send(&bed, chunk, by_sub).await?);
    }
    let commits = committed(&bed, &subs(steady)).await?;
    let elapsed = started.elapsed();
    let mut latencies: Vec<f64> = sent
        .iter()
        .map(|(sub, at)| (commits[sub] - *at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    report("steady", &mut latencies, elapsed, &aws, &hasura);

    // Burst: everything at once, 8 SendMessageBatch calls in flight.
    println!("\nburst: {burst} events");
    aws.reset_counts();
    hasura.reset_counts();
    let started = Instant::now();
    let sent: Vec<(Uuid, DateTime<Utc>)> = futures::stream::iter(bursty.chunks(10))
        .map(|chunk| send(&bed, chunk, by_sub))
        .buffer_unordered(8)
        .try_concat()
        .await?;
    println!("burst sent in {:.1} s", started.elapsed().as_secs_f64());
    let commits = committed(&bed, &subs(bursty)).await?;
    let elapsed = started.elapsed();
    let mut latencies: Vec<f64> = sent
        .iter()
        .map(|(sub, at)| (commits[sub] - *at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    report("burst", &mut latencies, elapsed, &aws, &hasura);

    shutdown.cancel();
    task.await??;
    let (cpu_end, peak_rss) = cpu_and_peak_rss();
    println!(
        "\nCPU {:.1} s during both runs, peak RSS {:.0} MiB (this process: daemon + hasura-lite + load generator)",
        cpu_end - cpu_start,
        peak_rss
    );
    Ok(())
}
