//! [`BenchBed`]: what the reconcile and daemon benchmarks run against. A pool of any size
//! imported into cognito-lite in one request, a database with hasura-lite, and a counting
//! [`FaultProxy`] in front of each, so that the code under test is measured rather than the
//! emulators: moto ([`crate::TestBed`], which the tests use) lists a few dozen pages per
//! second once a pool holds thousands of users.

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use uuid::Uuid;

use crate::mirror::RowVersion;
use crate::{
    CognitoLite, FaultProxy, GroupImport, HasuraLite, PoolImport, TestDatabase, UserImport,
    UserSpec,
};

/// One imported user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchUser {
    pub username: String,
    pub sub: Uuid,
}

/// A benchmark's pool, mirror database and proxies. Dropping it stops everything.
#[derive(Debug)]
pub struct BenchBed {
    pub pool_id: String,
    /// The imported users, in the order their specs were given.
    pub users: Vec<BenchUser>,
    /// Counting proxy in front of cognito-lite: the Cognito endpoint of the code under test.
    pub cognito: FaultProxy,
    /// Counting proxy in front of hasura-lite.
    pub hasura: FaultProxy,
    /// Cognito straight to cognito-lite (drift made behind the code's back is not counted).
    pub cognito_client: aws_sdk_cognitoidentityprovider::Client,
    /// Declared before `db` so that it stops first.
    pub hasura_lite: HasuraLite,
    pub db: TestDatabase,
    /// Kept alive for the proxy in front of it.
    cognito_lite: CognitoLite,
}

impl BenchBed {
    /// Imports `count` users, user `i` described by `spec(i)` (custom attributes `tenant` and
    /// `plan`; groups created from the specs), and starts the database, hasura-lite and proxies.
    pub async fn start(count: usize, spec: impl Fn(usize) -> UserSpec) -> anyhow::Result<BenchBed> {
        let db = TestDatabase::create().await?;
        let hasura_lite = HasuraLite::start(db.url()).await?;
        let cognito_lite = CognitoLite::start().await?;

        let specs: Vec<UserSpec> = (0..count).map(spec).collect();
        let groups: BTreeSet<&String> = specs.iter().flat_map(|s| &s.groups).collect();
        let users: Vec<UserImport> = specs
            .iter()
            .map(|spec| UserImport {
                sub: Some(Uuid::new_v4()),
                ..UserImport::from(spec)
            })
            .collect();
        let bench_users = users
            .iter()
            .map(|u| BenchUser {
                username: u.username.clone(),
                sub: u.sub.unwrap_or_default(),
            })
            .collect();
        let imported = cognito_lite
            .import(PoolImport {
                pool_name: format!("bench-{}", crate::unique_suffix()),
                custom_attributes: vec!["tenant".into(), "plan".into()],
                groups: groups
                    .into_iter()
                    .map(|name| GroupImport {
                        name: name.clone(),
                        description: Some(format!("The {name}")),
                        precedence: None,
                        role_arn: None,
                    })
                    .collect(),
                users,
            })
            .map_err(|e| anyhow::anyhow!("importing the benchmark pool: {e:?}"))?;

        let cognito = FaultProxy::start(cognito_lite.endpoint()).await?;
        let hasura = FaultProxy::start(hasura_lite.base_url()).await?;
        let cognito_client = aws_sdk_cognitoidentityprovider::Client::new(
            &crate::sdk_config(cognito_lite.endpoint()).await,
        );
        Ok(BenchBed {
            pool_id: imported.user_pool_id,
            users: bench_users,
            cognito,
            hasura,
            cognito_client,
            hasura_lite,
            db,
            cognito_lite,
        })
    }

    /// The SDK configuration of the code under test: Cognito through [`BenchBed::cognito`].
    pub async fn sdk_config(&self) -> SdkConfig {
        crate::sdk_config(self.cognito.url()).await
    }

    /// The GraphQL endpoint of the code under test: hasura-lite through [`BenchBed::hasura`].
    pub fn hasura_endpoint(&self) -> String {
        format!("{}/v1/graphql", self.hasura.url())
    }

    /// cognito-lite's own URL (no proxy).
    pub fn cognito_lite_endpoint(&self) -> &str {
        self.cognito_lite.endpoint()
    }

    /// The mirror's row versions ([`crate::mirror::row_versions`]).
    pub async fn row_versions(&self) -> anyhow::Result<Vec<RowVersion>> {
        crate::mirror::row_versions(&self.db.client().await?).await
    }
}
