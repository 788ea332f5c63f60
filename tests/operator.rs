//! The operator commands through the real binary against the test bed: `sync-user` on a
//! changed, a deleted, a new and an unknown user (and `--dry-run` writing nothing); `redrive`
//! of the messages a Hasura outage sent to the dead-letter queue, after which the daemon
//! applies every one, each once; and `status` showing both queues' depths.

mod common;

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use aws_sdk_sqs::types::MessageAttributeValue;
use common::process::daemon_via;
use common::{command, eventually, row_versions, run};
use serde_json::Value;
use testbed::{FaultProxy, GroupSpec, TestBed, TestBedOptions, UserSpec};
use tokio::io::AsyncWriteExt;

/// How long the daemon may take to move or apply every message.
const BOUND: Duration = Duration::from_secs(180);

/// Runs the binary with `args` against the bed, `stdin` piped in when given.
async fn binary(bed: &TestBed, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    let mut cmd = command(bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.args(args);
    let Some(input) = stdin else {
        return run(cmd).await;
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start the binary")?;
    let mut pipe = child.stdin.take().context("no stdin pipe")?;
    pipe.write_all(input.as_bytes()).await?;
    drop(pipe);
    Ok(child.wait_with_output().await?)
}

/// [`binary`], failing with its stderr unless it succeeded.
async fn succeed(bed: &TestBed, args: &[&str]) -> anyhow::Result<Output> {
    let output = binary(bed, args, None).await?;
    ensure!(
        output.status.success(),
        "{args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(output: &Output) -> anyhow::Result<Value> {
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "no JSON on stdout: {}\nstderr:\n{}",
            stdout(output),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The report's line for `identifier`.
fn line<'a>(report: &'a Value, identifier: &str) -> anyhow::Result<&'a Value> {
    report["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["identifier"] == identifier))
        .with_context(|| format!("no line for {identifier} in {report}"))
}

/// A line's change of `field`.
fn change<'a>(line: &'a Value, field: &str) -> anyhow::Result<&'a Value> {
    line["changes"]
        .as_array()
        .and_then(|changes| changes.iter().find(|c| c["field"] == field))
        .with_context(|| format!("no change of {field} in {line}"))
}

fn changed_fields(line: &Value) -> BTreeSet<String> {
    line["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| c["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// After a backfill, Cognito changes: alice joins a group and gets a new name, bob is
/// deleted, dave is created. `--dry-run` reports exactly that and writes nothing; the real
/// run writes it and says so per user; a second run finds nothing to do; an identifier
/// neither side knows fails the command, also from stdin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_user_writes_what_cognito_says_now_and_dry_run_writes_nothing() -> anyhow::Result<()> {
    let bed = TestBed::start().await?;
    bed.create_group(&GroupSpec::new("editors")).await?;
    bed.create_group(&GroupSpec::new("admins")).await?;
    let users = bed
        .create_users([
            UserSpec::new("alice")
                .attr("given_name", "Alice")
                .group("editors"),
            UserSpec::new("bob"),
            UserSpec::new("carol"),
        ])
        .await?;
    let (alice, bob) = (&users[0], &users[1]);
    common::backfill(command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint), &[]).await?;

    bed.cognito
        .admin_add_user_to_group()
        .user_pool_id(&bed.pool_id)
        .username("alice")
        .group_name("admins")
        .send()
        .await?;
    bed.cognito
        .admin_update_user_attributes()
        .user_pool_id(&bed.pool_id)
        .username("alice")
        .user_attributes(
            AttributeType::builder()
                .name("given_name")
                .value("Alicia")
                .build()?,
        )
        .send()
        .await?;
    bed.cognito
        .admin_delete_user()
        .user_pool_id(&bed.pool_id)
        .username("bob")
        .send()
        .await?;
    let dave = bed.create_users([UserSpec::new("dave")]).await?.remove(0);
    let bob_sub = bob.sub.to_string();
    let alice_sub = alice.sub.to_string();

    // Dry run: every difference, nothing written; the unknown identifier fails the command.
    let before = row_versions(&bed).await?;
    let dry = binary(
        &bed,
        &[
            "sync-user",
            "--dry-run",
            "--json",
            "alice",
            &bob_sub,
            "dave",
            "ghost",
        ],
        None,
    )
    .await?;
    ensure!(
        !dry.status.success(),
        "an unknown user must fail the command"
    );
    let report = json(&dry)?;
    assert_eq!(report["dry_run"], true);
    let alice_line = line(&report, "alice")?;
    assert_eq!(alice_line["outcome"], "updated", "{report}");
    assert_eq!(alice_line["sub"], alice_sub.as_str());
    // Cognito may or may not move UserLastModifiedDate for a group change; nothing else moved.
    let fields = changed_fields(alice_line);
    assert!(
        fields.contains("given_name") && fields.contains("groups"),
        "{alice_line}"
    );
    assert!(
        fields.iter().all(|f| [
            "given_name",
            "attributes.given_name",
            "groups",
            "cognito_updated_at"
        ]
        .contains(&f.as_str())),
        "{alice_line}"
    );
    let groups = change(alice_line, "groups")?;
    assert_eq!(groups["mirror"], serde_json::json!(["editors"]));
    assert_eq!(groups["cognito"], serde_json::json!(["admins", "editors"]));
    assert_eq!(line(&report, &bob_sub)?["outcome"], "tombstoned");
    assert_eq!(line(&report, "dave")?["outcome"], "inserted");
    assert_eq!(line(&report, "ghost")?["outcome"], "not_found");
    let text = stdout(&succeed(&bed, &["sync-user", "--dry-run", "alice"]).await?);
    assert!(
        text.starts_with(&format!("alice: would be updated (sub {alice_sub}): ")),
        "{text}"
    );
    assert!(
        text.contains(r#"groups ["editors"] → ["admins","editors"]"#),
        "{text}"
    );
    assert!(text.ends_with("dry run: nothing was written\n"), "{text}");
    assert_eq!(
        row_versions(&bed).await?,
        before,
        "a dry run wrote to the mirror"
    );

    // The real run writes each change and says what it did.
    let synced = succeed(&bed, &["sync-user", "--json", "alice", &bob_sub, "dave"]).await?;
    let report = json(&synced)?;
    assert_eq!(line(&report, "alice")?["outcome"], "updated");
    assert_eq!(line(&report, &bob_sub)?["outcome"], "tombstoned");
    assert_eq!(line(&report, "dave")?["outcome"], "inserted");
    let mirrored = bed.mirror_user(alice.sub).await?.context("alice")?;
    assert_eq!(mirrored.group_names(), vec!["admins", "editors"]);
    assert_eq!(mirrored.given_name.as_deref(), Some("Alicia"));
    let gone = bed.mirror_user(bob.sub).await?.context("bob's row")?;
    assert!(gone.deleted_at.is_some(), "bob is not tombstoned");
    let new = bed.mirror_user(dave.sub).await?.context("dave")?;
    assert!(new.deleted_at.is_none());
    let carol = bed.mirror_user(users[2].sub).await?.context("carol")?;
    assert!(carol.deleted_at.is_none(), "an unnamed user was touched");

    // The mirror's scope holds here as in every mode: outside it, `admins` would go.
    let scoped = json(
        &succeed(
            &bed,
            &[
                "sync-user",
                "--dry-run",
                "--json",
                "--include-groups",
                "editors",
                "alice",
            ],
        )
        .await?,
    )?;
    let groups = change(line(&scoped, "alice")?, "groups")?;
    assert_eq!(
        groups["cognito"],
        serde_json::json!(["editors"]),
        "{scoped}"
    );

    // Nothing left to do: unchanged, and the tombstone stays (success).
    let again = succeed(&bed, &["sync-user", "alice", &bob_sub]).await?;
    let text = stdout(&again);
    assert!(text.contains("alice: unchanged"), "{text}");
    assert!(text.contains(&format!("{bob_sub}: unchanged")), "{text}");

    // From stdin: the unknown one fails the command, the known one is still synced.
    let piped = binary(
        &bed,
        &["sync-user", "--stdin"],
        Some("# ticket 1\ndave\n\nghost\n"),
    )
    .await?;
    ensure!(
        !piped.status.success(),
        "an unknown user must fail the command"
    );
    let text = stdout(&piped);
    assert!(text.contains("dave: unchanged"), "{text}");
    assert!(text.contains("ghost: not found"), "{text}");
    Ok(())
}

/// Hasura fails every request while the daemon runs: each message is received until the
/// queue's redrive policy moves it to the dead-letter queue. `status` shows the depths.
/// A redrive whose sends fail leaves every message in the dead-letter queue. With Hasura
/// back and the daemon stopped, `redrive` moves every message back, body and attributes
/// intact; a new daemon applies them all, and the mirror holds each user once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_after_a_hasura_outage_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    // Three receives: the outage uses them up quickly, and the peek at the redriven messages
    // (one receive) leaves the daemon a margin before the redrive policy would strike again.
    let bed = TestBed::start_with(TestBedOptions::default().max_receive_count(3)).await?;
    let users = bed.create_users((0..6).map(UserSpec::numbered)).await?;
    let bodies: BTreeSet<String> = users
        .iter()
        .map(|u| common::sub_event(&bed, u.sub))
        .collect();
    for body in &bodies {
        bed.sqs
            .send_message()
            .queue_url(&bed.queue_url)
            .message_body(body)
            .message_attributes(
                "origin",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("operator-test")
                    .build()?,
            )
            .send()
            .await?;
    }

    let proxy = FaultProxy::start(bed.hasura.base_url()).await?;
    proxy.set_fail_fraction(1.0);
    let down = format!("{}/v1/graphql", proxy.url());
    let mut daemon = daemon_via(
        &bed,
        &bed.aws_endpoint,
        "outage",
        "off",
        &["--hasura-endpoint", &down],
    )?;
    eventually(
        "every message in the dead-letter queue",
        BOUND,
        async || {
            daemon.ensure_running()?;
            Ok(
                bed.queue_depth(&bed.dlq_url).await?.0 == bodies.len() as u64
                    && bed.queue_depth(&bed.queue_url).await? == (0, 0),
            )
        },
    )
    .await?;
    daemon.kill().await?;
    assert!(bed.mirror_users().await?.is_empty());
    proxy.set_fail_fraction(0.0);

    // status: the dead-letter queue found through the RedrivePolicy, both depths shown.
    let status = succeed(&bed, &["status", "--json", "--queue-url", &bed.queue_url]).await?;
    let status = json(&status)?;
    assert_eq!(status["queues"]["queue"]["visible"], 0, "{status}");
    assert_eq!(status["queues"]["queue"]["in_flight"], 0, "{status}");
    let dlq = &status["queues"]["dead_letter_queue"];
    assert_eq!(dlq["visible"], bodies.len() as u64, "{status}");
    assert_eq!(dlq["url"], bed.dlq_url.as_str());
    let text = binary(&bed, &["status", "--queue-url", &bed.queue_url], None).await?;
    let shown = stdout(&text);
    assert!(
        shown.contains(&format!(
            "dead-letter queue {}: {} visible, 0 in flight",
            bed.dlq_url,
            bodies.len()
        )),
        "{shown}"
    );
    assert!(shown.contains("ApproximateAgeOfOldestMessage"), "{shown}");
    let mut without_queue = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    without_queue.env_remove("SYNC_SQS_QUEUE_URL").arg("status");
    let plain = stdout(&run(without_queue).await?);
    assert!(
        !plain.contains("dead-letter"),
        "no queue configured: {plain}"
    );

    // A send that fails deletes nothing: every message stays in the dead-letter queue.
    let sqs_failing = FaultProxy::start(&bed.aws_endpoint).await?;
    sqs_failing.set_fail_ops(Some(&["SendMessageBatch"]));
    sqs_failing.set_fail_fraction(1.0);
    let mut cmd = command(&bed, sqs_failing.url(), &bed.hasura.endpoint);
    cmd.args(["redrive", "--queue-url", &bed.queue_url]);
    let refused = run(cmd).await?;
    assert!(!refused.status.success(), "a failed send must fail redrive");
    assert!(sqs_failing.failed("SendMessageBatch") > 0);
    assert_eq!(
        bed.queue_depth(&bed.dlq_url).await?,
        (bodies.len() as u64, 0),
        "messages left the dead-letter queue although their copies were not sent"
    );
    assert_eq!(bed.queue_depth(&bed.queue_url).await?, (0, 0));

    // redrive: everything back in the sync queue, as it was sent.
    let redriven = succeed(&bed, &["redrive", "--json", "--queue-url", &bed.queue_url]).await?;
    let report = json(&redriven)?;
    assert_eq!(report["moved"], bodies.len() as u64, "{report}");
    // moto has no message move tasks.
    assert_eq!(report["method"], "receive_send_delete", "{report}");
    assert_eq!(bed.queue_depth(&bed.dlq_url).await?, (0, 0));
    assert_eq!(
        bed.queue_depth(&bed.queue_url).await?.0,
        bodies.len() as u64
    );
    let peeked = bed
        .sqs
        .receive_message()
        .queue_url(&bed.queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_attribute_names("All")
        .send()
        .await?
        .messages
        .unwrap_or_default();
    // Each message once: no copy sent twice, none left behind.
    let mut redriven: Vec<&str> = peeked.iter().filter_map(|m| m.body()).collect();
    redriven.sort_unstable();
    assert_eq!(
        redriven,
        bodies.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for message in &peeked {
        let origin = message
            .message_attributes()
            .and_then(|a| a.get("origin"))
            .and_then(|v| v.string_value());
        assert_eq!(origin, Some("operator-test"), "attributes lost");
    }

    // A new daemon, Hasura up: every user applied once, both queues drained.
    let mut daemon = daemon_via(&bed, &bed.aws_endpoint, "recovered", "off", &[])?;
    eventually(
        "every user applied and the queues drained",
        BOUND,
        async || {
            daemon.ensure_running()?;
            Ok(bed.mirror_users().await?.len() == users.len()
                && bed.queue_depth(&bed.queue_url).await? == (0, 0))
        },
    )
    .await?;
    daemon.kill().await?;
    let mirrored: BTreeSet<_> = bed.mirror_users().await?.iter().map(|u| u.id).collect();
    let created: BTreeSet<_> = users.iter().map(|u| u.sub).collect();
    assert_eq!(mirrored, created);
    assert_eq!(bed.queue_depth(&bed.dlq_url).await?, (0, 0));

    // Nothing left: a redrive (dead-letter queue named) moves nothing and succeeds.
    let empty = succeed(
        &bed,
        &[
            "redrive",
            "--queue-url",
            &bed.queue_url,
            "--dlq-url",
            &bed.dlq_url,
        ],
    )
    .await?;
    assert!(
        stdout(&empty).starts_with("0 messages moved"),
        "{}",
        stdout(&empty)
    );
    // No queue: the error names the flag.
    let mut cmd = command(&bed, &bed.aws_endpoint, &bed.hasura.endpoint);
    cmd.env_remove("SYNC_SQS_QUEUE_URL").arg("redrive");
    let refused = run(cmd).await?;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--queue-url"), "{stderr}");
    Ok(())
}
