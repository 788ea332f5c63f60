//! Test fixture: a fresh PostgreSQL database per test (dropped on `Drop`) and a real
//! hasura-lite server on `127.0.0.1:0` over it, plus a small GraphQL client.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const SECRET: &str = "test-admin-secret";

/// The project's Hasura CLI folder.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hasura")
}

/// A uniquely named database, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("hasura_lite_test_{}", uuid::Uuid::new_v4().simple());
        let client = admin_client().await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        TestDb { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to test database");
        tokio::spawn(connection);
        client
    }

    pub fn config(&self, admin_secret: Option<&str>) -> hasura_lite::Config {
        self.config_for(project_dir(), admin_secret)
    }

    pub fn config_for(&self, project: PathBuf, admin_secret: Option<&str>) -> hasura_lite::Config {
        hasura_lite::Config {
            database_url: self.url(),
            admin_secret: admin_secret.map(str::to_owned),
            jwt_secret: None,
            migrations_dir: project.join("migrations"),
            metadata_dir: project.join("metadata"),
        }
    }
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(connection);
    client
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = admin_client().await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A running hasura-lite over a [`TestDb`].
pub struct Server {
    pub endpoint: String,
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

impl Server {
    /// Starts the server for the project in `deploy/hasura` with the admin secret set.
    pub async fn start() -> Server {
        let db = TestDb::create().await;
        let config = db.config(Some(SECRET));
        Self::start_with(db, config).await
    }

    pub async fn start_with(db: TestDb, config: hasura_lite::Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hasura_lite::serve(config, listener, shutdown.clone()));
        let http = reqwest::Client::new();
        // Ready once /healthz answers (migrations run before the listener serves).
        for _ in 0..200 {
            if task.is_finished() {
                panic!("hasura-lite exited: {:?}", task.await);
            }
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Server {
            endpoint: format!("{base}/v1/graphql"),
            base,
            http,
            shutdown,
            task: Some(task),
            db,
        }
    }

    /// Sends a request with the admin secret; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Json) -> Json {
        self.gql_with(query, variables, Some(SECRET)).await
    }

    pub async fn gql_with(&self, query: &str, variables: Json, secret: Option<&str>) -> Json {
        let headers: Vec<(&str, &str)> = secret
            .map(|s| ("x-hasura-admin-secret", s))
            .into_iter()
            .collect();
        self.gql_headers(query, variables, &headers).await
    }

    /// Sends a request with the admin secret as `role`, with the session variables in
    /// `session` (header name, value); returns the whole response body.
    pub async fn gql_as(
        &self,
        role: &str,
        session: &[(&str, &str)],
        query: &str,
        variables: Json,
    ) -> Json {
        let mut headers = vec![("x-hasura-admin-secret", SECRET), ("x-hasura-role", role)];
        headers.extend_from_slice(session);
        self.gql_headers(query, variables, &headers).await
    }

    /// Sends a request with `headers`; returns the whole response body.
    pub async fn gql_headers(
        &self,
        query: &str,
        variables: Json,
        headers: &[(&str, &str)],
    ) -> Json {
        let mut request = self
            .http
            .post(&self.endpoint)
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("POST /v1/graphql");
        assert_eq!(
            response.status(),
            200,
            "Hasura answers GraphQL errors with 200"
        );
        response.json().await.expect("JSON body")
    }

    /// Sends a request that must succeed; returns `data`.
    pub async fn data(&self, query: &str, variables: Json) -> Json {
        let body = self.gql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Sends a request that must fail; returns its only error.
    pub async fn error(&self, query: &str, variables: Json) -> Json {
        let body = self.gql(query, variables).await;
        assert!(
            body.get("data").is_none(),
            "Hasura sends no data with errors: {body}"
        );
        let errors = body["errors"].as_array().expect("errors array");
        assert_eq!(errors.len(), 1, "{body}");
        errors[0].clone()
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The only error of a failed response, as (code, message).
pub fn only_error(body: &Json) -> (String, String) {
    assert!(body.get("data").is_none(), "expected an error: {body}");
    let errors = body["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{body}");
    (
        errors[0]["extensions"]["code"].as_str().unwrap().to_owned(),
        errors[0]["message"].as_str().unwrap().to_owned(),
    )
}

/// `data` of a response that must succeed.
pub fn ok_data(body: &Json) -> Json {
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

/// A Hasura CLI project in a temporary folder, to serve metadata other than the project's.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty project: no migration, no tracked table.
    pub fn empty() -> Project {
        let project = Project {
            dir: tempfile::tempdir().expect("temporary folder"),
        };
        project.write(
            "metadata/databases/databases.yaml",
            "- name: default\n  kind: postgres\n  tables: \"!include default/tables/tables.yaml\"\n",
        );
        project.write("metadata/databases/default/tables/tables.yaml", "[]\n");
        std::fs::create_dir_all(project.path().join("migrations/default")).expect("mkdir");
        project
    }

    /// A copy of the project's `deploy/hasura`, to add to.
    pub fn copy_of_deploy() -> Project {
        let project = Project {
            dir: tempfile::tempdir().expect("temporary folder"),
        };
        copy_dir(&project_dir(), project.path());
        project
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes `text` to `relative` inside the project, creating folders.
    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write project file");
    }

    /// Adds the migration `<version>_<name>` running `sql`.
    pub fn add_migration(&self, version_name: &str, sql: &str) {
        self.write(&format!("migrations/default/{version_name}/up.sql"), sql);
    }

    /// Tracks a table: writes its metadata file and includes it in `tables.yaml`.
    pub fn add_table(&self, file: &str, yaml: &str) {
        let tables = "metadata/databases/default/tables";
        self.write(&format!("{tables}/{file}"), yaml);
        let list_path = self.path().join(tables).join("tables.yaml");
        let list = std::fs::read_to_string(&list_path).expect("read tables.yaml");
        let list = list.trim_end().trim_end_matches("[]").to_owned();
        std::fs::write(&list_path, format!("{list}\n- \"!include {file}\"\n"))
            .expect("write tables.yaml");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A cognito_users insert object.
pub fn user(n: u32, hash: &str, observed_at: &str) -> Json {
    json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "user_pool_id": "us-east-1_test",
        "username": format!("user{n}"),
        "email": format!("user{n}@example.com"),
        "status": "CONFIRMED",
        "attributes": { "email": format!("user{n}@example.com"), "custom:tier": if n % 2 == 0 { "gold" } else { "silver" } },
        "groups": ["admins"],
        "observed_at": observed_at,
        "content_hash": hash,
    })
}

pub fn user_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}
