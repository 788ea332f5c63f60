//! A Hasura v2-compatible GraphQL engine over PostgreSQL, for the tests and demos of
//! cognito-hasura-sync. It serves the same root fields, types, arguments, error shape,
//! admin-secret header and JWT mode (`jwk_url` keys) as Hasura v2 for the tables tracked
//! in a Hasura CLI project. The binary only parses the command line and calls [`serve`]
//! or [`print_schema`] (`print-schema --role R` prints what role `R` is served).
//!
//! # What it serves
//!
//! - **Tables** of the one `default` source: select (list, `_by_pk`, `_aggregate`),
//!   insert (with `on_conflict`), update (`_set`, `_inc`, the jsonb operators, `_by_pk`,
//!   `_many`) and delete (`_by_pk`), with every mutation field of a request in one
//!   transaction.
//! - **Roles**, as Hasura v2 builds them from `select_permissions` (`columns`, `filter`,
//!   `limit`, `allow_aggregations`), `insert_permissions` (`columns`, `check`, `set`),
//!   `update_permissions` (`columns`, `filter`, `check`, `set`) and `delete_permissions`
//!   (`filter`). A role's schema has a root field only with the permission it needs
//!   (`insert_<t>_one` and the `_by_pk` fields also need select permission, on every key
//!   column for `_by_pk`), and each type only the columns its permission allows, preset
//!   columns taken out. `on_conflict` is offered with insert permission; its update
//!   columns are the role's updatable ones, or Hasura's `_PLACEHOLDER` when there are
//!   none (`DO NOTHING` only). Filters narrow every read, update and delete (and the
//!   update of an upsert); a written row failing `check` (the update check for rows an
//!   upsert updated) fails the request with `permission-error`. Session variables
//!   (`X-Hasura-*`, any case) fill filters, checks and presets. `returning` is not
//!   narrowed by the select filter, as in Hasura.
//! - **Choosing the role**: the admin secret alone (or no secret configured) is `admin`;
//!   with `x-hasura-role: R` it acts as `R`, with the request's `x-hasura-*` headers as
//!   session variables. A bearer token runs as its default role or the one
//!   `x-hasura-role` picks among its allowed roles, with the token's claims as session
//!   variables. A role metadata does not know gets an empty schema.
//!
//! Metadata it cannot serve is refused at start with an error naming the table and what
//! it has, never ignored: object and array relationships (join in a view instead),
//! remote relationships, computed fields, event triggers, custom names, `backend_only`
//! permissions (Hasura hides them from requests that do not ask for backend-only
//! permissions), `query_root_fields` and other permission options, functions, a second
//! source, remote schemas, actions, cron triggers, inherited roles, allow lists, REST
//! endpoints, API limits and introspection settings. Permissions naming a column the
//! table lacks, or filters that do not compile, are refused too.
//!
//! # Layout
//!
//! - [`config`]: [`Config`] and the command line (Hasura's environment variables).
//! - [`migrate`]: applies `migrations/default/<version>_<name>/up.sql` in order, recording
//!   versions in `hdb_catalog.schema_migrations`.
//! - [`metadata`]: reads the tracked tables and their permissions from the metadata
//!   folder (`!include` aware) and refuses what cannot be served.
//! - [`catalog`]: columns, types, keys, constraints and comments from PostgreSQL.
//! - [`schema`]: the dynamic async-graphql schema (types named as Hasura names them) and
//!   its resolvers; a per-request [`schema::Session`] holds the connection and the
//!   transaction shared by all mutation fields. The admin schema, and one schema per
//!   role from its [`schema::TableAccess`] on each table.
//! - [`sql`]: SQL for selects, counts, inserts/upserts, updates and deletes, values always
//!   bound as parameters; permission checks are evaluated on the rows PostgreSQL returns.
//! - [`server`]: axum routes (`POST /v1/graphql`, `GET /healthz`), auth and role
//!   selection, Hasura errors.
//! - [`jwt`]: `HASURA_GRAPHQL_JWT_SECRET`, the cached JWKS, token verification and claims.
//! - [`error`]: Hasura's error codes and the PostgreSQL error mapping.

pub mod catalog;
pub mod config;
pub mod error;
pub mod jwt;
pub mod metadata;
pub mod migrate;
pub mod schema;
pub mod server;
pub mod sql;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Applies pending migrations, loads metadata, builds the schema and serves until `shutdown`.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let auth = match (&config.jwt_secret, &config.admin_secret) {
        // As in Hasura: JWT mode without an admin secret would leave no way to be admin.
        (Some(_), None) => anyhow::bail!(
            "HASURA_GRAPHQL_JWT_SECRET requires HASURA_GRAPHQL_ADMIN_SECRET to be set"
        ),
        (Some(jwt), Some(admin_secret)) => server::Auth::Jwt {
            admin_secret: admin_secret.clone(),
            verifier: Box::new(jwt::JwtVerifier::new(jwt::JwtSecret::parse(jwt)?)?),
        },
        (None, Some(secret)) => server::Auth::AdminSecret(secret.clone()),
        (None, None) => server::Auth::Open,
    };
    let pool = pool(&config)?;
    let schemas = {
        let mut client = pool.get().await.context("connecting to the database")?;
        load_schemas(&config, &mut client).await?
    };
    let app = server::router(Arc::new(server::AppState {
        schema: schemas.admin,
        role_schemas: schemas.roles,
        no_access_schema: schemas.no_access,
        pool,
        auth,
    }));
    let address = listener
        .local_addr()
        .context("reading the listener address")?;
    tracing::info!(%address, "hasura-lite serving /v1/graphql");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")
}

/// Applies pending migrations, loads metadata, returns the SDL it would serve to `role`
/// (`None` or `admin`: the admin schema; a role without permissions: the empty schema).
pub async fn print_schema(config: &Config, role: Option<&str>) -> anyhow::Result<String> {
    let (mut client, connection) =
        tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls)
            .await
            .context("connecting to the database")?;
    let driver = tokio::spawn(connection);
    let schemas = load_schemas(config, &mut client).await;
    drop(client);
    let _ = driver.await;
    let schemas = schemas?;
    let schema = match role.filter(|r| *r != server::ADMIN_ROLE) {
        None => &schemas.admin,
        Some(role) => schemas.roles.get(role).unwrap_or(&schemas.no_access),
    };
    Ok(schema::sdl(schema))
}

/// The admin schema and one schema per role.
struct Schemas {
    admin: async_graphql::dynamic::Schema,
    roles: HashMap<String, async_graphql::dynamic::Schema>,
    no_access: async_graphql::dynamic::Schema,
}

async fn load_schemas(
    config: &Config,
    client: &mut tokio_postgres::Client,
) -> anyhow::Result<Schemas> {
    migrate::apply_pending(client, &config.migrations_dir).await?;
    let tracked = metadata::load(&config.metadata_dir)?;
    let tables = catalog::load(client, &tracked).await?;
    let mut by_role: BTreeMap<String, BTreeMap<usize, schema::TableAccess>> = BTreeMap::new();
    for (index, tracked) in tracked.iter().enumerate() {
        for role in tracked.roles() {
            let access = schema::TableAccess {
                select: metadata::rule_of(&tracked.select_permissions, role),
                insert: metadata::rule_of(&tracked.insert_permissions, role),
                update: metadata::rule_of(&tracked.update_permissions, role),
                delete: metadata::rule_of(&tracked.delete_permissions, role),
            };
            by_role
                .entry(role.to_owned())
                .or_default()
                .insert(index, access);
        }
    }
    let mut roles = HashMap::new();
    for (role, accesses) in by_role {
        if role == server::ADMIN_ROLE {
            anyhow::bail!("metadata gives permissions to role admin, which Hasura reserves");
        }
        let mut role_tables = Vec::with_capacity(accesses.len());
        for (index, access) in accesses {
            let table = &tables[index];
            access.validate(table).map_err(|e| {
                anyhow::anyhow!(
                    "table {}.{}: permissions of role {role}: {e}",
                    table.schema,
                    table.name
                )
            })?;
            role_tables.push((table.clone(), access));
        }
        let schema = schema::build_role(&role_tables)
            .with_context(|| format!("building the GraphQL schema of role {role}"))?;
        roles.insert(role, schema);
    }
    Ok(Schemas {
        admin: schema::build(tables).context("building the GraphQL schema")?,
        roles,
        no_access: schema::build_role(&[]).context("building the empty GraphQL schema")?,
    })
}

fn pool(config: &Config) -> anyhow::Result<deadpool_postgres::Pool> {
    let pg: tokio_postgres::Config = config
        .database_url
        .parse()
        .context("parsing the database URL")?;
    let manager = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(16)
        .build()
        .context("building the connection pool")
}
