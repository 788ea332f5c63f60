//! Mutation root fields: inserts with defaults, upserts (`on_conflict` with `where`, the
//! guard trigger's skipped rows), updates with `_set`/`_inc`, deletes, and one
//! transaction per request.

mod common;

use common::{Server, user, user_id};
use serde_json::json;

const UPSERT_USERS: &str = "mutation($o: [cognito_users_insert_input!]!) {
  insert_cognito_users(objects: $o, on_conflict: {
    constraint: cognito_users_pkey,
    update_columns: [email, status, attributes, groups, observed_at, content_hash, deleted_at]
  }) { affected_rows returning { id email synced_at } }
}";

#[tokio::test]
async fn insert_takes_defaults_and_returns_rows() {
    let server = Server::start().await;
    let data = server
        .data(
            "mutation($o: [cognito_users_insert_input!]!) {
              insert_cognito_users(objects: $o) { affected_rows returning { id enabled attributes groups synced_at email } }
            }",
            json!({ "o": [
                { "id": user_id(1), "user_pool_id": "p", "username": "a", "status": "CONFIRMED", "observed_at": "2024-01-01T00:00:00Z", "content_hash": "h" },
                { "id": user_id(2), "user_pool_id": "p", "username": "b", "status": "CONFIRMED", "observed_at": "2024-01-01T00:00:00Z", "content_hash": "h", "enabled": false, "email": null }
            ] }),
        )
        .await;
    let response = &data["insert_cognito_users"];
    assert_eq!(response["affected_rows"], 2);
    let rows = response["returning"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let first = rows.iter().find(|r| r["id"] == user_id(1)).unwrap();
    assert_eq!(first["enabled"], true, "missing column takes its DEFAULT");
    assert_eq!(first["attributes"], json!({}));
    assert_eq!(first["groups"], json!([]));
    assert!(first["synced_at"].is_string());
    let second = rows.iter().find(|r| r["id"] == user_id(2)).unwrap();
    assert_eq!(second["enabled"], false);

    // insert_one, and a sync run whose id comes from gen_random_uuid().
    let data = server
        .data(
            "mutation { insert_cognito_sync_runs_one(object: {kind: \"backfill\", user_pool_id: \"p\"}) { id status checkpoint } }",
            json!({}),
        )
        .await;
    let run = &data["insert_cognito_sync_runs_one"];
    assert_eq!(run["status"], "running");
    assert_eq!(run["checkpoint"], json!({}));
    let run_id = run["id"].as_str().unwrap().to_owned();
    let data = server
        .data(
            "mutation($id: uuid!, $c: jsonb) {
              update_cognito_sync_runs_by_pk(pk_columns: {id: $id}, _set: {status: \"succeeded\", checkpoint: $c}) { status checkpoint(path: \"$.shard\") }
            }",
            json!({ "id": run_id, "c": { "shard": "a" } }),
        )
        .await;
    assert_eq!(
        data["update_cognito_sync_runs_by_pk"]["status"],
        "succeeded"
    );
    assert_eq!(data["update_cognito_sync_runs_by_pk"]["checkpoint"], "a");
    let data = server
        .data(
            "query($id: uuid!) { cognito_sync_runs_by_pk(id: $id) { status } }",
            json!({ "id": run_id }),
        )
        .await;
    assert_eq!(data["cognito_sync_runs_by_pk"]["status"], "succeeded");
}

#[tokio::test]
async fn upsert_counts_only_rows_postgres_changed() {
    let server = Server::start().await;
    let batch: Vec<_> = (1..=1000)
        .map(|n| user(n, "h1", "2024-01-01T00:00:00Z"))
        .collect();
    let data = server.data(UPSERT_USERS, json!({ "o": batch })).await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 1000);

    // Same content: the guard trigger skips every row, so nothing is counted or returned.
    let data = server.data(UPSERT_USERS, json!({ "o": batch })).await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 0);
    assert_eq!(data["insert_cognito_users"]["returning"], json!([]));

    // An older observation never wins; a newer changed one does.
    let older = user(1, "h2", "2023-01-01T00:00:00Z");
    let mut newer = user(2, "h2", "2025-01-01T00:00:00Z");
    newer["email"] = json!("changed@example.com");
    let data = server
        .data(UPSERT_USERS, json!({ "o": [older, newer] }))
        .await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 1);
    assert_eq!(
        data["insert_cognito_users"]["returning"][0]["id"],
        user_id(2)
    );
    assert_eq!(
        data["insert_cognito_users"]["returning"][0]["email"],
        "changed@example.com"
    );

    // update_columns: [] is DO NOTHING.
    let data = server
        .data(
            "mutation($o: [cognito_users_insert_input!]!) {
              insert_cognito_users(objects: $o, on_conflict: {constraint: cognito_users_pkey, update_columns: []}) { affected_rows }
            }",
            json!({ "o": [user(3, "h9", "2026-01-01T00:00:00Z"), user(5000, "h1", "2024-01-01T00:00:00Z")] }),
        )
        .await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 1);
}

#[tokio::test]
async fn lease_upsert_with_on_conflict_where() {
    let server = Server::start().await;
    let acquire = "mutation($holder: String!, $until: timestamptz!, $now: timestamptz!) {
      insert_cognito_sync_leases_one(
        object: {name: \"reconcile\", holder: $holder, expires_at: $until},
        on_conflict: {constraint: cognito_sync_leases_pkey, update_columns: [holder, expires_at],
                      where: {_or: [{expires_at: {_lt: $now}}, {holder: {_eq: $holder}}]}}
      ) { holder expires_at }
    }";
    let take = |holder: &'static str, until: &'static str, now: &'static str| {
        let server = &server;
        async move {
            server
                .data(
                    acquire,
                    json!({ "holder": holder, "until": until, "now": now }),
                )
                .await["insert_cognito_sync_leases_one"]
                .clone()
        }
    };
    assert_eq!(
        take("a", "2024-01-01T00:10:00Z", "2024-01-01T00:00:00Z").await["holder"],
        "a"
    );
    // Held by a and not expired: b gets nothing back.
    assert!(
        take("b", "2024-01-01T00:20:00Z", "2024-01-01T00:05:00Z")
            .await
            .is_null()
    );
    // a renews its own lease.
    assert_eq!(
        take("a", "2024-01-01T00:30:00Z", "2024-01-01T00:06:00Z").await["holder"],
        "a"
    );
    // Expired: b takes over.
    assert_eq!(
        take("b", "2024-01-01T01:00:00Z", "2024-01-01T00:31:00Z").await["holder"],
        "b"
    );

    // The same through insert_* and affected_rows.
    let data = server
        .data(
            "mutation($now: timestamptz!) {
              insert_cognito_sync_leases(
                objects: [{name: \"reconcile\", holder: \"c\", expires_at: \"2024-01-01T02:00:00Z\"}],
                on_conflict: {constraint: cognito_sync_leases_pkey, update_columns: [holder, expires_at], where: {expires_at: {_lt: $now}}}
              ) { affected_rows }
            }",
            json!({ "now": "2024-01-01T00:40:00Z" }),
        )
        .await;
    assert_eq!(data["insert_cognito_sync_leases"]["affected_rows"], 0);
}

#[tokio::test]
async fn update_and_delete_fields() {
    let server = Server::start().await;
    server
        .data(UPSERT_USERS, json!({ "o": (1..=4).map(|n| user(n, "h1", "2024-01-01T00:00:00Z")).collect::<Vec<_>>() }))
        .await;
    let data = server
        .data(
            "mutation { update_cognito_users(where: {username: {_in: [\"user1\", \"user2\"]}}, _set: {content_hash: \"h2\", deleted_at: \"2024-02-01T00:00:00Z\"}) {
                affected_rows returning { username deleted_at } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["update_cognito_users"]["affected_rows"], 2);
    // The guard trigger skips an update that changes neither content_hash nor deleted_at.
    let data = server
        .data("mutation { update_cognito_users(where: {}, _set: {email: \"same-hash@example.com\"}) { affected_rows } }", json!({}))
        .await;
    assert_eq!(data["update_cognito_users"]["affected_rows"], 0);
    let data = server
        .data(
            "mutation($id: uuid!) { update_cognito_users_by_pk(pk_columns: {id: $id}, _set: {content_hash: \"h3\", email: \"x@example.com\"}) { email } }",
            json!({ "id": user_id(3) }),
        )
        .await;
    assert_eq!(data["update_cognito_users_by_pk"]["email"], "x@example.com");

    // _inc on a numeric column.
    server
        .data(
            "mutation { insert_cognito_groups(objects: [{user_pool_id: \"p\", name: \"g\", precedence: 5, observed_at: \"2024-01-01T00:00:00Z\", content_hash: \"a\"}]) { affected_rows } }",
            json!({}),
        )
        .await;
    let data = server
        .data(
            "mutation { update_cognito_groups(where: {name: {_eq: \"g\"}}, _inc: {precedence: 2}, _set: {content_hash: \"b\"}) { returning { precedence } }
                        update_cognito_groups_by_pk(pk_columns: {user_pool_id: \"p\", name: \"g\"}, _inc: {precedence: 1}, _set: {content_hash: \"c\"}) { precedence } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["update_cognito_groups"]["returning"][0]["precedence"],
        7
    );
    assert_eq!(data["update_cognito_groups_by_pk"]["precedence"], 8);

    let data = server
        .data(
            "mutation($id: uuid!) {
              delete_cognito_users_by_pk(id: $id) { username }
              delete_cognito_users(where: {username: {_in: [\"user1\", \"user2\"]}}) { affected_rows returning { username } }
            }",
            json!({ "id": user_id(4) }),
        )
        .await;
    assert_eq!(data["delete_cognito_users_by_pk"]["username"], "user4");
    assert_eq!(data["delete_cognito_users"]["affected_rows"], 2);
    let data = server
        .data("{ cognito_users { username } }", json!({}))
        .await;
    assert_eq!(data["cognito_users"], json!([{ "username": "user3" }]));
    let data = server
        .data("mutation { delete_cognito_users_by_pk(id: \"00000000-0000-4000-8000-999999999999\") { id } }", json!({}))
        .await;
    assert!(data["delete_cognito_users_by_pk"].is_null());
}

#[tokio::test]
async fn mutation_fields_of_one_request_share_one_transaction() {
    let server = Server::start().await;
    server
        .data(
            UPSERT_USERS,
            json!({ "o": [user(1, "h1", "2024-01-01T00:00:00Z")] }),
        )
        .await;
    let error = server
        .error(
            "mutation($a: [cognito_users_insert_input!]!, $b: [cognito_users_insert_input!]!) {
              first: insert_cognito_users(objects: $a) { affected_rows }
              second: insert_cognito_users(objects: $b) { affected_rows }
              third: delete_cognito_users(where: {}) { affected_rows }
            }",
            json!({ "a": [user(2, "h1", "2024-01-01T00:00:00Z")], "b": [user(1, "h1", "2024-01-01T00:00:00Z")] }),
        )
        .await;
    assert_eq!(error["extensions"]["code"], "constraint-violation");
    assert_eq!(
        error["extensions"]["path"],
        "$.selectionSet.second.args.objects"
    );
    let data = server.data("{ cognito_users { id } }", json!({})).await;
    assert_eq!(
        data["cognito_users"],
        json!([{ "id": user_id(1) }]),
        "first insert rolled back, delete never ran"
    );

    // And a successful pair commits together.
    let data = server
        .data(
            "mutation { a: delete_cognito_users(where: {}) { affected_rows } b: insert_cognito_sync_runs_one(object: {kind: \"reconcile\", user_pool_id: \"p\"}) { kind } }",
            json!({}),
        )
        .await;
    assert_eq!(data["a"]["affected_rows"], 1);
    let data = server
        .data(
            "{ cognito_users_aggregate { aggregate { count } } cognito_sync_runs { kind } }",
            json!({}),
        )
        .await;
    assert_eq!(data["cognito_users_aggregate"]["aggregate"]["count"], 0);
    assert_eq!(data["cognito_sync_runs"][0]["kind"], "reconcile");
}

#[tokio::test]
async fn jsonb_update_operators_and_update_many() {
    let server = Server::start().await;
    let run = server
        .data(
            "mutation { insert_cognito_sync_runs_one(object: {kind: \"backfill\", user_pool_id: \"p\", checkpoint: {a: 1, b: 2, list: [1, 2, 3]}, counters: [\"x\", \"y\"]}) { id } }",
            json!({}),
        )
        .await["insert_cognito_sync_runs_one"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = server
        .data(
            "mutation($id: uuid!) {
              a: update_cognito_sync_runs_by_pk(pk_columns: {id: $id}, _append: {counters: [\"z\"]}, _delete_key: {checkpoint: \"a\"}) { checkpoint counters }
              b: update_cognito_sync_runs(where: {id: {_eq: $id}}, _prepend: {counters: [\"w\"]}, _delete_at_path: {checkpoint: [\"list\", \"0\"]}) { returning { checkpoint counters } }
              c: update_cognito_sync_runs(where: {id: {_eq: $id}}, _delete_elem: {counters: -1}) { returning { counters } }
            }",
            json!({ "id": run }),
        )
        .await;
    assert_eq!(
        data["a"]["checkpoint"],
        json!({ "b": 2, "list": [1, 2, 3] })
    );
    assert_eq!(data["a"]["counters"], json!(["x", "y", "z"]));
    assert_eq!(
        data["b"]["returning"][0]["checkpoint"],
        json!({ "b": 2, "list": [2, 3] })
    );
    assert_eq!(
        data["b"]["returning"][0]["counters"],
        json!(["w", "x", "y", "z"])
    );
    assert_eq!(
        data["c"]["returning"][0]["counters"],
        json!(["w", "x", "y"])
    );

    let data = server
        .data(
            "mutation($id: uuid!) {
              update_cognito_sync_runs_many(updates: [
                {where: {id: {_eq: $id}}, _set: {status: \"failed\"}},
                {where: {status: {_eq: \"running\"}}, _set: {status: \"aborted\"}},
                {where: {status: {_eq: \"failed\"}}, _set: {error: \"boom\"}}
              ]) { affected_rows returning { status error } }
            }",
            json!({ "id": run }),
        )
        .await;
    let results = data["update_cognito_sync_runs_many"].as_array().unwrap();
    let counts: Vec<i64> = results
        .iter()
        .map(|r| r["affected_rows"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [1, 0, 1], "updates run in order");
    assert_eq!(
        results[2]["returning"][0],
        json!({ "status": "failed", "error": "boom" })
    );
}

#[tokio::test]
async fn bodies_over_axum_default_limit_are_accepted() {
    let server = Server::start().await;
    let batch: Vec<_> = (1..=8000)
        .map(|n| user(n, "h1", "2024-01-01T00:00:00Z"))
        .collect();
    let size = serde_json::to_vec(&batch).unwrap().len();
    assert!(
        size > 2 * 1024 * 1024,
        "body of {size} bytes must exceed 2 MiB"
    );
    let data = server.data(UPSERT_USERS, json!({ "o": batch })).await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 8000);
}
