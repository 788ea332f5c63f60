//! What the test bed's programs (`testbed-proxy`, `cognito-lite`) share: logging to stderr
//! (stdout carries their JSON lines) and running until SIGINT or SIGTERM.

use anyhow::Context as _;

/// Logs to stderr, at `RUST_LOG` or `warn`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// Returns when the process is told to stop: SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
