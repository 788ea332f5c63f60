//! The Cognito reader against moto, through the test bed's FaultProxy: sharded listing,
//! groups and memberships, single-user reads, and the failures the proxy injects (quota
//! throttling, HTTP 500, `Limit` validation).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context as _;
use std::time::Duration;

use cognito_hasura_sync::cognito::{
    CognitoError, CognitoReader, QuotaCategory, QuotaSettings, ReadLimits, RetryPolicy, Shard,
};
use cognito_hasura_sync::model::UserRecord;
use testbed::{CreatedUser, FaultProxy, GroupSpec, ProxySettings, TestBed, UserSpec, UserState};
use tokio_util::sync::CancellationToken;

const USERS: usize = 130;

/// Lists every shard concurrently (as the backfill does), all pages, and joins memberships.
async fn read_pool(reader: &CognitoReader, shard_count: usize) -> anyhow::Result<Vec<UserRecord>> {
    let shards = Shard::split(shard_count)?;
    let pages = futures::future::try_join_all(shards.iter().map(|shard| async move {
        let mut users = Vec::new();
        let mut token = None;
        loop {
            let page = reader.list_users_page(shard, token).await?;
            for user in &page.users {
                anyhow::ensure!(
                    shard.contains(&user.id),
                    "{} listed in shard {shard}",
                    user.id
                );
            }
            users.extend(page.users);
            token = page.next_token;
            if token.is_none() {
                return Ok::<_, anyhow::Error>(users);
            }
        }
    }))
    .await?;
    let groups = reader.list_groups().await?;
    let memberships = reader
        .memberships(&groups, 4, &tokio::sync::Notify::new())
        .await?;
    let mut users: Vec<UserRecord> = pages.into_iter().flatten().collect();
    for user in &mut users {
        user.set_groups(memberships.groups_of(&user.id));
    }
    Ok(users)
}

fn spec(i: usize) -> UserSpec {
    let mut spec = UserSpec::numbered(i);
    if i % 3 == 0 {
        spec = spec.group("admins");
    }
    if i % 5 == 0 {
        spec = spec.group("editors");
    }
    if i % 11 == 0 {
        spec = spec.disabled();
    }
    spec
}

async fn populated_bed() -> anyhow::Result<(TestBed, Vec<CreatedUser>)> {
    let bed = TestBed::start().await?;
    bed.create_group(
        &GroupSpec::new("admins")
            .description("Administratörer — 管理者")
            .precedence(1)
            .role_arn("arn:aws:iam::123456789012:role/admins"),
    )
    .await?;
    bed.create_group(&GroupSpec::new("empty")).await?;
    let mut created = bed.populate(USERS, spec).await?;
    created.extend(
        bed.create_users([UserSpec::new("zoë.ødegård")
            .attr("email", "zoe@example.test")
            .attr("given_name", "Zoë")
            .attr("family_name", "Ødegård 山田")
            .attr("name", "Zoë Ødegård 山田")
            .group("editors")
            .state(UserState::ForceChangePassword)])
            .await?,
    );
    Ok((bed, created))
}

fn expected_groups(user: &CreatedUser) -> Vec<String> {
    let set: BTreeSet<String> = user.spec.groups.iter().cloned().collect();
    set.into_iter().collect()
}

fn fast() -> ReadLimits {
    ReadLimits {
        quotas: QuotaSettings::uniform(200.0),
        retry: RetryPolicy::Persistent,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sharded_listing_returns_every_user_once_with_groups() -> anyhow::Result<()> {
    let (bed, created) = populated_bed().await?;
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    let sdk = testbed::sdk_config(proxy.url()).await;
    let reader = CognitoReader::new(&sdk, &bed.pool_id, fast());

    let pool = reader.describe_pool().await?;
    assert_eq!(pool.id, bed.pool_id);

    let by_sub: HashMap<_, _> = created.iter().map(|u| (u.sub, u)).collect();
    let mut hashes_by_count = Vec::new();
    for shard_count in [1, 16, 256] {
        let users = read_pool(&reader, shard_count)
            .await
            .with_context(|| format!("{shard_count} shards"))?;
        assert_eq!(
            users.len(),
            created.len(),
            "{shard_count} shards: every user exactly once"
        );
        let subs: BTreeSet<_> = users.iter().map(|u| u.id).collect();
        assert_eq!(
            subs.len(),
            users.len(),
            "{shard_count} shards: no user twice"
        );
        for user in &users {
            let expected = by_sub
                .get(&user.id)
                .with_context(|| format!("unknown sub {}", user.id))?;
            assert_eq!(user.username, expected.username);
            assert_eq!(
                user.groups,
                expected_groups(expected),
                "groups of {}",
                user.username
            );
            assert_eq!(
                user.enabled, expected.spec.enabled,
                "enabled of {}",
                user.username
            );
            assert_eq!(user.user_pool_id, bed.pool_id);
            assert_eq!(user.attributes.get("sub"), Some(&user.id.to_string()));
            assert_eq!(user.email.as_deref(), expected.spec.attribute("email"));
            assert_eq!(
                user.given_name.as_deref(),
                expected.spec.attribute("given_name")
            );
            assert_eq!(
                user.family_name.as_deref(),
                expected.spec.attribute("family_name")
            );
            if let Some(tenant) = expected.spec.attribute("custom:tenant") {
                assert_eq!(
                    user.attributes.get("custom:tenant").map(String::as_str),
                    Some(tenant)
                );
                assert_eq!(user.email_verified, Some(true));
                assert_eq!(user.status, "CONFIRMED");
            }
            assert!(user.cognito_created_at.is_some());
            assert_eq!(user.content_hash, user.compute_hash());
        }
        let zoe = users
            .iter()
            .find(|u| u.username == "zoë.ødegård")
            .context("non-ASCII user listed")?;
        assert_eq!(zoe.name.as_deref(), Some("Zoë Ødegård 山田"));
        assert_eq!(zoe.status, "FORCE_CHANGE_PASSWORD");
        let hashes: BTreeMap<_, _> = users
            .iter()
            .map(|u| (u.id, u.content_hash.clone()))
            .collect();
        hashes_by_count.push(hashes);
    }
    assert!(
        hashes_by_count.windows(2).all(|w| w[0] == w[1]),
        "same state, same hashes, whatever the sharding"
    );

    let groups = reader.list_groups().await?;
    let names: Vec<_> = groups
        .iter()
        .map(|g| g.name.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["admins", "editors", "empty"]);
    let admins = groups
        .iter()
        .find(|g| g.name == "admins")
        .context("admins group")?;
    assert_eq!(
        admins.description.as_deref(),
        Some("Administratörer — 管理者")
    );
    assert_eq!(admins.precedence, Some(1));
    assert_eq!(
        admins.role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/admins")
    );
    assert_eq!(admins.content_hash, admins.compute_hash());
    let admin_subs = reader.group_member_subs("admins").await?;
    assert_eq!(
        admin_subs.len(),
        created
            .iter()
            .filter(|u| u.spec.groups.contains(&"admins".into()))
            .count()
    );
    assert!(reader.group_member_subs("empty").await?.is_empty());

    // Every list call used the largest page Cognito allows, and none was rejected for it.
    for op in ["ListUsers", "ListGroups", "ListUsersInGroup"] {
        assert_eq!(proxy.max_limit_seen(op), Some(60), "{op}");
        assert_eq!(proxy.rejected(op), 0, "{op}");
    }
    let stats = reader.stats();
    assert_eq!(stats.calls_of("ListUsers"), proxy.calls("ListUsers"));
    assert_eq!((stats.throttled, stats.failures), (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_user_reads_find_and_miss() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let created = bed
        .create_users([
            UserSpec::numbered(1).group("admins").group("editors"),
            UserSpec::numbered(2).disabled(),
            UserSpec::numbered(3).state(UserState::Unconfirmed),
        ])
        .await?;
    let reader = CognitoReader::new(&bed.sdk_config, &bed.pool_id, fast());

    let first = &created[0];
    let by_sub = reader
        .user_by_sub(first.sub)
        .await?
        .context("user_by_sub finds the user")?;
    assert_eq!(by_sub.username, first.username);
    assert_eq!(by_sub.groups, ["admins", "editors"]);
    let reads = reader.stats().user_reads;
    assert_eq!(
        (reads.get("admin_get_user_by_sub"), reads.get("sub_filter")),
        (None, Some(&1)),
        "moto never accepts a sub as a username: the ListUsers filter found the user"
    );
    let by_name = reader
        .user_by_username(&first.username)
        .await?
        .context("user_by_username finds the user")?;
    assert_eq!(by_name.id, first.sub);
    assert_eq!(by_name.groups, ["admins", "editors"]);
    assert_eq!(by_name.attributes, by_sub.attributes);
    assert_eq!(
        by_name.content_hash, by_sub.content_hash,
        "both paths normalise alike"
    );

    let disabled = reader
        .user_by_username(&created[1].username)
        .await?
        .context("disabled user")?;
    assert!(!disabled.enabled);
    assert!(disabled.groups.is_empty());
    let unconfirmed = reader
        .user_by_sub(created[2].sub)
        .await?
        .context("unconfirmed user")?;
    assert_eq!(unconfirmed.status, "UNCONFIRMED");

    assert_eq!(reader.user_by_sub(uuid::Uuid::new_v4()).await?, None);
    assert_eq!(reader.user_by_username("nobody-here").await?, None);

    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&first.username)
        .send()
        .await?;
    assert_eq!(
        reader.user_by_sub(first.sub).await?,
        None,
        "deleted user is gone"
    );
    assert_eq!(reader.user_by_username(&first.username).await?, None);
    assert_eq!(
        reader.stats().failures,
        0,
        "not found is an answer, not a failure"
    );

    assert!(matches!(
        reader.group_member_subs("no-such-group").await,
        Err(CognitoError::GroupNotFound { .. })
    ));
    // A malformed prefix never reaches Cognito as a filter.
    let calls_before = reader.stats().calls_of("ListUsers");
    let bad_shard = Shard {
        prefix: "a\" or sub ^= \"".into(),
    };
    let err = reader
        .list_users_page(&bad_shard, None)
        .await
        .expect_err("bad prefix");
    assert!(
        matches!(
            err,
            CognitoError::Api {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(reader.stats().calls_of("ListUsers"), calls_before);
    let token = Some("not-a-token".to_owned());
    let err = reader
        .list_users_page(&Shard::whole(), token)
        .await
        .expect_err("a bad token is rejected");
    assert!(
        matches!(err, CognitoError::PaginationTokenRejected { .. }),
        "{err:?}"
    );

    let missing = CognitoReader::new(&bed.sdk_config, "us-east-1_Missing0", fast());
    assert!(matches!(
        missing.describe_pool().await,
        Err(CognitoError::PoolNotFound { .. })
    ));
    let err = missing
        .list_users_page(&Shard::parse("a")?, None)
        .await
        .expect_err("no pool");
    assert!(matches!(err, CognitoError::PoolNotFound { .. }), "{err:?}");
    Ok(())
}

/// A persistent reader (the scans') finishes a scan under sustained throttling of its list
/// calls by slowing their category down; a capped reader (the event path's) sharing its
/// limiter gives up after its cap; cancelling a persistent reader stops its retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scans_persist_through_throttling_and_the_event_path_gives_up() -> anyhow::Result<()> {
    let (bed, created) = populated_bed().await?;
    // A quota far below the reader's own rate: most list calls are throttled until the
    // reader has found the pace by itself.
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    proxy.set_shared_quota(&["ListUsers", "ListUsersInGroup"], 8.0);
    let sdk = testbed::sdk_config(proxy.url()).await;
    let limits = ReadLimits {
        quotas: QuotaSettings::uniform(100.0),
        retry: RetryPolicy::Persistent,
    };
    let reader = CognitoReader::new(&sdk, &bed.pool_id, limits);

    let users = read_pool(&reader, 16).await?;
    assert_eq!(users.len(), created.len());
    let stats = reader.stats();
    assert!(stats.throttled > 0, "the quota was hit: {stats:?}");
    assert_eq!(
        stats.throttled,
        proxy.throttled("ListUsers") + proxy.throttled("ListUsersInGroup")
    );
    assert_eq!(
        stats.throttled_by_category.keys().collect::<Vec<_>>(),
        ["UserList"],
        "only the throttled category counts throttles"
    );
    assert!(stats.retries >= stats.throttled);
    assert_eq!(stats.failures, 0);
    assert!(stats.slowdowns > 0, "the UserList rate was lowered");
    let limiter = reader.limiter();
    assert!(limiter.rate(QuotaCategory::UserList) < limiter.ceiling(QuotaCategory::UserList));
    for category in [QuotaCategory::UserRead, QuotaCategory::UserPoolResourceRead] {
        assert_eq!(
            limiter.rate(category),
            limiter.ceiling(category),
            "{category} was not slowed down"
        );
    }

    // The event path's reader shares the limiter and gives up after its cap: one call and
    // three retries.
    proxy.set_quota("AdminGetUser", 0.001);
    let capped = reader.with_retry(RetryPolicy::Capped(3));
    assert_eq!(
        capped.limiter().rate(QuotaCategory::UserList),
        limiter.rate(QuotaCategory::UserList),
        "one limiter for both readers"
    );
    let (user, other) = (&created[0], &created[1]);
    capped
        .user_by_username(&user.username)
        .await?
        .context("the quota's one request")?;
    let throttled_before = proxy.throttled("AdminGetUser");
    let err = capped
        .user_by_username(&other.username)
        .await
        .expect_err("throttled past the cap");
    assert!(
        matches!(
            err,
            CognitoError::Api {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(proxy.throttled("AdminGetUser") - throttled_before, 4);
    assert_eq!(capped.stats().failures, 1);

    // The persistent reader would retry for ever: its cancellation token stops it.
    let cancel = CancellationToken::new();
    let persistent = reader.with_cancel(cancel.clone());
    let username = other.username.clone();
    let read = tokio::spawn(async move { persistent.user_by_username(&username).await });
    let throttled_before = proxy.throttled("AdminGetUser");
    while proxy.throttled("AdminGetUser") < throttled_before + 5 {
        anyhow::ensure!(
            !read.is_finished(),
            "the persistent read ended: {:?}",
            read.await?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let err = read.await?.expect_err("cancelled");
    assert!(matches!(err, CognitoError::Cancelled { .. }), "{err:?}");
    Ok(())
}

/// moto rejects the next ListUsersInGroup token when the member it points at was deleted
/// while the group was paged through; the reader lists the group again from its first page
/// and returns its members as they are now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_deleted_mid_listing_restarts_the_group_listing() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_group(&GroupSpec::new("crowd")).await?;
    let created = bed
        .populate(150, |i| UserSpec::numbered(i).group("crowd"))
        .await?;
    // The first member of the second page: the one the first page's token names.
    let page = |token: Option<String>| {
        bed.cognito
            .list_users_in_group()
            .user_pool_id(&bed.pool_id)
            .group_name("crowd")
            .limit(60)
            .set_next_token(token)
            .send()
    };
    let first_page = page(None).await?;
    let second_page = page(first_page.next_token().map(str::to_owned)).await?;
    let doomed = second_page.users()[0]
        .username()
        .context("a username")?
        .to_owned();

    // Each request waits in the proxy, so the deletion lands between the first page and
    // the request for the second.
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    proxy.set_latency(Duration::from_millis(1500));
    let sdk = testbed::sdk_config(proxy.url()).await;
    let reader = CognitoReader::new(&sdk, &bed.pool_id, fast());
    let listing = tokio::spawn({
        let reader = reader.clone();
        async move { reader.group_member_subs("crowd").await }
    });
    while proxy.calls("ListUsersInGroup") < 2 {
        anyhow::ensure!(!listing.is_finished(), "the listing ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&doomed)
        .send()
        .await?;
    proxy.set_latency(Duration::ZERO);

    let subs: BTreeSet<uuid::Uuid> = listing.await??.into_iter().collect();
    let expected: BTreeSet<uuid::Uuid> = created
        .iter()
        .filter(|u| u.username != doomed)
        .map(|u| u.sub)
        .collect();
    assert_eq!(subs, expected);
    let stats = reader.stats();
    assert_eq!(stats.listing_restarts, 1, "{stats:?}");
    assert_eq!(stats.failures, 0);
    assert_eq!(
        proxy.calls("ListUsersInGroup"),
        5,
        "the first page, the rejected second one, then all three pages again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_are_retried() -> anyhow::Result<()> {
    let (bed, created) = populated_bed().await?;
    let settings = ProxySettings {
        fail_fraction: 0.3,
        fail_seed: Some(7),
        ..ProxySettings::default()
    };
    let proxy = FaultProxy::start_with(&bed.aws_endpoint, settings).await?;
    let sdk = testbed::sdk_config(proxy.url()).await;
    let reader = CognitoReader::new(&sdk, &bed.pool_id, fast());

    let users = read_pool(&reader, 16).await?;
    assert_eq!(users.len(), created.len());
    for user in created.iter().take(5) {
        let found = reader
            .user_by_sub(user.sub)
            .await?
            .context("user_by_sub through failures")?;
        assert_eq!(found.groups, expected_groups(user));
    }
    let stats = reader.stats();
    let injected = proxy.stats().total.failed;
    assert!(injected > 0, "the proxy injected failures");
    assert_eq!(stats.retries, injected, "every injected 500 was retried");
    assert_eq!((stats.throttled, stats.failures), (0, 0));
    Ok(())
}

/// A scan asked to stop during its membership phase (shutdown, or the scheduled reconcile
/// losing its lease) stops at once instead of reading every group's members first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_membership_phase_stops_when_told() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_group(&GroupSpec::new("staff")).await?;
    let slow = FaultProxy::start_with(
        &bed.aws_endpoint,
        ProxySettings {
            latency: Duration::from_secs(30),
            ..ProxySettings::default()
        },
    )
    .await?;
    let sdk = testbed::sdk_config(slow.url()).await;
    let reader = CognitoReader::new(&sdk, &bed.pool_id, fast());
    let stop = CancellationToken::new();
    let scan = cognito_hasura_sync::sync::scan::start_pool_scan(
        &reader,
        vec![(Shard::split(1)?.remove(0), None)],
        1,
        &stop,
    );
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let Err(err) = scan.await else {
        anyhow::bail!("the scan started although it was told to stop");
    };
    assert!(format!("{err:#}").contains("interrupted"), "{err:#}");
    for op in ["ListUsersInGroup", "ListUsers"] {
        assert_eq!(slow.op_stats(op).calls, 0, "{op} was called after the stop");
    }
    Ok(())
}
