//! [`Served`]: an axum router serving on a listener until it is stopped or dropped — what the
//! test bed's in-process servers (the fault proxy, cognito-lite, sqs-lite) share.

use anyhow::Context as _;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A router being served; dropping it stops accepting requests.
#[derive(Debug)]
pub(crate) struct Served {
    url: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Serves `router` on `listener` from a task of the current runtime.
    pub(crate) fn start(
        listener: tokio::net::TcpListener,
        router: Router,
    ) -> anyhow::Result<Served> {
        let address = listener
            .local_addr()
            .context("reading the listener's address")?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .into_future(),
        );
        Ok(Served {
            url: format!("http://{address}"),
            shutdown,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops accepting requests and waits for the server (`what`, for errors) to finish.
    pub(crate) async fn stop(mut self, what: &str) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => Ok(task
                .await
                .with_context(|| format!("{what} panicked"))?
                .with_context(|| format!("serving {what}"))?),
            None => Ok(()),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
