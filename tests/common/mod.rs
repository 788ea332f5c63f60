//! Shared by the integration tests: running the real binary against a test bed, and checking
//! that the mirror holds exactly what Cognito holds.
#![allow(dead_code)] // each test binary uses a different part

pub mod process;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use testbed::TestBed;

pub const BIN: &str = env!("CARGO_BIN_EXE_cognito-hasura-sync");

/// The binary, configured for `bed` through the environment as an operator would, with
/// Cognito reached at `aws_endpoint` (moto, or a proxy in front of it) and Hasura at
/// `hasura_endpoint`. It holds the admin secret but runs as its default Hasura role,
/// `cognito_sync`, so every test runs under that role's permissions in the metadata.
pub fn command(
    bed: &TestBed,
    aws_endpoint: &str,
    hasura_endpoint: &str,
) -> tokio::process::Command {
    command_for(
        &bed.pool_id,
        aws_endpoint,
        hasura_endpoint,
        &bed.hasura.admin_secret,
    )
}

/// [`command`] for any pool and Hasura.
pub fn command_for(
    pool_id: &str,
    aws_endpoint: &str,
    hasura_endpoint: &str,
    admin_secret: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "COGNITO_HASURA_SYNC_CONFIG",
        "HASURA_GRAPHQL_JWT",
        "HASURA_ROLE",
        "HASURA_AUTH",
        "COGNITO_TOKEN_ENDPOINT",
        "COGNITO_CLIENT_ID",
        "COGNITO_CLIENT_SECRET",
        "COGNITO_OAUTH_SCOPES",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT_URL", aws_endpoint)
        .env("AWS_REGION", testbed::AWS_REGION)
        .env("AWS_ACCESS_KEY_ID", testbed::AWS_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", testbed::AWS_SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("COGNITO_USER_POOL_ID", pool_id)
        .env("HASURA_GRAPHQL_ENDPOINT", hasura_endpoint)
        .env("HASURA_GRAPHQL_ADMIN_SECRET", admin_secret)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    cmd
}

/// [`command`] without the admin secret: the binary authenticates as the bed's machine
/// client (`HASURA_AUTH=client-credentials`), as the Terraform module configures the task.
pub fn machine_client_command(bed: &TestBed) -> anyhow::Result<tokio::process::Command> {
    let endpoint = bed
        .token_endpoint
        .as_ref()
        .context("the bed has no machine client (TestBedOptions::machine_client)")?;
    let mut cmd = command(bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env_remove("HASURA_GRAPHQL_ADMIN_SECRET")
        .env("HASURA_AUTH", "client-credentials")
        .env("COGNITO_TOKEN_ENDPOINT", &endpoint.token_url)
        .env("COGNITO_CLIENT_ID", &endpoint.client.client_id)
        .env("COGNITO_CLIENT_SECRET", &endpoint.client.client_secret)
        .env("COGNITO_OAUTH_SCOPES", &endpoint.client.scope);
    Ok(cmd)
}

/// Runs the command to completion (bounded), returning its output.
pub async fn run(mut cmd: tokio::process::Command) -> anyhow::Result<Output> {
    let output = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .context("the binary ran for more than 10 minutes")?
        .context("cannot start the binary")?;
    Ok(output)
}

/// Runs `backfill --json` and returns its summary; fails with the binary's stderr if it failed.
pub async fn backfill(
    mut cmd: tokio::process::Command,
    extra: &[&str],
) -> anyhow::Result<serde_json::Value> {
    cmd.args(["backfill", "--json", "--progress", "never"])
        .args(extra);
    let output = run(cmd).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "backfill failed ({}):\n{stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "backfill printed no JSON summary: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Asserts that the mirror holds exactly the pool's users: same subs, usernames, attributes,
/// status, enabled flag and groups (`groups` by username; absent = none), nothing tombstoned.
pub async fn assert_exact_mirror(
    bed: &TestBed,
    groups: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<usize> {
    let cognito = bed.cognito_users().await?;
    let mirror = bed.mirror_users().await?;
    ensure!(
        cognito.len() == mirror.len(),
        "Cognito has {} users, the mirror {}",
        cognito.len(),
        mirror.len()
    );
    let mirror: BTreeMap<&str, &testbed::MirrorUser> =
        mirror.iter().map(|u| (u.username.as_str(), u)).collect();
    for user in &cognito {
        let username = user
            .username()
            .ok_or_else(|| anyhow!("a Cognito user without a username"))?;
        let row = mirror
            .get(username)
            .ok_or_else(|| anyhow!("{username} is not mirrored"))?;
        let attributes: serde_json::Map<String, serde_json::Value> = user
            .attributes()
            .iter()
            .map(|a| {
                (
                    a.name().to_owned(),
                    serde_json::Value::from(a.value().unwrap_or_default()),
                )
            })
            .collect();
        ensure!(
            row.attributes == serde_json::Value::Object(attributes.clone()),
            "{username}: attributes {} != {:?}",
            row.attributes,
            attributes
        );
        let sub = attributes
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        ensure!(
            row.id.to_string() == sub,
            "{username}: id {} != sub {sub}",
            row.id
        );
        ensure!(
            row.enabled == user.enabled(),
            "{username}: enabled {} != {}",
            row.enabled,
            user.enabled()
        );
        let status = user
            .user_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        ensure!(
            row.status == status,
            "{username}: status {} != {status}",
            row.status
        );
        ensure!(
            row.email.as_deref() == attributes.get("email").and_then(|v| v.as_str()),
            "{username}: email"
        );
        ensure!(
            row.given_name.as_deref() == attributes.get("given_name").and_then(|v| v.as_str()),
            "{username}: given_name"
        );
        ensure!(row.deleted_at.is_none(), "{username} is tombstoned");
        let mut want = groups.get(username).cloned().unwrap_or_default();
        want.sort();
        want.dedup();
        ensure!(
            row.group_names() == want,
            "{username}: groups {:?} != {want:?}",
            row.group_names()
        );
    }
    Ok(cognito.len())
}

/// The mirror's row versions ([`testbed::mirror::row_versions`]).
pub async fn row_versions(bed: &TestBed) -> anyhow::Result<Vec<testbed::mirror::RowVersion>> {
    testbed::mirror::row_versions(&bed.db.client().await?).await
}

/// Waits until `check` holds; fails after `bound` (a generous bound, never a timing
/// assertion).
pub async fn eventually(
    what: &str,
    bound: Duration,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if check().await? {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("timed out after {bound:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JSON number at `path` (e.g. `["cognito", "calls", "ListUsers"]`), 0 when absent.
pub fn num(summary: &serde_json::Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(summary, |v, key| &v[*key])
        .as_u64()
        .unwrap_or(0)
}

/// Runs `status --run ID --json` and returns the run's record; fails with the binary's stderr
/// if it failed.
pub async fn run_record(
    mut cmd: tokio::process::Command,
    id: &str,
) -> anyhow::Result<serde_json::Value> {
    cmd.args(["status", "--run", id, "--json"]);
    let output = run(cmd).await?;
    ensure!(
        output.status.success(),
        "status --run {id} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("status --run printed no JSON record")
}

/// A proxy in front of the bed's Cognito that answers every call `latency` late, and
/// counts the calls.
pub async fn slow_cognito(bed: &TestBed, latency: Duration) -> anyhow::Result<testbed::FaultProxy> {
    testbed::FaultProxy::start_with(
        &bed.aws_endpoint,
        testbed::ProxySettings {
            latency,
            ..testbed::ProxySettings::default()
        },
    )
    .await
}

/// Each spec's groups by username, as [`assert_exact_mirror`] takes them.
pub fn groups_by_username(specs: &[testbed::UserSpec]) -> BTreeMap<String, Vec<String>> {
    specs
        .iter()
        .map(|s| (s.username.clone(), s.groups.clone()))
        .collect()
}

/// Asserts that `proxy` passed exactly `calls` ListUsers requests: one page per shard is
/// read once, whether it was read ahead or not.
pub fn assert_list_users_calls(proxy: &testbed::FaultProxy, calls: u64) {
    let stats = proxy.stats();
    assert_eq!(stats.ops["ListUsers"].calls, calls, "{stats:?}");
}

/// The sync message that names a user of `bed`'s pool by `sub`, as CloudTrail events do.
pub fn sub_event(bed: &TestBed, sub: uuid::Uuid) -> String {
    format!(r#"{{"user_pool_id":"{}","sub":"{sub}"}}"#, bed.pool_id)
}

/// Sends one [`sub_event`] per user to the bed's sync queue.
pub async fn send_sub_events(bed: &TestBed, users: &[testbed::CreatedUser]) -> anyhow::Result<()> {
    for user in users {
        bed.send_event(&sub_event(bed, user.sub)).await?;
    }
    Ok(())
}
