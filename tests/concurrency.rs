//! The three modes at once, through the real binary (moto, hasura-lite, PostgreSQL): a slow
//! backfill, a CLI reconcile started in its middle and the daemon consuming events, while a
//! seeded stream of Cognito changes runs. Once everything has finished and the queue is
//! drained, with no repair run after it, the mirror must equal Cognito for every user.
//!
//! Next to it, one test per way the modes used to break each other: a scan writing group
//! memberships older than the daemon's, two scanners of one pool at once, a scheduled
//! reconcile killed by sustained throttling, and a user deleted while its group is being
//! listed. (An early-reconcile request lost: `tests/reconcile_requests.rs`; one bad value
//! failing a whole batch or run: `tests/bad_data.rs`.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use serde_json::json;
use testbed::proxy::COGNITO_USER_LIST_OPERATIONS;
use testbed::{
    FaultProxy, GroupSpec, MirrorUser, ProxySettings, TestBed, TestBedOptions, UserSpec, UserState,
};
use uuid::Uuid;

use common::process::{Process, daemon_via};
use common::{command, eventually};

/// The daemon on the bed's queue, reading Cognito straight from moto, tuned for tests (short
/// long-polls and backoffs), with no cron reconcile.
fn daemon(bed: &TestBed, name: &str, extra: &[&str]) -> anyhow::Result<Process> {
    daemon_via(bed, &bed.aws_endpoint, name, "off", extra)
}

/// `backfill` or `reconcile` (with `args`) of the bed's pool, reading Cognito at
/// `aws_endpoint`; `HOSTNAME` names the process in the pool's lease.
fn scanner(
    bed: &TestBed,
    aws_endpoint: &str,
    name: &str,
    args: &[&str],
) -> anyhow::Result<Process> {
    let mut cmd = command(bed, aws_endpoint, &bed.hasura.endpoint);
    cmd.env("HOSTNAME", name).args(args);
    if args.first() == Some(&"backfill") {
        cmd.args(["--progress", "never"]);
    }
    Process::spawn(name, cmd)
}

/// A proxy in front of moto adding `latency` to every call: a scan through it is slow enough
/// to be caught in the middle.
async fn slow_cognito(bed: &TestBed, latency: Duration) -> anyhow::Result<FaultProxy> {
    FaultProxy::start_with(
        &bed.aws_endpoint,
        ProxySettings {
            latency,
            ..ProxySettings::default()
        },
    )
    .await
}

/// A native event asking the daemon to re-read one user (and a group it joined or left).
fn user_event(bed: &TestBed, sub: Uuid, group: Option<&str>, reason: &str) -> String {
    let mut event = json!({ "user_pool_id": bed.pool_id, "sub": sub, "reason": reason });
    if let Some(group) = group {
        event["group"] = json!(group);
    }
    event.to_string()
}

async fn queue_drained(bed: &TestBed, queue_url: &str) -> anyhow::Result<bool> {
    Ok(bed.queue_depth(queue_url).await? == (0, 0))
}

/// Waits (up to `bound`) until `daemon` has consumed every message of the sync queue.
async fn drained_by(daemon: &mut Process, bed: &TestBed, bound: Duration) -> anyhow::Result<()> {
    eventually("the sync queue drained", bound, async || {
        daemon.ensure_running()?;
        queue_drained(bed, &bed.queue_url).await
    })
    .await
}

async fn mirrored(bed: &TestBed, sub: Uuid) -> anyhow::Result<MirrorUser> {
    bed.mirror_user(sub)
        .await?
        .with_context(|| format!("{sub} is not mirrored"))
}

/// One row of `cognito_sync_runs`.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    status: String,
    started_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    error: Option<String>,
}

/// Every run of `kind` (`backfill` or `reconcile`), by start.
async fn runs(bed: &TestBed, kind: &str) -> anyhow::Result<Vec<Run>> {
    let rows = bed
        .db
        .client()
        .await?
        .query(
            "SELECT status, started_at, finished_at, error FROM cognito_sync_runs \
             WHERE kind = $1 ORDER BY started_at",
            &[&kind],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Run {
            status: r.get(0),
            started_at: r.get(1),
            finished_at: r.get(2),
            error: r.get(3),
        })
        .collect())
}

/// What the mirror must say about one live user, built from either side.
#[derive(Debug, Clone, PartialEq)]
struct UserView {
    username: String,
    enabled: bool,
    status: String,
    attributes: BTreeMap<String, String>,
    email: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    groups: BTreeSet<String>,
}

/// Every live user of the pool as Cognito has it now, by sub.
async fn cognito_views(bed: &TestBed, groups: &[&str]) -> anyhow::Result<BTreeMap<Uuid, UserView>> {
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in groups {
        let users: Vec<_> = bed
            .cognito
            .list_users_in_group()
            .user_pool_id(&bed.pool_id)
            .group_name(*group)
            .limit(60)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .with_context(|| format!("ListUsersInGroup {group}"))?;
        for user in users {
            members
                .entry(user.username().unwrap_or_default().to_owned())
                .or_default()
                .insert((*group).to_owned());
        }
    }
    let mut views = BTreeMap::new();
    for user in bed.cognito_users().await? {
        let username = user.username().unwrap_or_default().to_owned();
        let attributes: BTreeMap<String, String> = user
            .attributes()
            .iter()
            .map(|a| {
                (
                    a.name().to_owned(),
                    a.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let sub = attributes
            .get("sub")
            .with_context(|| format!("{username} has no sub"))?
            .parse()?;
        views.insert(
            sub,
            UserView {
                enabled: user.enabled(),
                status: user
                    .user_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                email: attributes.get("email").cloned(),
                given_name: attributes.get("given_name").cloned(),
                family_name: attributes.get("family_name").cloned(),
                groups: members.remove(&username).unwrap_or_default(),
                attributes,
                username,
            },
        );
    }
    Ok(views)
}

/// Every live (not tombstoned) user of the mirror, by sub.
async fn mirror_views(bed: &TestBed) -> anyhow::Result<BTreeMap<Uuid, UserView>> {
    bed.mirror_users()
        .await?
        .into_iter()
        .filter(|row| row.deleted_at.is_none())
        .map(|row| {
            let attributes = row
                .attributes
                .as_object()
                .context("attributes is not an object")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let view = UserView {
                enabled: row.enabled,
                status: row.status.clone(),
                email: row.email.clone(),
                given_name: row.given_name.clone(),
                family_name: row.family_name.clone(),
                groups: row.group_names().into_iter().collect(),
                attributes,
                username: row.username,
            };
            Ok((row.id, view))
        })
        .collect()
}

/// Fails, naming the first differences, unless the mirror's live users are exactly Cognito's
/// users (so every user gone from Cognito is tombstoned); returns how many there are.
async fn assert_mirror_equals_cognito(bed: &TestBed, groups: &[&str]) -> anyhow::Result<usize> {
    let cognito = cognito_views(bed, groups).await?;
    let mirror = mirror_views(bed).await?;
    let subs: BTreeSet<&Uuid> = cognito.keys().chain(mirror.keys()).collect();
    let differences: Vec<String> = subs
        .into_iter()
        .filter_map(|sub| match (cognito.get(sub), mirror.get(sub)) {
            (Some(want), Some(got)) if want == got => None,
            (Some(want), Some(got)) => {
                Some(format!("{sub}:\n  cognito {want:?}\n  mirror  {got:?}"))
            }
            (Some(want), None) => Some(format!(
                "{sub} ({}) is in Cognito, not live in the mirror",
                want.username
            )),
            (None, Some(got)) => Some(format!(
                "{sub} ({}) is gone from Cognito but live in the mirror",
                got.username
            )),
            (None, None) => None,
        })
        .collect();
    ensure!(
        differences.is_empty(),
        "the mirror differs from Cognito for {} of {} users; the first:\n{}",
        differences.len(),
        cognito.len(),
        differences[..differences.len().min(10)].join("\n")
    );
    Ok(cognito.len())
}

/// SplitMix64: a seeded, reproducible stream of pseudo-random numbers.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The groups of the system test's pool.
const GROUPS: [&str; 4] = ["admins", "editors", "viewers", "billing"];
/// Users in the pool before the first round.
const POOL_USERS: usize = 2_000;
/// One round per seed, one after the other on the same pool and mirror.
const SEEDS: [u64; 3] = [0x5eed_0001, 0x5eed_0002, 0x5eed_0003];
/// Cognito requests per second of each scan: slow enough that changes land in its middle.
const SCAN_RPS: &str = "8";
/// Change streams running at once, each on its own share of the users.
const CHANGE_STREAMS: usize = 4;
/// Upper bounds of one round, whatever the machine's speed.
const MAX_CHANGES_PER_STREAM: usize = 500;
const ROUND_BOUND: Duration = Duration::from_secs(120);

/// A live user as its change stream knows it (it alone changes the user while it runs).
#[derive(Debug, Clone)]
struct Live {
    username: String,
    sub: Uuid,
    groups: BTreeSet<&'static str>,
    enabled: bool,
    has_plan: bool,
}

/// One change stream's share of the pool, as the stream changed it.
struct Model {
    stream: usize,
    live: Vec<Live>,
    created: usize,
}

impl Model {
    /// Fills the pool (users in every status, some disabled, one in four in a group) and
    /// deals the users out to [`CHANGE_STREAMS`] streams.
    async fn populate(bed: &TestBed, count: usize) -> anyhow::Result<Vec<Model>> {
        let specs = (0..count).map(|i| {
            let mut spec = UserSpec::numbered(i).state(match i % 20 {
                0 => UserState::Confirmed,
                1 => UserState::Unconfirmed,
                _ => UserState::ForceChangePassword,
            });
            if i % 4 == 0 {
                spec = spec.group(GROUPS[i / 4 % GROUPS.len()]);
            }
            if i % 25 == 0 {
                spec = spec.disabled();
            }
            spec
        });
        let mut models: Vec<Model> = (0..CHANGE_STREAMS)
            .map(|stream| Model {
                stream,
                live: Vec::new(),
                created: 0,
            })
            .collect();
        let created = bed.create_users(specs).await?;
        for (i, user) in created.into_iter().enumerate() {
            models[i % CHANGE_STREAMS].live.push(Live {
                groups: GROUPS
                    .into_iter()
                    .filter(|g| user.spec.groups.iter().any(|s| s == g))
                    .collect(),
                enabled: user.spec.enabled,
                has_plan: false,
                username: user.username,
                sub: user.sub,
            });
        }
        Ok(models)
    }
}

/// One change made to Cognito, then announced to the daemon.
async fn change(bed: &TestBed, model: &mut Model, dice: &mut Dice) -> anyhow::Result<()> {
    let pool = bed.pool_id.as_str();
    let at = dice.below(model.live.len());
    let roll = dice.below(100);
    let user = model.live[at].clone();
    let (username, sub) = (user.username.as_str(), user.sub);
    match roll {
        // Group membership: the change a scan's stale membership data reverts.
        0..=34 => {
            let group = GROUPS[dice.below(GROUPS.len())];
            if user.groups.contains(group) {
                bed.cognito
                    .admin_remove_user_from_group()
                    .user_pool_id(pool)
                    .username(username)
                    .group_name(group)
                    .send()
                    .await?;
                model.live[at].groups.remove(group);
            } else {
                bed.cognito
                    .admin_add_user_to_group()
                    .user_pool_id(pool)
                    .username(username)
                    .group_name(group)
                    .send()
                    .await?;
                model.live[at].groups.insert(group);
            }
            bed.send_event(&user_event(bed, sub, Some(group), "membership"))
                .await?;
        }
        35..=59 => {
            let value = format!("v{}", dice.next() % 100_000);
            match dice.below(4) {
                // Cognito refuses to delete an attribute the user does not have.
                0 if user.has_plan => {
                    bed.cognito
                        .admin_delete_user_attributes()
                        .user_pool_id(pool)
                        .username(username)
                        .user_attribute_names("custom:plan")
                        .send()
                        .await?;
                    model.live[at].has_plan = false;
                }
                which => {
                    let name = ["custom:plan", "given_name", "family_name"][which % 3];
                    model.live[at].has_plan |= name == "custom:plan";
                    bed.cognito
                        .admin_update_user_attributes()
                        .user_pool_id(pool)
                        .username(username)
                        .user_attributes(AttributeType::builder().name(name).value(value).build()?)
                        .send()
                        .await?;
                }
            }
            bed.send_event(&user_event(bed, sub, None, "attributes"))
                .await?;
        }
        60..=74 => {
            if user.enabled {
                bed.cognito
                    .admin_disable_user()
                    .user_pool_id(pool)
                    .username(username)
                    .send()
                    .await?;
            } else {
                bed.cognito
                    .admin_enable_user()
                    .user_pool_id(pool)
                    .username(username)
                    .send()
                    .await?;
            }
            model.live[at].enabled = !user.enabled;
            bed.send_event(&user_event(bed, sub, None, "enabled"))
                .await?;
        }
        75..=82 => {
            delete(bed, model, at).await?;
        }
        83..=92 => {
            model.created += 1;
            let name = format!("new-{}-{}", model.stream, model.created);
            create(bed, model, name, dice).await?;
        }
        // The username deleted and created again: a new sub behind the same name.
        _ => {
            delete(bed, model, at).await?;
            create(bed, model, user.username, dice).await?;
        }
    }
    Ok(())
}

async fn delete(bed: &TestBed, model: &mut Model, at: usize) -> anyhow::Result<()> {
    let user = model.live.swap_remove(at);
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&user.username)
        .send()
        .await?;
    bed.send_event(&user_event(bed, user.sub, None, "deleted"))
        .await
}

async fn create(
    bed: &TestBed,
    model: &mut Model,
    username: String,
    dice: &mut Dice,
) -> anyhow::Result<()> {
    let group = GROUPS[dice.below(GROUPS.len())];
    let spec = UserSpec::new(&username)
        .attr("email", format!("{username}@example.test"))
        .attr("given_name", format!("G{}", dice.next() % 1000))
        .group(group);
    let created = bed.pool().create_user(spec).await?;
    model.live.push(Live {
        username,
        sub: created.sub,
        groups: BTreeSet::from([group]),
        enabled: true,
        has_plan: false,
    });
    bed.send_event(&user_event(bed, created.sub, Some(group), "created"))
        .await
}

/// Makes changes to one share of the users, one after the other, until `stop` is set (or a
/// bound is reached); returns how many were made.
async fn change_stream(
    bed: &TestBed,
    model: &mut Model,
    seed: u64,
    stop: &AtomicBool,
) -> anyhow::Result<usize> {
    let mut dice = Dice(seed ^ model.stream as u64);
    let deadline = Instant::now() + ROUND_BOUND;
    let mut made = 0;
    while !stop.load(Ordering::Relaxed)
        && made < MAX_CHANGES_PER_STREAM
        && Instant::now() < deadline
    {
        change(bed, model, &mut dice).await.with_context(|| {
            format!("change {made} of stream {} of seed {seed:#x}", model.stream)
        })?;
        made += 1;
    }
    Ok(made)
}

/// Runs a slow backfill, a CLI reconcile started once the backfill has read a third of its
/// pages, and the change streams until both scans have exited; returns the changes made.
async fn round(bed: &TestBed, models: &mut [Model], seed: u64) -> anyhow::Result<usize> {
    let backfill_proxy = slow_cognito(bed, Duration::from_millis(20)).await?;
    let reconcile_proxy = slow_cognito(bed, Duration::from_millis(20)).await?;
    let stop = AtomicBool::new(false);
    let scans = async {
        let result = async {
            let mut backfill = scanner(
                bed,
                backfill_proxy.url(),
                "backfill",
                &["backfill", "--cognito-rps", SCAN_RPS, "--batch-size", "60"],
            )?;
            // 16 shards of about 125 users each: 48 ListUsers pages in all.
            eventually("the backfill's 16th page", ROUND_BOUND, async || {
                backfill.ensure_running()?;
                Ok(backfill_proxy.calls("ListUsers") >= 16)
            })
            .await?;
            let mut reconcile = scanner(
                bed,
                reconcile_proxy.url(),
                "reconcile",
                &[
                    "reconcile",
                    "--wait",
                    "--cognito-rps",
                    SCAN_RPS,
                    "--batch-size",
                    "60",
                ],
            )?;
            backfill.succeed(ROUND_BOUND).await?;
            reconcile.succeed(ROUND_BOUND).await
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        result
    };
    let streams = futures::future::try_join_all(
        models
            .iter_mut()
            .map(|model| change_stream(bed, model, seed, &stop)),
    );
    let (scanned, made) = tokio::join!(scans, streams);
    scanned?;
    Ok(made?.into_iter().sum())
}

/// The three modes at once on a pool of 2,000 users, one round per seed: after each round
/// and the queue drained, with no repair run, the mirror equals Cognito for every user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reconcile_and_daemon_at_once_leave_the_mirror_equal_to_cognito()
-> anyhow::Result<()> {
    let started = Instant::now();
    let bed = TestBed::start_with(
        TestBedOptions::default()
            .max_receive_count(5)
            .visibility_timeout(Duration::from_secs(30)),
    )
    .await?;
    for group in GROUPS {
        bed.create_group(&GroupSpec::new(group)).await?;
    }
    let mut models = Model::populate(&bed, POOL_USERS).await?;
    println!("{POOL_USERS} users created in {:.1?}", started.elapsed());
    let mut daemon = daemon(&bed, "daemon", &["--pollers", "2"])?;
    for seed in SEEDS {
        let round_started = Instant::now();
        let made = round(&bed, &mut models, seed).await?;
        drained_by(&mut daemon, &bed, ROUND_BOUND).await?;
        let result = assert_mirror_equals_cognito(&bed, &GROUPS).await;
        println!(
            "seed {seed:#x}: {made} concurrent changes applied in {:.1?}; mirror equals Cognito: {}",
            round_started.elapsed(),
            match &result {
                Ok(users) => format!("yes, {users} users"),
                Err(e) => format!("NO: {e:#}"),
            }
        );
        result?;
        ensure!(
            queue_drained(&bed, &bed.dlq_url).await?,
            "changes reached the dead-letter queue"
        );
    }
    daemon.kill().await?;
    println!("all rounds in {:.1?}", started.elapsed());
    Ok(())
}

/// The pool of the smaller tests: `count` numbered users, `last` created after them (so that
/// a scan with one shard reads it on its last page).
async fn small_pool(bed: &TestBed, count: usize, last: UserSpec) -> anyhow::Result<Uuid> {
    bed.populate(count, UserSpec::numbered).await?;
    Ok(bed.pool().create_user(last).await?.sub)
}

/// A backfill reads group memberships before it pages through the users: a user added to
/// `admins` (and the event applied by the daemon) while it scans keeps `admins` once the
/// backfill has written that user's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_keeps_a_group_change_applied_while_it_scans() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_group(&GroupSpec::new("admins")).await?;
    // 301 users: six pages of 60, the target alone on the last one.
    let target = small_pool(&bed, 300, UserSpec::numbered(9_999)).await?;
    let proxy = slow_cognito(&bed, Duration::from_millis(1_000)).await?;
    let mut daemon = daemon(&bed, "daemon", &[])?;
    let mut backfill = scanning_backfill(&bed, &proxy, "backfill").await?;
    bed.cognito
        .admin_add_user_to_group()
        .user_pool_id(&bed.pool_id)
        .username("user-009999")
        .group_name("admins")
        .send()
        .await?;
    bed.send_event(&user_event(&bed, target, Some("admins"), "promoted"))
        .await?;
    eventually(
        "the daemon applied the change",
        Duration::from_secs(30),
        async || {
            daemon.ensure_running()?;
            Ok(bed
                .mirror_user(target)
                .await?
                .is_some_and(|u| u.group_names() == ["admins"]))
        },
    )
    .await?;
    ensure!(
        proxy.calls("ListUsers") < 6,
        "the backfill asked for the last page before the change was applied; slow it down"
    );
    backfill.succeed(Duration::from_secs(60)).await?;
    let groups = mirrored(&bed, target).await?.group_names();
    ensure!(
        groups == ["admins"],
        "the backfill wrote its older membership over the daemon's: groups {groups:?}, Cognito says [\"admins\"]"
    );
    daemon.kill().await
}

/// `status --json`'s field that lists the early-reconcile requests not served yet.
/// A backfill through `proxy` with one shard, named `holder`, once the proxy has received
/// `calls` calls of `operation`.
async fn backfill_until(
    bed: &TestBed,
    proxy: &FaultProxy,
    holder: &str,
    operation: &str,
    calls: u64,
) -> anyhow::Result<Process> {
    let mut backfill = scanner(
        bed,
        proxy.url(),
        holder,
        &["backfill", "--shards", "1", "--batch-size", "60"],
    )?;
    eventually(
        &format!("the backfill's call {calls} of {operation}"),
        Duration::from_secs(60),
        async || {
            backfill.ensure_running()?;
            Ok(proxy.calls(operation) >= calls)
        },
    )
    .await?;
    Ok(backfill)
}

/// [`backfill_until`] its first ListUsers call, which comes after every group membership
/// was read.
async fn scanning_backfill(
    bed: &TestBed,
    proxy: &FaultProxy,
    holder: &str,
) -> anyhow::Result<Process> {
    backfill_until(bed, proxy, holder, "ListUsers", 1).await
}

/// A pool of 300 users and a slow backfill of it (`scanner-a`, a second per Cognito call)
/// that is scanning; `args` run beside it (`scanner-b`) must be refused: non-zero exit and a
/// message naming the lease holder and when its lease expires. The backfill is left running.
async fn refused_beside_a_backfill(
    args: &[&str],
) -> anyhow::Result<(TestBed, FaultProxy, Process)> {
    let bed = TestBed::start().await?;
    bed.populate(300, UserSpec::numbered).await?;
    let proxy = slow_cognito(&bed, Duration::from_millis(1_000)).await?;
    let backfill = scanning_backfill(&bed, &proxy, "scanner-a").await?;
    let mut refused = scanner(&bed, &bed.aws_endpoint, "scanner-b", args)?;
    let status = refused.exit(Duration::from_secs(60)).await?;
    let stderr = refused.stderr();
    ensure!(
        !status.success(),
        "`{}` ran beside a running backfill of the same pool (exit {status}):\n{}",
        args.join(" "),
        refused.tail()
    );
    ensure!(
        stderr.contains("scanner-a") && stderr.contains("expires"),
        "`{}`'s message names neither the lease holder scanner-a nor when its lease expires:\n{stderr}",
        args.join(" ")
    );
    Ok((bed, proxy, backfill))
}

/// One scanner per pool: a CLI reconcile while a backfill runs exits non-zero, naming the
/// backfill's lease; with `--wait` it waits for the backfill to finish, then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_beside_a_running_backfill_is_refused_or_waits() -> anyhow::Result<()> {
    let (bed, _proxy, mut backfill) = refused_beside_a_backfill(&["reconcile"]).await?;

    let waiting_since = chrono::Utc::now();
    let mut waiting = scanner(
        &bed,
        &bed.aws_endpoint,
        "scanner-c",
        &["reconcile", "--wait"],
    )?;
    backfill.succeed(Duration::from_secs(60)).await?;
    waiting.succeed(Duration::from_secs(120)).await?;
    let backfills = runs(&bed, "backfill").await?;
    let reconciles = runs(&bed, "reconcile").await?;
    ensure!(
        backfills.len() == 1 && backfills[0].status == "succeeded",
        "{backfills:?}"
    );
    let backfill_end = backfills[0]
        .finished_at
        .context("a finished backfill without finished_at")?;
    ensure!(
        backfill_end > waiting_since + chrono::TimeDelta::seconds(1),
        "the backfill finished before the waiting reconcile could find it running; slow it down"
    );
    ensure!(
        reconciles.len() == 1
            && reconciles[0].status == "succeeded"
            && reconciles[0].started_at >= backfill_end,
        "the waiting reconcile did not run after the backfill ({backfill_end}): {reconciles:?}"
    );
    Ok(())
}

/// One scanner per pool: a second backfill while one runs exits non-zero, naming the first's
/// lease; the first finishes, and its finished run stays finished whatever runs after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_backfill_is_refused_and_a_finished_run_stays_finished() -> anyhow::Result<()> {
    let (bed, _proxy, mut first) = refused_beside_a_backfill(&["backfill"]).await?;
    first.succeed(Duration::from_secs(60)).await?;
    let after_both = runs(&bed, "backfill").await?;
    ensure!(
        after_both.len() == 1 && after_both[0].status == "succeeded",
        "one backfill run, succeeded: {after_both:?}"
    );

    for (name, args) in [
        ("reconcile", &["reconcile"][..]),
        ("backfill-again", &["backfill"][..]),
    ] {
        scanner(&bed, &bed.aws_endpoint, name, args)?
            .succeed(Duration::from_secs(60))
            .await?;
    }
    let backfills = runs(&bed, "backfill").await?;
    ensure!(
        backfills.first() == after_both.first(),
        "the finished run changed: {after_both:?} then {backfills:?}"
    );
    ensure!(
        backfills
            .iter()
            .chain(&runs(&bed, "reconcile").await?)
            .all(|run| run.status == "succeeded"),
        "{backfills:?}"
    );
    Ok(())
}

/// Under sustained throttling (ListUsers and ListUsersInGroup held to 1 request per second
/// for 20 s, as when other tools use the account's quota) the daemon's scheduled reconcile
/// slows down and completes; it does not fail after a few retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_reconcile_survives_sustained_throttling() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_group(&GroupSpec::new("staff")).await?;
    let specs: Vec<UserSpec> = (0..300)
        .map(|i| {
            let spec = UserSpec::numbered(i).state(UserState::ForceChangePassword);
            if i % 5 == 0 {
                spec.group("staff")
            } else {
                spec
            }
        })
        .collect();
    bed.create_users(specs).await?;
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    proxy.set_shared_quota(&COGNITO_USER_LIST_OPERATIONS, 1.0);
    let throttled_from = Instant::now();
    let mut daemon = daemon_via(&bed, proxy.url(), "daemon", "*/5 * * * * *", &[])?;
    let finished = async || -> anyhow::Result<Option<Run>> {
        Ok(runs(&bed, "reconcile")
            .await?
            .into_iter()
            .find(|run| run.status != "running"))
    };
    eventually(
        "the first scheduled reconcile finished",
        Duration::from_secs(90),
        async || {
            daemon.ensure_running()?;
            if throttled_from.elapsed() > Duration::from_secs(20) {
                for op in COGNITO_USER_LIST_OPERATIONS {
                    proxy.clear_quota(op);
                }
            }
            Ok(finished().await?.is_some())
        },
    )
    .await?;
    daemon.kill().await?;
    let run = finished().await?.context("no finished reconcile")?;
    ensure!(
        proxy.throttled("ListUsers") + proxy.throttled("ListUsersInGroup") > 0,
        "nothing was throttled"
    );
    ensure!(
        run.status == "succeeded",
        "the first scheduled reconcile under throttling ended {}: {:?}",
        run.status,
        run.error
    );
    common::assert_exact_mirror(
        &bed,
        &BTreeMap::from_iter(
            (0..300)
                .filter(|i| i % 5 == 0)
                .map(|i| (format!("user-{i:06}"), vec!["staff".to_owned()])),
        ),
    )
    .await?;
    Ok(())
}

/// A user deleted while a backfill pages through its group's members makes moto reject the
/// next `ListUsersInGroup` token (`InvalidToken`): the backfill restarts that listing and
/// succeeds, the group on every remaining member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_while_its_group_is_listed_does_not_fail_the_backfill() -> anyhow::Result<()>
{
    let bed = TestBed::start().await?;
    let specs: Vec<UserSpec> = (0..90)
        .map(|i| {
            UserSpec::numbered(i)
                .state(UserState::ForceChangePassword)
                .group("staff")
        })
        .collect();
    bed.create_users(specs).await?;
    // The first member of the second page: the token of that page names this user.
    let first_page = bed
        .cognito
        .list_users_in_group()
        .user_pool_id(&bed.pool_id)
        .group_name("staff")
        .limit(60)
        .send()
        .await?;
    let token = first_page.next_token().context("staff has one page only")?;
    let victim = bed
        .cognito
        .list_users_in_group()
        .user_pool_id(&bed.pool_id)
        .group_name("staff")
        .limit(60)
        .next_token(token)
        .send()
        .await?
        .users()
        .first()
        .and_then(|u| u.username())
        .context("the second page is empty")?
        .to_owned();

    let proxy = slow_cognito(&bed, Duration::from_millis(1_000)).await?;
    // The second page's request is held by the proxy's latency: delete the user it names.
    let mut backfill = backfill_until(&bed, &proxy, "backfill", "ListUsersInGroup", 2).await?;
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&victim)
        .send()
        .await?;
    backfill.succeed(Duration::from_secs(90)).await?;
    let members: BTreeMap<String, Vec<String>> = (0..90)
        .map(|i| format!("user-{i:06}"))
        .filter(|name| *name != victim)
        .map(|name| (name, vec!["staff".to_owned()]))
        .collect();
    common::assert_exact_mirror(&bed, &members).await?;
    Ok(())
}
