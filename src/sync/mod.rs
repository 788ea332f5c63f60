//! The sync engine: joins a Cognito reader to a Hasura writer.
//!
//! - [`backfill`]: the resumable whole-pool scan.
//! - [`writer`]: one batch compared with the mirror and upserted; the commit tracker behind
//!   the checkpoint.
//! - [`reconcile`]: the diff of Cognito against the mirror that repairs drift.
//! - [`scan`]: one shard's paged ListUsers scan, shared by both.
//! - [`read_ahead`]: shards read on disk while the last group's members are listed.
//! - [`progress`]: progress bar or periodic log line.

pub mod backfill;
pub mod progress;
pub mod read_ahead;
pub mod reconcile;
pub mod scan;
pub mod writer;

pub use backfill::{BackfillOptions, BackfillSummary, backfill};

use std::fmt;

/// Writes the first line of a run's report; returns the prefix its counts take ("would be "
/// when `unwritten` says why nothing was written: a dry run, the safety brake).
fn report_header(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    pool: &str,
    unwritten: Option<&str>,
) -> Result<&'static str, fmt::Error> {
    match unwritten {
        Some(why) => {
            writeln!(f, "{kind} of {pool} ({why}: nothing written)")?;
            Ok("would be ")
        }
        None => {
            writeln!(f, "{kind} of {pool}")?;
            Ok("")
        }
    }
}

/// The report's note on users left out because the mirror refused their data.
fn bad_data_note(skipped: u64) -> String {
    format!("{skipped} (the mirror refused their data; see the log)")
}
