//! The reconcile benchmark (run by `bench/reconcile.sh`; ignored by a plain `cargo test`):
//! a pool of `RECONCILE_BENCH_USERS` users (default 10,000) in cognito-lite
//! ([`testbed::BenchBed`]; moto would be measured instead) mirrored by a first reconcile,
//! then an unchanged-pool reconcile and a reconcile after 1% drift, with Cognito (under its
//! 30 RPS `UserList` quota) and Hasura each behind a counting proxy. Prints time, Cognito
//! calls by operation next to the scan's lower bound, and Hasura reads and mutations; fails
//! if the unchanged run writes to the mirror.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use cognito_hasura_sync::cognito::{CognitoReader, ReadLimits};
use cognito_hasura_sync::config::{DEFAULT_HASURA_ROLE, HasuraAuth, HasuraSettings, Secret};
use cognito_hasura_sync::hasura::HasuraClient;
use cognito_hasura_sync::sync::reconcile::{ReconcileOptions, ReconcileReport, reconcile};
use futures::{StreamExt, TryStreamExt};
use testbed::{BenchBed, UserSpec};
use tokio_util::sync::CancellationToken;

struct Case<'a> {
    bed: &'a BenchBed,
    client: HasuraClient,
}

impl Case<'_> {
    async fn run(&self, name: &str) -> anyhow::Result<ReconcileReport> {
        self.bed.cognito.reset_counts();
        self.bed.hasura.reset_counts();
        let sdk = self.bed.sdk_config().await;
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
        let ops = self.bed.cognito.stats().ops;
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
            .bed
            .hasura
            .stats()
            .graphql_operations
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        println!(
            "hasura requests       {} reads, {} mutations ({})",
            self.bed.hasura.graphql_queries(),
            self.bed.hasura.graphql_mutations(),
            by_name.join(", ")
        );
        Ok(report)
    }

    /// Mutations other than the run record's (InsertRun + UpdateRun).
    fn mirror_mutations(&self) -> u64 {
        let hasura = &self.bed.hasura;
        hasura.graphql_mutations()
            - hasura.graphql_operation("InsertRun")
            - hasura.graphql_operation("UpdateRun")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/reconcile.sh"]
async fn reconcile_benchmark() -> anyhow::Result<()> {
    let users: usize = std::env::var("RECONCILE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    println!("importing {users} users into cognito-lite");
    let spec = |i: usize| match i % 10 {
        0 => UserSpec::numbered(i).group("admins"),
        1..=3 => UserSpec::numbered(i).group("readers"),
        _ => UserSpec::numbered(i),
    };
    let bed = BenchBed::start(users, spec).await?;
    bed.cognito.set_shared_quota(
        &testbed::proxy::COGNITO_USER_LIST_OPERATIONS,
        testbed::proxy::COGNITO_USER_LIST_RPS,
    );
    let client = HasuraClient::new(&HasuraSettings {
        endpoint: bed.hasura_endpoint(),
        auth: HasuraAuth::AdminSecret(Secret::new(bed.hasura_lite.admin_secret.clone())),
        role: DEFAULT_HASURA_ROLE.to_owned(),
        retries: 2,
    })?;
    let case = Case { bed: &bed, client };

    // The fewest list calls a 16-shard scan can make: ceil(n / 60) per shard and per group.
    let mut per_shard: BTreeMap<char, u64> = BTreeMap::new();
    for user in &bed.users {
        let prefix = user.sub.to_string().chars().next().unwrap_or('0');
        *per_shard.entry(prefix).or_default() += 1;
    }
    let mut per_group: BTreeMap<String, u64> = BTreeMap::new();
    for group in (0..users).flat_map(|i| spec(i).groups) {
        *per_group.entry(group).or_default() += 1;
    }
    fn pages<K>(counts: &BTreeMap<K, u64>) -> u64 {
        counts.values().map(|n| n.div_ceil(60)).sum()
    }
    println!(
        "scan lower bound      ListUsers {} (sum over shards of ceil(users / 60)), ListUsersInGroup {} (sum over groups of ceil(members / 60)), ListGroups 1",
        pages(&per_shard),
        pages(&per_group)
    );

    case.run("first reconcile: empty mirror").await?;
    let before = bed.row_versions().await?;
    let quiet = case.run("unchanged pool").await?;
    anyhow::ensure!(
        bed.row_versions().await? == before,
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
            let cognito = bed.cognito_client.clone();
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
