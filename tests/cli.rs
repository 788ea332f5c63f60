//! The binary's behaviour as an operator sees it: `check`, `jwt-secret`, one clear error
//! line with a non-zero exit for each kind of misconfiguration, and running without the
//! admin secret as a Cognito machine client.

mod common;

use std::collections::BTreeMap;
use std::process::Output;

use testbed::{TestBed, TestBedOptions, TokenEndpointOptions, UserSpec};

use common::{BIN, assert_exact_mirror, command, machine_client_command, num, run};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The one `error:` line of a failed run.
fn error_line(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure, got success:\n{}",
        stderr(output)
    );
    let text = stderr(output);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line:\n{text}");
    errors[0].to_owned()
}

/// How many times the run retried a Hasura request, by its log lines.
fn retries(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("retrying hasura request"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfiguration_gives_one_clear_error_and_a_non_zero_exit() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_users([UserSpec::numbered(1)]).await?;

    // Everything right: check passes, every line ok.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.arg("check");
    let output = run(cmd).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "check failed:\n{stdout}\n{}",
        stderr(&output)
    );
    assert!(
        stdout.lines().count() >= 6 && stdout.lines().all(|l| l.starts_with("ok")),
        "{stdout}"
    );
    assert!(
        stdout.contains("UserList 24/s, UserRead 96/s, UserResourceRead 40/s"),
        "check prints the rates in effect:\n{stdout}"
    );

    // Quota settings out of range or naming no category, in every mode.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("SYNC_QUOTA_SHARE", "1.5")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("--quota-share") && line.contains("1.5"),
        "{line}"
    );
    let config = std::env::temp_dir().join(format!("quotas-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&config, "[cognito.quotas]\nUsers = 30\n")?;
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.arg("--config").arg(&config).args([
        "daemon",
        "--listen",
        "127.0.0.1:0",
        "--queue-url",
        &bed.queue_url,
    ]);
    let line = error_line(&run(cmd).await?);
    std::fs::remove_file(&config)?;
    assert!(
        line.contains("\"Users\"") && line.contains("UserResourceRead"),
        "{line}"
    );

    // Wrong admin secret.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("HASURA_GRAPHQL_ADMIN_SECRET", "wrong-secret")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("access-denied") && line.contains("HASURA_GRAPHQL_ADMIN_SECRET"),
        "{line}"
    );
    assert!(!line.contains("wrong-secret"), "the secret leaked: {line}");
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("HASURA_GRAPHQL_ADMIN_SECRET", "wrong-secret")
        .arg("check");
    let output = run(cmd).await?;
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains("hasura access"), "{stdout}");

    // The daemon refuses to start (so a deployment rolls back) on a rejected secret and on a
    // queue that does not exist.
    let daemon = |secret: &str, queue: &str| {
        let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
        cmd.env("HASURA_GRAPHQL_ADMIN_SECRET", secret).args([
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--queue-url",
            queue,
        ]);
        cmd
    };
    let line = error_line(&run(daemon("wrong-secret", &bed.queue_url)).await?);
    assert!(
        line.contains("refuses") && line.contains("HASURA_GRAPHQL_ADMIN_SECRET"),
        "{line}"
    );
    let missing = bed.queue_url.replace("sync", "no-such-queue");
    let line = error_line(&run(daemon(&bed.hasura.admin_secret, &missing)).await?);
    assert!(
        line.contains(&format!("{missing} does not exist"))
            && line.contains("create it, or fix SYNC_SQS_QUEUE_URL"),
        "{line}"
    );
    assert!(!line.contains("Error {"), "the SDK's debug struct: {line}");

    // The role is sent with the admin secret: one without permissions sees no mirror table.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("HASURA_ROLE", "no_such_role")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("validation-failed") && line.contains("HASURA_ROLE"),
        "{line}"
    );
    // `check` as that role blames the role's permissions as much as the migrations, where
    // a role that can select the tables would have seen them.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("HASURA_ROLE", "no_such_role").arg("check");
    let output = run(cmd).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let schema = stdout
        .lines()
        .find(|l| l.contains("hasura schema"))
        .unwrap_or_default();
    assert!(
        !output.status.success()
            && schema.contains("\"no_such_role\" (HASURA_ROLE)")
            && schema.contains("permissions")
            && schema.contains("ADOPTING.md"),
        "{stdout}"
    );

    // A pool that does not exist.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("COGNITO_USER_POOL_ID", "us-east-1_NoSuchPool")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("us-east-1_NoSuchPool")
            && line.contains("does not exist")
            && line.contains("check COGNITO_USER_POOL_ID"),
        "{line}"
    );

    // An AWS region other than the one the pool id names.
    let other_region = if testbed::AWS_REGION == "eu-west-1" {
        "us-east-1"
    } else {
        "eu-west-1"
    };
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("AWS_REGION", other_region)
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains(&format!(
            "{} belongs to region {}",
            bed.pool_id,
            testbed::AWS_REGION
        )) && line.contains(&format!("set AWS_REGION={}", testbed::AWS_REGION)),
        "{line}"
    );

    // Hasura unreachable (a port nobody listens on), retried as HASURA_RETRIES says.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let closed_endpoint = format!("http://{closed}/v1/graphql");
    let mut cmd = command(&bed, &bed.aws_endpoint, &closed_endpoint);
    cmd.env("HASURA_RETRIES", "1")
        .args(["backfill", "--progress", "never"]);
    let output = run(cmd).await?;
    let line = error_line(&output);
    assert!(
        line.contains("cannot reach Hasura") && line.contains(&closed.to_string()),
        "{line}"
    );
    assert_eq!(retries(&stderr(&output)), 1, "{}", stderr(&output));

    // `status` is read-only: it gives up after a couple of quick retries, not the scans'
    // eight; with LOG_FORMAT=json its final error is a JSON record like every other line.
    let mut cmd = command(&bed, &bed.aws_endpoint, &closed_endpoint);
    cmd.env("LOG_FORMAT", "json").arg("status");
    let output = run(cmd).await?;
    assert!(!output.status.success());
    let records = stderr(&output)
        .lines()
        .map(serde_json::from_str::<serde_json::Value>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("a stderr line is not JSON ({e}):\n{}", stderr(&output)))?;
    let last = records.last().expect("status logged nothing");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["message"], "command failed", "{last}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("cannot reach Hasura at {closed_endpoint}")),
        "{last}"
    );
    let retried = records
        .iter()
        .filter(|r| r["message"] == "retrying hasura request")
        .count();
    assert_eq!(retried, 2, "{}", stderr(&output));

    // An endpoint that is not the GraphQL URL: Hasura's root, or a trailing slash.
    let root = bed
        .hasura
        .endpoint
        .trim_end_matches("/v1/graphql")
        .to_owned();
    let mut cmd = command(&bed, &bed.aws_endpoint, &root);
    cmd.arg("status");
    let output = run(cmd).await?;
    let line = error_line(&output);
    assert!(
        line.contains("HTTP 404")
            && line.contains(
                "HASURA_GRAPHQL_ENDPOINT must be the full GraphQL URL, ending in /v1/graphql"
            )
            && line.contains(&format!("did you mean {}?", bed.hasura.endpoint)),
        "{line}"
    );
    assert!(
        stderr(&output).contains("does not end in /v1/graphql"),
        "no warning at start:\n{}",
        stderr(&output)
    );
    let mut cmd = command(
        &bed,
        &bed.aws_endpoint,
        &format!("{}/", bed.hasura.endpoint),
    );
    cmd.arg("check");
    let output = run(cmd).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        failed.len() == 1
            && failed[0].contains("hasura access")
            && failed[0].contains(&format!("did you mean {}?", bed.hasura.endpoint)),
        "{stdout}"
    );

    // Nothing configured at all.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env_remove("COGNITO_USER_POOL_ID").args(["backfill"]);
    let line = error_line(&run(cmd).await?);
    assert!(line.contains("COGNITO_USER_POOL_ID"), "{line}");

    // No row was ever written by the failed runs.
    assert!(bed.mirror_users().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn jwt_secret_needs_no_network_and_no_credentials() -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear().args([
        "jwt-secret",
        "--user-pool-id",
        "eu-west-1_AbC123",
        "--audience",
        "client-1",
    ]);
    let output = run(cmd).await?;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(
        json,
        serde_json::json!({
            "type": "RS256",
            "jwk_url": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json",
            "claims_format": "stringified_json",
            "issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123",
            "audience": "client-1",
        })
    );
    Ok(())
}

/// `HASURA_AUTH=client-credentials`, as the Terraform module runs the task: no admin secret,
/// an access token from the pool's token endpoint (client credentials grant, claims from the
/// real pre token generation handler), the `cognito_sync` role. Tokens live two seconds and
/// the backfill's reads are paced to take longer (16 shards' ListUsers at 2 per second), so it
/// outlives several tokens; the first one is issued already expired, which Hasura refuses:
/// the worker replaces it once and renews the others before they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_client_backfills_without_the_admin_secret() -> anyhow::Result<()> {
    let options = TestBedOptions::default().machine_client(TokenEndpointOptions {
        expires_in: 2,
        stale_tokens: 1,
    });
    let bed = TestBed::start_with(options).await?;
    let specs: Vec<UserSpec> = (1..=40)
        .map(|i| {
            let spec = UserSpec::numbered(i);
            if i % 4 == 0 {
                spec.group("editors")
            } else {
                spec
            }
        })
        .collect();
    let groups = common::groups_by_username(&specs);
    bed.create_users(specs).await?;
    let endpoint = bed.token_endpoint.as_ref().expect("a machine client bed");

    let mut cmd = machine_client_command(&bed)?;
    cmd.args([
        "backfill",
        "--json",
        "--progress",
        "never",
        "--batch-size",
        "5",
    ])
    .args(["--cognito-rps", "2"]);
    let output = run(cmd).await?;
    let log = stderr(&output);
    assert!(output.status.success(), "backfill failed:\n{log}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(num(&summary, &["users_seen"]), 40, "{summary}");
    assert_exact_mirror(&bed, &groups).await?;
    // The stale token was refused, and at most one more: a renewal that a loaded machine
    // delays past a two-second token's expiry. Without renewal ahead of expiry each of the
    // four or more tokens the backfill outlives would be refused.
    let rejected = log.matches("Hasura rejected the access token").count();
    assert!((1..=2).contains(&rejected), "{rejected} rejections:\n{log}");
    // The stale token, the one that replaced it, and renewals.
    let issued_by_backfill = endpoint.issued();
    assert!(
        issued_by_backfill >= 4,
        "{issued_by_backfill} tokens:\n{log}"
    );

    // `check` passes on the machine client's credentials too.
    let mut cmd = machine_client_command(&bed)?;
    cmd.args(["check"]);
    let output = run(cmd).await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().all(|l| l.starts_with("ok")),
        "check failed:\n{stdout}\n{}",
        stderr(&output)
    );

    let issued = endpoint.issued();
    assert!(issued > issued_by_backfill);
    assert_eq!(endpoint.refused(), 0);
    assert!(!log.contains(&endpoint.client.client_secret));

    // A wrong client secret: one error line with the OAuth error, never the secret.
    let mut cmd = machine_client_command(&bed)?;
    cmd.env("COGNITO_CLIENT_SECRET", "wrong-client-secret-value")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("invalid_client") && line.contains("COGNITO_CLIENT_SECRET"),
        "{line}"
    );
    assert!(!line.contains("wrong-client-secret-value"), "{line}");
    assert_eq!(endpoint.refused(), 1);

    // A variable missing: named before anything is sent.
    let mut cmd = machine_client_command(&bed)?;
    cmd.env_remove("COGNITO_TOKEN_ENDPOINT")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(line.contains("COGNITO_TOKEN_ENDPOINT"), "{line}");
    assert_eq!(endpoint.issued(), issued);
    Ok(())
}

/// Without a writable temporary directory a reconcile reads no shard ahead: it says why,
/// once, and the mirror is as exact as with a read-ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_without_a_writable_tmpdir_warns_and_stays_exact() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    let created = bed
        .populate(20, |i| UserSpec::numbered(i).group("members"))
        .await?;
    let groups: BTreeMap<String, Vec<String>> = created
        .iter()
        .map(|u| (u.username.clone(), vec!["members".to_owned()]))
        .collect();
    // Slow calls: the one group's listing leaves time to try a read-ahead.
    let slow = common::slow_cognito(&bed, std::time::Duration::from_millis(200)).await?;
    let mut cmd = command(&bed, slow.url(), &bed.hasura.endpoint);
    cmd.env("TMPDIR", "/nonexistent/chs-tmp")
        .args(["reconcile", "--shards", "16", "--json"]);
    let output = run(cmd).await?;
    let stderr = stderr(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches("no read-ahead: cannot create a temporary file")
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/chs-tmp"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(num(&report, &["pages_read_ahead"]), 0, "{report}");
    assert_eq!(num(&report, &["counters", "inserted"]), 20, "{report}");
    assert_exact_mirror(&bed, &groups).await?;
    Ok(())
}
