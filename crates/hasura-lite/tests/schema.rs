//! The served schema: introspection, Hasura's conditional types, the checked-in SDL, and
//! migrations recorded once.

mod common;

use common::{Server, TestDb};
use serde_json::json;

const INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

#[tokio::test]
async fn introspection_describes_hasura_types() {
    let server = Server::start().await;
    let data = server.data(INTROSPECTION, json!({})).await;
    let schema = &data["__schema"];
    assert_eq!(schema["queryType"]["name"], "query_root");
    assert_eq!(schema["mutationType"]["name"], "mutation_root");
    let types = schema["types"].as_array().unwrap();
    let find = |name: &str| types.iter().find(|t| t["name"] == name).cloned();
    // _inc exists only for tables with numeric columns, as in Hasura.
    assert!(find("cognito_groups_inc_input").is_some());
    assert!(find("cognito_users_inc_input").is_none());
    let on_conflict = find("cognito_users_on_conflict").unwrap();
    let update_columns = on_conflict["inputFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "update_columns")
        .unwrap();
    assert_eq!(update_columns["defaultValue"], "[]");
    let constraint = find("cognito_users_constraint").unwrap();
    assert_eq!(constraint["enumValues"][0]["name"], "cognito_users_pkey");
    let order_by = find("order_by").unwrap();
    let values: Vec<&str> = order_by["enumValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "asc",
            "asc_nulls_first",
            "asc_nulls_last",
            "desc",
            "desc_nulls_first",
            "desc_nulls_last"
        ]
    );
    let users = find("cognito_users").unwrap();
    let attributes = users["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "attributes")
        .unwrap();
    assert_eq!(attributes["args"][0]["name"], "path");
    assert_eq!(attributes["type"]["kind"], "NON_NULL");
    let email = users["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "email")
        .unwrap();
    assert_eq!(
        email["type"]["kind"], "SCALAR",
        "nullable column, nullable field"
    );
}

#[tokio::test]
async fn checked_in_schema_matches_print_schema() {
    let db = TestDb::create().await;
    let sdl = hasura_lite::print_schema(&db.config(None), None)
        .await
        .expect("print_schema");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema.graphql");
    let checked_in = std::fs::read_to_string(&path).expect("read schema.graphql");
    assert!(
        sdl == checked_in,
        "schema.graphql is out of date: run scripts/gen-schema.sh"
    );
}

#[tokio::test]
async fn column_types_map_to_hasura_scalars_and_migrations_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let migration = dir.path().join("migrations/default/1700000000000_things");
    std::fs::create_dir_all(&migration).unwrap();
    std::fs::write(
        migration.join("up.sql"),
        "CREATE EXTENSION IF NOT EXISTS citext;
         CREATE TABLE public.things (
             id bigint PRIMARY KEY, amount numeric NOT NULL DEFAULT 0, label citext UNIQUE,
             small smallint, ratio double precision, flag boolean);",
    )
    .unwrap();
    let second = dir.path().join("migrations/default/1700000000001_more");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(
        second.join("up.sql"),
        "ALTER TABLE public.things ADD COLUMN note text;",
    )
    .unwrap();
    let tables = dir.path().join("metadata/databases/default/tables");
    std::fs::create_dir_all(&tables).unwrap();
    std::fs::write(
        dir.path().join("metadata/databases/databases.yaml"),
        "- name: default\n  kind: postgres\n  tables: \"!include default/tables/tables.yaml\"\n",
    )
    .unwrap();
    std::fs::write(
        tables.join("tables.yaml"),
        "- \"!include public_things.yaml\"\n",
    )
    .unwrap();
    std::fs::write(
        tables.join("public_things.yaml"),
        "table:\n  name: things\n  schema: public\n",
    )
    .unwrap();

    let db = TestDb::create().await;
    let config = db.config_for(dir.path().to_path_buf(), None);
    let sdl = hasura_lite::print_schema(&config, None).await.unwrap();
    for expected in [
        "id: bigint!",
        "amount: numeric!",
        "label: citext",
        "small: smallint",
        "ratio: float8",
        "flag: Boolean",
        "note: String",
        "input things_inc_input",
        "input citext_comparison_exp",
        "things_label_key",
    ] {
        assert!(sdl.contains(expected), "missing {expected:?} in:\n{sdl}");
    }
    // Second start: nothing re-applied (re-running the ALTER would fail).
    let server = Server::start_with(db, config).await;
    let data = server
        .data(
            "mutation { insert_things(objects: [{id: 9007199254740993, amount: 1.5, label: \"AbC\"}]) { affected_rows }
                        update_things(where: {label: {_eq: \"abc\"}}, _inc: {amount: 2}) { returning { id amount label } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["update_things"]["returning"][0]["amount"], 3.5);
    assert_eq!(data["update_things"]["returning"][0]["label"], "AbC");
    let client = server.db.client().await;
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM hdb_catalog.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1700000000000, 1700000000001]);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_starts_apply_each_migration_once() {
    let db = TestDb::create().await;
    let config = db.config(None);
    let (a, b, c) = tokio::join!(
        hasura_lite::print_schema(&config, None),
        hasura_lite::print_schema(&config, None),
        hasura_lite::print_schema(&config, None)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a == b && b == c, "every start serves the same schema");
    let client = db.client().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM hdb_catalog.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    let migrations = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/hasura/migrations/default"),
    )
    .unwrap()
    .count();
    assert_eq!(count, migrations as i64, "each migration recorded once");
}
