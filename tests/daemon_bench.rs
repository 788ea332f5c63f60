//! The daemon benchmark (run by `bench/daemon.sh`; ignored by a plain `cargo test`): the real
//! `cognito-hasura-sync daemon` process, with its DEFAULT settings (no lifted limits: the
//! quota share 0.8, two pollers), against the benchmark bed — a pool in cognito-lite
//! ([`testbed::BenchBed`]), the sync queue and its dead-letter queue in sqs-lite, hasura-lite
//! over PostgreSQL — with Cognito, SQS and Hasura each behind a counting proxy. moto would be
//! measured instead: its SQS needs tens of milliseconds per call and slows as the queue grows.
//!
//! Cognito's proxy applies Cognito's default quota model and a round trip of 50 ms per call:
//! one 30 RPS bucket shared by ListUsers and ListUsersInGroup (UserList), 120 RPS for
//! AdminGetUser (UserRead), 50 RPS for AdminListGroupsForUser (UserResourceRead), 15 RPS for
//! DescribeUserPool (UserPoolRead), 20 RPS for ListGroups (UserPoolResourceRead).
//!
//! In a pool of `DAEMON_BENCH_POOL` users (default 100,000):
//! 1. steady: `DAEMON_BENCH_RATE` distinct users/s (default 50) for `DAEMON_BENCH_SECONDS`
//!    (default 300), target p99 send → commit < 2 s;
//! 2. burst: `DAEMON_BENCH_BURST` events (default 10,000) naming as many distinct users, sent
//!    at once, target drained within 120 s.
//!
//! `DAEMON_BENCH_RECONCILE` (cron; default `off`) also runs the daemon's scheduled reconcile,
//! so that its peak RSS covers both at once.
//!
//! Each event names a user by sub (as CloudTrail events do; `DAEMON_BENCH_BY=username` for
//! trigger-style events). Prints p50/p99 apply latency (send → the row's `synced_at`, stamped
//! in the committing transaction), events/s, SQS, Cognito and Hasura requests per event
//! (every event names its own user: per event is per user), throttled Cognito calls, and the
//! daemon process's own CPU seconds and peak RSS.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use testbed::{BenchBed, BenchUser, FaultProxy, SqsLite, UserSpec};
use uuid::Uuid;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where events are sent: the sync queue, straight to sqs-lite (not counted).
struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    pool_id: String,
}

/// Sends one native event per user, ten per SendMessageBatch; returns when each was sent.
async fn send(
    queue: &Queue,
    users: &[BenchUser],
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
                .message_body(
                    json!({ "user_pool_id": queue.pool_id, key: value, "reason": "bench" })
                        .to_string(),
                )
                .build()
                .context("entry")
        })
        .collect::<anyhow::Result<_>>()?;
    let sent_at = Utc::now();
    let out = queue
        .sqs
        .send_message_batch()
        .queue_url(&queue.url)
        .set_entries(Some(entries))
        .send()
        .await?;
    if !out.failed().is_empty() {
        bail!("SendMessageBatch failed for {} entries", out.failed().len());
    }
    Ok(users.iter().map(|user| (user.sub, sent_at)).collect())
}

/// Waits until every sub is mirrored; returns each row's `synced_at`.
async fn committed(bed: &BenchBed, subs: &[Uuid]) -> anyhow::Result<HashMap<Uuid, DateTime<Utc>>> {
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

/// Waits until the queue holds no message, visible or in flight.
async fn drained(queue: &Queue) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = queue
            .sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let left: u64 = out
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        if left == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} messages still queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// utime + stime of a process in seconds, and its peak RSS in MiB (Linux /proc).
fn cpu_and_peak_rss(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm_kib / 1024.0)
}

/// The proxies whose counts a report shows.
struct Counted<'a> {
    sqs: &'a FaultProxy,
    cognito: &'a FaultProxy,
    hasura: &'a FaultProxy,
}

impl Counted<'_> {
    fn reset(&self) {
        self.sqs.reset_counts();
        self.cognito.reset_counts();
        self.hasura.reset_counts();
    }
}

/// Cognito's default request-rate quotas, by category, as the proxy enforces them.
const COGNITO_QUOTAS: [(&[&str], f64); 5] = [
    (&["ListUsers", "ListUsersInGroup"], 30.0),
    (&["AdminGetUser"], 120.0),
    (&["AdminListGroupsForUser"], 50.0),
    (&["DescribeUserPool"], 15.0),
    (&["ListGroups"], 20.0),
];
const COGNITO_ROUND_TRIP: Duration = Duration::from_millis(50);

fn report(name: &str, latencies: &mut [f64], elapsed: Duration, counted: &Counted<'_>) {
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
    let receives = counted.sqs.calls("ReceiveMessage");
    for (proxy, op) in [
        (counted.sqs, "ReceiveMessage"),
        (counted.sqs, "DeleteMessageBatch"),
        (counted.sqs, "ChangeMessageVisibilityBatch"),
        (counted.sqs, "GetQueueAttributes"),
        (counted.cognito, "ListUsers"),
        (counted.cognito, "ListUsersInGroup"),
        (counted.cognito, "AdminGetUser"),
        (counted.cognito, "AdminListGroupsForUser"),
        (counted.cognito, "ListGroups"),
        (counted.cognito, "DescribeUserPool"),
    ] {
        println!(
            "{op:<29} {:>7} ({:.3} per event)",
            proxy.calls(op),
            per_event(proxy.calls(op))
        );
    }
    let cognito = counted.cognito.stats();
    let (calls, throttled) = (cognito.total.calls, cognito.total.throttled);
    println!(
        "{:<29} {:>7} ({:.3} per user; {throttled} throttled by the quota model)",
        "Cognito calls (all)",
        calls,
        per_event(calls)
    );
    let apply = counted.hasura.graphql_operation("ApplyEvents");
    println!(
        "{:<29} {:>7} ({:.3} per event)",
        "Hasura ApplyEvents",
        apply,
        per_event(apply)
    );
    println!(
        "{:<29} {:>7} ({:.3} per event)",
        "Hasura requests (all)",
        counted.hasura.graphql_requests(),
        per_event(counted.hasura.graphql_requests())
    );
    let deletes = counted.sqs.calls("DeleteMessageBatch").max(1) as f64;
    println!(
        "per applied batch             {:.2} events, {:.2} receives, {:.2} ApplyEvents (a batch = one DeleteMessageBatch)",
        events / deletes,
        receives as f64 / deletes,
        apply as f64 / deletes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/daemon.sh"]
async fn daemon_benchmark() -> anyhow::Result<()> {
    let pool_size = env_number("DAEMON_BENCH_POOL", 100_000);
    let rate = env_number("DAEMON_BENCH_RATE", 50);
    let seconds = env_number("DAEMON_BENCH_SECONDS", 300);
    let burst = env_number("DAEMON_BENCH_BURST", 10_000);
    let pollers = std::env::var("DAEMON_BENCH_POLLERS").ok();
    let by_sub = std::env::var("DAEMON_BENCH_BY").map_or(true, |v| v != "username");
    let reconcile = std::env::var("DAEMON_BENCH_RECONCILE").unwrap_or_else(|_| "off".into());
    let named = rate * seconds + burst;
    anyhow::ensure!(
        named <= pool_size,
        "the runs name {named} distinct users; the pool has {pool_size}"
    );
    println!("importing {pool_size} users into cognito-lite");
    let bed = BenchBed::start(pool_size, UserSpec::numbered).await?;
    let (steady, rest) = bed.users.split_at(rate * seconds);
    let bursty = &rest[..burst];
    let subs = |users: &[BenchUser]| users.iter().map(|u| u.sub).collect::<Vec<Uuid>>();
    for (ops, rps) in COGNITO_QUOTAS {
        bed.cognito.set_shared_quota(ops, rps);
    }
    bed.cognito.set_latency(COGNITO_ROUND_TRIP);

    let sqs_lite = SqsLite::start().await?;
    let sqs_proxy = FaultProxy::start(sqs_lite.endpoint()).await?;
    let sqs = aws_sdk_sqs::Client::new(&testbed::sdk_config(sqs_lite.endpoint()).await);
    let queue = Queue {
        // Redriven after 10 receives and invisible for 60 s while applied, as deployed.
        url: testbed::bed::create_queues(&sqs, "bench-sync", 10, Duration::from_secs(60))
            .await?
            .0,
        sqs,
        pool_id: bed.pool_id.clone(),
    };
    let counted = Counted {
        sqs: &sqs_proxy,
        cognito: &bed.cognito,
        hasura: &bed.hasura,
    };

    let ops = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut daemon = common::command_for(
        &bed.pool_id,
        bed.cognito.url(),
        &bed.hasura_endpoint(),
        &bed.hasura_lite.admin_secret,
    )
    .env("AWS_ENDPOINT_URL_SQS", sqs_proxy.url())
    .env("SYNC_SQS_QUEUE_URL", &queue.url)
    .env("RUST_LOG", "warn")
    .args(["daemon", "--listen", &ops.to_string()])
    .args(pollers.iter().flat_map(|n| ["--pollers", n.as_str()]))
    .args(["--reconcile-schedule", &reconcile])
    .stdout(std::process::Stdio::null())
    .spawn()
    .context("starting the daemon")?;
    let pid = daemon.id().context("the daemon has no pid")?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("http://{ops}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if let Some(status) = daemon.try_wait()? {
            bail!("the daemon exited ({status}) before it was ready");
        }
        anyhow::ensure!(Instant::now() < deadline, "the daemon never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (cpu_start, _) = cpu_and_peak_rss(pid);

    // Steady: ten SendMessageBatch calls a second, of rate/10 users each.
    let by = if by_sub { "sub" } else { "username" };
    println!(
        "steady stream: {rate} distinct users/s for {seconds} s (users named by {by}; pool of {pool_size})"
    );
    counted.reset();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut sent = Vec::new();
    for chunk in steady.chunks((rate / 10).clamp(1, 10)) {
        ticker.tick().await;
        sent.extend(send(&queue, chunk, by_sub).await?);
    }
    let commits = committed(&bed, &subs(steady)).await?;
    // Drained: every row committed and every message deleted (deletes follow commits).
    drained(&queue).await?;
    let elapsed = started.elapsed();
    let mut latencies: Vec<f64> = sent
        .iter()
        .map(|(sub, at)| (commits[sub] - *at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    report("steady", &mut latencies, elapsed, &counted);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "target                        p99 send → commit < 2 s: {} ({p99:.3} s)",
        if p99 < 2.0 { "met" } else { "MISSED" }
    );

    // Burst: everything at once, 8 SendMessageBatch calls in flight.
    println!("\nburst: {burst} events naming {burst} distinct users");
    counted.reset();
    let started = Instant::now();
    let sent: Vec<(Uuid, DateTime<Utc>)> = futures::stream::iter(bursty.chunks(10))
        .map(|chunk| send(&queue, chunk, by_sub))
        .buffer_unordered(8)
        .try_concat()
        .await?;
    println!("burst sent in {:.1} s", started.elapsed().as_secs_f64());
    let commits = committed(&bed, &subs(bursty)).await?;
    // Drained: every row committed and every message deleted (deletes follow commits).
    drained(&queue).await?;
    let elapsed = started.elapsed();
    let mut latencies: Vec<f64> = sent
        .iter()
        .map(|(sub, at)| (commits[sub] - *at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    report("burst", &mut latencies, elapsed, &counted);
    println!(
        "target                        drained (committed, messages deleted) within 120 s: {} ({:.1} s)",
        if elapsed <= Duration::from_secs(120) {
            "met"
        } else {
            "MISSED"
        },
        elapsed.as_secs_f64()
    );
    let metrics = http
        .get(format!("http://{ops}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for line in metrics.lines().filter(|l| {
        l.starts_with("daemon_read_plans_total")
            || l.starts_with("daemon_bursts_gathered_total")
            || l.starts_with("daemon_burst_messages_total")
            || l.starts_with("daemon_burst_scan_fallbacks_total")
    }) {
        println!("daemon metric                 {line}");
    }

    let (cpu_end, peak_rss) = cpu_and_peak_rss(pid);
    // SIGTERM, as ECS stops a task: the daemon drains and exits on its own.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
    let exit = tokio::time::timeout(Duration::from_secs(60), daemon.wait())
        .await
        .context("the daemon did not stop within 60 s of SIGTERM")??;
    anyhow::ensure!(exit.success(), "the daemon exited with {exit}");
    println!(
        "\ndaemon process: CPU {:.1} s during both runs, peak RSS {:.0} MiB",
        cpu_end - cpu_start,
        peak_rss
    );
    Ok(())
}
