//! A fresh PostgreSQL database per test on the server at 127.0.0.1:5432 (user `postgres`,
//! trust auth), dropped when the test is done.
//!
//! Names are `testbed_<pid>_<random>`: the first database a process creates also sweeps
//! away databases left by test processes that no longer run (a killed test never gets to
//! drop its own).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio_postgres::NoTls;

/// The maintenance database used to create and drop test databases.
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const BASE_URL: &str = "postgres://postgres@127.0.0.1:5432";
const NAME_PREFIX: &str = "testbed_";

static SWEPT: AtomicBool = AtomicBool::new(false);

/// A database that exists for the life of this value; `Drop` drops it (`WITH (FORCE)`,
/// best-effort: a failure is printed, never panics).
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty, uniquely named database.
    pub async fn create() -> anyhow::Result<TestDatabase> {
        let admin = connect(ADMIN_URL).await.context(
            "connecting to PostgreSQL at 127.0.0.1:5432 as postgres (start it with ./scripts/test.sh)",
        )?;
        if !SWEPT.swap(true, Ordering::SeqCst) {
            sweep_abandoned(&admin).await;
        }
        let name = format!(
            "{NAME_PREFIX}{}_{}",
            std::process::id(),
            crate::unique_suffix()
        );
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        let url = format!("{BASE_URL}/{name}");
        Ok(TestDatabase { name, url })
    }

    /// Creates a database and applies the project's migrations directly (every
    /// `deploy/hasura/migrations/default/*/up.sql` in version order). Use it for tests
    /// that need the tables without hasura-lite; hasura-lite keeps its own record of
    /// applied migrations, so do not also start it on this database.
    pub async fn with_migrations() -> anyhow::Result<TestDatabase> {
        let db = TestDatabase::create().await?;
        let client = db.client().await?;
        apply_migrations(&client, &crate::migrations_dir()).await?;
        Ok(db)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://postgres@127.0.0.1:5432/<name>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to this database; its connection task runs on the current runtime.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url)
            .await
            .with_context(|| format!("connecting to database {}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop can run inside or outside a runtime and cannot await: drop the database on
        // a thread with its own small runtime and wait for it, so it is gone before the
        // test process exits.
        let outcome = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a runtime to drop the database")?;
            runtime.block_on(drop_database(&name))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("testbed: could not drop database {}: {e:#}", self.name),
            Err(_) => eprintln!("testbed: dropping database {} panicked", self.name),
        }
    }
}

/// Applies every `<migrations_dir>/default/<version>_<name>/up.sql` in version order.
pub async fn apply_migrations(
    client: &tokio_postgres::Client,
    migrations_dir: &Path,
) -> anyhow::Result<()> {
    let source = migrations_dir.join("default");
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))?
    {
        let dir = entry
            .with_context(|| format!("reading {}", source.display()))?
            .path();
        let version = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('_'))
            .and_then(|(v, _)| v.parse::<i64>().ok());
        if let Some(version) = version.filter(|_| dir.join("up.sql").is_file()) {
            found.push((version, dir.join("up.sql")));
        }
    }
    found.sort();
    for (_, path) in found {
        let sql = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        client
            .batch_execute(&sql)
            .await
            .with_context(|| format!("applying {}", path.display()))?;
    }
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "test database connection ended");
        }
    });
    Ok(client)
}

async fn drop_database(name: &str) -> anyhow::Result<()> {
    let admin = connect(ADMIN_URL).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping database {name}"))
}

/// Drops test databases whose owning process is gone (best-effort).
async fn sweep_abandoned(admin: &tokio_postgres::Client) {
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&NAME_PREFIX],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(e) = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
        {
            tracing::debug!(database = %name, error = %e, "could not drop an abandoned test database");
        }
    }
}
