//! Upsert throughput through the real HTTP API: 100k cognito_users rows in batches of 500
//! and 1000, first as fresh inserts, then as no-op re-upserts (the guard trigger skips
//! them). Prints rows/s. Needs PostgreSQL at 127.0.0.1:5432; uses a scratch database.
//!
//! `cargo run --release -p hasura-lite --example upsert_bench [-- ROWS]`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const UPSERT: &str = "mutation Upsert($objects: [cognito_users_insert_input!]!) {
  insert_cognito_users(objects: $objects, on_conflict: {
    constraint: cognito_users_pkey,
    update_columns: [user_pool_id, username, email, email_verified, enabled, status, attributes, groups,
                     cognito_created_at, cognito_updated_at, observed_at, content_hash, deleted_at]
  }) { affected_rows }
}";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let (admin, connection) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .context("connect")?;
    tokio::spawn(connection);
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hasura");
    println!("rows={rows}");
    for batch in [500usize, 1000] {
        let db = format!("hasura_lite_bench_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await?;
        let result = run(&db, &project, rows, batch).await;
        admin
            .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
            .await?;
        result?;
    }
    Ok(())
}

async fn run(db: &str, project: &std::path::Path, rows: u32, batch: usize) -> anyhow::Result<()> {
    let config = hasura_lite::Config {
        database_url: format!("postgres://postgres@127.0.0.1:5432/{db}"),
        admin_secret: Some("bench".to_owned()),
        jwt_secret: None,
        migrations_dir: project.join("migrations"),
        metadata_dir: project.join("metadata"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/v1/graphql", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(hasura_lite::serve(config, listener, shutdown.clone()));
    let http = reqwest::Client::new();
    let objects: Vec<Json> = (0..rows).map(user).collect();
    for (label, expected) in [("fresh insert", true), ("no-op re-upsert", false)] {
        let started = Instant::now();
        let mut affected = 0u64;
        let mut slowest = 0f64;
        for chunk in objects.chunks(batch) {
            let t = Instant::now();
            let body: Json = loop {
                let response = http
                    .post(&endpoint)
                    .header("x-hasura-admin-secret", "bench")
                    .json(&json!({ "query": UPSERT, "variables": { "objects": chunk } }))
                    .send()
                    .await;
                match response {
                    Ok(r) => break r.json().await?,
                    // The server may still be applying migrations.
                    Err(e) if e.is_connect() => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            slowest = slowest.max(t.elapsed().as_secs_f64());
            ensure!(body.get("errors").is_none(), "upsert failed: {body}");
            affected += body["data"]["insert_cognito_users"]["affected_rows"]
                .as_u64()
                .unwrap_or(0);
        }
        let secs = started.elapsed().as_secs_f64();
        ensure!(
            affected == if expected { u64::from(rows) } else { 0 },
            "{label}: unexpected affected_rows {affected}"
        );
        println!(
            "batch={batch:5} {label:16} {rows} rows in {secs:6.2}s = {:8.0} rows/s (slowest batch {:.0} ms, affected {affected})",
            f64::from(rows) / secs,
            slowest * 1000.0
        );
    }
    shutdown.cancel();
    server.await??;
    Ok(())
}

fn user(n: u32) -> Json {
    json!({
        "id": uuid::Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string(),
        "user_pool_id": "us-east-1_bench",
        "username": format!("user-{n}"),
        "email": format!("user-{n}@example.com"),
        "email_verified": true,
        "enabled": true,
        "status": "CONFIRMED",
        "attributes": { "email": format!("user-{n}@example.com"), "custom:tenant": "t1", "given_name": "Bench" },
        "groups": ["users"],
        "cognito_created_at": "2024-01-01T00:00:00Z",
        "cognito_updated_at": "2024-01-02T00:00:00Z",
        "observed_at": "2024-01-03T00:00:00Z",
        "content_hash": format!("{n:064x}"),
        "deleted_at": null,
    })
}
