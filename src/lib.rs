//! # cognito-hasura-sync
//!
//! Keeps a Hasura (GraphQL over PostgreSQL) mirror of an AWS Cognito user pool: users,
//! their attributes, their groups, enabled/disabled and deleted.
//!
//! ## Layout
//!
//! - [`cli`] and [`config`]: the command line and the settings it resolves (flags, env, TOML).
//! - [`commands`]: one module per subcommand (`check`, `status`, `jwt-secret`); `backfill`
//!   is the [`sync`] engine itself.
//! - [`model`]: the normalised user and group records and their content hashes.
//! - [`cognito`]: everything that reads Cognito — sharded, rate-limited, retried.
//! - [`hasura`]: the typed GraphQL operations and the client that sends them.
//! - [`state`]: run records, checkpoints and leases kept in Hasura.
//! - [`sync`]: the engine that joins a Cognito reader to a Hasura writer (backfill, ...).
//! - [`daemon`]: the SQS consumer and its health and metrics endpoints.
//! - [`events`]: decoding SQS change events into the users and groups they name.
//! - [`telemetry`]: logging setup and the typed events that log and count together.

pub mod cli;
pub mod cognito;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod events;
pub mod hasura;
pub mod model;
pub mod state;
pub mod sync;
pub mod telemetry;
