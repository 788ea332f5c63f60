//! The fault proxy against the real emulators and the real AWS SDK: it forwards and counts,
//! and its injected Cognito errors reach the SDK as the typed errors real Cognito produces.

use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::Client as Cognito;
use aws_sdk_cognitoidentityprovider::config::retry::RetryConfig;
use aws_sdk_cognitoidentityprovider::operation::list_groups::ListGroupsError;
use aws_sdk_cognitoidentityprovider::operation::list_users::ListUsersError;
use aws_sdk_cognitoidentityprovider::operation::list_users_in_group::ListUsersInGroupError;
use serde_json::{Value, json};
use testbed::{FailPoint, FaultProxy, HasuraLite, TestDatabase, UserSpec};

/// A fresh pool on the shared moto with a group holding three users.
struct Pool {
    moto: String,
    direct: Cognito,
    pool_id: String,
}

const GROUP: &str = "staff";

async fn pool() -> Pool {
    let moto = testbed::moto_endpoint().await.expect("moto starts");
    let direct = Cognito::new(&testbed::sdk_config(&moto).await);
    let created = testbed::pool::create_pool(&direct, &[])
        .await
        .expect("a pool");
    let target = created.target(&direct);
    target
        .create_users((0..3).map(|i| UserSpec::numbered(i).group(GROUP)))
        .await
        .expect("users are created");
    let pool_id = created.user_pool_id.clone();
    Pool {
        moto,
        direct,
        pool_id,
    }
}

/// A Cognito client through `proxy` that surfaces the first error (no SDK retries).
async fn cognito_via(proxy: &FaultProxy) -> Cognito {
    let sdk = testbed::sdk_config(proxy.url()).await;
    Cognito::from_conf(
        aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

#[tokio::test]
async fn forwards_and_counts_per_operation() {
    let pool = pool().await;
    let proxy = FaultProxy::start(&pool.moto).await.unwrap();
    let cognito = cognito_via(&proxy).await;

    for _ in 0..3 {
        let users = cognito
            .list_users()
            .user_pool_id(&pool.pool_id)
            .limit(60)
            .send()
            .await
            .unwrap();
        assert_eq!(users.users().len(), 3);
    }
    cognito
        .describe_user_pool()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap();

    assert_eq!(proxy.calls("ListUsers"), 3);
    assert_eq!(proxy.forwarded("ListUsers"), 3);
    assert_eq!(proxy.max_limit_seen("ListUsers"), Some(60));
    assert_eq!(proxy.calls("DescribeUserPool"), 1);
    assert_eq!(proxy.max_limit_seen("DescribeUserPool"), None);
    assert_eq!(proxy.stats().total.calls, 4);

    proxy.reset_counts();
    assert_eq!(proxy.calls("ListUsers"), 0);
    assert_eq!(proxy.stats().total.calls, 0);
}

#[tokio::test]
async fn counts_sqs_json_protocol_operations() {
    let moto = testbed::moto_endpoint().await.unwrap();
    let proxy = FaultProxy::start(&moto).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&testbed::sdk_config(proxy.url()).await);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("proxy-{}", testbed::unique_suffix()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("hello")
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1);
    assert_eq!(received.messages()[0].body(), Some("hello"));

    assert_eq!(proxy.calls("CreateQueue"), 1);
    assert_eq!(proxy.calls("SendMessage"), 1);
    assert_eq!(proxy.calls("ReceiveMessage"), 1);
}

#[tokio::test]
async fn limit_above_60_is_the_sdk_visible_invalid_parameter_exception() {
    let pool = pool().await;
    let proxy = FaultProxy::start(&pool.moto).await.unwrap();
    let cognito = cognito_via(&proxy).await;

    // moto itself accepts any Limit; the proxy is what enforces Cognito's maximum.
    let direct = pool
        .direct
        .list_users()
        .user_pool_id(&pool.pool_id)
        .limit(61)
        .send()
        .await;
    assert!(direct.is_ok(), "moto accepts Limit 61: {direct:?}");

    let err = cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .limit(61)
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        ListUsersError::InvalidParameterException(e) => assert_eq!(
            e.message(),
            Some(
                "1 validation error detected: Value '61' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 60"
            )
        ),
        other => panic!("expected InvalidParameterException, got {other:?}"),
    }
    let err = cognito
        .list_users_in_group()
        .user_pool_id(&pool.pool_id)
        .group_name(GROUP)
        .limit(100)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListUsersInGroupError::InvalidParameterException(_)
    ));
    let err = cognito
        .list_groups()
        .user_pool_id(&pool.pool_id)
        .limit(61)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ListGroupsError::InvalidParameterException(_)
    ));

    let in_group = cognito
        .list_users_in_group()
        .user_pool_id(&pool.pool_id)
        .group_name(GROUP)
        .limit(60)
        .send()
        .await
        .unwrap();
    assert_eq!(in_group.users().len(), 3);

    assert_eq!(proxy.rejected("ListUsers"), 1);
    assert_eq!(proxy.forwarded("ListUsers"), 0);
    assert_eq!(proxy.max_limit_seen("ListUsers"), Some(61));
    assert_eq!(proxy.rejected("ListUsersInGroup"), 1);
    assert_eq!(proxy.forwarded("ListUsersInGroup"), 1);
    assert_eq!(proxy.max_limit_seen("ListUsersInGroup"), Some(100));
    assert_eq!(proxy.rejected("ListGroups"), 1);

    proxy.set_enforce_limits(false);
    cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .limit(61)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn quota_is_the_sdk_visible_too_many_requests_exception() {
    let pool = pool().await;
    let proxy = FaultProxy::start(&pool.moto).await.unwrap();
    let cognito = cognito_via(&proxy).await;
    // One request of burst, then a refill far slower than the test: the second call is
    // throttled however slow the machine is.
    proxy.set_shared_quota(&["ListUsers", "ListUsersInGroup"], 0.01);

    cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap();
    let err = cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        ListUsersError::TooManyRequestsException(e) => {
            assert_eq!(e.message(), Some("Rate exceeded"))
        }
        other => panic!("expected TooManyRequestsException, got {other:?}"),
    }
    let err = cognito
        .list_users_in_group()
        .user_pool_id(&pool.pool_id)
        .group_name(GROUP)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.into_service_error(),
            ListUsersInGroupError::TooManyRequestsException(_)
        ),
        "the shared bucket is empty"
    );
    // Other operations are not limited.
    cognito
        .list_groups()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap();

    assert_eq!(proxy.throttled("ListUsers"), 1);
    assert_eq!(proxy.forwarded("ListUsers"), 1);
    assert_eq!(proxy.throttled("ListUsersInGroup"), 1);
    assert_eq!(proxy.throttled("ListGroups"), 0);

    proxy.clear_quota("ListUsers");
    cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn fails_a_seeded_fraction_with_500() {
    let pool = pool().await;
    let proxy = FaultProxy::start(&pool.moto).await.unwrap();
    let cognito = cognito_via(&proxy).await;

    proxy.set_fail_fraction(1.0);
    let err = cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(matches!(
        err.into_service_error(),
        ListUsersError::InternalErrorException(_)
    ));
    assert_eq!(
        (proxy.failed("ListUsers"), proxy.forwarded("ListUsers")),
        (1, 0)
    );

    proxy.set_fail_fraction(0.5);
    let first = seeded_outcomes(&proxy, &cognito, &pool.pool_id).await;
    let second = seeded_outcomes(&proxy, &cognito, &pool.pool_id).await;
    assert_eq!(first, second, "the same seed fails the same calls");
    let failures = first.iter().filter(|ok| !**ok).count();
    assert!(
        failures > 0 && failures < 40,
        "{failures} of 40 failed at fraction 0.5"
    );
    let stats = proxy.op_stats("DescribeUserPool");
    assert_eq!(stats.failed as usize, 2 * failures);
    assert_eq!(stats.failed + stats.forwarded, 80);

    // Only the named operations fail.
    proxy.set_fail_fraction(1.0);
    proxy.set_fail_ops(Some(&["ListGroups"]));
    cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap();
    assert!(
        cognito
            .list_groups()
            .user_pool_id(&pool.pool_id)
            .send()
            .await
            .is_err()
    );

    // Only requests whose body contains the text fail.
    proxy.set_fail_ops(None);
    proxy.set_fail_matching(Some("text no request carries"));
    let groups = cognito
        .list_groups()
        .user_pool_id(&pool.pool_id)
        .send()
        .await;
    assert!(groups.is_ok(), "{groups:?}");
    proxy.set_fail_matching(Some(&pool.pool_id));
    let groups = cognito
        .list_groups()
        .user_pool_id(&pool.pool_id)
        .send()
        .await;
    assert!(groups.is_err(), "{groups:?}");
}

/// Whether each of 40 calls succeeded, with the failure dice seeded the same way.
async fn seeded_outcomes(proxy: &FaultProxy, cognito: &Cognito, pool_id: &str) -> Vec<bool> {
    proxy.set_fail_seed(7);
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        outcomes.push(
            cognito
                .describe_user_pool()
                .user_pool_id(pool_id)
                .send()
                .await
                .is_ok(),
        );
    }
    outcomes
}

#[tokio::test]
async fn a_failure_after_the_upstream_keeps_the_effect() {
    let pool = pool().await;
    let proxy = FaultProxy::start(&pool.moto).await.unwrap();
    let cognito = cognito_via(&proxy).await;
    proxy.set_fail_fraction(1.0);
    proxy.set_fail_point(FailPoint::AfterUpstream);

    let result = cognito
        .create_group()
        .user_pool_id(&pool.pool_id)
        .group_name("made-anyway")
        .send()
        .await;
    assert!(result.is_err(), "the caller sees a failure");
    let group = pool
        .direct
        .get_group()
        .user_pool_id(&pool.pool_id)
        .group_name("made-anyway")
        .send()
        .await
        .expect("the group was created upstream");
    assert_eq!(
        group.group().and_then(|g| g.group_name()),
        Some("made-anyway")
    );
    assert_eq!(
        (proxy.failed("CreateGroup"), proxy.forwarded("CreateGroup")),
        (1, 1)
    );
}

#[tokio::test]
async fn adds_latency() {
    let pool = pool().await;
    let proxy = FaultProxy::start(&pool.moto).await.unwrap();
    let cognito = cognito_via(&proxy).await;
    proxy.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    cognito
        .list_users()
        .user_pool_id(&pool.pool_id)
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let proxy = FaultProxy::start(&format!("http://{address}"))
        .await
        .unwrap();
    let response = reqwest::get(format!("{}/anything", proxy.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(proxy.op_stats(testbed::proxy::OTHER_OP).upstream_errors, 1);
}

#[tokio::test]
async fn counts_graphql_queries_and_mutations_in_front_of_hasura_lite() {
    let db = TestDatabase::create().await.unwrap();
    let hasura = HasuraLite::start(db.url()).await.unwrap();
    let proxy = FaultProxy::start(hasura.base_url()).await.unwrap();
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("{}/v1/graphql", proxy.url()))
            .header("x-hasura-admin-secret", &hasura.admin_secret)
            .json(&body)
            .send()
    };

    let inserted: Value = post(json!({
        "query": "mutation TakeLease($o: [cognito_sync_leases_insert_input!]!) { insert_cognito_sync_leases(objects: $o) { affected_rows } }",
        "operationName": "TakeLease",
        "variables": { "o": [{ "name": "reconcile", "holder": "test", "expires_at": "2100-01-01T00:00:00Z" }] }
    }))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        inserted["data"]["insert_cognito_sync_leases"]["affected_rows"], 1,
        "{inserted}"
    );

    let read: Value =
        post(json!({ "query": "query Leases { cognito_sync_leases { name holder } }" }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        read["data"]["cognito_sync_leases"][0]["holder"], "test",
        "{read}"
    );

    assert_eq!(proxy.graphql_requests(), 2);
    assert_eq!(proxy.graphql_mutations(), 1);
    assert_eq!(proxy.graphql_queries(), 1);
    assert_eq!(proxy.graphql_operation("TakeLease"), 1);
    assert_eq!(proxy.graphql_operation("Leases"), 1);
    assert_eq!(proxy.calls(testbed::proxy::GRAPHQL_OP), 2);

    // The counts are also served as JSON, and can be reset over HTTP.
    let stats: Value = reqwest::get(format!("{}/__proxy/stats", proxy.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["graphql_mutations"], 1);
    assert_eq!(stats["ops"]["GraphQL"]["forwarded"], 2);
    let reset = http
        .post(format!("{}/__proxy/reset", proxy.url()))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    assert_eq!(proxy.graphql_requests(), 0);
}
