//! How a running backfill shows progress: a bar with users/s and ETA on a terminal (total:
//! DescribeUserPool's estimate), otherwise a log line every few seconds.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::state::RunCounters;
use crate::telemetry::ProgressSlot;

const LOG_EVERY: Duration = Duration::from_secs(10);

/// When to draw a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else a log line every few seconds.
    #[default]
    Auto,
    Always,
    Never,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    estimated: u64,
}

impl Progress {
    pub fn new(mode: ProgressMode, estimated_users: u64) -> Self {
        let draw = match mode {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        };
        let bar = draw.then(|| {
            let bar = ProgressBar::with_draw_target(Some(estimated_users.max(1)), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/~{human_len} users  ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            ProgressSlot::set(&bar);
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last_log: now,
            estimated: estimated_users,
        }
    }

    /// `users` more were read from Cognito.
    pub fn read(&self, users: u64) {
        if let Some(bar) = &self.bar {
            // Cognito's estimate lags; never let the bar overflow it.
            if bar.position() + users > bar.length().unwrap_or(0) {
                bar.set_length(bar.position() + users);
            }
            bar.inc(users);
        }
    }

    /// Refreshes the message (bar) or logs a line when it is time (no bar).
    pub fn update(
        &mut self,
        counters: &RunCounters,
        seen_here: u64,
        done_shards: usize,
        shards: usize,
    ) {
        match &self.bar {
            Some(bar) => {
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!(
                    "{:.0} users/s  new {} changed {} same {}  shards {done_shards}/{shards}",
                    seen_here as f64 / secs,
                    counters.inserted,
                    counters.updated,
                    counters.unchanged
                ))
            }
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    users_seen = seen_here,
                    estimated_users = self.estimated,
                    users_per_second = (seen_here as f64 / secs).round(),
                    inserted = counters.inserted,
                    updated = counters.updated,
                    unchanged = counters.unchanged,
                    done_shards,
                    shards,
                    "backfill progress"
                );
            }
            None => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            ProgressSlot::clear();
            bar.finish_and_clear();
        }
    }
}
