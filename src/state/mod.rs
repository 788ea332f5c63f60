//! Run records, checkpoints and leases, kept in Hasura tables.
//!
//! A backfill is one row of `cognito_sync_runs`: its status, heartbeat, counters and the
//! checkpoint from which a later process resumes it. The checkpoint holds, per shard, the
//! pagination token of the first page whose users are not yet committed, so everything
//! before it is in the mirror whatever happens to the process afterwards.
//!
//! Early reconcile requests are rows of `cognito_sync_requests` ([`requests`]).

pub mod lease;
pub mod requests;

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::hasura::operations::{
    InsertRun, RecentRuns, RunRecord, UnfinishedRun, UpdateRun, insert_run, recent_runs,
    run_record, unfinished_run, update_run,
};
use crate::hasura::{HasuraClient, HasuraError};

/// Where each shard of a backfill stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// How the pool was split (1, 16 or 256); a resumed run keeps it.
    pub shard_count: usize,
    /// Per shard prefix (`""` for the whole pool).
    pub shards: BTreeMap<String, ShardCheckpoint>,
}

/// One shard's committed progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// Token of the next page to read; `None` with `pages == 0` means from the start.
    pub token: Option<String>,
    /// Pages whose users are committed.
    pub pages: u64,
    /// Every page of the shard is committed.
    pub done: bool,
}

impl Checkpoint {
    pub fn new(prefixes: impl IntoIterator<Item = String>, shard_count: usize) -> Self {
        Checkpoint {
            shard_count,
            shards: prefixes
                .into_iter()
                .map(|p| (p, ShardCheckpoint::default()))
                .collect(),
        }
    }

    pub fn done_shards(&self) -> usize {
        self.shards.values().filter(|s| s.done).count()
    }
}

/// Counters of a run, summed over every process that worked on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounters {
    /// Users read from Cognito (a restarted shard counts its users again).
    pub users_seen: u64,
    /// Users that were not in the mirror.
    pub inserted: u64,
    /// Users whose mirrored state changed.
    pub updated: u64,
    /// Users already mirrored as they are: not written.
    pub unchanged: u64,
    /// Users sent but skipped by the row guard: the mirror already held a newer state.
    pub skipped_older: u64,
    /// Users the mirror refused because of their data: left out, logged.
    pub skipped_bad_data: u64,
    pub groups_seen: u64,
    pub groups_written: u64,
    /// Shards started over because Cognito rejected their pagination token.
    pub shard_restarts: u64,
    /// Times the run was resumed by a new process.
    pub resumes: u64,
}

/// The kind column of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Backfill,
    Reconcile,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Backfill => "backfill",
            RunKind::Reconcile => "reconcile",
        }
    }
}

/// The status column of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }
}

/// An unfinished run found in Hasura.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub id: uuid::Uuid,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub checkpoint: Checkpoint,
    pub counters: RunCounters,
}

/// Reads and writes `cognito_sync_runs` through Hasura.
#[derive(Debug, Clone)]
pub struct RunStore {
    hasura: HasuraClient,
}

impl RunStore {
    pub fn new(hasura: HasuraClient) -> Self {
        RunStore { hasura }
    }

    /// Records a new running `kind` run of `pool`; returns its id. `started_at` defaults to
    /// the database's clock.
    pub async fn begin(
        &self,
        kind: RunKind,
        pool: &str,
        started_at: Option<DateTime<Utc>>,
        checkpoint: Option<&Checkpoint>,
        counters: &impl Serialize,
    ) -> anyhow::Result<uuid::Uuid> {
        // Chosen here, not by the database, so a request retried after a lost answer does
        // not leave a second, orphaned run behind.
        let id = uuid::Uuid::new_v4();
        let run = insert_run::cognito_sync_runs_insert_input {
            kind: Some(kind.as_str().to_owned()),
            user_pool_id: Some(pool.to_owned()),
            status: Some(RunStatus::Running.as_str().to_owned()),
            checkpoint: checkpoint.map(serde_json::to_value).transpose()?,
            counters: Some(serde_json::to_value(counters)?),
            error: None,
            finished_at: None,
            heartbeat_at: started_at,
            id: Some(id),
            started_at,
        };
        // A null row means the insert was retried after it had already landed.
        self.hasura
            .post::<InsertRun>(insert_run::Variables { run })
            .await?;
        Ok(id)
    }

    /// The latest backfill of `pool` that is still running or failed: the one to resume.
    pub async fn unfinished(&self, pool: &str) -> anyhow::Result<Option<StoredRun>> {
        let data = self
            .hasura
            .post::<UnfinishedRun>(unfinished_run::Variables {
                pool: pool.to_owned(),
            })
            .await?;
        let Some(row) = data.cognito_sync_runs.into_iter().next() else {
            return Ok(None);
        };
        let checkpoint = serde_json::from_value(row.checkpoint).with_context(|| {
            format!(
                "run {} has a checkpoint this version cannot read; use --restart",
                row.id
            )
        })?;
        let counters = serde_json::from_value(row.counters).unwrap_or_default();
        Ok(Some(StoredRun {
            id: row.id,
            status: row.status,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
            checkpoint,
            counters,
        }))
    }

    /// Saves progress and the heartbeat of a running run.
    pub async fn save(
        &self,
        id: uuid::Uuid,
        checkpoint: &Checkpoint,
        counters: &RunCounters,
    ) -> anyhow::Result<()> {
        let set = update_run::cognito_sync_runs_set_input {
            checkpoint: Some(serde_json::to_value(checkpoint)?),
            counters: Some(serde_json::to_value(counters)?),
            heartbeat_at: Some(Utc::now()),
            status: Some(RunStatus::Running.as_str().to_owned()),
            ..empty_set()
        };
        self.update(id, set).await
    }

    /// Ends a run with `status`; `error` says why it failed. A failed run gets no
    /// `finished_at`: a failed backfill is resumed by the next one.
    pub async fn finish<C: Serialize>(
        &self,
        id: uuid::Uuid,
        status: RunStatus,
        checkpoint: Option<&Checkpoint>,
        counters: Option<&C>,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        let set = update_run::cognito_sync_runs_set_input {
            status: Some(status.as_str().to_owned()),
            checkpoint: checkpoint.map(serde_json::to_value).transpose()?,
            counters: counters.map(serde_json::to_value).transpose()?,
            heartbeat_at: Some(now),
            finished_at: (status != RunStatus::Failed).then_some(now),
            error,
            ..empty_set()
        };
        self.update(id, set).await
    }

    async fn update(
        &self,
        id: uuid::Uuid,
        set: update_run::cognito_sync_runs_set_input,
    ) -> anyhow::Result<()> {
        let data = self
            .hasura
            .post::<UpdateRun>(update_run::Variables { id, set })
            .await?;
        let updated = data
            .update_cognito_sync_runs
            .is_some_and(|r| r.affected_rows > 0);
        anyhow::ensure!(
            updated,
            "run {id} no longer exists or has already finished; it is not changed again"
        );
        Ok(())
    }

    /// The pool's latest runs and mirror counts, for `status`.
    pub async fn recent(
        &self,
        pool: &str,
        limit: i64,
    ) -> Result<recent_runs::ResponseData, HasuraError> {
        self.hasura
            .post::<RecentRuns>(recent_runs::Variables {
                pool: pool.to_owned(),
                limit,
            })
            .await
    }

    /// One run of `pool`, `None` when the pool has no run `id`.
    pub async fn run(
        &self,
        pool: &str,
        id: uuid::Uuid,
    ) -> Result<Option<run_record::RunRecordCognitoSyncRuns>, HasuraError> {
        let data = self
            .hasura
            .post::<RunRecord>(run_record::Variables {
                pool: pool.to_owned(),
                id,
            })
            .await?;
        Ok(data.cognito_sync_runs.into_iter().next())
    }
}

fn empty_set() -> update_run::cognito_sync_runs_set_input {
    update_run::cognito_sync_runs_set_input {
        checkpoint: None,
        counters: None,
        error: None,
        finished_at: None,
        heartbeat_at: None,
        id: None,
        kind: None,
        started_at: None,
        status: None,
        user_pool_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_through_json() {
        let mut checkpoint = Checkpoint::new(["0".to_owned(), "1".to_owned()], 16);
        checkpoint.shards.get_mut("1").unwrap().token = Some("tok".into());
        checkpoint.shards.get_mut("1").unwrap().pages = 3;
        checkpoint.shards.get_mut("0").unwrap().done = true;
        let json = serde_json::to_value(&checkpoint).unwrap();
        assert_eq!(
            serde_json::from_value::<Checkpoint>(json).unwrap(),
            checkpoint
        );
        assert_eq!(checkpoint.done_shards(), 1);
    }

    #[test]
    fn counters_read_older_rows_with_missing_fields() {
        let counters: RunCounters =
            serde_json::from_value(serde_json::json!({"users_seen": 5})).unwrap();
        assert_eq!(counters.users_seen, 5);
        assert_eq!(counters.inserted, 0);
    }
}
