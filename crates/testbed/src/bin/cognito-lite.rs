//! `cognito-lite`: the in-memory Cognito user pool emulator as a program, for shell
//! benchmarks. Prints `{"listening":"http://..."}` once serving and runs until SIGINT or
//! SIGTERM. Seed a pool with `POST /__cognito-lite/import` (see `bench/seed_pool.py --bulk`).

use anyhow::Context as _;
use clap::Parser;
use testbed::CognitoLite;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "cognito-lite",
    version,
    about = "In-memory Cognito user pool emulator for benchmarks (the tests use moto)"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: the kernel picks one; the URL is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    testbed::programs::init_logging();
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind((cli.host.as_str(), cli.port))
        .await
        .with_context(|| format!("binding {}:{}", cli.host, cli.port))?;
    let server = CognitoLite::serve(listener)?;
    println!("{}", serde_json::json!({ "listening": server.endpoint() }));
    testbed::programs::stop_signal().await?;
    server.stop().await
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
