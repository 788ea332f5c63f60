//! Applies the Hasura CLI migrations folder (`default/<version>_<name>/up.sql`) in version
//! order, recording applied versions in `hdb_catalog.schema_migrations` as Hasura does.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio_postgres::Client;

/// One `up.sql` found on disk.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The numeric prefix of the folder name (Hasura uses a millisecond timestamp).
    pub version: i64,
    /// The folder the migration lives in, for messages.
    pub dir: PathBuf,
}

/// Lists the migrations of the `default` source (or of the folder itself when it holds
/// version folders directly), sorted by version.
pub fn discover(migrations_dir: &Path) -> anyhow::Result<Vec<Migration>> {
    let source_dir = migrations_dir.join("default");
    let root = if source_dir.is_dir() {
        source_dir
    } else {
        migrations_dir.to_path_buf()
    };
    let entries = std::fs::read_dir(&root)
        .with_context(|| format!("reading migrations folder {}", root.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("reading migrations folder {}", root.display()))?;
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((version, _)) = name.split_once('_') else {
            continue;
        };
        let Ok(version) = version.parse::<i64>() else {
            continue;
        };
        if dir.join("up.sql").is_file() {
            found.push(Migration { version, dir });
        }
    }
    found.sort_by_key(|m| m.version);
    Ok(found)
}

/// Advisory lock key serialising hasura-lite instances migrating the same database.
const MIGRATION_LOCK: i64 = 7_355_608;

/// Applies every migration not yet recorded, each in its own transaction together with
/// its bookkeeping row. An advisory lock keeps two servers starting at once from racing.
pub async fn apply_pending(client: &mut Client, migrations_dir: &Path) -> anyhow::Result<Vec<i64>> {
    let migrations = discover(migrations_dir)?;
    client
        .batch_execute(&format!(
            "SET client_min_messages TO warning;
             BEGIN;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE SCHEMA IF NOT EXISTS hdb_catalog;
             CREATE TABLE IF NOT EXISTS hdb_catalog.schema_migrations (
                 version bigint NOT NULL PRIMARY KEY,
                 dirty boolean NOT NULL DEFAULT false
             );
             COMMIT;"
        ))
        .await
        .context("creating hdb_catalog.schema_migrations")?;
    let mut applied = Vec::new();
    for migration in migrations {
        let tx = client
            .transaction()
            .await
            .context("starting migration transaction")?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .context("taking the migration lock")?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM hdb_catalog.schema_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await
            .context("reading hdb_catalog.schema_migrations")?
            .is_some();
        if done {
            continue;
        }
        let path = migration.dir.join("up.sql");
        let sql = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        tx.batch_execute(&sql)
            .await
            .with_context(|| format!("applying migration {}", path.display()))?;
        tx.execute(
            "INSERT INTO hdb_catalog.schema_migrations (version, dirty) VALUES ($1, false)",
            &[&migration.version],
        )
        .await
        .context("recording the applied migration")?;
        tx.commit()
            .await
            .with_context(|| format!("committing migration {}", path.display()))?;
        tracing::info!(version = migration.version, dir = %migration.dir.display(), "applied migration");
        applied.push(migration.version);
    }
    Ok(applied)
}
