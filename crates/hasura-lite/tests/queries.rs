//! Query root fields and their arguments through real HTTP against real PostgreSQL:
//! `t`, `t_by_pk`, `t_aggregate` with every filter, ordering and paging argument.

mod common;

use common::{Server, user, user_id};
use serde_json::json;

const UPSERT: &str = "mutation($o: [cognito_users_insert_input!]!) {
  insert_cognito_users(objects: $o) { affected_rows }
}";

async fn seeded() -> Server {
    let server = Server::start().await;
    let mut objects: Vec<_> = (1..=6)
        .map(|n| user(n, "h1", "2024-01-01T00:00:00Z"))
        .collect();
    objects[5]["email"] = serde_json::Value::Null;
    objects[4]["username"] = json!("user3");
    let data = server.data(UPSERT, json!({ "o": objects })).await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 6);
    server
}

fn usernames(rows: &serde_json::Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["username"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_where_order_by_limit_offset_distinct_on() {
    let server = seeded().await;
    let q = "query($w: cognito_users_bool_exp, $o: [cognito_users_order_by!], $l: Int, $off: Int, $d: [cognito_users_select_column!]) {
      cognito_users(where: $w, order_by: $o, limit: $l, offset: $off, distinct_on: $d) { id username email }
    }";
    let run = |w: serde_json::Value| {
        let server = &server;
        async move {
            let data = server
                .data(
                    q,
                    json!({ "w": w, "o": [{ "username": "asc" }, { "id": "asc" }] }),
                )
                .await;
            usernames(&data["cognito_users"])
        }
    };
    assert_eq!(
        run(json!({ "username": { "_eq": "user1" } })).await,
        ["user1"]
    );
    assert_eq!(
        run(json!({ "username": { "_neq": "user1" } })).await.len(),
        5
    );
    assert_eq!(
        run(json!({ "username": { "_in": ["user1", "user2"] } })).await,
        ["user1", "user2"]
    );
    assert_eq!(
        run(json!({ "username": { "_nin": ["user1", "user2", "user3"] } })).await,
        ["user4", "user6"]
    );
    assert_eq!(
        run(json!({ "username": { "_gt": "user4" } })).await,
        ["user6"]
    );
    assert_eq!(
        run(json!({ "username": { "_gte": "user4" } })).await,
        ["user4", "user6"]
    );
    assert_eq!(
        run(json!({ "username": { "_lt": "user2" } })).await,
        ["user1"]
    );
    assert_eq!(
        run(json!({ "username": { "_lte": "user2" } })).await,
        ["user1", "user2"]
    );
    assert_eq!(
        run(json!({ "email": { "_is_null": true } })).await,
        ["user6"]
    );
    assert_eq!(
        run(json!({ "email": { "_is_null": false } })).await.len(),
        5
    );
    assert_eq!(
        run(json!({ "email": { "_like": "user1@%" } })).await,
        ["user1"]
    );
    assert_eq!(
        run(json!({ "email": { "_ilike": "USER2@%" } })).await,
        ["user2"]
    );
    assert_eq!(
        run(json!({ "email": { "_nlike": "user1@%" } })).await.len(),
        4
    );
    assert_eq!(
        run(json!({ "email": { "_nilike": "USER%" } })).await.len(),
        0
    );
    assert_eq!(
        run(json!({ "email": { "_regex": "^user[12]@" } })).await,
        ["user1", "user2"]
    );
    assert_eq!(
        run(json!({ "attributes": { "_contains": { "custom:tier": "gold" } } })).await,
        ["user2", "user4", "user6"]
    );
    assert_eq!(
        run(json!({ "groups": { "_contained_in": ["admins", "ops"] } }))
            .await
            .len(),
        6
    );
    assert_eq!(
        run(json!({ "attributes": { "_has_key": "custom:tier" } }))
            .await
            .len(),
        6
    );
    assert_eq!(
        run(json!({ "attributes": { "_has_keys_all": ["email", "nope"] } }))
            .await
            .len(),
        0
    );
    assert_eq!(
        run(json!({ "attributes": { "_has_keys_any": ["email", "nope"] } }))
            .await
            .len(),
        6
    );
    assert_eq!(
        run(json!({ "groups": { "_cast": { "String": { "_eq": "[\"admins\"]" } } } }))
            .await
            .len(),
        6
    );
    assert_eq!(
        run(json!({ "attributes": { "_cast": { "String": { "_ilike": "%USER1@%" } } } })).await,
        ["user1"]
    );
    assert_eq!(run(json!({ "id": { "_eq": user_id(3) } })).await, ["user3"]);
    assert_eq!(
        run(
            json!({ "enabled": { "_eq": true }, "observed_at": { "_lt": "2025-01-01T00:00:00Z" } })
        )
        .await
        .len(),
        6
    );
    assert_eq!(
        run(json!({ "_or": [{ "username": { "_eq": "user1" } }, { "username": { "_eq": "user2" } }] })).await,
        ["user1", "user2"]
    );
    assert_eq!(
        run(json!({ "_and": [{ "username": { "_like": "user%" } }, { "email": { "_like": "%4@%" } }] })).await,
        ["user4"]
    );
    assert_eq!(
        run(json!({ "_not": { "username": { "_like": "user%" } } }))
            .await
            .len(),
        0
    );
    assert_eq!(run(json!({})).await.len(), 6);

    let data = server
        .data(
            q,
            json!({ "o": [{ "username": "desc" }, { "id": "desc" }], "l": 2, "off": 1 }),
        )
        .await;
    assert_eq!(usernames(&data["cognito_users"]), ["user4", "user3"]);

    let data = server
        .data(q, json!({ "o": [{ "email": "asc_nulls_first" }], "l": 1 }))
        .await;
    assert_eq!(usernames(&data["cognito_users"]), ["user6"]);
    let data = server
        .data(q, json!({ "o": [{ "email": "desc_nulls_last" }], "l": 1 }))
        .await;
    // Row 5 (user5@example.com) carries the username user3.
    assert_eq!(usernames(&data["cognito_users"]), ["user3"]);

    let data = server
        .data(
            q,
            json!({ "d": ["username"], "o": [{ "username": "asc" }, { "id": "desc" }] }),
        )
        .await;
    assert_eq!(
        usernames(&data["cognito_users"]),
        ["user1", "user2", "user3", "user4", "user6"]
    );
    assert_eq!(data["cognito_users"][2]["id"], user_id(5));
}

#[tokio::test]
async fn by_pk_aggregate_and_json_path() {
    let server = seeded().await;
    let data = server
        .data(
            "query($id: uuid!) {
              cognito_users_by_pk(id: $id) { username tier: attributes(path: \"$.custom:tier\") first: groups(path: \"[0]\") nothing: attributes(path: \"$.nope\") attributes }
              missing: cognito_users_by_pk(id: \"00000000-0000-4000-8000-999999999999\") { id }
            }",
            json!({ "id": user_id(2) }),
        )
        .await;
    assert_eq!(data["cognito_users_by_pk"]["username"], "user2");
    assert_eq!(data["cognito_users_by_pk"]["tier"], "gold");
    assert_eq!(data["cognito_users_by_pk"]["first"], "admins");
    assert!(
        data["cognito_users_by_pk"]["nothing"].is_null(),
        "a missing path is null, as in Hasura"
    );
    assert_eq!(
        data["cognito_users_by_pk"]["attributes"]["email"],
        "user2@example.com"
    );
    assert!(data["missing"].is_null());

    let data = server
        .data(
            "{
              all: cognito_users_aggregate { aggregate { count } }
              emails: cognito_users_aggregate { aggregate { count(columns: [email]) } }
              names: cognito_users_aggregate { aggregate { count(columns: [username], distinct: true) } }
              page: cognito_users_aggregate(where: { username: { _like: \"user%\" } }, order_by: { username: asc }, limit: 2, offset: 1) {
                aggregate { count } nodes { username }
              }
              distinct: cognito_users_aggregate(distinct_on: [username], order_by: [{ username: asc }]) { aggregate { count } }
            }",
            json!({}),
        )
        .await;
    assert_eq!(data["all"]["aggregate"]["count"], 6);
    assert_eq!(data["emails"]["aggregate"]["count"], 5);
    assert_eq!(data["names"]["aggregate"]["count"], 5);
    assert_eq!(data["page"]["aggregate"]["count"], 2);
    assert_eq!(usernames(&data["page"]["nodes"]), ["user2", "user3"]);
    assert_eq!(data["distinct"]["aggregate"]["count"], 5);

    let data = server
        .data(
            "{ cognito_users_aggregate(where: {email: {_is_null: false}}) { aggregate { max { username id observed_at } min { email } } } }",
            json!({}),
        )
        .await;
    let aggregate = &data["cognito_users_aggregate"]["aggregate"];
    assert_eq!(aggregate["max"]["username"], "user4");
    assert_eq!(aggregate["max"]["id"], user_id(5));
    assert_eq!(aggregate["max"]["observed_at"], "2024-01-01T00:00:00+00:00");
    assert_eq!(aggregate["min"]["email"], "user1@example.com");

    // Composite primary key.
    server
        .data(
            "mutation { insert_cognito_groups_one(object: {user_pool_id: \"p\", name: \"admins\", observed_at: \"2024-01-01T00:00:00Z\", content_hash: \"g\"}) { name } }",
            json!({}),
        )
        .await;
    server
        .data(
            "mutation { insert_cognito_groups(objects: [{user_pool_id: \"p\", name: \"a\", precedence: 1, observed_at: \"2024-01-01T00:00:00Z\", content_hash: \"g\"},
                                                        {user_pool_id: \"p\", name: \"b\", precedence: 4, observed_at: \"2024-01-01T00:00:00Z\", content_hash: \"g\"}]) { affected_rows } }",
            json!({}),
        )
        .await;
    let data = server
        .data(
            "{ cognito_groups_aggregate { aggregate { count(columns: [precedence]) sum { precedence } avg { precedence } max { precedence name } var_samp { precedence } } } }",
            json!({}),
        )
        .await;
    let aggregate = &data["cognito_groups_aggregate"]["aggregate"];
    assert_eq!(aggregate["count"], 2);
    assert_eq!(aggregate["sum"]["precedence"], 5);
    assert_eq!(aggregate["avg"]["precedence"], 2.5);
    assert_eq!(aggregate["max"], json!({ "precedence": 4, "name": "b" }));
    assert_eq!(aggregate["var_samp"]["precedence"], 4.5);
    let data = server
        .data(
            "{ cognito_groups_by_pk(user_pool_id: \"p\", name: \"admins\") { name precedence } }",
            json!({}),
        )
        .await;
    assert_eq!(data["cognito_groups_by_pk"]["name"], "admins");
    assert!(data["cognito_groups_by_pk"]["precedence"].is_null());
}
