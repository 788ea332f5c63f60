//! Every error class in Hasura's shape, and the admin secret.

mod common;

use common::{SECRET, Server, user};
use serde_json::json;

#[tokio::test]
async fn admin_secret_is_required() {
    let server = Server::start().await;
    let health = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "OK");
    for secret in [None, Some("wrong")] {
        let body = server
            .gql_with("{ cognito_users { id } }", json!({}), secret)
            .await;
        assert_eq!(
            body,
            json!({ "errors": [{ "message": "invalid x-hasura-admin-secret/x-hasura-access-key",
                                 "extensions": { "path": "$", "code": "access-denied" } }] })
        );
    }
    let body = server
        .gql_with("{ cognito_users { id } }", json!({}), Some(SECRET))
        .await;
    assert_eq!(body, json!({ "data": { "cognito_users": [] } }));
}

#[tokio::test]
async fn errors_have_hasura_codes_messages_and_paths() {
    let server = Server::start().await;
    let e = server
        .error("{ cognito_users { id foo } }", json!({}))
        .await;
    assert_eq!(
        e,
        json!({ "message": "field 'foo' not found in type: 'cognito_users'",
                "extensions": { "path": "$.selectionSet.cognito_users.selectionSet.foo", "code": "validation-failed" } })
    );
    let e = server
        .error(
            "mutation { update_cognito_users(_set: {email: \"x\"}) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(e["extensions"]["code"], "validation-failed");
    assert_eq!(e["message"], "missing required field 'where'");
    let e = server
        .error("{ cognito_users(bogus: 1) { id } }", json!({}))
        .await;
    assert_eq!(e["extensions"]["code"], "validation-failed");
    assert_eq!(
        e["message"],
        "'cognito_users' has no argument named 'bogus'"
    );

    for query in [
        "mutation { insert_cognito_users(objects: [{foo: 1}]) { affected_rows } }",
        "mutation { update_cognito_users(where: {foo: {_eq: 1}}) { affected_rows } }",
    ] {
        let e = server.error(query, json!({})).await;
        assert_eq!(e["extensions"]["code"], "validation-failed", "{query}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with("field 'foo' not found in type: 'cognito_users_"),
            "{message}"
        );
    }
    let e = server
        .error(
            "mutation($o: [cognito_users_insert_input!]!) { insert_cognito_users(objects: $o) { affected_rows } }",
            json!({ "o": [{ "foo": 1 }] }),
        )
        .await;
    assert_eq!(e["extensions"]["code"], "validation-failed");

    let e = server
        .error(
            "mutation { insert_cognito_users(objects: [{id: \"x\"}, {foo: 1}]) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(
        e["extensions"]["path"],
        "$.selectionSet.insert_cognito_users.args.objects[1].foo"
    );
    let e = server
        .error(
            "mutation { insert_cognito_users(objects: [], on_conflict: {update_columns: []}) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(
        e,
        json!({ "message": "missing required field 'constraint'",
                "extensions": { "path": "$.selectionSet.insert_cognito_users.args.on_conflict", "code": "validation-failed" } })
    );
    let e = server
        .error(
            "query($id: uuid!) { cognito_users_by_pk(id: $id) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        e,
        json!({ "message": "expecting a value for non-nullable variable: \"id\"",
                "extensions": { "path": "$", "code": "validation-failed" } })
    );

    let insert = "mutation($o: [cognito_users_insert_input!]!) { insert_cognito_users(objects: $o) { affected_rows } }";
    server
        .data(
            insert,
            json!({ "o": [user(1, "h", "2024-01-01T00:00:00Z")] }),
        )
        .await;
    let e = server
        .error(
            insert,
            json!({ "o": [user(1, "h", "2024-01-01T00:00:00Z")] }),
        )
        .await;
    assert_eq!(
        e,
        json!({ "message": "Uniqueness violation. duplicate key value violates unique constraint \"cognito_users_pkey\"",
                "extensions": { "path": "$.selectionSet.insert_cognito_users.args.objects", "code": "constraint-violation" } })
    );
    let mut bad = user(2, "h", "2024-01-01T00:00:00Z");
    bad["id"] = json!("not-a-uuid");
    let e = server.error(insert, json!({ "o": [bad] })).await;
    assert_eq!(e["extensions"]["code"], "data-exception");
    assert_eq!(
        e["message"],
        "invalid input syntax for type uuid: \"not-a-uuid\""
    );
    assert_eq!(
        e["extensions"]["path"],
        "$.selectionSet.insert_cognito_users.args.objects"
    );
    let e = server
        .error(
            "{ cognito_users(where: {id: {_eq: \"nope\"}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        e["extensions"],
        json!({ "path": "$", "code": "data-exception" })
    );

    let mut missing = user(3, "h", "2024-01-01T00:00:00Z");
    missing.as_object_mut().unwrap().remove("status");
    let e = server.error(insert, json!({ "o": [missing] })).await;
    assert_eq!(e["extensions"]["code"], "constraint-violation");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Not-NULL violation. "),
        "{e}"
    );
    let e = server
        .error("mutation { insert_cognito_sync_runs_one(object: {kind: \"other\", user_pool_id: \"p\"}) { id } }", json!({}))
        .await;
    assert_eq!(e["extensions"]["code"], "constraint-violation");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Check constraint violation. "),
        "{e}"
    );

    let e = server
        .error(
            "{ cognito_users(where: {email: {_eq: null}}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(e["extensions"]["code"], "validation-failed");
}

#[tokio::test]
async fn batched_requests_and_unparseable_bodies() {
    let server = Server::start().await;
    let response = server
        .http
        .post(&server.endpoint)
        .header("x-hasura-admin-secret", SECRET)
        .json(&json!([
            { "query": "{ cognito_users { id } }" },
            { "query": "{ nope }" },
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body[0], json!({ "data": { "cognito_users": [] } }));
    assert_eq!(
        body[1]["errors"][0]["extensions"]["code"],
        "validation-failed"
    );
    assert_eq!(
        body[1]["errors"][0]["message"],
        "field 'nope' not found in type: 'query_root'"
    );

    let response = server
        .http
        .post(&server.endpoint)
        .header("x-hasura-admin-secret", SECRET)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "parse-failed");
}
