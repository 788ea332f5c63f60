//! Leases in `cognito_sync_leases`: who may run a piece of work that must not run twice at
//! once across processes. Every scanner of a pool (a backfill, a reconcile from the command
//! line or the daemon's schedule) holds the pool's [`scan_lease`] while it runs.
//!
//! A lease is a row `(name, holder, expires_at)`. [`Lease::acquire`] inserts it, or takes it
//! over only when it expired or is already held by the same holder (an `insert ... on_conflict`
//! whose `where` sees the existing row); `affected_rows` says whether it was acquired.
//! The holder extends it with [`Lease::heartbeat`] while it works and gives it up with
//! [`Lease::release`]. Expiry is compared with the clocks of the replicas, so the lease's
//! time to live must be much longer than their clock skew.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::hasura::HasuraClient;
use crate::hasura::reconcile_ops::{
    AcquireLease, HeartbeatLease, LeaseHolder, ReleaseLease, acquire_lease, heartbeat_lease,
    lease_holder, release_lease,
};
use crate::telemetry::reconcile::{ReconcileLeaseBusy, ReconcileLeaseLost};

/// Default time to live of a scan lease: how long after a scanner died another may start.
pub const DEFAULT_SCAN_LEASE_TTL: Duration = Duration::from_secs(60);

/// The name of the lease every scanner of `pool` holds.
pub fn scan_lease(pool: &str) -> String {
    format!("scan:{pool}")
}

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

/// One named lease as seen by one holder.
#[derive(Debug, Clone)]
pub struct Lease {
    hasura: HasuraClient,
    name: String,
    holder: String,
    ttl: Duration,
}

impl Lease {
    /// The lease `name` for `holder` (unique per process), valid `ttl` after each renewal.
    pub fn new(
        hasura: HasuraClient,
        name: impl Into<String>,
        holder: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Lease {
            hasura,
            name: name.into(),
            holder: holder.into(),
            ttl,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease if it is free, expired or already ours; `true` when we hold it now.
    pub async fn acquire(&self) -> anyhow::Result<bool> {
        let now = Utc::now();
        let data = self
            .hasura
            .post::<AcquireLease>(acquire_lease::Variables {
                name: self.name.clone(),
                holder: self.holder.clone(),
                expires_at: now + self.ttl_chrono()?,
                now,
            })
            .await
            .with_context(|| format!("cannot acquire the lease {:?}", self.name))?;
        Ok(data
            .insert_cognito_sync_leases
            .is_some_and(|r| r.affected_rows > 0))
    }

    /// Extends the lease by its time to live; `false` when it is no longer ours.
    pub async fn heartbeat(&self) -> anyhow::Result<bool> {
        let data = self
            .hasura
            .post::<HeartbeatLease>(heartbeat_lease::Variables {
                name: self.name.clone(),
                holder: self.holder.clone(),
                expires_at: Utc::now() + self.ttl_chrono()?,
            })
            .await
            .with_context(|| format!("cannot renew the lease {:?}", self.name))?;
        Ok(data
            .update_cognito_sync_leases
            .is_some_and(|r| r.affected_rows > 0))
    }

    /// Gives the lease up if it is still ours; `true` when it was.
    pub async fn release(&self) -> anyhow::Result<bool> {
        let data = self
            .hasura
            .post::<ReleaseLease>(release_lease::Variables {
                name: self.name.clone(),
                holder: self.holder.clone(),
            })
            .await
            .with_context(|| format!("cannot release the lease {:?}", self.name))?;
        Ok(data
            .delete_cognito_sync_leases
            .is_some_and(|r| r.affected_rows > 0))
    }

    /// Who holds the lease now (possibly expired), if anyone ever took it.
    pub async fn current(&self) -> anyhow::Result<Option<Holder>> {
        let data = self
            .hasura
            .post::<LeaseHolder>(lease_holder::Variables {
                name: self.name.clone(),
            })
            .await
            .with_context(|| format!("cannot read the lease {:?}", self.name))?;
        Ok(data.cognito_sync_leases_by_pk.map(|row| Holder {
            holder: row.holder,
            expires_at: row.expires_at,
        }))
    }

    /// Takes the lease; when another holds it, waits for it with `wait` (polling a few times
    /// per time to live, until `shutdown`), otherwise fails naming the holder and when its
    /// lease expires.
    pub async fn acquire_or_wait(
        &self,
        wait: bool,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let poll = (self.ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
        loop {
            if self.acquire().await? {
                return Ok(());
            }
            ReconcileLeaseBusy { lease: &self.name }.emit();
            let who = match self.current().await? {
                Some(Holder { holder, expires_at }) => {
                    let left = (expires_at - Utc::now()).num_seconds().max(0);
                    format!(
                        "{holder}, whose lease expires at {expires_at} (in {left}s unless renewed)"
                    )
                }
                None => "another scanner".to_owned(),
            };
            if !wait {
                bail!(
                    "another scan of this pool is running: the lease {:?} is held by {who}; \
                     run again with --wait to start when it ends, or stop the other scan",
                    self.name
                );
            }
            tracing::info!(lease = self.name, "waiting for the lease held by {who}");
            tokio::select! {
                () = shutdown.cancelled() => bail!("interrupted while waiting for the lease {:?}", self.name),
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Renews the lease every third of its time to live until `run` is cancelled; cancels
    /// `run` once the lease is lost (the holder changed, or no renewal succeeded for a whole
    /// time to live), so the scanner stops.
    pub async fn keep(&self, run: CancellationToken) {
        let every = self.ttl / 3;
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = run.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.heartbeat().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    ReconcileLeaseLost {
                        lease: &self.name,
                        reason: "another scanner holds it",
                    }
                    .emit();
                    run.cancel();
                    return;
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        lease = self.name,
                        "cannot renew the lease"
                    );
                    if last_renewal.elapsed() >= self.ttl {
                        ReconcileLeaseLost {
                            lease: &self.name,
                            reason: "not renewed for a whole time to live",
                        }
                        .emit();
                        run.cancel();
                        return;
                    }
                }
            }
        }
    }

    fn ttl_chrono(&self) -> anyhow::Result<chrono::Duration> {
        chrono::Duration::from_std(self.ttl).context("the lease time to live is too long")
    }
}

/// A holder name unique to this process: the host (as containers name it) and a random part.
pub fn process_holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", uuid::Uuid::new_v4().simple())
}
