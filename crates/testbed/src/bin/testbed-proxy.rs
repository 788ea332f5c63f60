//! `testbed-proxy`: the test bed's fault-injecting proxy as a program, for shell benchmarks.
//! Prints `{"listening":"http://..."}` once serving and the counts as JSON when stopped
//! (SIGINT/SIGTERM); `GET /__proxy/stats` returns them while it runs.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use testbed::{FailPoint, FaultProxy, ProxySettings};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "testbed-proxy",
    version,
    about = "Fault-injecting HTTP proxy in front of moto or hasura-lite"
)]
struct Cli {
    /// Where to forward requests, for example http://127.0.0.1:5000.
    #[arg(long)]
    upstream: String,
    /// Address to listen on (port 0: the kernel picks one; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Request-rate quota `OP=RPS`; `OP1+OP2=RPS` shares one quota. Repeatable.
    #[arg(long = "quota", value_name = "OP=RPS")]
    quotas: Vec<String>,
    /// Cognito's UserList quota: 30 RPS shared by ListUsers and ListUsersInGroup.
    #[arg(long)]
    cognito_user_list_quota: bool,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction (0..=1) of requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    fail_fraction: f64,
    /// Seed of the failure dice (reproducible failures).
    #[arg(long)]
    fail_seed: Option<u64>,
    /// Fail after the upstream handled the request instead of before.
    #[arg(long)]
    fail_after_upstream: bool,
    /// Only fail these operations (repeatable; `GraphQL` for GraphQL requests).
    #[arg(long = "fail-op", value_name = "OP")]
    fail_ops: Vec<String>,
    /// Only fail requests whose body contains this text (for example one user's sub).
    #[arg(long, value_name = "TEXT")]
    fail_matching: Option<String>,
    /// Do not reject `Limit` above 60 on Cognito list operations.
    #[arg(long)]
    no_limit_check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    testbed::programs::init_logging();
    let cli = Cli::parse();
    let settings = settings(&cli)?;
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let proxy = FaultProxy::serve(listener, &cli.upstream, settings)?;
    println!(
        "{}",
        serde_json::json!({ "listening": proxy.url(), "upstream": proxy.upstream() })
    );

    testbed::programs::stop_signal().await?;
    let stats = proxy.stats();
    proxy.stop().await?;
    println!(
        "{}",
        serde_json::to_string(&stats).context("encoding the counts")?
    );
    Ok(())
}

fn settings(cli: &Cli) -> anyhow::Result<ProxySettings> {
    if !(0.0..=1.0).contains(&cli.fail_fraction) {
        bail!(
            "--fail-fraction must be between 0 and 1, not {}",
            cli.fail_fraction
        );
    }
    let mut settings = ProxySettings {
        latency: Duration::from_millis(cli.latency_ms),
        fail_fraction: cli.fail_fraction,
        fail_seed: cli.fail_seed,
        fail_point: if cli.fail_after_upstream {
            FailPoint::AfterUpstream
        } else {
            FailPoint::BeforeUpstream
        },
        fail_ops: (!cli.fail_ops.is_empty())
            .then(|| cli.fail_ops.iter().cloned().collect::<BTreeSet<_>>()),
        fail_matching: cli.fail_matching.clone(),
        quotas: Vec::new(),
        enforce_limits: !cli.no_limit_check,
    };
    if cli.cognito_user_list_quota {
        settings = settings.with_cognito_user_list_quota();
    }
    for quota in &cli.quotas {
        let (ops, rps) = quota
            .split_once('=')
            .with_context(|| format!("--quota {quota}: expected OP=RPS"))?;
        let rps: f64 = rps
            .parse()
            .with_context(|| format!("--quota {quota}: RPS is not a number"))?;
        if rps.is_nan() || rps <= 0.0 {
            bail!("--quota {quota}: RPS must be positive");
        }
        settings
            .quotas
            .push((ops.split('+').map(String::from).collect(), rps));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::{Cli, settings};

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_shared_quotas_and_rejects_bad_ones() {
        let cli = Cli::parse_from([
            "testbed-proxy",
            "--upstream",
            "http://127.0.0.1:1",
            "--quota",
            "ListUsers+ListUsersInGroup=30",
        ]);
        let parsed = settings(&cli).expect("valid settings");
        assert_eq!(
            parsed.quotas,
            vec![(
                vec!["ListUsers".to_string(), "ListUsersInGroup".to_string()],
                30.0
            )]
        );
        let cli = Cli::parse_from([
            "testbed-proxy",
            "--upstream",
            "http://127.0.0.1:1",
            "--quota",
            "ListUsers",
        ]);
        assert!(settings(&cli).is_err());
        let cli = Cli::parse_from(["testbed-proxy", "--upstream", "u", "--fail-fraction", "1.5"]);
        assert!(settings(&cli).is_err());
    }
}
