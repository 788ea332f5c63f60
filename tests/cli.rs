//! The binary's behaviour as an operator sees it: `check`, `jwt-secret`, and one clear error
//! line with a non-zero exit for each kind of misconfiguration.

mod common;

use std::process::Output;

use testbed::{TestBed, UserSpec};

use common::{BIN, command, run};

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
