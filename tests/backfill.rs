//! End-to-end backfill against the test bed (moto + PostgreSQL + hasura-lite), running the
//! real binary: exact mirror, quiet second run, Cognito limits, dry run and status, and
//! shards read ahead while the members of groups are listed.

mod common;

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use testbed::{FaultProxy, GroupSpec, TestBed, UserSpec, UserState};

use common::{
    assert_exact_mirror, assert_list_users_calls, backfill, command, groups_by_username, num,
    row_versions, run, slow_cognito,
};

/// Over a thousand users of every kind moto can make, in groups, mirrored exactly; a second
/// run changes no row; every list call stays within Cognito's page limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_mirrors_the_pool_exactly_and_quietly() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    for group in [
        GroupSpec::new("admins")
            .description("Administrators")
            .precedence(1),
        GroupSpec::new("editors").description("Éditeurs — ünïcode"),
        GroupSpec::new("readers").role_arn("arn:aws:iam::123456789012:role/readers"),
    ] {
        bed.create_group(&group).await?;
    }
    let mut specs: Vec<UserSpec> = (0..1_050)
        .map(|i| {
            let spec = UserSpec::numbered(i);
            match i % 10 {
                0 => spec.group("admins").group("readers"),
                1 | 2 => spec.group("editors"),
                3 => spec.group("readers"),
                _ => spec,
            }
        })
        .collect();
    specs.push(
        UserSpec::new("disabled-user")
            .attr("email", "d@example.test")
            .disabled()
            .group("readers"),
    );
    specs.push(
        UserSpec::new("unconfirmed-user")
            .attr("email", "u@example.test")
            .state(UserState::Unconfirmed),
    );
    specs.push(UserSpec::new("fresh-user").state(UserState::ForceChangePassword));
    specs.push(
        UserSpec::new("zoë-ñandú")
            .attr("given_name", "Zoë")
            .attr("family_name", "Ñandú 山田")
            .attr("name", "Zoë Ñandú 山田 🚀")
            .attr("custom:plan", "pro")
            .attr("custom:tenant", "ümlaut"),
    );
    let groups = groups_by_username(&specs);
    bed.create_users(specs).await?;

    // Cognito through the proxy, which rejects Limit > 60 as Cognito does and counts calls.
    let proxy = FaultProxy::start(&bed.aws_endpoint).await?;
    let first = backfill(command(&bed, proxy.url(), &bed.hasura.endpoint), &[]).await?;
    let mirrored = assert_exact_mirror(&bed, &groups).await?;
    assert_eq!(mirrored, 1_054);
    assert_eq!(num(&first, &["users_seen"]), 1_054, "{first}");
    assert_eq!(num(&first, &["inserted"]), 1_054, "{first}");
    assert_eq!(num(&first, &["groups_seen"]), 3, "{first}");
    for op in ["ListUsers", "ListGroups", "ListUsersInGroup"] {
        assert!(proxy.calls(op) > 0, "no {op} call");
        assert_eq!(proxy.rejected(op), 0, "{op} was rejected");
        assert!(
            proxy.max_limit_seen(op).is_some_and(|limit| limit <= 60),
            "{op} Limit {:?}",
            proxy.max_limit_seen(op)
        );
    }
    assert_eq!(
        num(&first, &["cognito", "calls", "ListUsers"]),
        proxy.calls("ListUsers")
    );

    let groups_rows = bed.mirror_groups().await?;
    assert_eq!(groups_rows.len(), 3);
    let editors = groups_rows
        .iter()
        .find(|g| g.name == "editors")
        .expect("editors mirrored");
    assert_eq!(editors.description.as_deref(), Some("Éditeurs — ünïcode"));
    let admins = groups_rows
        .iter()
        .find(|g| g.name == "admins")
        .expect("admins mirrored");
    assert_eq!(admins.precedence, Some(1));

    // A second run: every row stays as it is (same xmin, same synced_at), nothing is upserted.
    let before = row_versions(&bed).await?;
    let second = backfill(command(&bed, proxy.url(), &bed.hasura.endpoint), &[]).await?;
    assert_eq!(
        row_versions(&bed).await?,
        before,
        "the second run rewrote rows"
    );
    assert_eq!(num(&second, &["unchanged"]), 1_054, "{second}");
    assert_eq!(
        num(&second, &["inserted"]) + num(&second, &["updated"]),
        0,
        "{second}"
    );
    assert_eq!(
        num(&second, &["hasura", "requests", "UpsertUsers"]),
        0,
        "{second}"
    );
    assert_eq!(num(&second, &["groups_written"]), 0, "{second}");

    // A dry run sees a change without writing it.
    bed.cognito
        .admin_update_user_attributes()
        .user_pool_id(&bed.pool_id)
        .username("user-000007")
        .user_attributes(
            AttributeType::builder()
                .name("given_name")
                .value("Changed")
                .build()?,
        )
        .send()
        .await?;
    let dry = backfill(
        command(&bed, proxy.url(), &bed.hasura.endpoint),
        &["--dry-run"],
    )
    .await?;
    assert_eq!(num(&dry, &["updated"]), 1, "{dry}");
    assert_eq!(num(&dry, &["unchanged"]), 1_053, "{dry}");
    assert_eq!(row_versions(&bed).await?, before, "the dry run wrote");
    let third = backfill(
        command(&bed, proxy.url(), &bed.hasura.endpoint),
        &["--shards", "1"],
    )
    .await?;
    assert_eq!(num(&third, &["updated"]), 1, "{third}");
    assert_exact_mirror(&bed, &groups).await?;

    // status reports the runs and the counts.
    let mut cmd = command(&bed, proxy.url(), &bed.hasura.endpoint);
    cmd.args(["status", "--json"]);
    let output = run(cmd).await?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(status["live_users"], 1_054);
    assert_eq!(status["live_groups"], 3);
    let runs = status["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "a dry run records no run: {status}");
    assert!(
        runs.iter()
            .all(|r| r["status"] == "succeeded" && r["kind"] == "backfill"),
        "{status}"
    );
    Ok(())
}

/// While the one group's members are listed (slow calls), shards are read ahead on disk,
/// then replayed with their groups: the mirror is exact and each shard's page is read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_read_ahead_while_members_are_listed_are_written_with_their_groups()
-> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let specs: Vec<UserSpec> = (0..150)
        .map(|i| match i % 3 {
            0 => UserSpec::numbered(i),
            _ => UserSpec::numbered(i).group("members"),
        })
        .collect();
    let groups = groups_by_username(&specs);
    bed.create_users(specs).await?;
    let slow = slow_cognito(&bed, Duration::from_millis(300)).await?;
    let summary = backfill(
        command(&bed, slow.url(), &bed.hasura.endpoint),
        &["--shards", "16"],
    )
    .await?;
    assert!(num(&summary, &["pages_read_ahead"]) > 0, "{summary}");
    assert_eq!(num(&summary, &["inserted"]), 150, "{summary}");
    // 150 users in 16 shards: one page each.
    assert_list_users_calls(&slow, 16);
    assert_exact_mirror(&bed, &groups).await?;
    Ok(())
}
