//! Early reconcile requests in `cognito_sync_requests`: the daemon's consumer records one per
//! pool-wide event inside its batch's `ApplyEvents` transaction; the lease holder reads the
//! pool's pending ones and, after a successful reconcile, marks served those it read before
//! the run started.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::hasura::HasuraClient;
use crate::hasura::daemon_ops::{PendingRequests, ServeRequests, pending_requests, serve_requests};

/// A request not yet served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRequest {
    #[serde(skip)]
    pub id: uuid::Uuid,
    /// The event that asked for it (`DeleteGroup`, `StartUserImportJob`, …).
    pub reason: String,
    pub requested_at: DateTime<Utc>,
}

/// Reads and serves `cognito_sync_requests` through Hasura.
#[derive(Debug, Clone)]
pub struct RequestStore {
    hasura: HasuraClient,
}

impl RequestStore {
    pub fn new(hasura: HasuraClient) -> Self {
        RequestStore { hasura }
    }

    /// The pool's unserved requests, oldest first.
    pub async fn pending(&self, pool: &str) -> anyhow::Result<Vec<PendingRequest>> {
        let data = self
            .hasura
            .post::<PendingRequests>(pending_requests::Variables {
                pool: pool.to_owned(),
            })
            .await
            .context("cannot read the pending reconcile requests")?;
        Ok(data
            .cognito_sync_requests
            .into_iter()
            .map(|r| PendingRequest {
                id: r.id,
                reason: r.reason,
                requested_at: r.requested_at,
            })
            .collect())
    }

    /// Marks `requests` served by the run `run`; returns how many were still unserved.
    pub async fn serve(&self, requests: &[PendingRequest], run: uuid::Uuid) -> anyhow::Result<u64> {
        let data = self
            .hasura
            .post::<ServeRequests>(serve_requests::Variables {
                ids: requests.iter().map(|r| r.id).collect(),
                served_at: Utc::now(),
                run,
            })
            .await
            .context("cannot mark the reconcile requests served")?;
        Ok(data
            .update_cognito_sync_requests
            .map_or(0, |r| u64::try_from(r.affected_rows).unwrap_or(0)))
    }
}
