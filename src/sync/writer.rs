//! The write side of a backfill: one batch of users compared with the mirror and upserted,
//! and the tracker that turns committed batches into a safe checkpoint.
//!
//! A user whose data the mirror refuses is split out of its upsert ([`bisect`]), logged,
//! counted as `skipped_bad_data` and left out; the batch's other users commit, so its pages
//! count as committed and the checkpoint moves on.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::hasura::bisect::bisect;
use crate::hasura::operations::{UpsertUsers, UserDigests, upsert_users, user_digests};
use crate::hasura::{HasuraClient, HasuraError};
use crate::model::UserRecord;
use crate::state::{Checkpoint, RunCounters, ShardCheckpoint};
use crate::telemetry::hasura::UsersBatchCommitted;
use crate::telemetry::records::RecordRejected;

/// What writing one batch did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub users: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Sent, but the row guard kept a newer state already in the mirror.
    pub skipped_older: u64,
    /// Refused by the mirror because of their data, and left out.
    pub skipped_bad_data: u64,
    /// Who they are, for a caller that counts by kind (reconcile).
    pub rejected: Vec<uuid::Uuid>,
}

impl BatchOutcome {
    pub fn add_to(&self, counters: &mut RunCounters) {
        counters.inserted += self.inserted;
        counters.updated += self.updated;
        counters.unchanged += self.unchanged;
        counters.skipped_older += self.skipped_older;
        counters.skipped_bad_data += self.skipped_bad_data;
    }
}

/// Compares `users` with the mirror (one digest query) and upserts those that are new or
/// changed in ONE `insert_cognito_users` with `on_conflict`; a dry run stops after comparing.
///
/// Inserted and updated are told apart by the digest read before the write; the upsert's
/// `affected_rows` then says how many changed rows the row guard let through (an update is
/// skipped when a newer state landed meanwhile, e.g. from an event). A user the mirror refuses
/// because of its data is left out and counted; only other errors fail the batch.
pub async fn write_users(
    hasura: &HasuraClient,
    users: Vec<UserRecord>,
    dry_run: bool,
) -> Result<BatchOutcome, HasuraError> {
    let users = dedup_latest(users);
    let mut outcome = BatchOutcome {
        users: users.len() as u64,
        ..Default::default()
    };
    if users.is_empty() {
        return Ok(outcome);
    }
    let ids = users.iter().map(|u| u.id).collect();
    let mirror: HashMap<uuid::Uuid, user_digests::UserDigestsCognitoUsers> = hasura
        .post::<UserDigests>(user_digests::Variables { ids })
        .await?
        .cognito_users
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let mut changed: Vec<&UserRecord> = Vec::new();
    for user in &users {
        match mirror.get(&user.id) {
            None => changed.push(user),
            Some(row) if row.content_hash != user.content_hash || row.deleted_at.is_some() => {
                changed.push(user);
            }
            Some(_) => outcome.unchanged += 1,
        }
    }
    let is_new = |user: &UserRecord| !mirror.contains_key(&user.id);
    if dry_run || changed.is_empty() {
        outcome.inserted = changed.iter().filter(|u| is_new(u)).count() as u64;
        outcome.updated = changed.len() as u64 - outcome.inserted;
        return Ok(outcome);
    }
    let sent = changed.len() as u64;
    let done = bisect(changed, |part: &[&UserRecord]| {
        let objects = part.iter().map(|user| (*user).into()).collect();
        hasura.post::<UpsertUsers>(upsert_users::Variables { objects })
    })
    .await?;
    for (user, error) in &done.rejected {
        RecordRejected {
            path: "scan",
            kind: "user",
            key: &user.id.to_string(),
            error: &error.to_string(),
        }
        .emit();
    }
    let affected: u64 = done
        .committed
        .iter()
        .filter_map(|data| data.insert_cognito_users.as_ref())
        .map(|r| u64::try_from(r.affected_rows).unwrap_or(0))
        .sum();
    outcome.skipped_bad_data = done.rejected.len() as u64;
    outcome.rejected = done.rejected.iter().map(|(user, _)| user.id).collect();
    outcome.inserted = users.iter().filter(|u| is_new(u)).count() as u64
        - done.rejected.iter().filter(|(u, _)| is_new(u)).count() as u64;
    // Inserts always land; only updates can be skipped by the guard.
    outcome.skipped_older = (sent - outcome.skipped_bad_data).saturating_sub(affected);
    outcome.updated = affected.saturating_sub(outcome.inserted);
    UsersBatchCommitted {
        users: users.len(),
        written: affected,
    }
    .emit();
    Ok(outcome)
}

/// One user per sub, the latest read winning: a restarted shard can bring a user twice into
/// one batch, and PostgreSQL refuses to upsert the same row twice in one statement.
fn dedup_latest(users: Vec<UserRecord>) -> Vec<UserRecord> {
    let mut latest: BTreeMap<uuid::Uuid, UserRecord> = BTreeMap::new();
    for user in users {
        match latest.get(&user.id) {
            Some(kept) if kept.observed_at > user.observed_at => {}
            _ => {
                latest.insert(user.id, user);
            }
        }
    }
    latest.into_values().collect()
}

/// A page read from a shard, as the tracker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRef {
    pub shard: String,
    generation: u64,
    seq: u64,
}

#[derive(Debug, Default)]
struct ShardTrack {
    /// Bumped when the shard restarts; pages of older generations no longer move the checkpoint.
    generation: u64,
    next_seq: u64,
    /// Pages read but not yet part of the checkpoint, in read order: (seq, next token,
    /// batches holding some of its users that have not committed yet).
    pending: VecDeque<(u64, Option<String>, u32)>,
    checkpoint: ShardCheckpoint,
}

/// Moves each shard's checkpoint forward only over pages whose users are committed, in read
/// order: batches commit out of order, but the token saved for a shard is always that of the
/// first page not yet committed.
#[derive(Debug)]
pub struct CommitTracker {
    shard_count: usize,
    shards: BTreeMap<String, ShardTrack>,
    dirty: bool,
}

impl CommitTracker {
    pub fn new(checkpoint: &Checkpoint) -> Self {
        let shards = checkpoint
            .shards
            .iter()
            .map(|(prefix, cp)| {
                (
                    prefix.clone(),
                    ShardTrack {
                        checkpoint: cp.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        CommitTracker {
            shard_count: checkpoint.shard_count,
            shards,
            dirty: false,
        }
    }

    /// Registers a page just read; `next_token` is where the shard continues after it.
    pub fn page_read(&mut self, shard: &str, next_token: Option<String>) -> PageRef {
        let track = self.shards.entry(shard.to_owned()).or_default();
        let seq = track.next_seq;
        track.next_seq += 1;
        track.pending.push_back((seq, next_token, 1));
        PageRef {
            shard: shard.to_owned(),
            generation: track.generation,
            seq,
        }
    }

    /// The page's users are split over one more batch: it counts as committed only once
    /// every batch holding some of them has committed.
    pub fn split(&mut self, page: &PageRef) {
        if let Some(entry) = self.pending_entry(page) {
            entry.2 += 1;
        }
    }

    /// The shard starts over from its first page (its pagination token was rejected).
    pub fn restart(&mut self, shard: &str) {
        let track = self.shards.entry(shard.to_owned()).or_default();
        track.generation += 1;
        track.pending.clear();
        track.checkpoint = ShardCheckpoint::default();
        self.dirty = true;
    }

    /// Marks pages committed and advances their shards' checkpoints over committed prefixes.
    pub fn committed(&mut self, pages: &[PageRef]) {
        for page in pages {
            if let Some(entry) = self.pending_entry(page) {
                entry.2 = entry.2.saturating_sub(1);
            }
            let Some(track) = self.shards.get_mut(&page.shard) else {
                continue;
            };
            while track
                .pending
                .front()
                .is_some_and(|(_, _, outstanding)| *outstanding == 0)
            {
                let (_, next_token, _) = track.pending.pop_front().expect("front exists");
                track.checkpoint.pages += 1;
                track.checkpoint.done = next_token.is_none();
                track.checkpoint.token = next_token;
                self.dirty = true;
            }
        }
    }

    /// The pending entry of a page of the shard's current chain.
    fn pending_entry(&mut self, page: &PageRef) -> Option<&mut (u64, Option<String>, u32)> {
        let track = self.shards.get_mut(&page.shard)?;
        if track.generation != page.generation {
            return None;
        }
        track
            .pending
            .iter_mut()
            .find(|(seq, _, _)| *seq == page.seq)
    }

    /// Whether the checkpoint moved since the last [`CommitTracker::take_checkpoint`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            shard_count: self.shard_count,
            shards: self
                .shards
                .iter()
                .map(|(p, t)| (p.clone(), t.checkpoint.clone()))
                .collect(),
        }
    }

    /// The checkpoint to save now; clears the dirty flag.
    pub fn take_checkpoint(&mut self) -> Checkpoint {
        self.dirty = false;
        self.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> CommitTracker {
        CommitTracker::new(&Checkpoint::new(["a".to_owned(), "b".to_owned()], 16))
    }

    #[test]
    fn checkpoint_moves_only_over_a_committed_prefix() {
        let mut t = tracker();
        let p1 = t.page_read("a", Some("t1".into()));
        let p2 = t.page_read("a", Some("t2".into()));
        let p3 = t.page_read("a", None);
        t.committed(std::slice::from_ref(&p2));
        assert_eq!(
            t.checkpoint().shards["a"],
            ShardCheckpoint::default(),
            "page 1 is not committed yet"
        );
        t.committed(&[p1]);
        assert_eq!(
            t.checkpoint().shards["a"],
            ShardCheckpoint {
                token: Some("t2".into()),
                pages: 2,
                done: false
            }
        );
        assert!(t.is_dirty());
        t.take_checkpoint();
        assert!(!t.is_dirty());
        t.committed(&[p3]);
        assert_eq!(
            t.checkpoint().shards["a"],
            ShardCheckpoint {
                token: None,
                pages: 3,
                done: true
            }
        );
        assert_eq!(t.checkpoint().shards["b"], ShardCheckpoint::default());
    }

    #[test]
    fn a_page_split_over_two_batches_waits_for_both() {
        let mut t = tracker();
        let p1 = t.page_read("a", Some("t1".into()));
        t.split(&p1);
        t.committed(std::slice::from_ref(&p1));
        assert_eq!(
            t.checkpoint().shards["a"],
            ShardCheckpoint::default(),
            "the second half of page 1 is not committed yet"
        );
        t.committed(&[p1]);
        assert_eq!(t.checkpoint().shards["a"].token.as_deref(), Some("t1"));
    }

    #[test]
    fn a_restart_forgets_pages_of_the_old_chain() {
        let mut t = tracker();
        let old = t.page_read("b", Some("old".into()));
        t.restart("b");
        let new = t.page_read("b", Some("new".into()));
        t.committed(&[old]);
        assert_eq!(t.checkpoint().shards["b"], ShardCheckpoint::default());
        t.committed(&[new]);
        assert_eq!(t.checkpoint().shards["b"].token.as_deref(), Some("new"));
    }

    #[test]
    fn a_resumed_checkpoint_continues_counting() {
        let mut checkpoint = Checkpoint::new(["a".to_owned()], 16);
        checkpoint.shards.get_mut("a").unwrap().token = Some("t5".into());
        checkpoint.shards.get_mut("a").unwrap().pages = 5;
        let mut t = CommitTracker::new(&checkpoint);
        let p = t.page_read("a", Some("t6".into()));
        t.committed(&[p]);
        assert_eq!(
            t.checkpoint().shards["a"],
            ShardCheckpoint {
                token: Some("t6".into()),
                pages: 6,
                done: false
            }
        );
    }
}
