//! The daemon against the test bed (moto SQS + Cognito, PostgreSQL, hasura-lite), run
//! in-process: every event shape drives the mirror, duplicates and reordering leave the right
//! state, poison messages reach the dead-letter queue, one failed read does not hold back its
//! batch, a slow batch keeps its messages invisible, a Hasura outage loses nothing, a burst
//! is read by scanning its shards, a shutdown in a busy stream loses nothing, and the ops
//! endpoints tell the truth.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use cognito_hasura_sync::cognito::{CognitoReader, QuotaSettings, ReadLimits, RetryPolicy};
use cognito_hasura_sync::config::{DEFAULT_HASURA_ROLE, HasuraAuth, HasuraSettings, Secret};
use cognito_hasura_sync::daemon::scheduler::SchedulerOptions;
use cognito_hasura_sync::daemon::{Daemon, DaemonOptions, install_metrics};
use cognito_hasura_sync::hasura::HasuraClient;
use cognito_hasura_sync::sync::reconcile::ReconcileOptions;
use testbed::{FaultProxy, GroupSpec, MirrorUser, TestBed, TestBedOptions, UserSpec};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The pool id and subs the fixtures were written with.
const FIXTURE_POOL: &str = "us-east-1_Ab12Cd34E";
const FIXTURE_SUB_A: &str = "5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f";
const FIXTURE_SUB_B: &str = "3b2f1e0d-9c8b-4a7f-b6e5-d4c3b2a1f0e9";
const FIXTURE_SUB_HOSTED_UI: &str = "7c6d5e4f-3a2b-4c1d-8e0f-9a8b7c6d5e4f";

/// A daemon running in this test's runtime.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    ops: String,
    http: reqwest::Client,
}

impl Running {
    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.ops))
            .send()
            .await
            .context(path.to_owned())?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Cancels and waits for the daemon to return.
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .context("the daemon did not stop")??
    }
}

/// Starts a daemon reading Cognito at `cognito_endpoint` and writing to `hasura_endpoint`,
/// tuned for tests: short long-polls and backoffs.
async fn start(
    bed: &TestBed,
    cognito_endpoint: &str,
    hasura_endpoint: &str,
) -> anyhow::Result<Running> {
    start_tuned(bed, cognito_endpoint, hasura_endpoint, |_| {}).await
}

/// [`start`], with the daemon's flags changed by `tune` first.
async fn start_tuned(
    bed: &TestBed,
    cognito_endpoint: &str,
    hasura_endpoint: &str,
    tune: impl FnOnce(&mut DaemonOptions),
) -> anyhow::Result<Running> {
    // The daemon's log lines, shown by the test harness when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("cognito_hasura_sync=info")
        .with_test_writer()
        .try_init();
    let sdk = testbed::sdk_config(cognito_endpoint).await;
    let reader = CognitoReader::new(
        &sdk,
        &bed.pool_id,
        ReadLimits {
            quotas: QuotaSettings::uniform(50.0),
            retry: RetryPolicy::Capped(2),
        },
    );
    let settings = HasuraSettings {
        endpoint: hasura_endpoint.to_owned(),
        auth: HasuraAuth::AdminSecret(Secret::new(&bed.hasura.admin_secret)),
        role: DEFAULT_HASURA_ROLE.to_owned(),
        retries: 1,
    };
    let mut options = DaemonOptions {
        queue_url: bed.queue_url.clone(),
        pollers: 2,
        visibility_timeout_seconds: 20,
        shutdown_timeout: Duration::from_secs(30),
        wait_time_seconds: 1,
        batch_size: 10,
        retry_backoff: Duration::from_secs(1),
        retry_backoff_max: Duration::from_secs(2),
        unready_after: 2,
        probe_interval: Duration::from_secs(1),
        reconcile_debounce: Duration::from_secs(1),
        scheduler: SchedulerOptions {
            schedule: None,
            lease_ttl: Duration::from_secs(60),
            holder: "test".into(),
            reconcile: ReconcileOptions::default(),
        },
    };
    tune(&mut options);
    options.validate()?;
    let daemon = Daemon::new(
        bed.sqs.clone(),
        reader,
        HasuraClient::new(&settings)?,
        HasuraClient::with_retries(&settings, 0)?,
        options,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let ops = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(daemon.serve(listener, install_metrics()?, shutdown.clone()));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    Ok(Running {
        shutdown,
        task,
        ops,
        http,
    })
}

/// [`common::eventually`] with the generous bound every wait here takes.
async fn eventually(
    what: &str,
    check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    common::eventually(what, Duration::from_secs(120), check).await
}

/// A fixture rewritten for the bed: its pool, and real subs and usernames in place of the
/// fixture's.
fn fixture(name: &str, pool: &str, replacements: &[(&str, &str)]) -> anyhow::Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(name);
    let mut text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    text = text.replace(FIXTURE_POOL, pool);
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    Ok(text)
}

async fn user(bed: &TestBed, sub: Uuid) -> anyhow::Result<MirrorUser> {
    bed.mirror_user(sub)
        .await?
        .with_context(|| format!("{sub} is not mirrored"))
}

async fn queue_empty(bed: &TestBed) -> anyhow::Result<bool> {
    Ok(bed.queue_depth(&bed.queue_url).await? == (0, 0))
}

fn attr(name: &str, value: &str) -> AttributeType {
    AttributeType::builder()
        .name(name)
        .value(value)
        .build()
        .expect("name is set")
}

/// Each event shape drives the change it announces: create, attribute update, disable,
/// enable, group add and remove, group deleted, user deleted → tombstone; ignored and
/// other-pool events are acknowledged; pool-wide ones record a reconcile request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_shape_drives_the_mirror() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_group(&GroupSpec::new("editors").description("Editors"))
        .await?;
    bed.create_group(&GroupSpec::new("legacy-beta")).await?;
    let alice = bed
        .create_users([UserSpec::new("alice").attr("email", "alice@example.test")])
        .await?
        .remove(0);
    let bob = bed
        .create_users([UserSpec::new("bob").attr("email", "bob@example.test")])
        .await?
        .remove(0);
    let (a, b) = (alice.sub.to_string(), bob.sub.to_string());
    let subs = [
        (FIXTURE_SUB_A, a.as_str()),
        (FIXTURE_SUB_B, b.as_str()),
        (FIXTURE_SUB_HOSTED_UI, a.as_str()),
    ];
    let send = async |name: &str| bed.send_event(&fixture(name, &bed.pool_id, &subs)?).await;
    let daemon = start(&bed, &bed.aws_endpoint, &bed.hasura.endpoint).await?;
    let pool = bed.pool_id.as_str();

    // Create: a Cognito trigger (forwarder Lambda) and an EventBridge CloudTrail record.
    send("trigger_post_confirmation.json").await?;
    send("eventbridge_admin_create_user.json").await?;
    eventually("alice and bob mirrored", async || {
        Ok(
            bed.mirror_user(alice.sub).await?.is_some()
                && bed.mirror_user(bob.sub).await?.is_some(),
        )
    })
    .await?;
    assert_eq!(
        user(&bed, alice.sub).await?.email.as_deref(),
        Some("alice@example.test")
    );

    // Attribute update: a hosted UI service event naming the sub.
    bed.cognito
        .admin_update_user_attributes()
        .user_pool_id(pool)
        .username("alice")
        .user_attributes(attr("given_name", "Alice"))
        .send()
        .await?;
    send("eventbridge_hosted_ui_confirm_post.json").await?;
    eventually("given_name updated", async || {
        Ok(user(&bed, alice.sub).await?.given_name.as_deref() == Some("Alice"))
    })
    .await?;

    // Disable: a native event naming the username; a failed call alongside changes nothing.
    bed.cognito
        .admin_disable_user()
        .user_pool_id(pool)
        .username("alice")
        .send()
        .await?;
    send("eventbridge_admin_disable_user_failed.json").await?;
    send("native_username.json").await?;
    eventually("alice disabled", async || {
        Ok(!user(&bed, alice.sub).await?.enabled)
    })
    .await?;

    // Enable: a bare CloudTrail record.
    bed.cognito
        .admin_enable_user()
        .user_pool_id(pool)
        .username("alice")
        .send()
        .await?;
    send("cloudtrail_record_admin_enable_user.json").await?;
    eventually("alice enabled", async || {
        Ok(user(&bed, alice.sub).await?.enabled)
    })
    .await?;

    // Group add: the user's groups and the group's row.
    bed.cognito
        .admin_add_user_to_group()
        .user_pool_id(pool)
        .username("alice")
        .group_name("editors")
        .send()
        .await?;
    send("eventbridge_admin_add_user_to_group.json").await?;
    eventually("alice in editors", async || {
        Ok(user(&bed, alice.sub).await?.group_names() == ["editors"])
    })
    .await?;
    let groups = bed.mirror_groups().await?;
    assert!(
        groups
            .iter()
            .any(|g| g.name == "editors" && g.description.as_deref() == Some("Editors")),
        "{groups:?}"
    );

    // Group remove: an SNS-wrapped trigger.
    bed.cognito
        .admin_remove_user_from_group()
        .user_pool_id(pool)
        .username("alice")
        .group_name("editors")
        .send()
        .await?;
    send("sns_notification_post_confirmation.json").await?;
    eventually("alice in no group", async || {
        Ok(user(&bed, alice.sub).await?.group_names().is_empty())
    })
    .await?;

    // A deleted group is tombstoned and asks for a pool-wide reconcile.
    send("native_group.json").await?;
    send("eventbridge_delete_group.json").await?;
    eventually("legacy-beta mirrored", async || {
        Ok(bed
            .mirror_groups()
            .await?
            .iter()
            .any(|g| g.name == "legacy-beta"))
    })
    .await?;
    bed.cognito
        .delete_group()
        .user_pool_id(pool)
        .group_name("legacy-beta")
        .send()
        .await?;
    send("eventbridge_delete_group.json").await?;
    eventually("legacy-beta tombstoned", async || {
        Ok(bed
            .mirror_groups()
            .await?
            .iter()
            .any(|g| g.name == "legacy-beta" && g.deleted_at.is_some()))
    })
    .await?;
    let requested: i64 = bed
        .db
        .client()
        .await?
        .query_one(
            "SELECT count(*) FROM cognito_sync_requests WHERE reason = 'DeleteGroup'",
            &[],
        )
        .await?
        .get(0);
    assert!(
        requested >= 1,
        "DeleteGroup must record a reconcile request"
    );

    // Delete → tombstone, from an SNS-wrapped EventBridge record.
    bed.cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username("bob")
        .send()
        .await?;
    send("sns_notification_admin_delete_user.json").await?;
    eventually("bob tombstoned", async || {
        Ok(user(&bed, bob.sub).await?.deleted_at.is_some())
    })
    .await?;
    assert!(user(&bed, alice.sub).await?.deleted_at.is_none());

    // Another pool's event and ignored events are acknowledged: the queue drains.
    bed.send_event(&fixture("native_sub.json", "us-east-1_OtherPool1", &subs)?)
        .await?;
    send("trigger_token_generation_refresh.json").await?;
    eventually("queue drained", async || queue_empty(&bed).await).await?;

    let (status, body) = daemon.get("/healthz").await?;
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, metrics) = daemon.get("/metrics").await?;
    assert_eq!(status, 200);
    for series in [
        "daemon_messages_received_total{format=\"cognito_trigger\"}",
        "daemon_messages_applied_total{format=\"cloudtrail\"}",
        "daemon_messages_applied_total{format=\"native\"}",
        "daemon_messages_ignored_total{format=\"native\",reason=\"other_pool\"}",
        "daemon_apply_latency_seconds_bucket",
        "cognito_calls_total",
        "hasura_requests_total{operation=\"ApplyEvents\",outcome=\"ok\"}",
        "daemon_queue_messages_visible",
    ] {
        assert!(
            metrics.contains(series),
            "/metrics lacks {series}:\n{metrics}"
        );
    }
    daemon.stop().await
}

/// Duplicates collapse; a delete processed before an older update keeps the tombstone; an
/// update event arriving after a newer (backfill-written) row leaves the newer row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_reordering_leave_the_right_state() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let users = bed.create_users((0..3).map(UserSpec::numbered)).await?;
    let (carol, dave, erin) = (&users[0], &users[1], &users[2]);
    let native = |sub: Uuid| {
        format!(
            r#"{{"user_pool_id":"{}","sub":"{sub}","reason":"test"}}"#,
            bed.pool_id
        )
    };
    let daemon = start(&bed, &bed.aws_endpoint, &bed.hasura.endpoint).await?;

    // Duplicates: five events for one user make one row.
    for _ in 0..5 {
        bed.send_event(&native(carol.sub)).await?;
    }
    bed.send_event(&native(dave.sub)).await?;
    eventually("queue drained", async || queue_empty(&bed).await).await?;
    assert_eq!(bed.mirror_users().await?.len(), 2);

    // Delete, then the update that was sent before it arrives: the tombstone stays as it was.
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&carol.username)
        .send()
        .await?;
    bed.send_event(&native(carol.sub)).await?;
    eventually("carol tombstoned", async || {
        Ok(user(&bed, carol.sub).await?.deleted_at.is_some())
    })
    .await?;
    let tombstone = user(&bed, carol.sub).await?;
    bed.send_event(&native(carol.sub)).await?;
    eventually("queue drained", async || queue_empty(&bed).await).await?;
    assert_eq!(
        user(&bed, carol.sub).await?,
        tombstone,
        "a late event rewrote the tombstone"
    );

    // A newer row (as a backfill would write it, read later than the event's re-read).
    let db = bed.db.client().await?;
    db.execute(
        "UPDATE cognito_users SET given_name = 'from-backfill', content_hash = 'newer', \
         observed_at = now() + interval '1 hour' WHERE id = $1",
        &[&dave.sub],
    )
    .await?;
    bed.send_event(&native(dave.sub)).await?;
    bed.send_event(&native(erin.sub)).await?;
    eventually("erin mirrored and queue drained", async || {
        Ok(bed.mirror_user(erin.sub).await?.is_some() && queue_empty(&bed).await?)
    })
    .await?;
    assert_eq!(
        user(&bed, dave.sub).await?.given_name.as_deref(),
        Some("from-backfill")
    );
    daemon.stop().await
}

/// Undecodable messages reach the dead-letter queue after maxReceiveCount receives while
/// good messages keep being applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_reach_the_dlq_while_good_ones_flow() -> anyhow::Result<()> {
    let bed = TestBed::start_with(TestBedOptions::default().max_receive_count(2)).await?;
    let users = bed.create_users((0..6).map(UserSpec::numbered)).await?;
    bed.send_event("not json at all").await?;
    bed.send_event(&fixture(
        "sns_subscription_confirmation.json",
        &bed.pool_id,
        &[],
    )?)
    .await?;
    bed.send_event(r#"{"user_pool_id":"x","usrname":"typo"}"#)
        .await?;
    common::send_sub_events(&bed, &users).await?;
    let daemon = start(&bed, &bed.aws_endpoint, &bed.hasura.endpoint).await?;
    eventually("poison in the DLQ, the rest applied", async || {
        Ok(bed.queue_depth(&bed.dlq_url).await?.0 == 3 && queue_empty(&bed).await?)
    })
    .await?;
    assert_eq!(bed.mirror_users().await?.len(), users.len());
    let (_, metrics) = daemon.get("/metrics").await?;
    assert!(
        metrics.contains(
            "daemon_messages_failed_total{format=\"undecodable\",reason=\"undecodable\"}"
        ),
        "{metrics}"
    );
    daemon.stop().await
}

/// One message whose user cannot be read from Cognito fails alone: the rest of its batch is
/// applied and deleted, it stays on the queue, and it is applied once Cognito answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_does_not_hold_back_its_batch() -> anyhow::Result<()> {
    let bed = TestBed::start_with(TestBedOptions::default().max_receive_count(50)).await?;
    let users = bed.create_users((0..6).map(UserSpec::numbered)).await?;
    let victim = &users[2];
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    proxy.set_fail_matching(Some(&victim.sub.to_string()));
    proxy.set_fail_fraction(1.0);
    common::send_sub_events(&bed, &users).await?;
    let daemon = start(&bed, proxy.url(), &bed.hasura.endpoint).await?;
    eventually("every other user applied", async || {
        Ok(bed.mirror_users().await?.len() == users.len() - 1)
    })
    .await?;
    eventually("the victim's read failed", async || {
        let (_, metrics) = daemon.get("/metrics").await?;
        Ok(metrics.contains("daemon_messages_failed_total{format=\"native\",reason=\"cognito\"}"))
    })
    .await?;
    assert!(bed.mirror_user(victim.sub).await?.is_none());
    let (visible, in_flight) = bed.queue_depth(&bed.queue_url).await?;
    assert_eq!(visible + in_flight, 1, "only the victim's message is left");
    assert!(
        proxy.stats().total.failed > 0,
        "the fault was never injected"
    );

    proxy.set_fail_fraction(0.0);
    eventually("the victim applied and the queue drained", async || {
        Ok(bed.mirror_user(victim.sub).await?.is_some() && queue_empty(&bed).await?)
    })
    .await?;
    assert_eq!(bed.queue_depth(&bed.dlq_url).await?, (0, 0));
    daemon.stop().await
}

/// A batch that takes longer than the visibility timeout (a slow Hasura) keeps its messages
/// invisible: the other poller never receives them again, each is received and written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_batch_keeps_its_messages_invisible() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let users = bed.create_users((0..3).map(UserSpec::numbered)).await?;
    let proxy = FaultProxy::start(bed.hasura.base_url()).await?;
    let hasura = format!("{}/v1/graphql", proxy.url());
    let daemon = start_tuned(&bed, &bed.aws_endpoint, &hasura, |options| {
        options.visibility_timeout_seconds = 2;
    })
    .await?;
    // Every Hasura request now outlasts the visibility timeout twice over.
    proxy.set_latency(Duration::from_secs(5));
    common::send_sub_events(&bed, &users).await?;
    eventually("every user applied and the queue drained", async || {
        Ok(bed.mirror_users().await?.len() == users.len() && queue_empty(&bed).await?)
    })
    .await?;
    let (_, metrics) = daemon.get("/metrics").await?;
    let received: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("daemon_messages_received_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        received,
        users.len() as u64,
        "a message was received twice:\n{metrics}"
    );
    assert!(
        metrics.contains("daemon_visibility_extensions_total"),
        "{metrics}"
    );
    proxy.set_latency(Duration::ZERO);
    daemon.stop().await
}

/// Hasura down for a while: nothing is deleted, /readyz turns unready; Hasura back: every
/// message is applied, none reaches the dead-letter queue, /readyz recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hasura_outage_loses_nothing() -> anyhow::Result<()> {
    let bed = TestBed::start_with(TestBedOptions::default().max_receive_count(50)).await?;
    let users = bed.create_users((0..20).map(UserSpec::numbered)).await?;
    let proxy = FaultProxy::start(bed.hasura.base_url()).await?;
    proxy.set_fail_fraction(1.0);
    let daemon = start(
        &bed,
        &bed.aws_endpoint,
        &format!("{}/v1/graphql", proxy.url()),
    )
    .await?;
    common::send_sub_events(&bed, &users).await?;
    // Hasura answers, with errors: /readyz says so, not that it is unreachable.
    eventually("/readyz unready, naming Hasura failing", async || {
        let (status, body) = daemon.get("/readyz").await?;
        Ok(status == 503 && body.starts_with("hasura failing: ") && body.contains("HTTP 5"))
    })
    .await?;
    // Several batches failed, each message at least once: none is deleted meanwhile.
    eventually("batches failed", async || {
        let (_, metrics) = daemon.get("/metrics").await?;
        Ok(proxy.failed(testbed::proxy::GRAPHQL_OP) >= 20
            && metrics
                .contains("daemon_messages_failed_total{format=\"native\",reason=\"hasura\"}"))
    })
    .await?;
    assert!(bed.mirror_users().await?.is_empty());
    // The two counts are read one after the other while the daemon receives, so a message
    // can be counted in both (or in neither) for a moment: wait for them to agree. A
    // message deleted while Hasura was down would keep the sum short.
    eventually("no message deleted while Hasura was down", async || {
        let (visible, in_flight) = bed.queue_depth(&bed.queue_url).await?;
        Ok(visible + in_flight == users.len() as u64)
    })
    .await?;
    assert_eq!(
        daemon.get("/healthz").await?.0,
        200,
        "an outage is not a dead process"
    );

    proxy.set_fail_fraction(0.0);
    eventually("every user applied and the queue drained", async || {
        Ok(bed.mirror_users().await?.len() == users.len() && queue_empty(&bed).await?)
    })
    .await?;
    eventually("/readyz ready again", async || {
        Ok(daemon.get("/readyz").await?.0 == 200)
    })
    .await?;
    assert_eq!(bed.queue_depth(&bed.dlq_url).await?, (0, 0));
    daemon.stop().await
}

/// Shutdown in the middle of a busy stream: the daemon returns cleanly, and a new daemon
/// applies everything that was left; every user ends as Cognito says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_busy_stream_loses_nothing() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let users = bed.create_users((0..120).map(UserSpec::numbered)).await?;
    let first = start(&bed, &bed.aws_endpoint, &bed.hasura.endpoint).await?;
    let bodies: Vec<String> = users
        .iter()
        .map(|u| common::sub_event(&bed, u.sub))
        .collect();
    for body in &bodies {
        bed.send_event(body).await?;
    }
    eventually("some users applied", async || {
        Ok(!bed.mirror_users().await?.is_empty())
    })
    .await?;
    first.stop().await?;
    // Every message is either applied or still on the queue (in flight ones come back).
    let applied = bed.mirror_users().await?.len() as u64;
    let (visible, in_flight) = bed.queue_depth(&bed.queue_url).await?;
    assert!(
        applied + visible + in_flight >= users.len() as u64,
        "{applied} applied, {visible}+{in_flight} queued"
    );

    let second = start(&bed, &bed.aws_endpoint, &bed.hasura.endpoint).await?;
    eventually("every user applied and the queue drained", async || {
        Ok(bed.mirror_users().await?.len() == users.len() && queue_empty(&bed).await?)
    })
    .await?;
    second.stop().await?;
    for mirrored in bed.mirror_users().await? {
        let created = users
            .iter()
            .find(|u| u.sub == mirrored.id)
            .context("a user nobody created")?;
        assert_eq!(mirrored.username, created.username);
        assert_eq!(mirrored.email.as_deref(), created.spec.attribute("email"));
        assert!(mirrored.deleted_at.is_none() && mirrored.enabled);
    }
    assert_eq!(bed.queue_depth(&bed.dlq_url).await?, (0, 0));
    Ok(())
}

/// A backlog naming more users than a scan of their shards costs is gathered into one batch
/// and read by scanning the shards (memberships first, ListUsers by `sub` prefix) instead of
/// user by user: each user is read once, one way or the other, and mirrored with its groups;
/// every message is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_read_by_scanning_its_shards() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let users = bed
        .create_users((0..120).map(|i| match i % 3 {
            0 => UserSpec::numbered(i).group("editors"),
            _ => UserSpec::numbered(i),
        }))
        .await?;
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    common::send_sub_events(&bed, &users).await?;
    let daemon = start(&bed, proxy.url(), &bed.hasura.endpoint).await?;
    eventually("every user mirrored and the queue drained", async || {
        Ok(bed.mirror_users().await?.len() == users.len() && queue_empty(&bed).await?)
    })
    .await?;
    for (n, created) in users.iter().enumerate() {
        let groups = user(&bed, created.sub).await?.groups;
        let expected = if n % 3 == 0 {
            serde_json::json!(["editors"])
        } else {
            serde_json::json!([])
        };
        assert_eq!(groups, expected, "user {n}");
    }
    let (_, metrics) = daemon.get("/metrics").await?;
    let scanned: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("daemon_read_plan_users_total{plan=\"scan\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as usize);
    assert!(
        scanned >= users.len() / 2,
        "{scanned} users scanned:\n{metrics}"
    );
    assert!(
        metrics.contains("daemon_bursts_gathered_total 1"),
        "{metrics}"
    );
    // A user read on its own costs one AdminListGroupsForUser; a scanned one none. A message
    // whose visibility a loaded machine lets lapse is received and read once more (at least
    // once is SQS's promise), so allow a couple beyond one read per user.
    let reads = proxy.calls("AdminListGroupsForUser") as usize + scanned;
    assert!(
        (users.len()..=users.len() + 2).contains(&reads),
        "{reads} reads of {} users",
        users.len()
    );
    assert!(
        proxy.calls("ListUsersInGroup") >= 1,
        "memberships are scanned"
    );
    daemon.stop().await
}
