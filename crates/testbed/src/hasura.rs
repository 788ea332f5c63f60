//! hasura-lite served in-process for one test: the project's migrations and metadata over
//! a test database, a random admin secret (and, when asked, JWT mode), a kernel-chosen
//! port, stopped on `Drop`.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long migrations, metadata and schema building may take before `/healthz` answers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running hasura-lite. Its task runs on the runtime that started it.
#[derive(Debug)]
pub struct HasuraLite {
    /// `http://127.0.0.1:<port>/v1/graphql`.
    pub endpoint: String,
    /// The value every request must carry in `x-hasura-admin-secret`.
    pub admin_secret: String,
    base_url: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    http: reqwest::Client,
}

impl HasuraLite {
    /// Serves the project's Hasura project (`deploy/hasura`) over `database_url` and waits
    /// until `/healthz` answers.
    pub async fn start(database_url: &str) -> anyhow::Result<HasuraLite> {
        HasuraLite::start_with_jwt(database_url, None).await
    }

    /// [`HasuraLite::start`], also accepting bearer tokens verified with `jwt_secret` (the
    /// JSON of `HASURA_GRAPHQL_JWT_SECRET`) when it is given.
    pub async fn start_with_jwt(
        database_url: &str,
        jwt_secret: Option<String>,
    ) -> anyhow::Result<HasuraLite> {
        let admin_secret = format!("testbed-{}", uuid::Uuid::new_v4().simple());
        let config = hasura_lite::Config {
            database_url: database_url.to_string(),
            admin_secret: Some(admin_secret.clone()),
            jwt_secret,
            migrations_dir: crate::migrations_dir(),
            metadata_dir: crate::metadata_dir(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a port for hasura-lite")?;
        let address = listener
            .local_addr()
            .context("reading hasura-lite's address")?;
        let base_url = format!("http://{address}");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hasura_lite::serve(config, listener, shutdown.clone()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let mut hasura = HasuraLite {
            endpoint: format!("{base_url}/v1/graphql"),
            admin_secret,
            base_url,
            shutdown,
            task: Some(task),
            http,
        };
        hasura.wait_ready().await?;
        Ok(hasura)
    }

    /// `http://127.0.0.1:<port>` (no path), for a proxy in front of it.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends one GraphQL request with the admin secret and returns the whole response
    /// body (`data` and/or `errors`); fails only on transport errors or a non-JSON body.
    pub async fn graphql(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.endpoint)
            .header("x-hasura-admin-secret", &self.admin_secret)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .with_context(|| format!("POST {}", self.endpoint))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .context("reading the GraphQL response")?;
        serde_json::from_str(&body)
            .with_context(|| format!("GraphQL response ({status}) is not JSON: {body}"))
    }

    /// Like [`HasuraLite::graphql`], but fails when the response carries `errors`; returns `data`.
    pub async fn graphql_data(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let mut response = self.graphql(query, variables).await?;
        if let Some(errors) = response.get("errors") {
            anyhow::bail!("GraphQL errors: {errors}");
        }
        Ok(response
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// Stops serving and waits for the server task to end, returning its outcome.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.context("hasura-lite task panicked")?,
            None => Ok(()),
        }
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let url = format!("{}/healthz", self.base_url);
        loop {
            if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
                let task = self.task.take().expect("checked above");
                return match task.await {
                    Ok(Ok(())) => Err(anyhow!("hasura-lite stopped before answering /healthz")),
                    Ok(Err(e)) => Err(e.context("hasura-lite failed to start")),
                    Err(e) => Err(anyhow!(e).context("hasura-lite panicked while starting")),
                };
            }
            let attempt = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if attempt.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("hasura-lite did not answer {url} within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for HasuraLite {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
