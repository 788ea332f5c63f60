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
        line.contains("does not exist") && line.contains("SYNC_SQS_QUEUE_URL"),
        "{line}"
    );

    // A pool that does not exist.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env("COGNITO_USER_POOL_ID", "us-east-1_NoSuchPool")
        .args(["backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("us-east-1_NoSuchPool") && line.contains("does not exist"),
        "{line}"
    );

    // Hasura unreachable (a port nobody listens on), retried once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut cmd = command(
        &bed,
        &bed.aws_endpoint,
        &format!("http://{closed}/v1/graphql"),
    );
    cmd.args(["--hasura-retries", "1", "backfill", "--progress", "never"]);
    let line = error_line(&run(cmd).await?);
    assert!(
        line.contains("cannot reach Hasura") && line.contains(&closed.to_string()),
        "{line}"
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
