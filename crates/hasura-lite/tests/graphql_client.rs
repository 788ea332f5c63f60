//! The checked-in `schema.graphql` works for typed `graphql_client` operations, the way the
//! worker uses it, and the server answers them.

mod common;

use common::{SECRET, Server, user, user_id};
use graphql_client::{GraphQLQuery, Response};

#[allow(non_camel_case_types)]
type uuid = String;
#[allow(non_camel_case_types)]
type timestamptz = String;
#[allow(non_camel_case_types)]
type jsonb = serde_json::Value;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "tests/ops/upsert_users.graphql",
    response_derives = "Debug",
    variables_derives = "Deserialize",
    // Hasura inserts an explicit null as NULL; absent fields take their DEFAULT.
    skip_serializing_none
)]
struct UpsertUsers;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "../../schema.graphql",
    query_path = "tests/ops/users_by_pool.graphql",
    response_derives = "Debug"
)]
struct UsersByPool;

async fn post<Q: GraphQLQuery>(server: &Server, variables: Q::Variables) -> Q::ResponseData {
    let response: Response<Q::ResponseData> = server
        .http
        .post(&server.endpoint)
        .header("x-hasura-admin-secret", SECRET)
        .json(&Q::build_query(variables))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("decode typed response");
    assert!(response.errors.is_none(), "{:?}", response.errors);
    response.data.expect("data")
}

#[tokio::test]
async fn typed_operations_round_trip() {
    let server = Server::start().await;
    let objects: Vec<upsert_users::cognito_users_insert_input> = (1..=3)
        .map(|n| {
            serde_json::from_value(user(n, "h1", "2024-01-01T00:00:00Z")).expect("insert input")
        })
        .collect();
    let data = post::<UpsertUsers>(&server, upsert_users::Variables { objects }).await;
    let inserted = data.insert_cognito_users.expect("mutation response");
    assert_eq!(inserted.affected_rows, 3);
    assert_eq!(
        inserted.returning[0].observed_at,
        "2024-01-01T00:00:00+00:00"
    );

    let data = post::<UsersByPool>(
        &server,
        users_by_pool::Variables {
            pool: "us-east-1_test".to_owned(),
            limit: Some(2),
        },
    )
    .await;
    let ids: Vec<&str> = data.cognito_users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, [user_id(1), user_id(2)]);
    assert_eq!(data.cognito_users[1].tier, serde_json::json!("gold"));
    assert_eq!(
        data.cognito_users_aggregate
            .aggregate
            .expect("aggregate")
            .count,
        3
    );
}
