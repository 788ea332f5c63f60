//! Reconcile against the test bed (moto + PostgreSQL + hasura-lite), through the library:
//! drift made behind the mirror's back is repaired by one run, a second run writes nothing,
//! other pools are never touched, the safety brake holds, and the lease admits one holder.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use cognito_hasura_sync::cognito::{CognitoReader, QuotaSettings, ReadLimits, RetryPolicy};
use cognito_hasura_sync::config::{DEFAULT_HASURA_ROLE, HasuraAuth, HasuraSettings, Secret};
use cognito_hasura_sync::hasura::HasuraClient;
use cognito_hasura_sync::state::lease::Lease;
use cognito_hasura_sync::sync::reconcile::{
    OnDelete, ReconcileOptions, ReconcileReport, reconcile,
};
use testbed::{FaultProxy, GroupSpec, ProxySettings, TestBed, UserSpec};
use tokio_util::sync::CancellationToken;

use common::{assert_exact_mirror, row_versions, slow_cognito};

fn hasura(bed: &TestBed, endpoint: &str) -> anyhow::Result<HasuraClient> {
    let settings = HasuraSettings {
        endpoint: endpoint.to_owned(),
        auth: HasuraAuth::AdminSecret(Secret::new(bed.hasura.admin_secret.clone())),
        role: DEFAULT_HASURA_ROLE.to_owned(),
        retries: 2,
    };
    HasuraClient::new(&settings)
}

async fn run(
    bed: &TestBed,
    pool: &str,
    hasura: &HasuraClient,
    options: ReconcileOptions,
) -> anyhow::Result<ReconcileReport> {
    let reader = CognitoReader::new(
        &bed.sdk_config,
        pool,
        ReadLimits {
            quotas: QuotaSettings::uniform(200.0),
            retry: RetryPolicy::Capped(2),
        },
    );
    reconcile(reader, hasura.clone(), options, CancellationToken::new()).await
}

/// Small pages and batches, so that paging by key and batching are exercised.
fn options() -> ReconcileOptions {
    ReconcileOptions {
        page_size: 7,
        batch_size: 10,
        ..ReconcileOptions::default()
    }
}

/// A row of another pool, written straight to the database.
async fn insert_foreign_row(bed: &TestBed) -> anyhow::Result<uuid::Uuid> {
    let id = uuid::Uuid::new_v4();
    bed.db
        .client()
        .await?
        .execute(
            "INSERT INTO cognito_users (id, user_pool_id, username, status, observed_at, content_hash) \
             VALUES ($1, 'us-east-1_Foreign', 'stranger', 'CONFIRMED', now() - interval '1 day', 'x')",
            &[&id],
        )
        .await?;
    Ok(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reconcile_repairs_drift_and_the_next_writes_nothing() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let mut specs: Vec<UserSpec> = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                UserSpec::numbered(i).group("a")
            } else {
                UserSpec::numbered(i)
            }
        })
        .collect();
    for name in ["victim", "changer", "disabler", "recreated"] {
        specs.push(UserSpec::new(name).attr("email", format!("{name}@example.test")));
    }
    specs.push(UserSpec::new("mover").group("a"));
    let created = bed.create_users(specs.clone()).await?;
    bed.create_group(&GroupSpec::new("c")).await?;
    let sub = |name: &str| {
        created
            .iter()
            .find(|u| u.username == name)
            .map(|u| u.sub)
            .expect("created")
    };
    let foreign = insert_foreign_row(&bed).await?;
    let foreign_before = row_versions(&bed)
        .await?
        .into_iter()
        .find(|r| r.0 == foreign);

    let direct = hasura(&bed, &bed.hasura.endpoint)?;
    let first = run(&bed, &bed.pool_id, &direct, options()).await?;
    assert_eq!(
        (first.counters.inserted, first.counters.scanned),
        (35, 35),
        "{first:?}"
    );
    assert_eq!(first.counters.groups_written, 2);

    // Drift behind the mirror's back: no event for any of it.
    let cognito = &bed.cognito;
    let pool = bed.pool_id.as_str();
    cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username("victim")
        .send()
        .await?;
    cognito
        .admin_update_user_attributes()
        .user_pool_id(pool)
        .username("changer")
        .user_attributes(
            AttributeType::builder()
                .name("given_name")
                .value("Changed")
                .build()?,
        )
        .send()
        .await?;
    cognito
        .admin_disable_user()
        .user_pool_id(pool)
        .username("disabler")
        .send()
        .await?;
    cognito
        .admin_remove_user_from_group()
        .user_pool_id(pool)
        .username("mover")
        .group_name("a")
        .send()
        .await?;
    bed.create_group(&GroupSpec::new("b")).await?;
    cognito
        .delete_group()
        .user_pool_id(pool)
        .group_name("c")
        .send()
        .await?;
    cognito
        .admin_add_user_to_group()
        .user_pool_id(pool)
        .username("mover")
        .group_name("b")
        .send()
        .await?;
    cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username("recreated")
        .send()
        .await?;
    let again = bed
        .create_users([UserSpec::new("recreated"), UserSpec::new("newcomer")])
        .await?;
    assert_ne!(again[0].sub, sub("recreated"));

    // A dry run plans it all and writes nothing.
    let before = row_versions(&bed).await?;
    let dry = run(
        &bed,
        pool,
        &direct,
        ReconcileOptions {
            dry_run: true,
            ..options()
        },
    )
    .await?;
    let plan = dry.plan.as_ref().expect("a dry run returns its plan");
    let names = |users: &[cognito_hasura_sync::sync::reconcile::plan::PlannedUser]| {
        users.iter().map(|u| u.username.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&plan.insert), ["newcomer", "recreated"]);
    assert_eq!(names(&plan.update), ["changer", "disabler", "mover"]);
    assert_eq!(names(&plan.tombstone), ["recreated", "victim"]);
    assert_eq!(plan.groups.upsert, ["b"]);
    assert_eq!(plan.groups.tombstone, ["c"]);
    assert_eq!(row_versions(&bed).await?, before, "the dry run wrote");
    assert_eq!(dry.run_id, None);

    let proxy = FaultProxy::start(bed.hasura.base_url()).await?;
    let proxied = hasura(&bed, &format!("{}/v1/graphql", proxy.url()))?;
    let repair = run(&bed, pool, &proxied, options()).await?;
    let c = repair.counters;
    assert_eq!(
        (c.inserted, c.updated, c.revived, c.tombstoned),
        (2, 3, 0, 2),
        "{repair:?}"
    );
    let mut groups = common::groups_by_username(&specs);
    groups.insert("mover".into(), vec!["b".into()]);
    assert_exact_mirror_but_tombstones(&bed, &groups).await?;
    for gone in [sub("victim"), sub("recreated")] {
        let row = bed
            .mirror_user(gone)
            .await?
            .expect("a tombstone keeps its row");
        assert!(row.deleted_at.is_some(), "{} not tombstoned", row.username);
    }
    let group_c = bed
        .mirror_groups()
        .await?
        .into_iter()
        .find(|g| g.name == "c")
        .expect("a tombstone keeps its row");
    assert!(group_c.deleted_at.is_some(), "group c not tombstoned");
    let disabler = bed.mirror_user(sub("disabler")).await?.expect("mirrored");
    assert!(!disabler.enabled);

    // Unchanged pool: no write to the mirror; reads are ceil(rows / page) (37 rows, pages of 7).
    proxy.reset_counts();
    let before = row_versions(&bed).await?;
    let quiet = run(&bed, pool, &proxied, options()).await?;
    assert_eq!(
        row_versions(&bed).await?,
        before,
        "the quiet run rewrote rows"
    );
    assert_eq!(quiet.counters.unchanged, 35, "{quiet:?}");
    let run_record = proxy.graphql_operation("InsertRun") + proxy.graphql_operation("UpdateRun");
    assert_eq!(
        run_record, 2,
        "the run record is written once and finished once"
    );
    assert_eq!(
        proxy.graphql_mutations(),
        run_record,
        "mutations other than the run record: {:?}",
        proxy.stats()
    );
    assert_eq!(proxy.graphql_queries(), 37u64.div_ceil(7));
    assert_eq!(quiet.mirror_reads, 37u64.div_ceil(7));
    // The scan's lower bound: one ListUsers per shard (each holds under 60 users), one
    // ListGroups, one ListUsersInGroup per group; and one DescribeUserPool (its size sets
    // the shard count).
    assert_eq!(quiet.cognito.calls_of("ListUsers"), 16);
    assert_eq!(quiet.cognito.calls_of("ListGroups"), 1);
    assert_eq!(quiet.cognito.calls_of("ListUsersInGroup"), 2);
    assert_eq!(quiet.cognito.calls_of("DescribeUserPool"), 1);
    assert_eq!(quiet.cognito.total_calls(), 20);

    // The other pool's row was never touched; the run records say what happened.
    assert_eq!(
        row_versions(&bed)
            .await?
            .into_iter()
            .find(|r| r.0 == foreign),
        foreign_before
    );
    let client = bed.db.client().await?;
    let rows = client
        .query("SELECT status, counters FROM cognito_sync_runs WHERE kind = 'reconcile' ORDER BY started_at", &[])
        .await?;
    assert_eq!(rows.len(), 3, "dry runs leave no record");
    let counters: serde_json::Value = rows[1].get(1);
    assert_eq!(rows[1].get::<_, String>(0), "succeeded");
    assert_eq!(
        (
            counters["tombstoned"].as_u64(),
            counters["inserted"].as_u64()
        ),
        (Some(2), Some(2))
    );
    Ok(())
}

/// While the last group's members are listed (a slow chain of calls), shards are read
/// ahead into temporary files and replayed once the memberships are known: the users read
/// ahead get their groups, and no page is read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_read_ahead_during_the_last_listing_are_joined_and_read_once() -> anyhow::Result<()>
{
    let bed = TestBed::start().await?;
    let in_group = |i: usize| i % 5 != 0;
    bed.populate(150, |i| {
        if in_group(i) {
            UserSpec::numbered(i).group("members")
        } else {
            UserSpec::numbered(i)
        }
    })
    .await?;
    let groups: BTreeMap<String, Vec<String>> = (0..150)
        .filter(|&i| in_group(i))
        .map(|i| (UserSpec::numbered(i).username, vec!["members".to_owned()]))
        .collect();
    let slow = slow_cognito(&bed, Duration::from_millis(300)).await?;
    let reader = CognitoReader::new(
        &testbed::sdk_config(slow.url()).await,
        &bed.pool_id,
        ReadLimits {
            quotas: QuotaSettings::uniform(200.0),
            retry: RetryPolicy::Capped(2),
        },
    );
    let hasura = hasura(&bed, &bed.hasura.endpoint)?;
    let options = ReconcileOptions {
        shards: 16,
        ..options()
    };
    let report = reconcile(reader, hasura.clone(), options, CancellationToken::new()).await?;
    assert_eq!(report.counters.inserted, 150, "{report:?}");
    assert!(
        report.pages_read_ahead > 0,
        "the one group's listing left room to read ahead: {report:?}"
    );
    // 150 users in 16 shards: one page each.
    common::assert_list_users_calls(&slow, 16);
    assert_exact_mirror(&bed, &groups).await?;
    let before = row_versions(&bed).await?;
    let again = run(&bed, &bed.pool_id, &hasura, options).await?;
    assert_eq!(again.counters.unchanged, 150, "{again:?}");
    assert_eq!(
        row_versions(&bed).await?,
        before,
        "the second run rewrote rows"
    );
    Ok(())
}

/// Like `assert_exact_mirror`, for a mirror that also holds tombstones: the live rows match
/// Cognito. The tombstones are parked under another pool id while it checks.
async fn assert_exact_mirror_but_tombstones(
    bed: &TestBed,
    groups: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<()> {
    let parked = format!("{}-tombstones", bed.pool_id);
    let hidden = move_rows(bed, &bed.pool_id, &parked, "deleted_at IS NOT NULL").await?;
    let result = assert_exact_mirror(bed, groups).await;
    assert_eq!(move_rows(bed, &parked, &bed.pool_id, "true").await?, hidden);
    result.map(|_| ())
}

/// Moves mirror rows to another pool id, bypassing the row guard (which skips an update
/// that changes neither hash nor tombstone). Returns how many moved.
async fn move_rows(bed: &TestBed, from: &str, to: &str, filter: &str) -> anyhow::Result<u64> {
    let client = bed.db.client().await?;
    client
        .batch_execute("ALTER TABLE cognito_users DISABLE TRIGGER cognito_users_guard")
        .await?;
    let sql =
        format!("UPDATE cognito_users SET user_pool_id = $2 WHERE user_pool_id = $1 AND {filter}");
    let moved = client.execute(&sql, &[&from, &to]).await;
    client
        .batch_execute("ALTER TABLE cognito_users ENABLE TRIGGER cognito_users_guard")
        .await?;
    Ok(moved?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_brake_stops_an_empty_pool_and_a_mass_delete() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.populate(20, UserSpec::numbered).await?;
    let hasura = hasura(&bed, &bed.hasura.endpoint)?;
    run(&bed, &bed.pool_id, &hasura, options()).await?;

    // An empty pool whose id the mirror holds rows for (a wrong pool, a wrong account):
    // move the mirror's rows under the id of a fresh, empty pool.
    let empty = bed.create_other_pool().await?;
    assert_eq!(
        move_rows(&bed, &bed.pool_id, &empty.user_pool_id, "true").await?,
        20
    );
    let before = row_versions(&bed).await?;
    let braked = run(&bed, &empty.user_pool_id, &hasura, options()).await?;
    assert!(
        braked
            .brake
            .as_deref()
            .is_some_and(|b| b.contains("no users")),
        "{braked:?}"
    );
    assert_eq!(braked.result, "braked");
    assert_eq!(
        row_versions(&bed).await?,
        before,
        "the brake let a write through"
    );
    move_rows(&bed, &empty.user_pool_id, &bed.pool_id, "true").await?;

    // Three of twenty users gone at once: more than 10%.
    for i in 0..3 {
        bed.cognito
            .admin_delete_user()
            .user_pool_id(&bed.pool_id)
            .username(format!("user-{i:06}"))
            .send()
            .await?;
    }
    let before = row_versions(&bed).await?;
    let braked = run(&bed, &bed.pool_id, &hasura, options()).await?;
    assert!(
        braked
            .brake
            .as_deref()
            .is_some_and(|b| b.contains("3 of the mirror's 20")),
        "{braked:?}"
    );
    assert_eq!(row_versions(&bed).await?, before);
    // The report of a refused run says what it would have removed, never that it did.
    let text = braked.to_string();
    assert!(
        text.contains("safety brake")
            && text
                .lines()
                .any(|l| l.trim_start().starts_with("would be tombstoned") && l.ends_with(" 3")),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("tombstoned")),
        "{text}"
    );
    let json = serde_json::to_value(&braked)?;
    assert_eq!(
        (&json["written"], &json["counters"]["tombstoned"]),
        (&serde_json::json!(false), &serde_json::json!(3)),
        "{json}"
    );
    let status: String = bed
        .db
        .client()
        .await?
        .query_one(
            "SELECT status FROM cognito_sync_runs WHERE id = $1",
            &[&braked.run_id.expect("recorded")],
        )
        .await?
        .get(0);
    assert_eq!(status, "failed");

    // --allow-mass-delete releases it; --on-delete delete removes the rows.
    let allowed = run(
        &bed,
        &bed.pool_id,
        &hasura,
        ReconcileOptions {
            allow_mass_delete: true,
            on_delete: OnDelete::Delete,
            ..options()
        },
    )
    .await?;
    assert_eq!(
        (allowed.result, allowed.counters.tombstoned),
        ("succeeded", 3),
        "{allowed:?}"
    );
    assert_eq!(bed.mirror_users().await?.len(), 17);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_blanks_personal_data_once() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let created = bed.populate(12, UserSpec::numbered).await?;
    let hasura = hasura(&bed, &bed.hasura.endpoint)?;
    run(&bed, &bed.pool_id, &hasura, options()).await?;
    let pool = bed.pool_id.as_str();
    bed.cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username("user-000000")
        .send()
        .await?;
    let scrub = ReconcileOptions {
        on_delete: OnDelete::Scrub,
        ..options()
    };
    let report = run(&bed, pool, &hasura, scrub).await?;
    assert_eq!(
        (report.counters.tombstoned, report.counters.purged),
        (1, 0),
        "{report:?}"
    );
    let blank = |row: &testbed::MirrorUser| {
        row.deleted_at.is_some()
            && row.username.is_empty()
            && row.email.is_none()
            && row.given_name.is_none()
            && row.attributes == serde_json::json!({})
    };
    assert!(blank(
        &bed.mirror_user(created[0].sub)
            .await?
            .expect("the row stays")
    ));

    // A tombstone left by an earlier run in tombstone mode is scrubbed by the next scrub run, once.
    bed.cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username("user-000001")
        .send()
        .await?;
    run(&bed, pool, &hasura, options()).await?;
    assert!(!blank(
        &bed.mirror_user(created[1].sub).await?.expect("tombstoned")
    ));
    let later = run(&bed, pool, &hasura, scrub).await?;
    assert_eq!(
        (later.counters.tombstoned, later.counters.purged),
        (0, 1),
        "{later:?}"
    );
    assert!(blank(
        &bed.mirror_user(created[1].sub)
            .await?
            .expect("the row stays")
    ));
    let again = run(&bed, pool, &hasura, scrub).await?;
    assert_eq!(
        (again.counters.tombstoned, again.counters.purged),
        (0, 0),
        "{again:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_admits_one_holder_until_it_expires() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let hasura = hasura(&bed, &bed.hasura.endpoint)?;
    let ttl = Duration::from_secs(2);
    let a = Lease::new(hasura.clone(), "reconcile:test", "replica-a", ttl);
    let b = Lease::new(hasura.clone(), "reconcile:test", "replica-b", ttl);
    assert!(a.acquire().await?);
    assert!(!b.acquire().await?, "two holders at once");
    assert!(a.acquire().await?, "the holder re-acquires its own lease");
    assert!(a.heartbeat().await?);
    assert!(!b.heartbeat().await?, "only the holder renews");
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    assert!(b.acquire().await?, "an expired lease is taken over");
    assert!(!a.heartbeat().await?, "the old holder lost it");
    assert!(!a.release().await?, "and cannot release it");
    assert!(b.release().await?);
    assert!(a.acquire().await?, "a released lease is free at once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_never_overlap_and_one_takes_over_when_the_other_dies() -> anyhow::Result<()>
{
    use cognito_hasura_sync::daemon::requests::ReconcileRequests;
    use cognito_hasura_sync::daemon::scheduler::{SchedulerOptions, run_scheduler};

    let bed = TestBed::start().await?;
    bed.populate(5, UserSpec::numbered).await?;
    let hasura = hasura(&bed, &bed.hasura.endpoint)?;
    // Slow Cognito calls stretch each run, so the holder can be killed in the middle of one.
    let slow = FaultProxy::start_with(
        &bed.aws_endpoint,
        ProxySettings {
            latency: Duration::from_millis(400),
            ..ProxySettings::default()
        },
    )
    .await?;
    let slow_cognito = testbed::sdk_config(slow.url()).await;
    let scheduler = |holder: &str| {
        let reader = CognitoReader::new(
            &slow_cognito,
            &bed.pool_id,
            ReadLimits {
                quotas: QuotaSettings::uniform(200.0),
                retry: RetryPolicy::Capped(2),
            },
        );
        let options = SchedulerOptions {
            schedule: Some("* * * * * *".into()),
            lease_ttl: Duration::from_secs(3),
            holder: holder.into(),
            reconcile: ReconcileOptions {
                shards: 1,
                ..options()
            },
        };
        let shutdown = CancellationToken::new();
        let requests = ReconcileRequests::new(Duration::from_millis(10));
        (
            tokio::spawn(run_scheduler(
                reader,
                hasura.clone(),
                options,
                requests,
                shutdown.clone(),
            )),
            shutdown,
        )
    };
    let (a, stop_a) = scheduler("replica-a");
    let (b, stop_b) = scheduler("replica-b");
    // Several ticks with both running, the first run included.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while succeeded_runs(&bed).await? == 0 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no scheduled run");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first = lease_holder(&bed).await?;
    // The holder dies during a run without releasing its lease; the other takes over once
    // it expires.
    while running_runs(&bed).await? == 0 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no second run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (dead, survivor, stop_survivor) = if first == "replica-a" {
        (a, b, stop_b)
    } else {
        (b, a, stop_a)
    };
    dead.abort();
    let died = chrono::Utc::now();
    // Waits (bounded) for the survivor to take the lease over and finish a run of its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let taken = lease_holder(&bed).await? != first;
        let client = bed.db.client().await?;
        let after = client
            .query_one(
                "SELECT count(*) FROM cognito_sync_runs WHERE status = 'succeeded' AND started_at > $1",
                &[&died],
            )
            .await?
            .get::<_, i64>(0);
        if taken && after > 0 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no takeover: holder taken {taken}, runs after {after}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop_survivor.cancel();
    tokio::time::timeout(Duration::from_secs(30), survivor).await???;

    let rows = bed
        .db
        .client()
        .await?
        .query(
            "SELECT started_at, finished_at FROM cognito_sync_runs WHERE status = 'succeeded' ORDER BY started_at",
            &[],
        )
        .await?;
    let runs: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(runs.len() >= 2, "{runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlap: {pair:?}");
    }
    Ok(())
}

async fn succeeded_runs(bed: &TestBed) -> anyhow::Result<i64> {
    runs_with_status(bed, "succeeded").await
}

async fn running_runs(bed: &TestBed) -> anyhow::Result<i64> {
    runs_with_status(bed, "running").await
}

async fn runs_with_status(bed: &TestBed, status: &str) -> anyhow::Result<i64> {
    let row = bed
        .db
        .client()
        .await?
        .query_one(
            "SELECT count(*) FROM cognito_sync_runs WHERE status = $1",
            &[&status],
        )
        .await?;
    Ok(row.get(0))
}

async fn lease_holder(bed: &TestBed) -> anyhow::Result<String> {
    let row = bed
        .db
        .client()
        .await?
        .query_one("SELECT holder FROM cognito_sync_leases", &[])
        .await?;
    Ok(row.get(0))
}
