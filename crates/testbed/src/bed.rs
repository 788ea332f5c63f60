//! [`TestBed`]: everything one integration test needs, isolated from the tests running
//! next to it: its own user pool (with an app client and custom attributes), its own sync
//! queue with a dead-letter queue, its own database and its own hasura-lite. Only moto is
//! shared by the tests of one process.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::error::DisplayErrorContext;
use aws_sdk_cognitoidentityprovider::types::UserType;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use uuid::Uuid;

use crate::mirror::{self, MirrorGroup, MirrorUser};
use crate::pool::{CreatedPool, CreatedUser, GroupSpec, PoolTarget, UserSpec, create_pool};
use crate::{HasuraLite, TestDatabase, TokenEndpoint, TokenEndpointOptions};

/// What [`TestBed::start_with`] sets up.
#[derive(Debug, Clone)]
pub struct TestBedOptions {
    /// Receives of one message before SQS moves it to the dead-letter queue.
    pub max_receive_count: u32,
    /// Visibility timeout of the sync queue (whole seconds; SQS's default is 30 s).
    pub visibility_timeout: Duration,
    /// Custom attributes of the pool, without the `custom:` prefix.
    pub custom_attributes: Vec<String>,
    /// A machine client with its token endpoint, and hasura-lite accepting its tokens.
    pub machine_client: Option<TokenEndpointOptions>,
}

impl Default for TestBedOptions {
    fn default() -> TestBedOptions {
        TestBedOptions {
            max_receive_count: 3,
            visibility_timeout: Duration::from_secs(30),
            custom_attributes: vec!["tenant".into(), "plan".into()],
            machine_client: None,
        }
    }
}

impl TestBedOptions {
    /// Sets [`TestBedOptions::max_receive_count`].
    pub fn max_receive_count(mut self, count: u32) -> TestBedOptions {
        self.max_receive_count = count;
        self
    }

    /// Sets [`TestBedOptions::machine_client`].
    pub fn machine_client(mut self, options: TokenEndpointOptions) -> TestBedOptions {
        self.machine_client = Some(options);
        self
    }

    /// Sets [`TestBedOptions::visibility_timeout`].
    pub fn visibility_timeout(mut self, timeout: Duration) -> TestBedOptions {
        self.visibility_timeout = timeout;
        self
    }
}

/// One test's Cognito pool, queues, database and hasura-lite. Dropping it stops
/// hasura-lite and drops the database; pool and queues die with moto.
#[derive(Debug)]
pub struct TestBed {
    /// moto's URL (`http://127.0.0.1:<port>`).
    pub aws_endpoint: String,
    /// The configuration every AWS client of the test uses (endpoint = moto).
    pub sdk_config: SdkConfig,
    /// Cognito client straight to moto.
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    /// SQS client straight to moto.
    pub sqs: aws_sdk_sqs::Client,
    /// The test's user pool.
    pub pool_id: String,
    /// An app client of the pool (no secret), used for sign-up.
    pub app_client_id: String,
    /// The sync queue (redrives to [`TestBed::dlq_url`]).
    pub queue_url: String,
    /// The sync queue's dead-letter queue.
    pub dlq_url: String,
    /// The options the bed was built with.
    pub options: TestBedOptions,
    /// With [`TestBedOptions::machine_client`]: the token endpoint whose tokens `hasura`
    /// accepts.
    pub token_endpoint: Option<TokenEndpoint>,
    /// hasura-lite over [`TestBed::db`]; declared before `db` so it stops first.
    pub hasura: HasuraLite,
    /// The test's database, migrated by hasura-lite.
    pub db: TestDatabase,
}

impl TestBed {
    /// Starts a bed with the default options.
    pub async fn start() -> anyhow::Result<TestBed> {
        TestBed::start_with(TestBedOptions::default()).await
    }

    /// Starts a bed: moto (shared), a database and hasura-lite, a pool and the queues.
    pub async fn start_with(options: TestBedOptions) -> anyhow::Result<TestBed> {
        let aws_endpoint = crate::moto_endpoint().await?;
        let sdk_config = crate::sdk_config(&aws_endpoint).await;
        let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk_config);
        let sqs = aws_sdk_sqs::Client::new(&sdk_config);

        let db = TestDatabase::create().await?;
        let pool = create_pool(&cognito, &options.custom_attributes).await?;
        let token_endpoint = match &options.machine_client {
            Some(endpoint) => {
                Some(TokenEndpoint::start(&pool.user_pool_id, endpoint.clone()).await?)
            }
            None => None,
        };
        let jwt_secret = token_endpoint
            .as_ref()
            .map(TokenEndpoint::hasura_jwt_secret);
        let hasura = HasuraLite::start_with_jwt(db.url(), jwt_secret).await?;
        let (queue_url, dlq_url) = create_queues(
            &sqs,
            &format!("testbed-sync-{}", crate::unique_suffix()),
            options.max_receive_count,
            options.visibility_timeout,
        )
        .await?;

        Ok(TestBed {
            aws_endpoint,
            sdk_config,
            cognito,
            sqs,
            pool_id: pool.user_pool_id,
            app_client_id: pool.app_client_id,
            queue_url,
            dlq_url,
            options,
            token_endpoint,
            hasura,
            db,
        })
    }

    /// Where users and groups of this bed are created (straight to moto).
    pub fn pool(&self) -> PoolTarget<'_> {
        PoolTarget {
            cognito: &self.cognito,
            user_pool_id: &self.pool_id,
            app_client_id: &self.app_client_id,
        }
    }

    /// Creates another pool (same custom attributes) next to the bed's own, for tests of
    /// what must not leak between pools.
    pub async fn create_other_pool(&self) -> anyhow::Result<CreatedPool> {
        create_pool(&self.cognito, &self.options.custom_attributes).await
    }

    /// Creates a group in the pool.
    pub async fn create_group(&self, group: &GroupSpec) -> anyhow::Result<()> {
        self.pool().create_group(group).await
    }

    /// Creates users concurrently (missing groups first), returned in input order.
    pub async fn create_users(
        &self,
        specs: impl IntoIterator<Item = UserSpec>,
    ) -> anyhow::Result<Vec<CreatedUser>> {
        self.pool().create_users(specs).await
    }

    /// Creates `count` users, user `i` described by `spec(i)` (for example [`UserSpec::numbered`]).
    pub async fn populate(
        &self,
        count: usize,
        spec: impl Fn(usize) -> UserSpec,
    ) -> anyhow::Result<Vec<CreatedUser>> {
        self.create_users((0..count).map(spec)).await
    }

    /// Every user Cognito has in the pool now (the truth the mirror is compared to).
    pub async fn cognito_users(&self) -> anyhow::Result<Vec<UserType>> {
        self.cognito
            .list_users()
            .user_pool_id(&self.pool_id)
            .limit(60)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("ListUsers {}: {}", self.pool_id, DisplayErrorContext(e)))
    }

    /// The mirrored users of this pool (tombstones included), ordered by sub.
    pub async fn mirror_users(&self) -> anyhow::Result<Vec<MirrorUser>> {
        mirror::users(&self.db.client().await?, &self.pool_id).await
    }

    /// One mirrored user by sub.
    pub async fn mirror_user(&self, sub: Uuid) -> anyhow::Result<Option<MirrorUser>> {
        mirror::user(&self.db.client().await?, sub).await
    }

    /// The mirrored groups of this pool (tombstones included), ordered by name.
    pub async fn mirror_groups(&self) -> anyhow::Result<Vec<MirrorGroup>> {
        mirror::groups(&self.db.client().await?, &self.pool_id).await
    }

    /// Sends a message body to the sync queue.
    pub async fn send_event(&self, body: &str) -> anyhow::Result<()> {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| anyhow!("SendMessage: {}", DisplayErrorContext(e)))?;
        Ok(())
    }

    /// `(visible, in flight)` message counts of a queue (approximate, as SQS reports them).
    pub async fn queue_depth(&self, queue_url: &str) -> anyhow::Result<(u64, u64)> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| anyhow!("GetQueueAttributes {queue_url}: {}", DisplayErrorContext(e)))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name: &QueueAttributeName| -> anyhow::Result<u64> {
            attributes
                .get(name)
                .with_context(|| format!("{queue_url} has no {name}"))?
                .parse()
                .with_context(|| format!("{name} of {queue_url} is not a number"))
        };
        Ok((
            count(&QueueAttributeName::ApproximateNumberOfMessages)?,
            count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        ))
    }
}

/// Creates the queue `name` redriving to a dead-letter queue `<name>-dlq` after
/// `max_receive_count` receives, as the deploy does; returns (queue URL, dead-letter queue URL).
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout: Duration,
) -> anyhow::Result<(String, String)> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| anyhow!("CreateQueue (dead-letter): {}", DisplayErrorContext(e)))?
        .queue_url
        .context("CreateQueue returned no URL for the dead-letter queue")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!("GetQueueAttributes {dlq_url}: {}", DisplayErrorContext(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("the dead-letter queue has no QueueArn")?;
    let redrive =
        json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string() });
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout.as_secs().to_string(),
        )
        .send()
        .await
        .map_err(|e| anyhow!("CreateQueue (sync): {}", DisplayErrorContext(e)))?
        .queue_url
        .context("CreateQueue returned no URL for the sync queue")?;
    Ok((queue_url, dlq_url))
}
