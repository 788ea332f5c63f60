//! # testbed
//!
//! The local test bed of cognito-hasura-sync: every integration test of the project builds
//! on it. Everything runs on this machine and talks only to 127.0.0.1.
//!
//! # Layout
//!
//! - [`moto`]: one `moto_server` per test process (Cognito and SQS), started lazily on a
//!   free port and killed with the process.
//! - [`postgres`]: [`TestDatabase`], a fresh PostgreSQL database per test, dropped after it.
//! - [`hasura`]: [`HasuraLite`], hasura-lite served in-process over a test database with the
//!   project's own migrations and metadata and a random admin secret.
//! - [`aws`]: the one [`aws_config::SdkConfig`] shape used for moto (or a proxy in front of it).
//! - [`pool`]: describing users and groups ([`UserSpec`], [`GroupSpec`]) and creating them
//!   in a pool fast, in parallel.
//! - [`mirror`]: reading the mirror tables back from PostgreSQL for assertions.
//! - [`bed`]: [`TestBed`], all of the above wired together: a user pool, a sync queue with
//!   its dead-letter queue, a database and hasura-lite.
//! - [`bench`]: [`BenchBed`], what the benchmarks run against: a pool of any size imported
//!   into cognito-lite, a database with hasura-lite, a counting proxy in front of each.
//! - [`proxy`]: [`FaultProxy`], an HTTP proxy that counts calls per AWS operation and
//!   GraphQL request and injects what the emulators do not: Cognito's `Limit` validation,
//!   request-rate quotas, latency and server errors. Also a binary, `testbed-proxy`.
//! - [`cognito_lite`]: [`CognitoLite`], a fast in-memory Cognito user pool emulator for
//!   benchmarks only (moto is too slow to list 100,000 users; the tests keep using moto):
//!   the Cognito operations the sync engine uses over the AWS JSON protocol, indexed by
//!   `sub`, plus a bulk import ([`PoolImport`]) that seeds any pool, federated users
//!   included. Also a binary, `cognito-lite`.
//! - [`sqs_lite`]: [`SqsLite`], a fast in-memory SQS (standard queues: visibility timeout,
//!   receive counts, redrive to a dead-letter queue, long polling) for benchmarks only
//!   (moto's SQS slows to seconds per receive under a backlog; the tests keep using moto).
//! - [`token_endpoint`]: [`TokenEndpoint`], a pool domain's OAuth 2.0 token endpoint for one
//!   machine client (client credentials grant) and its JWKS, issuing the tokens the pre
//!   token generation Lambda shapes; a bed with [`TestBedOptions::machine_client`] serves
//!   hasura-lite in JWT mode over it.
//! - [`programs`]: what the two binaries share (logging, running until SIGINT or SIGTERM).

pub mod aws;
pub mod bed;
pub mod bench;
pub mod cognito_lite;
pub mod hasura;
pub mod mirror;
pub mod moto;
pub mod pool;
pub mod postgres;
pub mod programs;
pub mod proxy;
mod served;
pub mod sqs_lite;
pub mod token_endpoint;

use std::path::PathBuf;

pub use aws::{AWS_ACCESS_KEY_ID, AWS_REGION, AWS_SECRET_ACCESS_KEY, sdk_config};
pub use bed::{TestBed, TestBedOptions};
pub use bench::{BenchBed, BenchUser};
pub use cognito_lite::{CognitoLite, GroupImport, Imported, PoolImport, UserImport};
pub use hasura::HasuraLite;
pub use mirror::{MirrorGroup, MirrorUser};
pub use moto::moto_endpoint;
pub use pool::{CreatedPool, CreatedUser, GroupSpec, PoolTarget, UserSpec, UserState};
pub use postgres::TestDatabase;
pub use proxy::{FailPoint, FaultProxy, OpStats, ProxySettings, ProxyStats};
pub use sqs_lite::SqsLite;
pub use token_endpoint::{MachineClient, TokenEndpoint, TokenEndpointOptions};

/// The root of the cargo workspace (the repository), found from this crate's location.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(|crates| crates.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// The Hasura CLI `migrations` folder of the project.
pub fn migrations_dir() -> PathBuf {
    workspace_root().join("deploy/hasura/migrations")
}

/// The Hasura CLI `metadata` folder of the project.
pub fn metadata_dir() -> PathBuf {
    workspace_root().join("deploy/hasura/metadata")
}

/// A short random suffix that makes names of one test unique (pools, queues, databases).
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}
