//! Configuration: the library's [`Config`] and the command line, which reads the same
//! environment variables as Hasura (`HASURA_GRAPHQL_DATABASE_URL`, ...).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where the database is and which Hasura CLI project to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL connection string (`HASURA_GRAPHQL_DATABASE_URL`).
    pub database_url: String,
    /// When set, every request must carry it in `x-hasura-admin-secret` (or, with
    /// `jwt_secret`, a bearer token instead).
    pub admin_secret: Option<String>,
    /// The JSON of `HASURA_GRAPHQL_JWT_SECRET`: when set (JWT mode), requests without the
    /// admin secret must carry a bearer token and run as one of its roles.
    pub jwt_secret: Option<String>,
    /// Hasura CLI `migrations` folder (holding `default/<version>_<name>/up.sql`).
    pub migrations_dir: PathBuf,
    /// Hasura CLI `metadata` folder (holding `databases/databases.yaml`).
    pub metadata_dir: PathBuf,
}

/// `hasura-lite [serve|print-schema]`.
#[derive(Debug, Parser)]
#[command(
    name = "hasura-lite",
    version,
    about = "A Hasura v2-compatible GraphQL engine over PostgreSQL, for tests and demos",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, also accepted without the subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, load metadata and serve the GraphQL API (default).
    Serve(ServeArgs),
    /// Apply migrations, load metadata and print the GraphQL schema (SDL).
    PrintSchema(PrintSchemaArgs),
}

/// Options of `print-schema`.
#[derive(Debug, Clone, Args)]
pub struct PrintSchemaArgs {
    /// Database and project.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Print the schema this role is served (its permissions in metadata) instead of the
    /// admin schema.
    #[arg(long)]
    pub role: Option<String>,
}

/// The database and the Hasura CLI project folders.
#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    /// PostgreSQL connection string; required, since migrations are applied to it.
    // Optional to clap and checked in `config`: a required argument of the top-level
    // `serve` options made clap reject `print-schema --database-url ...`.
    #[arg(long, env = "HASURA_GRAPHQL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Hasura CLI migrations folder.
    #[arg(
        long = "migrations",
        env = "HASURA_LITE_MIGRATIONS_DIR",
        default_value = "deploy/hasura/migrations"
    )]
    pub migrations_dir: PathBuf,
    /// Hasura CLI metadata folder.
    #[arg(
        long = "metadata",
        env = "HASURA_LITE_METADATA_DIR",
        default_value = "deploy/hasura/metadata"
    )]
    pub metadata_dir: PathBuf,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Database and project.
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Admin secret required in `x-hasura-admin-secret`; none means open access.
    #[arg(long, env = "HASURA_GRAPHQL_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// JWT mode: `{"type":"RS256","jwk_url":...}` as Hasura reads it.
    #[arg(long, env = "HASURA_GRAPHQL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// TCP port to listen on.
    #[arg(
        long = "server-port",
        env = "HASURA_GRAPHQL_SERVER_PORT",
        default_value_t = 8080
    )]
    pub port: u16,
    /// Address to listen on.
    #[arg(
        long = "server-host",
        env = "HASURA_GRAPHQL_SERVER_HOST",
        default_value = "0.0.0.0"
    )]
    pub host: String,
}

impl ProjectArgs {
    /// The library configuration for these arguments (no JWT mode).
    pub fn config(&self, admin_secret: Option<String>) -> anyhow::Result<Config> {
        let database_url = self.database_url.clone().ok_or_else(|| {
            anyhow::anyhow!("--database-url or HASURA_GRAPHQL_DATABASE_URL is required")
        })?;
        Ok(Config {
            database_url,
            admin_secret: admin_secret.filter(|s| !s.is_empty()),
            jwt_secret: None,
            migrations_dir: self.migrations_dir.clone(),
            metadata_dir: self.metadata_dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::{Cli, Command};

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn print_schema_takes_the_database_url_and_a_role_as_flags() {
        let cli = Cli::try_parse_from([
            "hasura-lite",
            "print-schema",
            "--database-url",
            "postgres://db",
            "--role",
            "cognito_sync",
        ])
        .expect("parses");
        let Some(Command::PrintSchema(args)) = cli.command else {
            panic!("not print-schema: {cli:?}");
        };
        assert_eq!(args.role.as_deref(), Some("cognito_sync"));
        let config = args.project.config(None).expect("config");
        assert_eq!(config.database_url, "postgres://db");
    }
}
