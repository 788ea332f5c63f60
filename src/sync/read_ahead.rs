//! Read-ahead: shard pages read with the UserList quota that the membership listings leave
//! unused, kept in anonymous temporary files until the memberships are known.
//!
//! A scan joins each user to its groups, so no shard can be diffed or written before every
//! group's members are listed. The listings share UserList a few at a time, and the longest
//! ends alone: one chain of calls, each waiting for the one before (at 50 ms a round trip,
//! 20 of the 30 calls a second), for as long as that group has pages left. Meanwhile one
//! chain of ListUsers reads shards ahead, so that the quota stays busy. Its pages wait on
//! disk, not in memory, up to [`READ_AHEAD_BYTES`], and are replayed, joined, once the
//! memberships are known. Without a writable temporary directory (`TMPDIR`) there is no
//! read-ahead, only a warning: the scan is as it would be without one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CognitoError, CognitoReader, Shard};
use crate::model::UserRecord;
use crate::sync::scan::{Joined, ShardEvent};

/// Most bytes of pages kept on disk (about a million users' records).
pub const READ_AHEAD_BYTES: u64 = 512 << 20;

/// The shards read ahead, by prefix.
#[derive(Default)]
pub struct ReadAhead {
    shards: HashMap<String, Spooled>,
    pages: usize,
    bytes: u64,
}

impl ReadAhead {
    /// What was read ahead of `shard`, if anything.
    pub fn take(&mut self, shard: &Shard) -> Option<Spooled> {
        self.shards.remove(&shard.prefix)
    }

    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// A report's line for `pages` read ahead; none when there were none.
pub fn describe(pages: usize) -> Option<String> {
    (pages > 0).then(|| format!("{pages} (while group members were listed)"))
}

/// Where a shard's scan goes on after the pages read ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The shard's last page was read ahead.
    Done,
    /// From this pagination token.
    From(String),
}

/// A shard's first pages, on disk.
pub struct Spooled {
    file: File,
    pages: usize,
    resume: Resume,
}

/// One page as it is spooled: a line of JSON.
#[derive(Serialize, Deserialize)]
struct SpooledPage {
    users: Vec<UserRecord>,
    next_token: Option<String>,
}

impl Spooled {
    /// Sends the pages read ahead to `tx`, each user joined to its groups
    /// ([`Joined::join`]); returns where the shard goes on.
    /// `Resume::Done` also when the receiver is gone.
    pub async fn replay(
        self,
        shard: &Shard,
        joined: &Joined,
        tx: &mpsc::Sender<ShardEvent>,
    ) -> anyhow::Result<Resume> {
        let Spooled {
            mut file,
            pages,
            resume,
        } = self;
        file.seek(SeekFrom::Start(0))
            .with_context(|| format!("cannot reread the pages of shard {shard} read ahead"))?;
        // A line is one page of at most 60 users: tens of kilobytes from the page cache.
        for (n, line) in BufReader::new(file).lines().take(pages).enumerate() {
            let page: SpooledPage = line
                .map_err(anyhow::Error::from)
                .and_then(|line| Ok(serde_json::from_str(&line)?))
                .with_context(|| format!("cannot reread page {n} of shard {shard} read ahead"))?;
            let mut users = page.users;
            joined.join(&mut users);
            let event = ShardEvent::Page {
                shard: shard.prefix.clone(),
                users,
                next_token: page.next_token,
            };
            if tx.send(event).await.is_err() {
                return Ok(Resume::Done);
            }
        }
        Ok(resume)
    }
}

/// Reads `shards` from their tokens, in order, one page at a time, until `stop` fires or
/// [`READ_AHEAD_BYTES`] are spooled. A shard interrupted part way resumes from its token; a
/// Cognito error ends the read-ahead (the shard's own scan meets it again and handles it).
pub async fn read(
    reader: &CognitoReader,
    shards: Vec<(Shard, Option<String>)>,
    stop: &CancellationToken,
) -> ReadAhead {
    let mut ahead = ReadAhead::default();
    if stop.is_cancelled() {
        return ahead;
    }
    tracing::info!(
        pool = reader.user_pool_id(),
        "one membership listing left: reading shards ahead with the UserList quota it leaves"
    );
    for (shard, token) in shards {
        if stop.is_cancelled() || ahead.bytes >= READ_AHEAD_BYTES {
            break;
        }
        let mut spool = match tempfile::tempfile() {
            Ok(file) => Spool::new(file, token),
            Err(err) => {
                tracing::warn!(
                    dir = %std::env::temp_dir().display(),
                    error = %err,
                    "no read-ahead: cannot create a temporary file (set TMPDIR to a writable directory)"
                );
                break;
            }
        };
        let ended = spool_shard(
            reader,
            &shard,
            &mut spool,
            stop,
            READ_AHEAD_BYTES - ahead.bytes,
        )
        .await;
        let resume = match &ended {
            Ok(true) => Some(Resume::Done),
            Ok(false) | Err(SpoolError::Cognito(_)) if spool.pages > 0 => {
                spool.last.clone().map(Resume::From)
            }
            Ok(false) | Err(SpoolError::Cognito(_)) => None,
            // A page half written: the shard is read from Cognito as if never read ahead.
            Err(SpoolError::Write(_)) => None,
        };
        if let Some(resume) = resume {
            let (pages, bytes) = (spool.pages, spool.bytes);
            match spool.into_file() {
                Ok(file) => {
                    ahead.pages += pages;
                    ahead.bytes += bytes;
                    ahead.shards.insert(
                        shard.prefix.clone(),
                        Spooled {
                            file,
                            pages,
                            resume,
                        },
                    );
                }
                Err(err) => {
                    tracing::warn!(shard = %shard, error = %err, "read-ahead stopped: cannot write its pages");
                    break;
                }
            }
        }
        match ended {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => {
                tracing::warn!(shard = %shard, error = %err, "read-ahead stopped; the shard's own scan goes on from there");
                break;
            }
        }
    }
    tracing::info!(
        pool = reader.user_pool_id(),
        shards = ahead.shards.len(),
        pages = ahead.pages,
        bytes = ahead.bytes,
        "read shards ahead while the memberships were listed"
    );
    ahead
}

/// Reads one shard into `spool` until its last page (`Ok(true)`), `stop`, or `budget`
/// bytes (`Ok(false)`). Shutdown drops this future with the scan.
async fn spool_shard(
    reader: &CognitoReader,
    shard: &Shard,
    spool: &mut Spool,
    stop: &CancellationToken,
    budget: u64,
) -> Result<bool, SpoolError> {
    loop {
        // Checked between pages only: a page asked for has cost its call, so it is kept.
        if stop.is_cancelled() || spool.bytes >= budget {
            return Ok(false);
        }
        let page = reader.list_users_page(shard, spool.last.clone()).await?;
        spool.push(page.users, page.next_token)?;
        if spool.last.is_none() {
            return Ok(true);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SpoolError {
    #[error(transparent)]
    Cognito(#[from] CognitoError),
    #[error("cannot write a page read ahead: {0}")]
    Write(#[from] std::io::Error),
}

/// Pages being written: a line of JSON each.
struct Spool {
    file: BufWriter<File>,
    pages: usize,
    bytes: u64,
    /// The token of the next page to read: the shard's start token until a page is written.
    last: Option<String>,
}

impl Spool {
    fn new(file: File, start: Option<String>) -> Self {
        Spool {
            file: BufWriter::new(file),
            pages: 0,
            bytes: 0,
            last: start,
        }
    }

    fn push(&mut self, users: Vec<UserRecord>, next_token: Option<String>) -> std::io::Result<()> {
        let page = SpooledPage { users, next_token };
        let mut line = serde_json::to_vec(&page)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.pages += 1;
        self.bytes += line.len() as u64;
        self.last = page.next_token;
        Ok(())
    }

    fn into_file(self) -> std::io::Result<File> {
        self.file.into_inner().map_err(|err| err.into_error())
    }
}

/// The order to read shards ahead in: every `stride`-th shard first. The shards are then
/// diffed `stride` at a time in key order, so that those replayed from disk, which send
/// no Cognito call, are spread among those still read from Cognito.
pub fn order(shards: &[Shard], stride: usize) -> Vec<Shard> {
    let stride = stride.max(1);
    let mut ordered: Vec<(usize, usize, &Shard)> = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| (i % stride, i, shard))
        .collect();
    ordered.sort_unstable_by_key(|&(lane, i, _)| (lane, i));
    ordered
        .into_iter()
        .map(|(_, _, shard)| shard.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::cognito::Memberships;
    use crate::sync::reconcile::plan::tests::user;

    #[test]
    fn order_spreads_the_shards_read_ahead_over_the_key_space() {
        let shards = Shard::split(16).unwrap();
        let prefixes: Vec<String> = order(&shards, 4).into_iter().map(|s| s.prefix).collect();
        assert_eq!(
            prefixes.join(""),
            "048c159d26ae37bf",
            "every 4th shard first: each window of 4 shards diffed at once has one"
        );
        assert_eq!(order(&shards, 1), shards, "a stride of 1 keeps key order");
    }

    /// Pages spooled and replayed come back in order, joined to their groups and stamped no
    /// later than the memberships' read, with their tokens; the replay says where the shard
    /// goes on.
    #[tokio::test]
    async fn spooled_pages_replay_joined_in_order() {
        let shard = Shard::whole();
        let (a, b) = (user(1, "Ana", 50), user(2, "Bo", 50));
        let mut spool = Spool::new(tempfile::tempfile().unwrap(), None);
        spool.push(vec![a.clone()], Some("t1".into())).unwrap();
        spool.push(vec![b.clone()], Some("t2".into())).unwrap();
        assert_eq!(spool.last.as_deref(), Some("t2"));
        let spooled = Spooled {
            pages: spool.pages,
            file: spool.into_file().unwrap(),
            resume: Resume::From("t2".into()),
        };
        let read_at = Utc.timestamp_opt(10, 0).unwrap();
        let joined = Joined {
            memberships: Arc::new(Memberships::new(vec![("admins".into(), vec![b.id])])),
            read_at,
        };
        let (tx, mut rx) = mpsc::channel(4);
        let resume = spooled.replay(&shard, &joined, &tx).await.unwrap();
        assert_eq!(resume, Resume::From("t2".into()));
        drop(tx);
        let mut pages = Vec::new();
        while let Some(ShardEvent::Page {
            users, next_token, ..
        }) = rx.recv().await
        {
            pages.push((users, next_token));
        }
        let mut expected_b = b.clone();
        expected_b.set_groups(vec!["admins".into()]);
        expected_b.observed_at = read_at;
        let mut expected_a = a.clone();
        expected_a.observed_at = read_at;
        assert_eq!(
            pages,
            [
                (vec![expected_a], Some("t1".to_owned())),
                (vec![expected_b], Some("t2".to_owned())),
            ]
        );
    }
}
