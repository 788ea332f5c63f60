//! The `cognito-hasura-sync` binary: parses the command line, sets up logging, resolves the
//! settings, builds the clients and hands off to the library. No work happens here.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use cognito_hasura_sync::cli::{Cli, Command};
use cognito_hasura_sync::commands::{backfill, check, daemon, jwt_secret, reconcile, status};
use cognito_hasura_sync::config::Settings;
use cognito_hasura_sync::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            telemetry::command_failed(&err);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.connection.overrides())?;
    match cli.command {
        Command::JwtSecret(args) => {
            let secret = jwt_secret::run(&settings, &args.request())?;
            println!("{}", serde_json::to_string(&secret)?);
        }
        Command::Check => {
            let lines = check::run(&settings, |line| println!("{line}")).await;
            if lines.iter().any(|l| !l.ok) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Status(args) => match args.run {
            Some(id) => {
                let record = status::run_record(&settings, id).await?;
                if args.json {
                    print_json(&record, true)?;
                } else {
                    print!("{}", record.render());
                }
            }
            None => {
                let status = status::run(&settings, args.runs).await?;
                if args.json {
                    print_json(&status, true)?;
                } else {
                    print!("{}", status.render());
                }
            }
        },
        Command::Daemon(args) => {
            daemon::run(&settings, args.request()?, shutdown_on_signal()).await?;
        }
        Command::Reconcile(args) => {
            let mut report =
                reconcile::run(&settings, args.request(), shutdown_on_signal()).await?;
            if !args.verbose || args.json {
                report.plan = None;
            }
            if args.json {
                // A dry run's review: one line per planned user, then the summary.
                let mut out = std::io::stdout().lock();
                for change in std::mem::take(&mut report.changes) {
                    writeln!(out, "{}", serde_json::to_string(&change)?)
                        .context("cannot write the plan")?;
                }
                drop(out);
                print_json(&report, false)?;
            } else {
                print!("{report}");
            }
            if let Some(reason) = &report.brake {
                bail!("safety brake: {reason}");
            }
        }
        Command::Backfill(args) => {
            let summary = backfill::run(&settings, args.request(), shutdown_on_signal()).await?;
            if args.json {
                print_json(&summary, false)?;
            } else {
                writeln!(std::io::stdout().lock(), "{summary}")
                    .context("cannot write the summary")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One JSON document on stdout.
fn print_json(value: &impl Serialize, pretty: bool) -> anyhow::Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    writeln!(std::io::stdout().lock(), "{text}").context("cannot write the report")
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
