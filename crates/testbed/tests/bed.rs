//! `TestBed::start` gives a working pool, a queue that redrives to its dead-letter queue,
//! a database that is dropped afterwards, and hasura-lite guarded by its admin secret.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserStatusType;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use testbed::{GroupSpec, TestBed, TestBedOptions, TestDatabase, UserSpec, UserState};

#[tokio::test]
async fn populates_a_pool_with_users_in_every_state() {
    let bed = TestBed::start().await.unwrap();

    let pool = bed
        .cognito
        .describe_user_pool()
        .user_pool_id(&bed.pool_id)
        .send()
        .await
        .unwrap();
    let schema: BTreeSet<String> = pool
        .user_pool()
        .map(|p| {
            p.schema_attributes()
                .iter()
                .filter_map(|a| a.name().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        schema.contains("custom:tenant") && schema.contains("custom:plan"),
        "{schema:?}"
    );

    bed.create_group(
        &GroupSpec::new("admins")
            .description("Administrators")
            .precedence(1),
    )
    .await
    .unwrap();
    let mut created = bed.populate(70, UserSpec::numbered).await.unwrap();
    created.extend(
        bed.create_users([
            UserSpec::new("disabled-one")
                .attr("email", "d@example.test")
                .disabled(),
            UserSpec::new("unconfirmed-one")
                .attr("email", "u@example.test")
                .state(UserState::Unconfirmed),
            UserSpec::new("never-signed-in").state(UserState::ForceChangePassword),
            UserSpec::new("boss")
                .attr("custom:plan", "gold")
                .group("admins")
                .group("staff"),
        ])
        .await
        .unwrap(),
    );
    assert_eq!(created.len(), 74);
    assert_eq!(
        created.iter().map(|u| u.sub).collect::<BTreeSet<_>>().len(),
        74,
        "subs are unique"
    );

    let users = bed.cognito_users().await.unwrap();
    assert_eq!(users.len(), 74, "paged through more than one page of 60");
    let find = |name: &str| {
        users
            .iter()
            .find(|u| u.username() == Some(name))
            .expect(name)
    };
    assert_eq!(
        find("user-000001").user_status(),
        Some(&UserStatusType::Confirmed)
    );
    assert!(find("user-000001").enabled());
    assert!(!find("disabled-one").enabled());
    assert_eq!(
        find("unconfirmed-one").user_status(),
        Some(&UserStatusType::Unconfirmed)
    );
    assert_eq!(
        find("never-signed-in").user_status(),
        Some(&UserStatusType::ForceChangePassword)
    );
    let boss_attributes: Vec<(&str, &str)> = find("boss")
        .attributes()
        .iter()
        .filter_map(|a| Some((a.name(), a.value()?)))
        .collect();
    assert!(
        boss_attributes.contains(&("custom:plan", "gold")),
        "{boss_attributes:?}"
    );
    let boss = created.iter().find(|u| u.username == "boss").unwrap();
    assert!(boss_attributes.contains(&("sub", boss.sub.to_string().as_str())));

    let groups = bed
        .cognito
        .list_groups()
        .user_pool_id(&bed.pool_id)
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = groups
        .groups()
        .iter()
        .filter_map(|g| g.group_name())
        .collect();
    names.sort();
    assert_eq!(names, ["admins", "staff"]);
    let admins = bed
        .cognito
        .list_users_in_group()
        .user_pool_id(&bed.pool_id)
        .group_name("admins")
        .send()
        .await
        .unwrap();
    assert_eq!(
        admins
            .users()
            .iter()
            .filter_map(|u| u.username())
            .collect::<Vec<_>>(),
        ["boss"]
    );
}

#[tokio::test]
async fn the_sync_queue_redrives_to_the_dead_letter_queue() {
    let options = TestBedOptions::default()
        .max_receive_count(2)
        .visibility_timeout(Duration::from_secs(5));
    let bed = TestBed::start_with(options).await.unwrap();

    let attributes = bed
        .sqs
        .get_queue_attributes()
        .queue_url(&bed.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .map(String::as_str),
        Some("5")
    );
    let policy: Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(policy["maxReceiveCount"], json!(2));
    assert!(
        policy["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(bed.dlq_url.rsplit('/').next().unwrap())
    );

    bed.send_event("poison").await.unwrap();
    // Receive without deleting, making the message visible again at once, until SQS
    // moves it: after two receives the third attempt finds it in the dead-letter queue.
    let mut receives = 0;
    for _ in 0..5 {
        let batch = bed
            .sqs
            .receive_message()
            .queue_url(&bed.queue_url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        if batch.messages().is_empty() {
            break;
        }
        receives += 1;
    }
    assert_eq!(receives, 2);
    assert_eq!(bed.queue_depth(&bed.queue_url).await.unwrap(), (0, 0));
    let dead = bed
        .sqs
        .receive_message()
        .queue_url(&bed.dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        dead.messages()
            .iter()
            .filter_map(|m| m.body())
            .collect::<Vec<_>>(),
        ["poison"]
    );
}

#[tokio::test]
async fn hasura_lite_answers_with_the_admin_secret_only_and_writes_the_mirror() {
    let bed = TestBed::start().await.unwrap();

    let anonymous: Value = reqwest::Client::new()
        .post(&bed.hasura.endpoint)
        .json(&json!({ "query": "{ cognito_users { id } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        anonymous.get("errors").is_some(),
        "no secret, no data: {anonymous}"
    );
    assert!(anonymous.get("data").is_none(), "{anonymous}");

    let sub = uuid::Uuid::new_v4();
    let inserted = bed
        .hasura
        .graphql_data(
            "mutation($o: [cognito_users_insert_input!]!) { insert_cognito_users(objects: $o) { affected_rows } }",
            json!({ "o": [{
                "id": sub, "user_pool_id": bed.pool_id, "username": "alice", "status": "CONFIRMED",
                "email": "alice@example.test", "groups": ["admins"],
                "observed_at": "2026-01-01T00:00:00Z", "content_hash": "h1"
            }] }),
        )
        .await
        .unwrap();
    assert_eq!(inserted["insert_cognito_users"]["affected_rows"], 1);

    let mirrored = bed.mirror_users().await.unwrap();
    assert_eq!(mirrored.len(), 1);
    assert_eq!(
        (mirrored[0].id, mirrored[0].username.as_str()),
        (sub, "alice")
    );
    assert_eq!(mirrored[0].group_names(), ["admins"]);
    assert_eq!(mirrored[0].email.as_deref(), Some("alice@example.test"));
    assert_eq!(
        bed.mirror_user(sub).await.unwrap().map(|u| u.content_hash),
        Some("h1".into())
    );
    assert!(bed.mirror_groups().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_test_database_is_dropped_with_its_value() {
    let db = TestDatabase::with_migrations().await.unwrap();
    let name = db.name().to_string();
    let client = db.client().await.unwrap();
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'cognito_%'", &[])
        .await
        .unwrap()
        .get(0);
    // users, groups, runs, leases and early reconcile requests
    assert_eq!(tables, 5);
    drop(db);

    let admin = TestDatabase::create().await.unwrap();
    let left: i64 = admin
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "{name} is gone");
}

#[tokio::test]
async fn another_pool_is_separate_from_the_bed_pool() {
    let bed = TestBed::start().await.unwrap();
    let other = bed.create_other_pool().await.unwrap();
    assert_ne!(other.user_pool_id, bed.pool_id);
    other
        .target(&bed.cognito)
        .create_users([UserSpec::new("elsewhere").state(UserState::Unconfirmed)])
        .await
        .unwrap();
    bed.create_users([UserSpec::new("here")]).await.unwrap();
    let here: Vec<String> = bed
        .cognito_users()
        .await
        .unwrap()
        .iter()
        .filter_map(|u| u.username().map(String::from))
        .collect();
    assert_eq!(here, ["here"]);
}
