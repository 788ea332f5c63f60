//! The reconcile benchmark (run by `bench/reconcile.sh`; ignored by a plain `cargo test`):
//! a pool of `RECONCILE_BENCH_USERS` users (default 10,000) mirrored by a first reconcile,
//! then an unchanged-pool reconcile and a reconcile after 1% drift, with Cognito and Hasura
//! each behind a counting proxy. Prints time, Cognito calls by operation, and Hasura reads
//! and mutations; fails if the unchanged run writes to the mirror.

mod common;

use std::time::Instant;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use cognito_hasura_sync::cognito::{CognitoReader, ReadLimits};
use cognito_hasura_sync::config::{HasuraAuth, HasuraSettings, Secret};
use cognito_hasura_sync::hasura::HasuraClient;
use cognito_hasura_sync::sync::reconcile::{ReconcileOptions, ReconcileReport, reconcile};
use futures::{StreamExt, TryStreamExt};
use testbed::{FaultProxy, TestBed, UserSpec};
use tokio_util::sync::CancellationToken;

struct Case<'a> {
    bed: &'a TestBed,
    cognito: &'a FaultProxy,
    hasura: &'a FaultProxy,
    client: HasuraClient,
}

impl Case<'_> {
    async fn run(&self, name: &str) -> anyhow::Result<ReconcileReport> {
        self.cognito.reset_counts();
        self.hasura.reset_counts();
        let sdk = testbed::sdk_config(self.cognito.url()).await;
        let reader = CognitoReader::new(&sdk, &self.bed.pool_id, ReadLimits::default());
        let clock = Instant::now();
        let report = reconcile(
            reader,
            self.client.clone(),
            ReconcileOptions::default(),
            CancellationToken::new(),
        )
        .await?;
        let c = &report.counters;
        let ops = self.cognito.stats().ops;
        let cognito_ops = ops.iter().filter(|(op, _)| *op != "GraphQL");
        let total: u64 = cognito_ops.clone().map(|(_, s)| s.calls).sum();
        let calls: Vec<String> = cognito_ops
            .map(|(op, s)| format!("{op} {}", s.calls))
            .collect();
        println!("\n== {name} ==");
        println!(
            "time                  {:.2} s",
            clock.elapsed().as_secs_f64()
        );
        println!(
            "users                 {} scanned, {} unchanged",
            c.scanned, c.unchanged
        );
        println!(
            "drift                 {} inserted, {} updated, {} revived, {} tombstoned",
            c.inserted, c.updated, c.revived, c.tombstoned
        );
        println!("cognito calls         {total} ({})", calls.join(", "));
        let by_name: Vec<String> = self
            .hasura
            .stats()
            .graphql_operations
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        println!(
            "hasura requests       {} reads, {} mutations ({})",
            self.hasura.graphql_queries(),
            self.hasura.graphql_mutations(),
            by_name.join(", ")
        );
        Ok(report)
    }

    /// Mutations other than the run record's (InsertRun + UpdateRun).
    fn mirror_mutations(&self) -> u64 {
        self.hasura.graphql_mutations()
            - self.hasura.graphql_operation("InsertRun")
            - self.hasura.graphql_operation("UpdateRun")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/reconcile.sh"]
async fn reconcile_benchmark() -> anyhow::Result<()> {
    let users: usize = std::env::var("RECONCILE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let bed = TestBed::start().await?;
    println!("creating {users} users in moto");
    let specs = (0..users).map(|i| match i % 10 {
        0 => UserSpec::numbered(i).group("admins"),
        1..=3 => UserSpec::numbered(i).group("readers"),
        _ => UserSpec::numbered(i),
    });
    bed.create_users(specs).await?;
    let cognito = FaultProxy::start(&bed.aws_endpoint).await?;
    let hasura = FaultProxy::start(bed.hasura.base_url()).await?;
    let client = HasuraClient::new(&HasuraSettings {
        endpoint: format!("{}/v1/graphql", hasura.url()),
        auth: HasuraAuth::AdminSecret(Secret::new(bed.hasura.admin_secret.clone())),
        retries: 2,
    })?;
    let case = Case {
        bed: &bed,
        cognito: &cognito,
        hasura: &hasura,
        client,
    };

    case.run("first reconcile: empty mirror").await?;
    let before = common::row_versions(&bed).await?;
    let quiet = case.run("unchanged pool").await?;
    anyhow::ensure!(
        common::row_versions(&bed).await? == before,
        "the unchanged run rewrote rows"
    );
    anyhow::ensure!(
        case.mirror_mutations() == 0,
        "the unchanged run sent {} mirror mutations",
        case.mirror_mutations()
    );
    println!(
        "mirror reads          {} = ceil({users} / {})",
        quiet.mirror_reads,
        ReconcileOptions::default().page_size
    );
    println!("mirror mutations      {}", case.mirror_mutations());

    // 1% drift: half changed attributes, half deleted users.
    let drift = (users / 100).max(2);
    let pool = bed.pool_id.as_str();
    futures::stream::iter(0..drift)
        .map(|i| {
            let cognito = bed.cognito.clone();
            async move {
                let username = format!("user-{i:06}");
                if i % 2 == 0 {
                    let attribute = AttributeType::builder()
                        .name("given_name")
                        .value("Drifted")
                        .build()?;
                    cognito
                        .admin_update_user_attributes()
                        .user_pool_id(pool)
                        .username(username)
                        .user_attributes(attribute)
                        .send()
                        .await?;
                } else {
                    cognito
                        .admin_delete_user()
                        .user_pool_id(pool)
                        .username(username)
                        .send()
                        .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let drifted = case
        .run(&format!("1% drift: {drift} users changed or deleted"))
        .await?;
    let batch = ReconcileOptions::default().batch_size as u64;
    let changed = drifted.counters.updated + drifted.counters.inserted + drifted.counters.revived;
    println!(
        "mirror mutations      {} (target: ceil({changed} / {batch}) upserts + ceil({} / {batch}) tombstone batches = {})",
        case.mirror_mutations(),
        drifted.counters.tombstoned,
        changed.div_ceil(batch) + drifted.counters.tombstoned.div_ceil(batch)
    );
    Ok(())
}
