//! The whole-pool scan shared by backfill and reconcile: the groups and their members first,
//! then one ListUsers scan per shard, pages in order, each user joined to its groups, and a
//! start over when Cognito rejects a shard's pagination token.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CognitoError, CognitoReader, Memberships, Shard};
use crate::model::{GroupRecord, UserRecord};

/// Groups whose member lists are read at once.
const MEMBERSHIP_CONCURRENCY: usize = 4;

/// A pool scan under way: its groups, and the pages of every shard arriving on `pages`.
pub struct PoolScan {
    pub groups: Vec<GroupRecord>,
    pub pages: mpsc::Receiver<ShardEvent>,
    /// The shard scans; each ends when its shard is done, on `cancel`, or with its error.
    pub shards: JoinSet<Result<(), CognitoError>>,
    /// Stops every shard scan (a child of the shutdown token the scan was started with).
    pub cancel: CancellationToken,
}

/// Reads the pool's groups and their members, then starts one scan per shard, each from its
/// token (`None`: the first page). `channel` pages may wait for the consumer. Stops early,
/// with an error, when `shutdown` fires during the membership phase.
pub async fn start_pool_scan(
    reader: &CognitoReader,
    shards: Vec<(Shard, Option<String>)>,
    channel: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<PoolScan> {
    let (groups, joined) = read_groups(reader, shutdown).await?;
    let (tx, pages) = mpsc::channel::<ShardEvent>(channel.max(1));
    let cancel = shutdown.child_token();
    let mut scans = JoinSet::new();
    for (shard, token) in shards {
        scans.spawn(scan_shard(
            reader.clone(),
            shard,
            token,
            joined.clone(),
            tx.clone(),
            cancel.clone(),
        ));
    }
    Ok(PoolScan {
        groups,
        pages,
        shards: scans,
        cancel,
    })
}

/// The pool's groups, and their members to join to the users of a scan. Stops early, with
/// an error, when `shutdown` fires.
pub async fn read_groups(
    reader: &CognitoReader,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Vec<GroupRecord>, Joined)> {
    tracing::info!("reading groups and their members (ListGroups, ListUsersInGroup)");
    // Taken before the first membership request: every user record of the scan carries
    // this membership data, so it is at most this new (see `scan_shard`).
    let read_at = Utc::now();
    let groups = tokio::select! {
        () = shutdown.cancelled() => bail!("interrupted while listing the pool's groups"),
        groups = reader.list_groups() => groups.context("cannot list the pool's groups")?,
    };
    let memberships = tokio::select! {
        () = shutdown.cancelled() => bail!("interrupted while reading group memberships"),
        members = reader.memberships(&groups, MEMBERSHIP_CONCURRENCY) => {
            members.context("cannot read group memberships")?
        }
    };
    tracing::info!(
        groups = groups.len(),
        members = memberships.len(),
        "read groups and memberships"
    );
    let joined = Joined {
        memberships: Arc::new(memberships),
        read_at,
    };
    Ok((groups, joined))
}

/// A message from a shard scan to whoever consumes the pages.
pub enum ShardEvent {
    Page {
        shard: String,
        users: Vec<UserRecord>,
        next_token: Option<String>,
    },
    /// The shard's token was rejected; it starts over from its first page.
    Restarted { shard: String },
}

/// The memberships a scan joins to its users, and when they were read.
#[derive(Clone)]
pub struct Joined {
    pub memberships: Arc<Memberships>,
    pub read_at: DateTime<Utc>,
}

/// Pages through one shard from `token`, joining groups, until done, cancelled or failed.
/// A record is as old as the oldest read it is built from: each user is stamped with the
/// memberships' read time when that is older than its page's, so a scan never overwrites
/// a group change the mirror got after the memberships were read (an event's, say).
pub async fn scan_shard(
    reader: CognitoReader,
    shard: Shard,
    mut token: Option<String>,
    joined: Joined,
    tx: mpsc::Sender<ShardEvent>,
    cancel: CancellationToken,
) -> Result<(), CognitoError> {
    loop {
        let page = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            page = reader.list_users_page(&shard, token.clone()) => page,
        };
        match page {
            Ok(page) => {
                let mut users = page.users;
                for user in &mut users {
                    let groups = joined.memberships.groups_of(&user.id);
                    if !groups.is_empty() {
                        user.set_groups(groups);
                    }
                    user.observed_at = user.observed_at.min(joined.read_at);
                }
                let done = page.next_token.is_none();
                let event = ShardEvent::Page {
                    shard: shard.prefix.clone(),
                    users,
                    next_token: page.next_token.clone(),
                };
                if tx.send(event).await.is_err() || done {
                    return Ok(());
                }
                token = page.next_token;
            }
            // Expired or stale token (e.g. from a checkpoint over an hour old): start the shard
            // over. Harmless: the pages already written are rewritten quietly.
            Err(CognitoError::PaginationTokenRejected { .. }) if token.is_some() => {
                tracing::warn!(shard = %shard, "pagination token rejected; restarting the shard");
                if tx
                    .send(ShardEvent::Restarted {
                        shard: shard.prefix.clone(),
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                token = None;
            }
            Err(err) => return Err(err),
        }
    }
}
