//! The whole-pool scan shared by backfill and reconcile: the groups and their members first,
//! then one ListUsers scan per shard, pages in order, each user joined to its groups, and a
//! start over when Cognito rejects a shard's pagination token. While the last membership
//! listing runs alone, shards may be read ahead ([`read_ahead`]).

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CognitoError, CognitoReader, Memberships, Shard};
use crate::model::{GroupRecord, UserRecord};
use crate::sync::read_ahead::{self, ReadAhead, Resume, Spooled};

/// Groups whose member lists are read at once.
const MEMBERSHIP_CONCURRENCY: usize = 4;

/// A pool scan under way: its groups, and the pages of every shard arriving on `pages`.
pub struct PoolScan {
    pub groups: Vec<GroupRecord>,
    pub pages: mpsc::Receiver<ShardEvent>,
    /// The shard scans; each ends when its shard is done, on `cancel`, or with its error.
    pub shards: JoinSet<anyhow::Result<()>>,
    /// Stops every shard scan (a child of the shutdown token the scan was started with).
    pub cancel: CancellationToken,
    /// ListUsers pages read ahead while the memberships were listed.
    pub pages_read_ahead: usize,
}

/// Reads the pool's groups and their members (reading shards ahead meanwhile), then starts
/// one scan per shard, each from its token (`None`: the first page). `channel` pages may
/// wait for the consumer. Stops early, with an error, when `shutdown` fires during the
/// membership phase.
pub async fn start_pool_scan(
    reader: &CognitoReader,
    shards: Vec<(Shard, Option<String>)>,
    channel: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<PoolScan> {
    // Every shard is scanned at once, so the ones replayed from disk need no spreading.
    let (groups, joined, mut read_ahead) =
        read_groups_ahead(reader, shards.clone(), shutdown).await?;
    let (tx, pages) = mpsc::channel::<ShardEvent>(channel.max(1));
    let cancel = shutdown.child_token();
    let mut scans = JoinSet::new();
    let pages_read_ahead = read_ahead.pages();
    for (shard, token) in shards {
        let spooled = read_ahead.take(&shard);
        scans.spawn(scan_from(
            reader.clone(),
            ShardStart {
                shard,
                token,
                read_ahead: spooled,
            },
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
        pages_read_ahead,
    })
}

/// The pool's groups, and their members to join to the users of a scan, reading `ahead`
/// (shards from their tokens, in the order to read them) with the UserList quota the last
/// membership listing leaves unused ([`read_ahead`]). Stops early, with an error, when
/// `shutdown` fires.
pub async fn read_groups_ahead(
    reader: &CognitoReader,
    ahead: Vec<(Shard, Option<String>)>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Vec<GroupRecord>, Joined, ReadAhead)> {
    tracing::info!("reading groups and their members (ListGroups, ListUsersInGroup)");
    // Taken before the first membership request: every user record of the scan carries
    // this membership data, so it is at most this new (see `Joined::join`).
    let read_at = Utc::now();
    let groups = tokio::select! {
        () = shutdown.cancelled() => bail!("interrupted while listing the pool's groups"),
        groups = reader.list_groups() => groups.context("cannot list the pool's groups")?,
    };
    let last_listing = Notify::new();
    let stop = shutdown.child_token();
    let members = async {
        let members = reader
            .memberships(&groups, MEMBERSHIP_CONCURRENCY, &last_listing)
            .await;
        stop.cancel();
        members
    };
    let spare = async {
        tokio::select! {
            () = stop.cancelled() => ReadAhead::default(),
            () = last_listing.notified() => {
                if ahead.is_empty() {
                    ReadAhead::default()
                } else {
                    read_ahead::read(reader, ahead, &stop).await
                }
            }
        }
    };
    let (memberships, read_ahead) = tokio::select! {
        () = shutdown.cancelled() => bail!("interrupted while reading group memberships"),
        both = async { tokio::join!(members, spare) } => both,
    };
    let memberships = memberships.context("cannot read group memberships")?;
    tracing::info!(
        groups = groups.len(),
        members = memberships.len(),
        pages_read_ahead = read_ahead.pages(),
        "read groups and memberships"
    );
    let joined = Joined {
        memberships: Arc::new(memberships),
        read_at,
    };
    Ok((groups, joined, read_ahead))
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

impl Joined {
    /// Gives each user its groups. A record is as old as the oldest read it is built from:
    /// each user is stamped with the memberships' read time when that is older than its
    /// page's, so a scan never overwrites a group change the mirror got after the
    /// memberships were read (an event's, say).
    pub fn join(&self, users: &mut [UserRecord]) {
        for user in users {
            let groups = self.memberships.groups_of(&user.id);
            if !groups.is_empty() {
                user.set_groups(groups);
            }
            user.observed_at = user.observed_at.min(self.read_at);
        }
    }
}

/// Where a shard's scan starts: its token (`None`: the first page), after the pages read
/// ahead of it, if any.
pub struct ShardStart {
    pub shard: Shard,
    pub token: Option<String>,
    pub read_ahead: Option<Spooled>,
}

/// [`scan_shard`], after replaying the pages read ahead: it goes on from where the
/// read-ahead stopped, or not at all when that read the shard's last page.
pub async fn scan_from(
    reader: CognitoReader,
    start: ShardStart,
    joined: Joined,
    tx: mpsc::Sender<ShardEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let ShardStart {
        shard,
        token,
        read_ahead,
    } = start;
    let token = match read_ahead {
        None => token,
        Some(spooled) => match spooled.replay(&shard, &joined, &tx).await? {
            Resume::Done => return Ok(()),
            Resume::From(token) => Some(token),
        },
    };
    scan_shard(reader, shard.clone(), token, joined, tx, cancel)
        .await
        .with_context(|| format!("reading users of shard {shard} from Cognito failed"))
}

/// Pages through one shard from `token`, joining groups ([`Joined::join`]), until done,
/// cancelled or failed.
async fn scan_shard(
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
                joined.join(&mut users);
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
