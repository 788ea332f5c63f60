//! cognito-lite, the benchmarks' Cognito stand-in, is faithful where the sync engine looks:
//! the same users and groups created with the same SDK calls in moto and in cognito-lite
//! read back identically through our own `CognitoReader`; imported federated users keep
//! their status, through the reader and through the `backfill` binary into the mirror; `bench/seed_pool.py --bulk` seeds the pool its boto3 path would; and bad
//! requests get the typed errors real Cognito gives.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_cognitoidentityprovider::Client as Cognito;
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
use aws_sdk_cognitoidentityprovider::operation::admin_create_user::AdminCreateUserError;
use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserError;
use aws_sdk_cognitoidentityprovider::operation::create_group::CreateGroupError;
use aws_sdk_cognitoidentityprovider::operation::describe_user_pool::DescribeUserPoolError;
use aws_sdk_cognitoidentityprovider::operation::list_groups::ListGroupsError;
use aws_sdk_cognitoidentityprovider::operation::list_users::ListUsersError;
use aws_sdk_cognitoidentityprovider::operation::list_users_in_group::ListUsersInGroupError;
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use chrono::DateTime;
use cognito_hasura_sync::cognito::{
    CognitoError, CognitoReader, QuotaSettings, ReadLimits, RetryPolicy, Shard,
};
use cognito_hasura_sync::model::{GroupRecord, UserRecord};
use cognito_hasura_sync::sync::scan::{PoolScan, ShardEvent, start_pool_scan};
use serde_json::json;
use testbed::pool::create_pool;
use testbed::{CognitoLite, GroupSpec, PoolImport, UserImport, UserSpec, UserState};
use tokio_util::sync::CancellationToken;

fn fast() -> ReadLimits {
    ReadLimits {
        quotas: QuotaSettings::uniform(500.0),
        retry: RetryPolicy::Capped(2),
    }
}

fn groups() -> Vec<GroupSpec> {
    // Every group has a description: moto answers "" for a group created without one,
    // where Cognito leaves the field out.
    vec![
        GroupSpec::new("admins")
            .description("Administratörer — 管理者")
            .precedence(1)
            .role_arn("arn:aws:iam::123456789012:role/admins"),
        GroupSpec::new("editors")
            .description("Éditeurs")
            .precedence(5),
        GroupSpec::new("beta-testers").description("Early access"),
        GroupSpec::new("empty").description("Nobody"),
    ]
}

/// A mixed population: several groups, disabled users, every creatable status, custom
/// attributes, phone numbers and non-ASCII names.
fn specs() -> Vec<UserSpec> {
    let mut specs: Vec<UserSpec> = (0..80)
        .map(|i| {
            let mut spec = UserSpec::numbered(i);
            if i % 3 == 0 {
                spec = spec.group("admins");
            }
            if i % 4 == 0 {
                spec = spec.group("editors");
            }
            if i % 7 == 0 {
                spec = spec.group("beta-testers");
            }
            if i % 11 == 0 {
                spec = spec.disabled();
            }
            if i % 5 == 0 {
                spec = spec.attr("custom:plan", ["free", "pro"][i % 2]);
            }
            if i % 6 == 0 {
                spec = spec.attr("phone_number", format!("+1555{i:07}"));
            }
            match i % 13 {
                1 => spec.state(UserState::ForceChangePassword),
                2 => spec.state(UserState::Unconfirmed),
                _ => spec,
            }
        })
        .collect();
    specs.push(
        UserSpec::new("zoë.ødegård")
            .attr("email", "zoe@example.test")
            .attr("given_name", "Zoë")
            .attr("family_name", "Ødegård 山田")
            .attr("name", "Zoë Ødegård 山田")
            .attr("preferred_username", "zoë")
            .group("editors")
            .group("admins")
            .state(UserState::ForceChangePassword),
    );
    specs.push(
        UserSpec::new("ольга")
            .attr("given_name", "Ольга")
            .attr("custom:tenant", "tenant-ß")
            .disabled()
            .state(UserState::Unconfirmed),
    );
    specs
}

/// A user as the reader saw it, minus what differs between two pools by construction: sub,
/// pool id, timestamps (checked to be there), observation time and hash.
fn normalised(user: &UserRecord) -> anyhow::Result<UserRecord> {
    anyhow::ensure!(
        user.attributes.get("sub") == Some(&user.id.to_string()),
        "{}: the record's id is its sub",
        user.username
    );
    anyhow::ensure!(
        user.cognito_created_at.is_some() && user.cognito_updated_at >= user.cognito_created_at,
        "{}: creation and modification dates are read",
        user.username
    );
    let mut user = user.clone();
    user.id = uuid::Uuid::nil();
    user.user_pool_id.clear();
    user.attributes.remove("sub");
    user.cognito_created_at = None;
    user.cognito_updated_at = None;
    user.observed_at = DateTime::UNIX_EPOCH;
    user.content_hash.clear();
    Ok(user)
}

/// A group as the reader saw it, minus pool id, timestamps (checked to be there),
/// observation time and hash.
fn normalised_group(group: &GroupRecord) -> anyhow::Result<GroupRecord> {
    anyhow::ensure!(group.cognito_created_at.is_some(), "{}", group.name);
    let mut group = group.clone();
    group.user_pool_id.clear();
    group.cognito_created_at = None;
    group.cognito_updated_at = None;
    group.observed_at = DateTime::UNIX_EPOCH;
    group.content_hash.clear();
    Ok(group)
}

/// Everything the reader reads about one pool, users by username.
#[derive(Debug, PartialEq)]
struct Snapshot {
    estimated_users: i64,
    listed: BTreeMap<String, UserRecord>,
    groups: Vec<GroupRecord>,
}

/// Reads the whole pool as the backfill does: memberships first, then the 16 shards
/// scanned concurrently by the engine's own shard scan. No token may be rejected.
async fn backfill_read(reader: &CognitoReader) -> anyhow::Result<Vec<UserRecord>> {
    let shards = Shard::split(16)?.into_iter().map(|s| (s, None)).collect();
    let PoolScan {
        pages: mut rx,
        shards: mut scans,
        ..
    } = start_pool_scan(reader, shards, 64, &CancellationToken::new()).await?;
    let mut users = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            ShardEvent::Page {
                shard, users: page, ..
            } => {
                for user in &page {
                    anyhow::ensure!(
                        user.id.to_string().starts_with(&shard),
                        "{} listed in shard {shard}",
                        user.id
                    );
                }
                users.extend(page);
            }
            ShardEvent::Restarted { shard } => anyhow::bail!("shard {shard} had a token rejected"),
        }
    }
    while let Some(scan) = scans.join_next().await {
        scan??;
    }
    Ok(users)
}

/// Reads a pool every way the reader can and checks the ways agree with each other.
async fn snapshot(endpoint: &str, pool_id: &str) -> anyhow::Result<Snapshot> {
    let sdk = testbed::sdk_config(endpoint).await;
    let reader = CognitoReader::new(&sdk, pool_id, fast());
    let summary = reader.describe_pool().await?;
    anyhow::ensure!(summary.id == pool_id, "DescribeUserPool id {}", summary.id);

    let users = backfill_read(&reader).await?;
    let subs: BTreeSet<_> = users.iter().map(|u| u.id).collect();
    anyhow::ensure!(subs.len() == users.len(), "every user listed once");
    let mut listed = BTreeMap::new();
    for user in &users {
        let by_sub = reader
            .user_by_sub(user.id)
            .await?
            .with_context(|| format!("user_by_sub {}", user.id))?;
        let by_username = reader
            .user_by_username(&user.username)
            .await?
            .with_context(|| format!("user_by_username {}", user.username))?;
        for (how, single) in [("by sub", &by_sub), ("by username", &by_username)] {
            anyhow::ensure!(
                single.id == user.id && normalised(single)? == normalised(user)?,
                "{} read {how} differs from the listing: {single:?} vs {user:?}",
                user.username
            );
        }
        listed.insert(user.username.clone(), normalised(user)?);
    }
    anyhow::ensure!(
        reader.user_by_username("nobody-at-all").await?.is_none(),
        "a missing username is None"
    );
    anyhow::ensure!(
        reader.user_by_sub(uuid::Uuid::new_v4()).await?.is_none(),
        "a missing sub is None"
    );
    anyhow::ensure!(
        matches!(
            reader.group_member_subs("no-such-group").await,
            Err(CognitoError::GroupNotFound { .. })
        ),
        "a missing group is GroupNotFound"
    );
    let missing = CognitoReader::new(&sdk, "us-east-1_Missing00", fast());
    anyhow::ensure!(
        matches!(
            missing.describe_pool().await,
            Err(CognitoError::PoolNotFound { .. })
        ),
        "a missing pool is PoolNotFound"
    );

    // Cognito does not promise an order of ListGroups (moto keeps creation order).
    let mut groups = reader
        .list_groups()
        .await?
        .iter()
        .map(normalised_group)
        .collect::<anyhow::Result<Vec<_>>>()?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Snapshot {
        estimated_users: summary.estimated_users,
        listed,
        groups,
    })
}

/// Creates the population in a pool through the test bed's SDK helpers.
async fn seed(endpoint: &str) -> anyhow::Result<String> {
    let cognito = Cognito::new(&testbed::sdk_config(endpoint).await);
    let pool = create_pool(&cognito, &["tenant".into(), "plan".into()]).await?;
    let target = pool.target(&cognito);
    for group in groups() {
        target.create_group(&group).await?;
    }
    target.create_users(specs()).await?;
    Ok(pool.user_pool_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_the_same_as_moto_through_our_reader() -> anyhow::Result<()> {
    let moto = testbed::moto_endpoint().await?;
    let lite = CognitoLite::start().await?;
    let moto_pool = seed(&moto).await.context("seeding moto")?;
    let lite_pool = seed(lite.endpoint())
        .await
        .context("seeding cognito-lite")?;

    let from_moto = snapshot(&moto, &moto_pool).await.context("reading moto")?;
    let from_lite = snapshot(lite.endpoint(), &lite_pool)
        .await
        .context("reading cognito-lite")?;

    assert_eq!(from_lite.listed.len(), specs().len());
    assert_eq!(
        from_lite.listed.keys().collect::<BTreeSet<_>>(),
        from_moto.listed.keys().collect::<BTreeSet<_>>()
    );
    for (username, seen) in &from_moto.listed {
        assert_eq!(
            from_lite.listed.get(username),
            Some(seen),
            "user {username}"
        );
    }
    assert_eq!(from_lite.groups, from_moto.groups);
    assert_eq!(from_lite.estimated_users, from_moto.estimated_users);
    let statuses: BTreeSet<&str> = from_lite
        .listed
        .values()
        .map(|u| u.status.as_str())
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["CONFIRMED", "FORCE_CHANGE_PASSWORD", "UNCONFIRMED"]),
        "the population covers every status the SDK can create"
    );
    lite.stop().await
}

fn federated(i: usize) -> UserImport {
    let mut user = UserImport::from(
        &UserSpec::new(format!(
            "Google_{:021}",
            100_000_000_000_000_000_000u128 + i as u128
        ))
        .attr("email", format!("fed-{i}@gmail.test"))
        .attr("email_verified", "true")
        .attr(
            "identities",
            json!([{ "providerName": "Google", "providerType": "Google",
                         "userId": format!("{i}"), "primary": "true" }])
            .to_string(),
        ),
    );
    user.status = "EXTERNAL_PROVIDER".into();
    if i % 2 == 0 {
        user.groups.push("customers".into());
    }
    user
}

/// 150 federated users (half of them customers) and one confirmed user.
fn federated_pool() -> PoolImport {
    PoolImport {
        pool_name: "federated".into(),
        custom_attributes: vec!["tenant".into()],
        groups: vec![testbed::GroupImport {
            name: "customers".into(),
            description: None,
            precedence: None,
            role_arn: None,
        }],
        users: (0..150)
            .map(federated)
            .chain([UserImport::from(&UserSpec::numbered(1))])
            .collect(),
    }
}

/// As in Cognito, AdminGetUser and AdminListGroupsForUser accept a local user's `sub` as the
/// username, so the reader reads a local user by `sub` from the UserRead and
/// UserResourceRead quotas alone; a federated user's `sub` is UserNotFound, and the reader
/// falls back to ListUsers `sub = "..."` and reads the groups by the username found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_by_sub_reads_local_users_directly_and_federated_ones_through_the_filter()
-> anyhow::Result<()> {
    let lite = CognitoLite::start().await?;
    let imported: testbed::Imported = reqwest::Client::new()
        .post(format!("{}/__cognito-lite/import", lite.endpoint()))
        .json(&federated_pool())
        .timeout(Duration::from_secs(60))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let sdk = testbed::sdk_config(lite.endpoint()).await;
    let reader = CognitoReader::new(&sdk, &imported.user_pool_id, fast());
    let local_username = UserSpec::numbered(1).username;
    let local = reader
        .user_by_username(&local_username)
        .await?
        .context("the local user by username")?;
    let federated_user = reader
        .user_by_username(&federated(0).username)
        .await?
        .context("a federated user by username")?;
    let before = reader.stats();

    let by_sub = reader
        .user_by_sub(local.id)
        .await?
        .context("the local user by sub")?;
    assert_eq!(
        by_sub,
        UserRecord {
            observed_at: by_sub.observed_at,
            ..local.clone()
        }
    );
    let after_local = reader.stats();
    let calls = |stats: &cognito_hasura_sync::cognito::CallStats| {
        ["AdminGetUser", "AdminListGroupsForUser", "ListUsers"].map(|op| stats.calls_of(op))
    };
    let diff = |a: [u64; 3], b: [u64; 3]| [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    assert_eq!(
        diff(calls(&before), calls(&after_local)),
        [1, 1, 0],
        "one AdminGetUser and one AdminListGroupsForUser by sub, no ListUsers"
    );
    assert_eq!(
        after_local.user_reads.get("admin_get_user_by_sub"),
        Some(&1)
    );

    let by_sub = reader
        .user_by_sub(federated_user.id)
        .await?
        .context("a federated user by sub")?;
    assert_eq!(by_sub.username, federated_user.username);
    assert_eq!(by_sub.status, "EXTERNAL_PROVIDER");
    assert_eq!(by_sub.groups, ["customers"]);
    let after_federated = reader.stats();
    assert_eq!(
        diff(calls(&after_local), calls(&after_federated)),
        [1, 1, 1],
        "AdminGetUser by sub (UserNotFound), ListUsers by filter, groups by username"
    );
    assert_eq!(after_federated.user_reads.get("sub_filter"), Some(&1));
    assert_eq!(after_federated.failures, 0, "UserNotFound is an answer");

    assert_eq!(reader.user_by_sub(uuid::Uuid::new_v4()).await?, None);
    assert_eq!(reader.stats().user_reads.get("sub_filter"), Some(&2));
    lite.stop().await
}

/// Federated users imported over HTTP (as `bench/seed_pool.py --bulk` sends them) are read
/// with their status, and the `backfill` binary mirrors them as they are (moto cannot create
/// them, so this runs against cognito-lite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_users_are_read_and_backfilled_as_they_are() -> anyhow::Result<()> {
    let lite = CognitoLite::start().await?;
    let response = reqwest::Client::new()
        .post(format!("{}/__cognito-lite/import", lite.endpoint()))
        .json(&federated_pool())
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    assert!(response.status().is_success(), "{response:?}");
    let imported: testbed::Imported = response.json().await?;
    assert_eq!((imported.users, imported.groups), (151, 1));

    let sdk = testbed::sdk_config(lite.endpoint()).await;
    let reader = CognitoReader::new(&sdk, &imported.user_pool_id, fast());
    let one = reader
        .user_by_username(&federated(0).username)
        .await?
        .context("a federated user by username")?;
    assert_eq!(one.status, "EXTERNAL_PROVIDER");
    assert_eq!(one.groups, ["customers"]);

    let db = testbed::TestDatabase::create().await?;
    let hasura = testbed::HasuraLite::start(db.url()).await?;
    let command = common::command_for(
        &imported.user_pool_id,
        lite.endpoint(),
        &hasura.endpoint,
        &hasura.admin_secret,
    );
    let summary = common::backfill(command, &[]).await?;
    assert_eq!(common::num(&summary, &["inserted"]), 151, "{summary}");
    let rows = testbed::mirror::users(&db.client().await?, &imported.user_pool_id).await?;
    let (federated, others): (Vec<_>, Vec<_>) =
        rows.iter().partition(|u| u.username.starts_with("Google_"));
    assert_eq!(federated.len(), 150);
    for user in &federated {
        assert_eq!(user.status, "EXTERNAL_PROVIDER", "{}", user.username);
        assert!(user.attributes.get("identities").is_some(), "{user:?}");
        assert!(user.enabled && user.deleted_at.is_none(), "{user:?}");
    }
    let customers = federated
        .iter()
        .filter(|u| u.groups == json!(["customers"]))
        .count();
    assert_eq!(customers, 75);
    assert_eq!(
        others.iter().map(|u| u.status.as_str()).collect::<Vec<_>>(),
        ["CONFIRMED"]
    );
    hasura.stop().await?;
    lite.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_pool_bulk_creates_the_boto3_population() -> anyhow::Result<()> {
    let lite = CognitoLite::start().await?;
    let root = testbed::workspace_root();
    let output = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("bench/seed_pool.py"))
        .args(["--bulk", "--users", "200", "--endpoint", lite.endpoint()])
        .output()
        .await
        .context("running bench/seed_pool.py (needs .venv: ./scripts/test.sh creates it)")?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pool_id = String::from_utf8(output.stdout)?.trim().to_owned();

    let sdk = testbed::sdk_config(lite.endpoint()).await;
    let reader = CognitoReader::new(&sdk, &pool_id, fast());
    let users = backfill_read(&reader).await?;
    assert_eq!(users.len(), 200);
    let in_group = |group: &str| {
        users
            .iter()
            .filter(|u| u.groups.iter().any(|g| g == group))
            .count()
    };
    // seed_pool.py's user_spec: admins every 50th, editors every 5th, readers every 2nd,
    // beta-testers every 7th, disabled every 97th.
    assert_eq!(in_group("admins"), 4);
    assert_eq!(in_group("editors"), 40);
    assert_eq!(in_group("readers"), 100);
    assert_eq!(in_group("beta-testers"), 29);
    assert_eq!(users.iter().filter(|u| !u.enabled).count(), 3);
    let zero = users
        .iter()
        .find(|u| u.username == "user-000000")
        .context("user-000000")?;
    assert_eq!(zero.given_name.as_deref(), Some("Zoë"));
    assert_eq!(
        zero.attributes.get("custom:plan").map(String::as_str),
        Some("free")
    );
    assert_eq!(
        zero.status, "EXTERNAL_PROVIDER",
        "every 13th user is federated"
    );
    let one = users
        .iter()
        .find(|u| u.username == "user-000001")
        .context("user-000001")?;
    assert_eq!(
        one.status, "FORCE_CHANGE_PASSWORD",
        "as AdminCreateUser leaves it"
    );
    assert_eq!(
        users
            .iter()
            .filter(|u| u.status == "EXTERNAL_PROVIDER")
            .count(),
        16
    );
    let groups = reader.list_groups().await?;
    let editors = groups
        .iter()
        .find(|g| g.name == "editors")
        .context("editors")?;
    assert_eq!(editors.description.as_deref(), Some("Éditeurs"));
    assert_eq!(editors.precedence, Some(5));
    lite.stop().await
}

/// Sends a request that must fail and checks the SDK raised Cognito's typed error; returns
/// the error for a look at its message.
macro_rules! typed_error {
    ($request:expr, $error:pat) => {{
        let err = $request
            .send()
            .await
            .expect_err(stringify!($error))
            .into_service_error();
        assert!(matches!(err, $error), "{err:?}");
        err
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_cognitos_typed_errors() -> anyhow::Result<()> {
    let lite = CognitoLite::start().await?;
    let sdk = testbed::sdk_config(lite.endpoint()).await;
    let cognito = Cognito::new(&sdk);
    let pool = create_pool(&cognito, &["tenant".into()]).await?;
    let pool_id = pool.user_pool_id.as_str();
    let target = pool.target(&cognito);
    target.create_group(&GroupSpec::new("staff")).await?;
    target
        .create_users((0..5).map(|i| UserSpec::numbered(i).group("staff")))
        .await?;

    // Limit above 60 on every list operation.
    let err = typed_error!(
        cognito.list_users().user_pool_id(pool_id).limit(61),
        ListUsersError::InvalidParameterException(_)
    );
    assert!(
        err.message()
            .is_some_and(|m| m.contains("less than or equal to 60")),
        "{err:?}"
    );
    typed_error!(
        cognito.list_groups().user_pool_id(pool_id).limit(61),
        ListGroupsError::InvalidParameterException(_)
    );
    typed_error!(
        cognito
            .list_users_in_group()
            .user_pool_id(pool_id)
            .group_name("staff")
            .limit(61),
        ListUsersInGroupError::InvalidParameterException(_)
    );

    // Filters Cognito cannot parse or does not allow.
    for (filter, message) in [
        ("sub ^ \"a\"", "Error while parsing filter."),
        ("email = unquoted", "Error while parsing filter."),
        (
            "custom:tenant = \"tenant-1\"",
            "Invalid search attribute: custom:tenant",
        ),
    ] {
        let err = typed_error!(
            cognito.list_users().user_pool_id(pool_id).filter(filter),
            ListUsersError::InvalidParameterException(_)
        );
        assert_eq!(err.message(), Some(message), "{filter}");
    }

    // Tokens: garbage, and a real token with other parameters.
    let first = cognito
        .list_users()
        .user_pool_id(pool_id)
        .limit(2)
        .send()
        .await?;
    let token = first
        .pagination_token()
        .context("a token after a full page")?;
    for (limit, filter, token) in [
        (2, None, "garbage"),
        (3, None, token),
        (2, Some("status = \"Enabled\""), token),
    ] {
        let err = typed_error!(
            cognito
                .list_users()
                .user_pool_id(pool_id)
                .limit(limit)
                .set_filter(filter.map(str::to_owned))
                .pagination_token(token),
            ListUsersError::InvalidParameterException(_)
        );
        assert!(
            err.message()
                .is_some_and(|m| m.starts_with("Paging marker")),
            "{err:?}"
        );
    }
    let reader = CognitoReader::new(&sdk, pool_id, fast());
    let rejected = reader
        .list_users_page(&Shard::whole(), Some("garbage".into()))
        .await;
    assert!(
        matches!(rejected, Err(CognitoError::PaginationTokenRejected { .. })),
        "{rejected:?}"
    );

    // Missing things, duplicates and attributes outside the schema.
    typed_error!(
        cognito
            .describe_user_pool()
            .user_pool_id("us-east-1_Missing00"),
        DescribeUserPoolError::ResourceNotFoundException(_)
    );
    typed_error!(
        cognito
            .admin_get_user()
            .user_pool_id(pool_id)
            .username("nobody"),
        AdminGetUserError::UserNotFoundException(_)
    );
    typed_error!(
        cognito
            .list_users_in_group()
            .user_pool_id(pool_id)
            .group_name("nope"),
        ListUsersInGroupError::ResourceNotFoundException(_)
    );
    typed_error!(
        cognito
            .create_group()
            .user_pool_id(pool_id)
            .group_name("staff"),
        CreateGroupError::GroupExistsException(_)
    );
    typed_error!(
        cognito
            .admin_create_user()
            .user_pool_id(pool_id)
            .username("user-000001"),
        AdminCreateUserError::UsernameExistsException(_)
    );
    typed_error!(
        cognito
            .admin_create_user()
            .user_pool_id(pool_id)
            .username("new-user")
            .user_attributes(
                AttributeType::builder()
                    .name("custom:undeclared")
                    .value("x")
                    .build()?,
            ),
        AdminCreateUserError::InvalidParameterException(_)
    );
    lite.stop().await
}
