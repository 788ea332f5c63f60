//! The sync engine: joins a Cognito reader to a Hasura writer.
//!
//! - [`backfill`]: the resumable whole-pool scan.
//! - [`writer`]: one batch compared with the mirror and upserted; the commit tracker behind
//!   the checkpoint.
//! - [`reconcile`]: the diff of Cognito against the mirror that repairs drift.
//! - [`progress`]: progress bar or periodic log line.

pub mod backfill;
pub mod progress;
pub mod reconcile;
pub mod writer;

pub use backfill::{BackfillOptions, BackfillSummary, backfill};
