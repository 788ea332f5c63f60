//! # cognito-hasura-sync
//!
//! Keeps a Hasura (GraphQL over PostgreSQL) mirror of an AWS Cognito user pool: users,
//! their attributes, their groups, enabled/disabled and deleted.
//!
//! ## Layout
//!
//! Each layer uses only the layers below it (`tests/architecture.rs` checks it; the design
//! of record is `docs/DESIGN.md`):
//!
//! 1. [`cli`] (and the binary's `main.rs`): every clap type, turned into plain requests.
//! 2. [`commands`]: one module per subcommand; each builds its clients, runs an engine and
//!    returns the report `main` prints.
//! 3. Engines: [`sync`] (backfill, reconcile, the pool scan, the writer) and [`daemon`] (the
//!    SQS consumer behind its queue seam, the scheduled reconcile, early reconcile requests,
//!    health and metrics).
//! 4. Adapters: [`cognito`] (the reader: sharded, rate-limited per quota category, retried),
//!    [`hasura`] (typed GraphQL operations and the client), [`state`] (runs, checkpoints,
//!    leases and requests kept in Hasura), [`events`] (decoding SQS change events).
//! 5. [`model`] (records and their content hashes), [`config`] (settings from flags,
//!    environment and TOML) and [`telemetry`] (typed events that log and count together).

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
