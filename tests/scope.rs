//! What the mirror holds (`--exclude-attributes`, `--include-groups`) and what each run
//! records, through the real binary against moto and hasura-lite, on one bed:
//!
//! 1. a backfill of everything, and its run record (`status --run`);
//! 2. the scope narrowed: `reconcile --dry-run --json` names each user's change and the
//!    changed fields, never a value, and writes nothing;
//! 3. the reconcile then rewrites exactly the users whose mirrored content changes (scrubbing
//!    the excluded attributes and groups), inserts and tombstones, and records its counts;
//! 4. the daemon applies an event within the same scope;
//! 5. bad scope settings and unknown run ids fail clearly; `check` prints the scope.
//!
//! `sync-user` builds its reader like every other mode (`commands::cognito_reader`, which
//! applies the scope); the daemon's event path stands for the single-user reads here.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use serde_json::{Value, json};
use testbed::{TestBed, UserSpec};

use common::process::daemon_via;
use common::{command, num, row_versions};

/// The attributes left out: a standard one with a column, and a custom one.
const EXCLUDED: &str = "phone_number,custom:plan";
/// The groups kept (`beta` is not).
const INCLUDED: &str = "admins,staff";

/// The binary for the bed, straight to moto.
fn binary(bed: &TestBed) -> tokio::process::Command {
    command(bed, &bed.aws_endpoint, &bed.hasura.endpoint)
}

/// The binary with the narrowed scope, set through the environment as an operator would.
fn scoped(bed: &TestBed) -> tokio::process::Command {
    let mut cmd = binary(bed);
    cmd.env("SYNC_EXCLUDE_ATTRIBUTES", EXCLUDED)
        .env("SYNC_INCLUDE_GROUPS", INCLUDED);
    cmd
}

/// Runs `cmd` with `args`, which must succeed; its stdout.
async fn succeed(mut cmd: tokio::process::Command, args: &[&str]) -> anyhow::Result<String> {
    cmd.args(args);
    let output = common::run(cmd).await?;
    ensure!(
        output.status.success(),
        "{args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs `cmd` with `args`, which must fail; its stderr.
async fn fail(mut cmd: tokio::process::Command, args: &[&str]) -> anyhow::Result<String> {
    cmd.args(args);
    let output = common::run(cmd).await?;
    ensure!(!output.status.success(), "{args:?} succeeded");
    Ok(String::from_utf8(output.stderr)?)
}

/// Fails unless no mirrored row holds an excluded attribute, in its column or `attributes`.
async fn assert_nothing_excluded(bed: &TestBed) -> anyhow::Result<()> {
    for row in bed.mirror_users().await? {
        ensure!(
            row.phone_number.is_none()
                && row.attributes.get("phone_number").is_none()
                && row.attributes.get("custom:plan").is_none(),
            "{} holds an excluded attribute: {:?} {}",
            row.username,
            row.phone_number,
            row.attributes
        );
    }
    Ok(())
}

/// The ids whose row version differs between `before` and `after` (added rows included).
fn rewritten(
    before: &[testbed::mirror::RowVersion],
    after: &[testbed::mirror::RowVersion],
) -> BTreeSet<uuid::Uuid> {
    let old: BTreeMap<_, _> = before.iter().map(|(id, xmin, _)| (*id, xmin)).collect();
    after
        .iter()
        .filter(|(id, xmin, _)| old.get(id) != Some(&xmin))
        .map(|(id, _, _)| *id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_holds_in_every_mode_and_each_run_records_what_it_did() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    // Users 0-3 have a phone number, 4-5 a plan, 6 is in `beta` only; 0 and 7 are admins,
    // 8 is staff; 9-11 have nothing excluded.
    let specs = (0..12).map(|i| {
        let spec = UserSpec::numbered(i);
        let spec = match i {
            0..4 => spec.attr("phone_number", format!("+1555010{i:04}")),
            4..6 => spec.attr("custom:plan", "gold"),
            _ => spec,
        };
        match i {
            0 | 7 => spec.group("admins"),
            8 => spec.group("staff"),
            6 => spec.group("beta"),
            _ => spec,
        }
    });
    let users = bed.create_users(specs).await?;

    // 1. Everything is mirrored by default; the backfill's run records what it did.
    let full = common::backfill(binary(&bed), &[]).await?;
    ensure!(num(&full, &["inserted"]) == 12, "{full}");
    let backfill_id = full["run_id"].as_str().context("no run id")?;
    let record = common::run_record(binary(&bed), backfill_id).await?;
    ensure!(
        record["kind"] == "backfill"
            && record["status"] == "succeeded"
            && record["counters"]["inserted"] == 12
            && record["counters"]["skipped_bad_data"] == 0,
        "{record}"
    );
    let text = succeed(binary(&bed), &["status", "--run", backfill_id]).await?;
    ensure!(
        text.contains(backfill_id) && text.contains("inserted") && text.contains("12"),
        "{text}"
    );
    ensure!(
        bed.mirror_user(users[0].sub)
            .await?
            .and_then(|u| u.phone_number)
            .is_some(),
        "the phone number is mirrored before the scope changes"
    );

    // Meanwhile in Cognito: one user is new (with a phone number), one is gone.
    let fresh = bed
        .pool()
        .create_user(UserSpec::numbered(20).attr("phone_number", "+15550109999"))
        .await?;
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username(&users[11].username)
        .send()
        .await?;
    let before = row_versions(&bed).await?;

    // 2. The dry run names each user's change and the changed fields, never a value.
    let dry = succeed(scoped(&bed), &["reconcile", "--dry-run", "--json"]).await?;
    let lines: Vec<Value> = dry
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("a line that is not JSON:\n{dry}"))?;
    let (summary, planned) = lines.split_last().context("no output")?;
    ensure!(summary["result"] == "dry_run", "last line: {summary}");
    // The fields of the 7 users that differ are read in one batch; nothing else is, and the
    // group left out is not even listed.
    ensure!(
        num(summary, &["hasura", "requests", "ReconcileMirroredUsers"]) == 1
            && num(summary, &["cognito", "calls", "ListUsersInGroup"]) == 2,
        "{summary}"
    );
    let planned: BTreeMap<&str, (&str, Vec<&str>)> = planned
        .iter()
        .map(|line| {
            let changed = line["changed"].as_array().into_iter().flatten();
            (
                line["username"].as_str().unwrap_or_default(),
                (
                    line["kind"].as_str().unwrap_or_default(),
                    changed.filter_map(Value::as_str).collect(),
                ),
            )
        })
        .collect();
    let phone = vec!["attributes.phone_number", "phone_number"];
    let want = BTreeMap::from([
        ("user-000000", ("update", phone.clone())),
        ("user-000001", ("update", phone.clone())),
        ("user-000002", ("update", phone.clone())),
        ("user-000003", ("update", phone)),
        ("user-000004", ("update", vec!["attributes.custom:plan"])),
        ("user-000005", ("update", vec!["attributes.custom:plan"])),
        ("user-000006", ("update", vec!["groups"])),
        ("user-000011", ("tombstone", vec!["deleted_at"])),
    ]);
    for (username, change) in &want {
        ensure!(
            planned.get(username) == Some(change),
            "{username}: planned {:?}, expected {change:?}\n{dry}",
            planned.get(username)
        );
    }
    let (kind, inserted) = planned.get("user-000020").context("no insert planned")?;
    ensure!(
        *kind == "insert" && inserted.contains(&"email") && !inserted.contains(&"phone_number"),
        "{kind} {inserted:?}"
    );
    ensure!(planned.len() == want.len() + 1, "{dry}");
    for value in ["+1555", "gold", "example.test", "beta", "Given"] {
        ensure!(
            !dry.contains(value),
            "the dry run shows a value ({value}):\n{dry}"
        );
    }
    ensure!(row_versions(&bed).await? == before, "the dry run wrote");

    // 3. The reconcile rewrites exactly the users whose mirrored content changes.
    let report: Value =
        serde_json::from_str(&succeed(scoped(&bed), &["reconcile", "--json"]).await?)?;
    let counters = &report["counters"];
    ensure!(
        counters["inserted"] == 1
            && counters["updated"] == 7
            && counters["tombstoned"] == 1
            && counters["unchanged"] == 4
            && counters["skipped_bad_data"] == 0
            && counters["groups_tombstoned"] == 1,
        "{report}"
    );
    let mut expected: BTreeSet<uuid::Uuid> = users[..7].iter().map(|u| u.sub).collect();
    expected.extend([users[11].sub, fresh.sub]);
    let after = row_versions(&bed).await?;
    ensure!(
        rewritten(&before, &after) == expected,
        "rewritten {:?}, expected {expected:?}",
        rewritten(&before, &after)
    );
    assert_nothing_excluded(&bed).await?;
    let six = bed.mirror_user(users[6].sub).await?.context("user 6")?;
    ensure!(six.group_names().is_empty(), "{:?}", six.group_names());
    let live: BTreeSet<String> = bed
        .mirror_groups()
        .await?
        .into_iter()
        .filter(|g| g.deleted_at.is_none())
        .map(|g| g.name)
        .collect();
    ensure!(
        live == BTreeSet::from(["admins".into(), "staff".into()]),
        "{live:?}"
    );
    let reconcile_id = report["run_id"].as_str().context("no run id")?;
    let record = common::run_record(binary(&bed), reconcile_id).await?;
    for kind in [
        "inserted",
        "updated",
        "tombstoned",
        "unchanged",
        "skipped_bad_data",
    ] {
        ensure!(
            record["counters"][kind] == counters[kind],
            "{kind}: {record} != {report}"
        );
    }
    // Nothing left to do in this scope.
    let again: Value =
        serde_json::from_str(&succeed(scoped(&bed), &["reconcile", "--json"]).await?)?;
    ensure!(
        num(&again, &["counters", "unchanged"]) == 12 && num(&again, &["counters", "updated"]) == 0,
        "{again}"
    );

    // 4. The daemon applies an event within the same scope (flags this time).
    bed.cognito
        .admin_update_user_attributes()
        .user_pool_id(&bed.pool_id)
        .username(&users[9].username)
        .user_attributes(
            AttributeType::builder()
                .name("given_name")
                .value("Renamed")
                .build()?,
        )
        .user_attributes(
            AttributeType::builder()
                .name("phone_number")
                .value("+15550108888")
                .build()?,
        )
        .send()
        .await?;
    for group in ["beta", "admins"] {
        bed.cognito
            .admin_add_user_to_group()
            .user_pool_id(&bed.pool_id)
            .username(&users[9].username)
            .group_name(group)
            .send()
            .await?;
    }
    let event = json!({ "user_pool_id": bed.pool_id, "sub": users[9].sub, "reason": "scope" });
    bed.send_event(&event.to_string()).await?;
    let mut daemon = daemon_via(
        &bed,
        &bed.aws_endpoint,
        "scope-daemon",
        "off",
        &[
            "--exclude-attributes",
            EXCLUDED,
            "--include-groups",
            INCLUDED,
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        daemon.ensure_running()?;
        let row = bed.mirror_user(users[9].sub).await?.context("user 9")?;
        if row.given_name.as_deref() == Some("Renamed") {
            break row;
        }
        if Instant::now() > deadline {
            bail!("the event was not applied:\n{}", daemon.tail());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon.kill().await?;
    ensure!(row.group_names() == ["admins"], "{:?}", row.group_names());
    assert_nothing_excluded(&bed).await?;

    // 5. Clear errors, and `check` shows the scope.
    let stderr = fail(
        binary(&bed),
        &[
            "backfill",
            "--exclude-attributes",
            "email,sub",
            "--progress",
            "never",
        ],
    )
    .await?;
    ensure!(stderr.contains("\"sub\" cannot be excluded"), "{stderr}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let stderr = fail(binary(&bed), &["status", "--run", &unknown]).await?;
    ensure!(
        stderr.contains(&format!("has no run {unknown}")),
        "{stderr}"
    );
    let check = succeed(scoped(&bed), &["check"]).await?;
    ensure!(
        check.contains(
            "every attribute except custom:plan, phone_number; only the groups admins, staff"
        ),
        "{check}"
    );
    Ok(())
}
