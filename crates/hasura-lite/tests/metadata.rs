//! Metadata hasura-lite cannot serve is refused at start with an error that names it,
//! never silently ignored.

mod common;

use common::{Project, TestDb};

const THINGS_SQL: &str =
    "CREATE TABLE public.things (id integer PRIMARY KEY, owner_id integer, label text);";
const THINGS: &str = "table:\n  name: things\n  schema: public\n";

/// The error of loading `project` over a fresh database, as one line.
async fn refusal(project: &Project) -> String {
    let db = TestDb::create().await;
    let config = db.config_for(project.path().to_path_buf(), None);
    let err = hasura_lite::print_schema(&config, None)
        .await
        .expect_err("metadata must be refused");
    format!("{err:#}")
}

fn things_project(table_yaml: &str) -> Project {
    let project = Project::empty();
    project.add_migration("1700000000000_things", THINGS_SQL);
    project.add_table("public_things.yaml", table_yaml);
    project
}

#[tokio::test]
async fn relationships_and_other_table_features_are_refused_by_name() {
    let cases = [
        (
            "object_relationships:\n  - name: owner\n    using:\n      foreign_key_constraint_on: owner_id\n",
            &["table public.things", "object_relationships", "owner"][..],
        ),
        (
            "array_relationships:\n  - name: children\n    using:\n      manual_configuration:\n        remote_table: things\n        column_mapping:\n          id: owner_id\n",
            &["table public.things", "array_relationships", "children"],
        ),
        (
            "computed_fields:\n  - name: full\n    definition:\n      function: full\n",
            &["table public.things", "computed_fields"],
        ),
        (
            "configuration:\n  custom_name: Thing\n",
            &["table public.things", "configuration"],
        ),
        (
            "insert_permissions:\n  - role: app\n    permission:\n      columns: [id]\n      check: {}\n      backend_only: true\n",
            &[
                "table public.things",
                "insert permission of role app",
                "backend_only",
            ],
        ),
        (
            "select_permissions:\n  - role: app\n    permission:\n      columns: [id]\n      filter: {}\n      query_root_fields: [select]\n",
            &[
                "table public.things",
                "select permission of role app",
                "query_root_fields",
            ],
        ),
        (
            "select_permissions:\n  - role: app\n    permission:\n      columns: [id, nope]\n      filter: {}\n",
            &["table public.things", "role app", "nope"],
        ),
        (
            "update_permissions:\n  - role: app\n    permission:\n      columns: [label]\n      filter:\n        owner:\n          id:\n            _eq: X-Hasura-User-Id\n",
            &["table public.things", "role app", "update filter", "owner"],
        ),
    ];
    for (extra, expected) in cases {
        let message = refusal(&things_project(&format!("{THINGS}{extra}"))).await;
        for part in expected {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
    }
    // Settings left empty, as the Hasura CLI writes them, are fine.
    let project = things_project(&format!(
        "{THINGS}object_relationships: []\nconfiguration:\n  custom_root_fields: {{}}\n  column_config: {{}}\nis_enum: false\n\
         select_permissions:\n  - role: app\n    permission:\n      columns: [id]\n      filter: {{}}\n      computed_fields: []\n"
    ));
    let db = TestDb::create().await;
    let config = db.config_for(project.path().to_path_buf(), None);
    let sdl = hasura_lite::print_schema(&config, None)
        .await
        .expect("empty settings");
    assert!(sdl.contains("type things"), "{sdl}");
}

#[tokio::test]
async fn metadata_files_it_does_not_serve_are_refused() {
    let cases = [
        (
            "remote_schemas.yaml",
            "- name: payments\n  definition:\n    url: http://127.0.0.1:1/graphql\n",
            "remote schemas",
        ),
        (
            "actions.yaml",
            "actions:\n  - name: login\n    definition:\n      kind: synchronous\n      handler: http://127.0.0.1:1\ncustom_types: {}\n",
            "actions",
        ),
        (
            "actions.graphql",
            "type Mutation {\n  login(name: String!): String\n}\n",
            "actions",
        ),
        (
            "inherited_roles.yaml",
            "- role_name: staff\n  role_set: [support, user]\n",
            "inherited roles",
        ),
        (
            "cron_triggers.yaml",
            "- name: nightly\n  webhook: http://127.0.0.1:1\n  schedule: 0 0 * * *\n",
            "cron triggers",
        ),
    ];
    for (file, text, what) in cases {
        let project = Project::copy_of_deploy();
        project.write(&format!("metadata/{file}"), text);
        let message = refusal(&project).await;
        assert!(
            message.contains(file) && message.contains(what),
            "{file}: {message}"
        );
    }
    let project = Project::copy_of_deploy();
    project.write(
        "metadata/databases/databases.yaml",
        "- name: default\n  kind: postgres\n  tables: []\n- name: analytics\n  kind: postgres\n  tables: []\n",
    );
    let message = refusal(&project).await;
    assert!(message.contains("one database source"), "{message}");
}
