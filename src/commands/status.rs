//! `status`: the pool's recent runs, its pending early reconcile requests and what the
//! mirror holds; with `--run ID`, one run's record and its counts by kind.

use std::fmt::Write as _;

use anyhow::Context;
use serde::Serialize;

use super::READ_ONLY_HASURA_RETRIES;
use crate::config::Settings;
use crate::hasura::HasuraClient;
use crate::hasura::operations::recent_runs;
use crate::state::requests::{PendingRequest, RequestStore};
use crate::state::{RunStatus, RunStore};

/// What `status` shows; also its `--json` output.
#[derive(Debug, Serialize)]
pub struct Status {
    pub user_pool_id: String,
    pub live_users: i64,
    pub deleted_users: i64,
    pub live_groups: i64,
    pub runs: Vec<RunLine>,
    /// Early reconcile requests not yet served, oldest first.
    pub reconcile_requests: Vec<PendingRequest>,
}

#[derive(Debug, Serialize)]
pub struct RunLine {
    pub id: uuid::Uuid,
    pub kind: String,
    pub status: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub counters: serde_json::Value,
    pub error: Option<String>,
}

/// A run row of any query selecting the run columns, as a [`RunLine`].
macro_rules! run_line {
    ($row:expr) => {{
        let row = $row;
        // Rows written before a successful finish cleared the error of an earlier
        // attempt may still carry it; it does not describe a run that succeeded.
        let error = row
            .error
            .filter(|_| row.status != RunStatus::Succeeded.as_str());
        RunLine {
            id: row.id,
            kind: row.kind,
            status: row.status,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
            finished_at: row.finished_at,
            counters: row.counters,
            error,
        }
    }};
}

/// The `limit` most recent runs of the configured pool and the mirror's counts.
pub async fn run(settings: &Settings, limit: i64) -> anyhow::Result<Status> {
    let pool = settings.require_pool()?;
    let hasura_settings = settings.require_hasura()?;
    let hasura = HasuraClient::with_retries(
        &hasura_settings,
        hasura_settings.retries.min(READ_ONLY_HASURA_RETRIES),
    )?;
    let runs = RunStore::new(hasura.clone());
    let requests = RequestStore::new(hasura);
    status(&runs, &requests, pool, limit).await
}

async fn status(
    runs: &RunStore,
    requests: &RequestStore,
    pool: &str,
    limit: i64,
) -> anyhow::Result<Status> {
    let data = runs.recent(pool, limit).await?;
    let reconcile_requests = requests.pending(pool).await?;
    let count = |agg: Option<recent_runs::RecentRunsLiveUsersAggregate>| agg.map_or(0, |a| a.count);
    Ok(Status {
        user_pool_id: pool.to_owned(),
        live_users: count(data.live_users.aggregate),
        deleted_users: data.deleted_users.aggregate.map_or(0, |a| a.count),
        live_groups: data.live_groups.aggregate.map_or(0, |a| a.count),
        runs: data
            .cognito_sync_runs
            .into_iter()
            .map(|r| run_line!(r))
            .collect(),
        reconcile_requests,
    })
}

impl Status {
    /// The human-readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "user pool {}", self.user_pool_id);
        let _ = writeln!(
            out,
            "mirror: {} users ({} deleted), {} groups",
            self.live_users, self.deleted_users, self.live_groups
        );
        self.render_requests(&mut out);
        if self.runs.is_empty() {
            let _ = writeln!(
                out,
                "no runs yet: start one with `cognito-hasura-sync backfill`"
            );
            return out;
        }
        let _ = writeln!(
            out,
            "{:<20}  {:<9}  {:<9}  {:>10}  {:>8}  run / error",
            "started", "kind", "status", "users", "took"
        );
        for run in &self.runs {
            let users = run
                .counters
                .get("users_seen")
                // A reconcile counts the users it scanned under this name.
                .or_else(|| run.counters.get("scanned"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let end = run.finished_at.unwrap_or(run.heartbeat_at);
            let took = (end - run.started_at).num_seconds().max(0);
            let _ = writeln!(
                out,
                "{:<20}  {:<9}  {:<9}  {:>10}  {:>7}s  {}{}",
                run.started_at.format("%Y-%m-%d %H:%M:%S"),
                run.kind,
                run.status,
                users,
                took,
                run.id,
                run.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        out
    }

    /// One line on the pending early reconcile requests, if any: how many, since when, why.
    fn render_requests(&self, out: &mut String) {
        let Some(oldest) = self.reconcile_requests.first() else {
            return;
        };
        let mut reasons: Vec<&str> = self
            .reconcile_requests
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        let _ = writeln!(
            out,
            "early reconcile requested: {} pending since {} ({})",
            self.reconcile_requests.len(),
            oldest.requested_at.format("%Y-%m-%d %H:%M:%S"),
            reasons.join(", ")
        );
    }
}

/// What `status --run ID` shows; also its `--json` output.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    pub user_pool_id: String,
    #[serde(flatten)]
    pub run: RunLine,
}

/// The record of run `id` of the configured pool; an error naming the id when the pool has
/// no such run.
pub async fn run_record(settings: &Settings, id: uuid::Uuid) -> anyhow::Result<RunRecord> {
    let pool = settings.require_pool()?;
    let hasura = HasuraClient::new(&settings.require_hasura()?)?;
    let row = RunStore::new(hasura)
        .run(pool, id)
        .await
        .with_context(|| format!("cannot read run {id} of pool {pool} from Hasura"))?
        .with_context(|| {
            format!("pool {pool} has no run {id}; `status` lists its recent runs and their ids")
        })?;
    Ok(RunRecord {
        user_pool_id: pool.to_owned(),
        run: run_line!(row),
    })
}

impl RunRecord {
    /// The human-readable record: when, how it ended, and every counter.
    pub fn render(&self) -> String {
        let run = &self.run;
        let mut out = String::new();
        let _ = writeln!(out, "{} run {} of {}", run.kind, run.id, self.user_pool_id);
        let mut row = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<20} {value}");
        };
        row("status", run.status.clone());
        row("started", run.started_at.to_rfc3339());
        match run.finished_at {
            Some(end) => row(
                "finished",
                format!(
                    "{} (took {}s)",
                    end.to_rfc3339(),
                    (end - run.started_at).num_seconds().max(0)
                ),
            ),
            None => row(
                "finished",
                format!("not yet (last heartbeat {})", run.heartbeat_at.to_rfc3339()),
            ),
        }
        if let Some(error) = &run.error {
            row("error", error.clone());
        }
        if let Some(counters) = run.counters.as_object() {
            for (name, value) in counters {
                row(&name.replace('_', " "), value.to_string());
            }
        }
        out
    }
}
