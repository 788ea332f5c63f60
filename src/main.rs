//! The `cognito-hasura-sync` binary: parses the command line, sets up logging, resolves the
//! settings, builds the clients and hands off to the library. No work happens here.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use cognito_hasura_sync::cli::{Cli, Command};
use cognito_hasura_sync::commands::{self, check, jwt_secret, status};
use cognito_hasura_sync::config::{BackfillSettings, Settings};
use cognito_hasura_sync::hasura::HasuraClient;
use cognito_hasura_sync::state::RunStore;
use cognito_hasura_sync::sync::{BackfillOptions, backfill, reconcile};
use cognito_hasura_sync::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.connection)?;
    match cli.command {
        Command::JwtSecret(args) => {
            let secret = jwt_secret::jwt_secret(&settings, &args)?;
            println!("{}", serde_json::to_string(&secret)?);
        }
        Command::Check => {
            let lines = check::check(&settings, |line| println!("{line}")).await;
            if lines.iter().any(|l| !l.ok) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Status(args) => {
            let pool = settings.require_pool()?;
            let runs = RunStore::new(HasuraClient::new(&settings.require_hasura()?)?);
            let status = status::status(&runs, pool, args.runs).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.render());
            }
        }
        Command::Daemon(args) => {
            cognito_hasura_sync::daemon::run(&settings, args, shutdown_on_signal()).await?;
        }
        Command::Reconcile(args) => {
            reconcile::run_reconcile(&settings, &args, shutdown_on_signal()).await?;
        }
        Command::Backfill(args) => {
            let tuning = BackfillSettings::resolve(&args, &settings.backfill_file)?;
            let hasura = HasuraClient::new(&settings.require_hasura()?)?;
            let sdk = commands::aws_config(&settings).await;
            let reader = commands::cognito_reader(&sdk, &settings, tuning.cognito_rps)?;
            let options = BackfillOptions {
                settings: tuning,
                dry_run: args.dry_run,
                restart: args.restart,
                progress: args.progress,
            };
            let summary = backfill(reader, hasura, options, shutdown_on_signal()).await?;
            let mut stdout = std::io::stdout().lock();
            if args.json {
                writeln!(stdout, "{}", serde_json::to_string(&summary)?)
                    .context("cannot write the summary")?;
            } else {
                writeln!(stdout, "{summary}").context("cannot write the summary")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A token cancelled on SIGINT or SIGTERM: work in flight is finished and the checkpoint saved.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing the writes in flight and saving the checkpoint");
        cancel.cancel();
    });
    token
}
