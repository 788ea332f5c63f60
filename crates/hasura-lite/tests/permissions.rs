//! Role permissions as Hasura v2 applies them: which root fields, arguments and columns a
//! role's schema has, row filters and checks of inserts, updates, upserts and deletes,
//! column presets from session variables, and choosing the role with the admin secret.

mod common;

use common::{Project, SECRET, Server, TestDb, ok_data, only_error, user, user_id};
use serde_json::{Value as Json, json};

const NOTES_SQL: &str = "CREATE TABLE public.notes (
    id integer PRIMARY KEY,
    owner text NOT NULL,
    body text,
    secret text,
    status text NOT NULL DEFAULT 'draft',
    source text
);";

/// `author` reads, writes and deletes its own notes (owner preset from its session),
/// never publishes; `dropbox` may only insert (owner preset to its role), and see nothing;
/// `reader` may only read.
const NOTES_YAML: &str = r#"
table:
  name: notes
  schema: public
select_permissions:
  - role: author
    permission:
      columns: [id, owner, body, status]
      filter:
        owner:
          _eq: X-Hasura-User-Id
  - role: reader
    permission:
      columns: "*"
      filter: {}
insert_permissions:
  - role: author
    permission:
      columns: [id, body, status, owner]
      set:
        owner: x-hasura-user-id
        source: web
      check:
        status:
          _in: [draft, review]
  - role: dropbox
    permission:
      columns: [id, body]
      set:
        owner: X-Hasura-Role
      check: {}
update_permissions:
  - role: author
    permission:
      columns: [body, status]
      filter:
        owner:
          _eq: X-Hasura-User-Id
      check:
        status:
          _neq: published
delete_permissions:
  - role: author
    permission:
      filter:
        _and:
          - owner:
              _eq: X-Hasura-User-Id
          - status:
              _eq: draft
"#;

async fn notes_server() -> (Server, Project) {
    let project = Project::empty();
    project.add_migration("1700000000000_notes", NOTES_SQL);
    project.add_table("public_notes.yaml", NOTES_YAML);
    let db = TestDb::create().await;
    let config = db.config_for(project.path().to_path_buf(), Some(SECRET));
    (Server::start_with(db, config).await, project)
}

const ALICE: [(&str, &str); 1] = [("x-hasura-user-id", "alice")];

/// Every note as admin sees it, by id.
async fn all_notes(server: &Server) -> Json {
    server
        .data(
            "{ notes(order_by: {id: asc}) { id owner body status source } }",
            json!({}),
        )
        .await["notes"]
        .clone()
}

#[tokio::test]
async fn inserts_take_presets_and_must_pass_the_check() {
    let (server, _project) = notes_server().await;
    let insert = "mutation($o: [notes_insert_input!]!) {
        insert_notes(objects: $o) { affected_rows returning { id owner body status } } }";

    let body = server
        .gql_as(
            "author",
            &ALICE,
            insert,
            json!({ "o": [{ "id": 1, "body": "mine" }, { "id": 2, "body": "two", "status": "review" }] }),
        )
        .await;
    assert_eq!(
        ok_data(&body)["insert_notes"],
        json!({ "affected_rows": 2, "returning": [
            { "id": 1, "owner": "alice", "body": "mine", "status": "draft" },
            { "id": 2, "owner": "alice", "body": "two", "status": "review" },
        ] }),
        "owner comes from the session, a preset literal fills source"
    );
    assert_eq!(all_notes(&server).await[0]["source"], "web");

    // A preset column is not in the role's insert input, nor is one outside `columns`.
    for column in ["owner", "secret"] {
        let body = server
            .gql_as(
                "author",
                &ALICE,
                insert,
                json!({ "o": [{ "id": 3, column: "x" }] }),
            )
            .await;
        assert_eq!(
            only_error(&body),
            (
                "validation-failed".to_owned(),
                format!("field '{column}' not found in type: 'notes_insert_input'")
            )
        );
    }

    // The check fails the whole request, which then writes nothing.
    let body = server
        .gql_as(
            "author",
            &ALICE,
            "mutation { ok: insert_notes(objects: [{id: 4, body: \"fine\"}]) { affected_rows }
                        bad: insert_notes(objects: [{id: 5, status: \"published\"}]) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(
        only_error(&body),
        (
            "permission-error".to_owned(),
            "check constraint of an insert/update permission has failed".to_owned()
        )
    );
    assert_eq!(all_notes(&server).await.as_array().unwrap().len(), 2);

    // A preset from a session variable the request lacks.
    let body = server
        .gql_as(
            "author",
            &[],
            "mutation { insert_notes(objects: [{id: 6}]) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(
        only_error(&body),
        (
            "not-found".to_owned(),
            "missing session variable: \"x-hasura-user-id\"".to_owned()
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn reads_updates_and_deletes_stay_within_the_role_filter() {
    let (server, _project) = notes_server().await;
    server
        .data(
            "mutation { insert_notes(objects: [
                {id: 1, owner: \"alice\", body: \"a\"},
                {id: 2, owner: \"bob\", body: \"b\", secret: \"s\"},
                {id: 3, owner: \"alice\", body: \"c\", status: \"review\"}]) { affected_rows } }",
            json!({}),
        )
        .await;

    let body = server
        .gql_as(
            "author",
            &ALICE,
            "{ notes(order_by: {id: asc}) { id body } notes_by_pk(id: 2) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok_data(&body),
        json!({ "notes": [{ "id": 1, "body": "a" }, { "id": 3, "body": "c" }], "notes_by_pk": null })
    );
    let body = server
        .gql_as("author", &ALICE, "{ notes { secret } }", json!({}))
        .await;
    assert_eq!(
        only_error(&body),
        (
            "validation-failed".to_owned(),
            "field 'secret' not found in type: 'notes'".to_owned()
        )
    );

    // Updates reach only the role's rows and columns, and must pass the check after.
    let body = server
        .gql_as(
            "author",
            &ALICE,
            "mutation { update_notes(where: {}, _set: {body: \"edited\"}) { affected_rows returning { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok_data(&body)["update_notes"],
        json!({ "affected_rows": 2, "returning": [{ "id": 1 }, { "id": 3 }] })
    );
    assert_eq!(
        all_notes(&server).await[1]["body"],
        "b",
        "bob's note untouched"
    );
    let body = server
        .gql_as(
            "author",
            &ALICE,
            "mutation { update_notes_by_pk(pk_columns: {id: 1}, _set: {status: \"published\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(only_error(&body).0, "permission-error");
    assert_eq!(all_notes(&server).await[0]["status"], "draft");
    let body = server
        .gql_as(
            "author",
            &ALICE,
            "mutation { update_notes(where: {}, _set: {owner: \"bob\"}) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(
        only_error(&body),
        (
            "validation-failed".to_owned(),
            "field 'owner' not found in type: 'notes_set_input'".to_owned()
        )
    );

    // Deletes: only alice's drafts.
    let body = server
        .gql_as(
            "author",
            &ALICE,
            "mutation { delete_notes(where: {}) { affected_rows } delete_notes_by_pk(id: 2) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok_data(&body),
        json!({ "delete_notes": { "affected_rows": 1 }, "delete_notes_by_pk": null })
    );
    let ids: Vec<Json> = all_notes(&server)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids, [json!(2), json!(3)]);
    server.stop().await;
}

#[tokio::test]
async fn upserts_use_the_update_permission_for_rows_that_exist() {
    let (server, _project) = notes_server().await;
    server
        .data(
            "mutation { insert_notes(objects: [
                {id: 1, owner: \"alice\", body: \"a\"},
                {id: 2, owner: \"bob\", body: \"b\"}]) { affected_rows } }",
            json!({}),
        )
        .await;
    let upsert = "mutation($o: [notes_insert_input!]!) {
        insert_notes(objects: $o, on_conflict: {constraint: notes_pkey, update_columns: [body, status]}) {
            affected_rows } }";

    // Bob's row is outside alice's update filter: the conflict leaves it alone.
    let body = server
        .gql_as(
            "author",
            &ALICE,
            upsert,
            json!({ "o": [{ "id": 2, "body": "taken" }, { "id": 3, "body": "new" }] }),
        )
        .await;
    assert_eq!(ok_data(&body)["insert_notes"]["affected_rows"], 1);
    assert_eq!(all_notes(&server).await[1]["body"], "b");

    // An updated row answers to the update check, not the insert check: `archived`
    // fails the insert check but passes the update check...
    let body = server
        .gql_as(
            "author",
            &ALICE,
            upsert,
            json!({ "o": [{ "id": 1, "body": "a2", "status": "archived" }] }),
        )
        .await;
    assert_eq!(ok_data(&body)["insert_notes"]["affected_rows"], 1);
    assert_eq!(all_notes(&server).await[0]["status"], "archived");
    // ...and `published` fails the update check.
    let body = server
        .gql_as(
            "author",
            &ALICE,
            upsert,
            json!({ "o": [{ "id": 1, "status": "published" }] }),
        )
        .await;
    assert_eq!(only_error(&body).0, "permission-error");

    // A role without update permission keeps `on_conflict` for DO NOTHING only, with
    // Hasura's placeholder as its only update column.
    let body = server
        .gql_as(
            "dropbox",
            &[],
            "mutation { insert_notes(objects: [{id: 1, body: \"x\"}, {id: 9, body: \"y\"}],
                on_conflict: {constraint: notes_pkey, update_columns: []}) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(ok_data(&body)["insert_notes"]["affected_rows"], 1);
    assert_eq!(
        all_notes(&server).await[3],
        json!({ "id": 9, "owner": "dropbox", "body": "y", "status": "draft", "source": null }),
        "the role is a session variable too"
    );
    let body = server
        .gql_as(
            "dropbox",
            &[],
            "mutation { insert_notes(objects: [{id: 1}],
                on_conflict: {constraint: notes_pkey, update_columns: [body]}) { affected_rows } }",
            json!({}),
        )
        .await;
    assert_eq!(only_error(&body).0, "validation-failed", "{body}");
    let body = server
        .gql_as(
            "dropbox",
            &[],
            r#"{ __type(name: "notes_update_column") { enumValues { name } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        ok_data(&body)["__type"]["enumValues"],
        json!([{ "name": "_PLACEHOLDER" }])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_role_schema_has_only_the_fields_its_permissions_allow() {
    let (server, project) = notes_server().await;
    let cases = [
        // No select permission: no query field, no row to answer with.
        (
            "dropbox",
            "{ notes { id } }",
            "field 'notes' not found in type: 'query_root'",
        ),
        (
            "dropbox",
            "mutation { insert_notes_one(object: {id: 1}) { id } }",
            "field 'insert_notes_one' not found in type: 'mutation_root'",
        ),
        (
            "dropbox",
            "mutation { insert_notes(objects: [{id: 1}]) { returning { id } } }",
            "field 'returning' not found in type: 'notes_mutation_response'",
        ),
        (
            "dropbox",
            "mutation { update_notes(where: {}, _set: {body: \"x\"}) { affected_rows } }",
            "field 'update_notes' not found in type: 'mutation_root'",
        ),
        (
            "dropbox",
            "mutation { delete_notes(where: {}) { affected_rows } }",
            "field 'delete_notes' not found in type: 'mutation_root'",
        ),
        // Select only: no mutation at all.
        (
            "reader",
            "mutation { delete_notes(where: {}) { affected_rows } }",
            "no mutations exist",
        ),
        // A role metadata does not know.
        (
            "stranger",
            "{ notes { id } }",
            "field 'notes' not found in type: 'query_root'",
        ),
    ];
    for (role, query, message) in cases {
        let body = server.gql_as(role, &ALICE, query, json!({})).await;
        assert_eq!(
            only_error(&body),
            ("validation-failed".to_owned(), message.to_owned()),
            "{role}: {query}"
        );
    }
    let body = server
        .gql_as("dropbox", &[], "{ no_queries_available }", json!({}))
        .await;
    assert_eq!(ok_data(&body), json!({ "no_queries_available": "" }));

    // The printed schema of a role is the one served to it.
    let sdl = hasura_lite::print_schema(
        &server.db.config_for(project.path().to_path_buf(), None),
        Some("dropbox"),
    )
    .await
    .expect("print the dropbox schema");
    assert!(sdl.contains("insert_notes("), "{sdl}");
    for absent in [
        "insert_notes_one",
        "update_notes",
        "delete_notes",
        "returning",
        "secret",
    ] {
        assert!(!sdl.contains(absent), "{absent} in:\n{sdl}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_admin_secret_acts_as_the_role_it_names() {
    let server = Server::start().await;
    server
        .data(
            "mutation($u: [cognito_users_insert_input!]!) { insert_cognito_users(objects: $u) { affected_rows } }",
            json!({ "u": [user(1, "h", "2024-01-01T00:00:00Z"), user(2, "h", "2024-01-01T00:00:00Z")] }),
        )
        .await;
    let query = "{ cognito_users(order_by: {id: asc}) { id } }";
    let own = server
        .gql_as(
            "user",
            &[("x-hasura-user-id", &user_id(2))],
            query,
            json!({}),
        )
        .await;
    assert_eq!(
        ok_data(&own),
        json!({ "cognito_users": [{ "id": user_id(2) }] }),
        "the role's filter, with the session variable from the header"
    );
    let attributes = server
        .gql_as(
            "user",
            &[("x-hasura-user-id", &user_id(2))],
            "{ cognito_users { attributes } }",
            json!({}),
        )
        .await;
    assert_eq!(only_error(&attributes).0, "validation-failed");
    let as_admin = server.gql_as("admin", &[], query, json!({})).await;
    let plain = server.gql(query, json!({})).await;
    assert_eq!(
        as_admin, plain,
        "x-hasura-role: admin is the admin secret alone"
    );
    assert_eq!(
        ok_data(&plain)["cognito_users"].as_array().unwrap().len(),
        2
    );
    // A wrong secret is refused whatever role it names.
    let wrong = server
        .gql_headers(
            query,
            json!({}),
            &[("x-hasura-admin-secret", "nope"), ("x-hasura-role", "user")],
        )
        .await;
    assert_eq!(only_error(&wrong).0, "access-denied");
    server.stop().await;

    // Without an admin secret configured (Hasura's dev mode) the header alone switches.
    let db = TestDb::create().await;
    let config = db.config(None);
    let open = Server::start_with(db, config).await;
    let body = open
        .gql_headers(
            "{ cognito_sync_runs { id } }",
            json!({}),
            &[("x-hasura-role", "user")],
        )
        .await;
    assert_eq!(
        only_error(&body),
        (
            "validation-failed".to_owned(),
            "field 'cognito_sync_runs' not found in type: 'query_root'".to_owned()
        )
    );
    open.stop().await;
}
