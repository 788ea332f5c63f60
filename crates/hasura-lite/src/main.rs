//! `hasura-lite`: parses the command line, sets up logging and runs the library.

use anyhow::Context as _;
use clap::Parser as _;
use hasura_lite::config::{Cli, Command};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrintSchema(args)) => {
            let sdl = hasura_lite::print_schema(&args.project.config(None)?, args.role.as_deref())
                .await?;
            print!("{sdl}");
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: hasura_lite::config::ServeArgs) -> anyhow::Result<()> {
    let address = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("binding {address}"))?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            signal.cancel();
        }
    });
    let config = hasura_lite::Config {
        jwt_secret: args.jwt_secret.filter(|s| !s.trim().is_empty()),
        ..args.project.config(args.admin_secret)?
    };
    hasura_lite::serve(config, listener, shutdown).await
}
