//! Leases in `cognito_sync_leases`: who may run a piece of work that must not run twice at
//! once across replicas (the scheduled reconcile).
//!
//! A lease is a row `(name, holder, expires_at)`. [`Lease::acquire`] inserts it, or takes it
//! over only when it expired or is already held by the same holder (an `insert ... on_conflict`
//! whose `where` sees the existing row); `affected_rows` says whether it was acquired.
//! The holder extends it with [`Lease::heartbeat`] while it works and gives it up with
//! [`Lease::release`]. Expiry is compared with the clocks of the replicas, so the lease's
//! time to live must be much longer than their clock skew.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use crate::hasura::HasuraClient;
use crate::hasura::reconcile_ops::{
    AcquireLease, HeartbeatLease, ReleaseLease, acquire_lease, heartbeat_lease, release_lease,
};

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
