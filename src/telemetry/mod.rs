//! Logging setup and typed telemetry events: each logs and increments its metric in one place.
//!
//! Logs go to stderr (stdout is for command output such as `jwt-secret` or `--json`): human
//! readable, coloured on a terminal, or one JSON object per line when `LOG_FORMAT=json`.
//! `RUST_LOG` filters as usual (default `info`). While a progress bar is drawn, log lines are
//! written around it ([`ProgressSlot`]) instead of through it.

pub mod cognito;
pub mod daemon;
pub mod hasura;
pub mod reconcile;
pub mod records;

use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Whether `LOG_FORMAT=json` asks for JSON lines.
fn json_logs() -> bool {
    std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"))
}

/// Reports the error a command ends with, on stderr: the line `error: <chain>`, or with
/// `LOG_FORMAT=json` one ERROR record with the chain in its `error` field, so that a log
/// pipeline parses the last line too.
pub fn command_failed(err: &anyhow::Error) {
    // A filter that drops errors (`RUST_LOG=off`) must not swallow the reason of the exit.
    if json_logs() && tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!(error = format!("{err:#}"), "command failed");
    } else {
        eprintln!("error: {err:#}");
    }
}

/// Installs the global `tracing` subscriber. `LOG_FORMAT=json` selects JSON lines.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = json_logs();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrAroundProgress);
    // A second init (tests calling into the library) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(io::stderr().is_terminal()).try_init()
    };
}

/// The progress bar currently drawn, if any; log lines suspend it while they are written.
pub struct ProgressSlot;

fn slot() -> &'static Mutex<Option<ProgressBar>> {
    static SLOT: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();
    SLOT.get_or_init(|| Mutex::new(None))
}

impl ProgressSlot {
    /// Routes log lines around `bar` until [`ProgressSlot::clear`].
    pub fn set(bar: &ProgressBar) {
        *slot().lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    }

    pub fn clear() {
        *slot().lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// stderr, suspending the active progress bar for each line.
struct StderrAroundProgress;

struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = slot().lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar
                .suspend(|| io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for StderrAroundProgress {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter
    }
}
