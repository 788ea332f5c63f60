//! The `cognito_sync` role of the project's metadata is what the sync worker runs as: it
//! can run every operation in `graphql/`, and it cannot read or write an application's
//! table tracked next to the mirror.

mod common;

use common::{Project, SECRET, Server, TestDb, ok_data, only_error, user, user_id};
use serde_json::{Value as Json, json};

const ROLE: &str = "cognito_sync";
const POOL: &str = "us-east-1_test";

/// The project's metadata plus an application table with its own role, as an app would
/// track it in the same Hasura.
async fn server_with_app_table() -> (Server, Project) {
    let project = Project::copy_of_deploy();
    project.add_migration(
        "1900000000000_app_orders",
        "CREATE TABLE public.app_orders (id serial PRIMARY KEY, user_id uuid NOT NULL, total integer NOT NULL);",
    );
    project.add_table(
        "public_app_orders.yaml",
        "table:\n  name: app_orders\n  schema: public\n\
         select_permissions:\n  - role: app\n    permission:\n      columns: \"*\"\n      filter: {}\n\
         insert_permissions:\n  - role: app\n    permission:\n      columns: [user_id, total]\n      check: {}\n",
    );
    let db = TestDb::create().await;
    let config = db.config_for(project.path().to_path_buf(), Some(SECRET));
    (Server::start_with(db, config).await, project)
}

#[tokio::test]
async fn cognito_sync_cannot_touch_a_table_outside_the_mirror() {
    let (server, _project) = server_with_app_table().await;
    let insert = "mutation { insert_app_orders(objects: [{user_id: \"00000000-0000-4000-8000-000000000001\", total: 5}]) { affected_rows } }";
    let read = "{ app_orders { id total } }";

    // The app's role can use its table: the refusals below are the sync role's alone.
    let body = server.gql_as("app", &[], insert, json!({})).await;
    assert_eq!(ok_data(&body)["insert_app_orders"]["affected_rows"], 1);

    for (query, message) in [
        (read, "field 'app_orders' not found in type: 'query_root'"),
        (
            "{ app_orders_by_pk(id: 1) { id } }",
            "field 'app_orders_by_pk' not found in type: 'query_root'",
        ),
        (
            insert,
            "field 'insert_app_orders' not found in type: 'mutation_root'",
        ),
        (
            "mutation { update_app_orders(where: {}, _set: {total: 0}) { affected_rows } }",
            "field 'update_app_orders' not found in type: 'mutation_root'",
        ),
        (
            "mutation { delete_app_orders(where: {}) { affected_rows } }",
            "field 'delete_app_orders' not found in type: 'mutation_root'",
        ),
        // Within the mirror, only what the worker does: runs are never deleted.
        (
            "mutation { delete_cognito_sync_runs(where: {}) { affected_rows } }",
            "field 'delete_cognito_sync_runs' not found in type: 'mutation_root'",
        ),
    ] {
        let body = server.gql_as(ROLE, &[], query, json!({})).await;
        assert_eq!(
            only_error(&body),
            ("validation-failed".to_owned(), message.to_owned()),
            "{query}"
        );
    }
    let orders = server.data(read, json!({})).await;
    assert_eq!(
        orders["app_orders"].as_array().unwrap().len(),
        1,
        "{orders}"
    );
    server.stop().await;
}

/// Variables for each document in `graphql/`, in an order that makes each one do real work.
fn worker_operations() -> Vec<(&'static str, Json)> {
    let before = "2030-01-01T00:00:00Z";
    let later = "2030-01-02T00:00:00Z";
    let group = |name: &str| {
        json!({ "user_pool_id": POOL, "name": name, "description": "d", "precedence": 1,
                "observed_at": "2024-01-01T00:00:00Z", "content_hash": "g" })
    };
    let users: Vec<Json> = (1..=4)
        .map(|n| user(n, "h1", "2024-01-01T00:00:00Z"))
        .collect();
    let run_id = "00000000-0000-4000-8000-00000000a001";
    let request_id = "00000000-0000-4000-8000-00000000b001";
    vec![
        ("check_schema", json!({})),
        ("daemon_probe", json!({})),
        ("upsert_users", json!({ "objects": users })),
        (
            "upsert_groups",
            json!({ "objects": [group("g1"), group("g2")] }),
        ),
        (
            "apply_events",
            json!({
                "pool": POOL,
                "users": [user(5, "h1", "2024-01-02T00:00:00Z")],
                "gone_subs": [user_id(4)], "subs_gone_at": "2024-01-03T00:00:00Z",
                "gone_usernames": ["user3"], "usernames_gone_at": "2024-01-03T00:00:00Z",
                "groups": [group("g3")],
                "gone_groups": ["g3"], "groups_gone_at": "2024-01-03T00:00:00Z",
                "requests": [{ "id": request_id, "user_pool_id": POOL, "reason": "DeleteGroup" }],
            }),
        ),
        ("pending_requests", json!({ "pool": POOL })),
        ("user_digests", json!({ "ids": [user_id(1), user_id(2)] })),
        ("group_digests", json!({ "pool": POOL })),
        (
            "reconcile_mirror_first",
            json!({ "pool": POOL, "limit": 2 }),
        ),
        (
            "reconcile_user_digests",
            json!({ "pool": POOL, "after": user_id(1), "limit": 2 }),
        ),
        (
            "reconcile_mirrored_users",
            json!({ "pool": POOL, "ids": [user_id(1), user_id(2)] }),
        ),
        (
            "tombstone_users_reconcile",
            json!({ "pool": POOL, "ids": [user_id(2)], "before": before, "deleted_at": before }),
        ),
        (
            "scrub_users_reconcile",
            json!({ "pool": POOL, "ids": [user_id(2)], "before": before, "marker": "scrubbed", "no_attributes": {} }),
        ),
        (
            "tombstone_groups_reconcile",
            json!({ "pool": POOL, "names": ["g2"], "before": before, "deleted_at": before }),
        ),
        (
            "delete_users_reconcile",
            json!({ "pool": POOL, "ids": [user_id(1)], "before": later }),
        ),
        (
            "delete_groups_reconcile",
            json!({ "pool": POOL, "names": ["g1"], "before": later }),
        ),
        (
            "insert_run",
            json!({ "run": { "id": run_id, "kind": "backfill", "user_pool_id": POOL, "status": "running",
                             "counters": {}, "checkpoint": { "shards": {} },
                             "started_at": "2024-01-01T00:00:00Z", "heartbeat_at": "2024-01-01T00:00:00Z" } }),
        ),
        (
            "update_run",
            json!({ "id": run_id, "set": { "status": "failed", "counters": { "seen": 1 },
                                           "heartbeat_at": later, "error": "boom" } }),
        ),
        ("unfinished_run", json!({ "pool": POOL })),
        ("recent_runs", json!({ "pool": POOL, "limit": 5 })),
        ("run_record", json!({ "pool": POOL, "id": run_id })),
        (
            "serve_requests",
            json!({ "ids": [request_id], "served_at": later, "run": run_id }),
        ),
        (
            "acquire_lease",
            json!({ "name": "reconcile", "holder": "w1", "expires_at": later, "now": before }),
        ),
        (
            "heartbeat_lease",
            json!({ "name": "reconcile", "holder": "w1", "expires_at": later }),
        ),
        ("lease_holder", json!({ "name": "reconcile" })),
        (
            "release_lease",
            json!({ "name": "reconcile", "holder": "w1" }),
        ),
    ]
}

#[tokio::test]
async fn cognito_sync_runs_every_worker_operation() {
    let (server, _project) = server_with_app_table().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphql");
    let mut documents: Vec<String> = std::fs::read_dir(&dir)
        .expect("read graphql/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    documents.sort();
    let operations = worker_operations();
    let mut covered: Vec<String> = operations.iter().map(|(n, _)| (*n).to_owned()).collect();
    covered.sort();
    assert_eq!(
        documents, covered,
        "every document in graphql/ runs in this test: give a new one its variables here"
    );

    let mut answers = serde_json::Map::new();
    for (name, variables) in operations {
        let query = std::fs::read_to_string(dir.join(format!("{name}.graphql"))).unwrap();
        let body = server.gql_as(ROLE, &[], &query, variables).await;
        assert!(
            body.get("errors").is_none(),
            "{name} failed as {ROLE}: {body}"
        );
        answers.insert(name.to_owned(), body["data"].clone());
    }
    // The writes did happen under the role's permissions.
    let affected = |name: &str, field: &str| answers[name][field]["affected_rows"].clone();
    assert_eq!(affected("upsert_users", "insert_cognito_users"), 4);
    assert_eq!(affected("apply_events", "gone_by_sub"), 1);
    assert_eq!(affected("apply_events", "gone_by_username"), 1);
    assert_eq!(affected("apply_events", "gone_groups"), 1);
    assert_eq!(affected("apply_events", "requests"), 1);
    assert_eq!(
        answers["pending_requests"]["cognito_sync_requests"][0]["reason"],
        "DeleteGroup"
    );
    assert_eq!(
        affected("serve_requests", "update_cognito_sync_requests"),
        1
    );
    assert_eq!(
        affected("tombstone_users_reconcile", "update_cognito_users"),
        1
    );
    assert_eq!(affected("scrub_users_reconcile", "update_cognito_users"), 1);
    assert_eq!(
        affected("delete_users_reconcile", "delete_cognito_users"),
        1
    );
    assert_eq!(affected("acquire_lease", "insert_cognito_sync_leases"), 1);
    assert_eq!(affected("heartbeat_lease", "update_cognito_sync_leases"), 1);
    assert_eq!(affected("release_lease", "delete_cognito_sync_leases"), 1);
    assert_eq!(affected("update_run", "update_cognito_sync_runs"), 1);
    assert_eq!(
        answers["lease_holder"]["cognito_sync_leases_by_pk"]["holder"],
        "w1"
    );
    assert_eq!(
        answers["unfinished_run"]["cognito_sync_runs"][0]["status"],
        "failed"
    );
    server.stop().await;
}
