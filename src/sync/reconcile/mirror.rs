//! Reconcile's side of the mirror: reading the pool's digests by key, shard by shard, and
//! writing what differs (upserts through the backfill's writer, tombstones, hard deletes
//! and scrubs in batches). Every statement names the pool in its `where`, so no other
//! pool's row is ever touched. A user or group the mirror refuses because of its data is
//! left out, logged and counted; the rest is written.

use std::collections::{HashSet, VecDeque};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::cognito::Shard;
use crate::hasura::HasuraClient;
use crate::hasura::bisect::bisect;
use crate::hasura::operations::{UpsertGroups, upsert_groups};
use crate::hasura::reconcile_ops::{
    DeleteGroupsReconcile, DeleteUsersReconcile, ReconcileMirrorFirst, ReconcileUserDigests,
    ScrubUsersReconcile, TombstoneGroupsReconcile, TombstoneUsersReconcile,
    delete_groups_reconcile, delete_users_reconcile, reconcile_mirror_first,
    reconcile_user_digests, scrub_users_reconcile, tombstone_groups_reconcile,
    tombstone_users_reconcile,
};
use crate::model::{GroupRecord, UserRecord};
use crate::sync::reconcile::plan::{GroupDigest, OnDelete, SCRUB_MARKER, UserDigest};
use crate::sync::writer::{BatchOutcome, write_users};
use crate::telemetry::records::RecordRejected;

/// A closure turning a row of either digest query (generated types that differ only by
/// name) into a [`UserDigest`].
macro_rules! digest {
    () => {
        |u| UserDigest {
            id: u.id,
            username: u.username,
            content_hash: u.content_hash,
            deleted_at: u.deleted_at,
            observed_at: u.observed_at,
        }
    };
}

/// The pool's user digests, read in key order one page at a time and handed out shard by
/// shard: a reconcile holds one page and the shards it is diffing, never the whole mirror.
/// A pool of n rows takes ceil(n / page_size) requests (one when empty), the first of which
/// also brings the groups and the row count.
pub struct MirrorCursor {
    hasura: HasuraClient,
    pool: String,
    limit: i64,
    /// Rows of the pool when the first page was read.
    total: u64,
    /// Rows read so far.
    read: u64,
    reads: u64,
    /// Read, not yet handed out; in key order.
    buffered: VecDeque<UserDigest>,
    last: Option<uuid::Uuid>,
    done: bool,
}

impl MirrorCursor {
    /// Reads the first page, the pool's groups and its row count.
    pub async fn open(
        hasura: &HasuraClient,
        pool: &str,
        page_size: usize,
    ) -> anyhow::Result<(MirrorCursor, Vec<GroupDigest>)> {
        let limit = page_size.max(1) as i64;
        let first = hasura
            .post::<ReconcileMirrorFirst>(reconcile_mirror_first::Variables {
                pool: pool.to_owned(),
                limit,
            })
            .await
            .with_context(|| format!("cannot read the mirror's groups and users of pool {pool}"))?;
        let groups = first
            .cognito_groups
            .into_iter()
            .map(|g| GroupDigest {
                name: g.name,
                content_hash: g.content_hash,
                deleted_at: g.deleted_at,
                observed_at: g.observed_at,
            })
            .collect();
        let mut cursor = MirrorCursor {
            hasura: hasura.clone(),
            pool: pool.to_owned(),
            limit,
            total: first
                .users_total
                .aggregate
                .map_or(0, |a| a.count.max(0) as u64),
            read: 0,
            reads: 1,
            buffered: VecDeque::new(),
            last: None,
            done: false,
        };
        cursor.push(first.cognito_users.into_iter().map(digest!()).collect());
        Ok((cursor, groups))
    }

    /// The pool's rows as far as known: counted with the first page, or read since.
    pub fn rows(&self) -> u64 {
        self.total.max(self.read)
    }

    /// Requests made so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The digests of `shard`'s users. Shards must be asked for in key order (as
    /// [`Shard::split`] lists them) and together cover the pool: the rows before the shard's
    /// were handed out already, and the first row past it stays for the next shard.
    pub async fn shard(&mut self, shard: &Shard) -> anyhow::Result<Vec<UserDigest>> {
        let mut digests = Vec::new();
        while !take_front(&mut self.buffered, shard, &mut digests) && !self.done {
            self.next_page().await?;
        }
        Ok(digests)
    }

    async fn next_page(&mut self) -> anyhow::Result<()> {
        let after = self.last.context("a full page without rows")?;
        let page = self
            .hasura
            .post::<ReconcileUserDigests>(reconcile_user_digests::Variables {
                pool: self.pool.clone(),
                after,
                limit: self.limit,
            })
            .await
            .with_context(|| {
                format!(
                    "cannot read the mirror's users of pool {} after {after}",
                    self.pool
                )
            })?;
        self.reads += 1;
        self.push(page.cognito_users.into_iter().map(digest!()).collect());
        Ok(())
    }

    /// A page read. A short page ends the pool; so does a full one that reaches the count
    /// read with the first page (rows added since are read too: paging goes on while pages
    /// come back full).
    fn push(&mut self, rows: Vec<UserDigest>) {
        let count = rows.len() as u64;
        self.read += count;
        self.last = rows.last().map(|row| row.id).or(self.last);
        self.done = count < self.limit as u64 || self.read == self.total;
        self.buffered.extend(rows);
    }
}

/// Moves the rows at the front of `buffered` that belong to `shard` into `digests`; whether
/// a row past the shard is next (then the shard is complete).
fn take_front(
    buffered: &mut VecDeque<UserDigest>,
    shard: &Shard,
    digests: &mut Vec<UserDigest>,
) -> bool {
    while let Some(row) = buffered.front() {
        if !shard.contains(&row.id) {
            return true;
        }
        digests.extend(buffered.pop_front());
    }
    false
}

/// What writing (part of) a plan did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    /// Users the upserts changed (inserted, updated or revived).
    pub upserted: u64,
    /// Users sent but skipped by the row guard: the mirror already had a newer state.
    pub skipped_older: u64,
    /// Users and groups the mirror refused because of their data, left out.
    pub skipped_bad_data: u64,
    /// Of those, the users planned for insert, update and revive.
    pub refused_inserts: u64,
    pub refused_updates: u64,
    pub refused_revives: u64,
    /// Users gone from Cognito that were tombstoned (or removed, with `--on-delete delete`).
    pub tombstoned: u64,
    /// Earlier tombstones removed (`--on-delete delete`).
    pub deleted: u64,
    /// Earlier tombstones whose personal data was blanked (`--on-delete scrub`).
    pub scrubbed: u64,
    /// Users gone from Cognito whose personal data was blanked (`--on-delete scrub`).
    pub gone_scrubbed: u64,
    pub groups_written: u64,
    pub groups_tombstoned: u64,
}

impl Applied {
    pub fn add(&mut self, other: Applied) {
        self.upserted += other.upserted;
        self.skipped_older += other.skipped_older;
        self.skipped_bad_data += other.skipped_bad_data;
        self.tombstoned += other.tombstoned;
        self.deleted += other.deleted;
        self.scrubbed += other.scrubbed;
        self.gone_scrubbed += other.gone_scrubbed;
        self.refused_inserts += other.refused_inserts;
        self.refused_updates += other.refused_updates;
        self.refused_revives += other.refused_revives;
        self.groups_written += other.groups_written;
        self.groups_tombstoned += other.groups_tombstoned;
    }
}

/// Upserts the groups that are new, changed or back, `batch_size` per statement.
pub async fn write_groups(
    hasura: &HasuraClient,
    groups: &[GroupRecord],
    batch_size: usize,
) -> anyhow::Result<Applied> {
    let mut applied = Applied::default();
    for chunk in groups.chunks(batch_size.max(1)) {
        let done = bisect(chunk.iter().collect(), |part: &[&GroupRecord]| {
            let objects = part.iter().map(|group| (*group).into()).collect();
            hasura.post::<UpsertGroups>(upsert_groups::Variables { objects })
        })
        .await
        .context("cannot write the groups to Hasura")?;
        for (group, error) in &done.rejected {
            RecordRejected {
                path: "scan",
                kind: "group",
                key: &group.name,
                error: &error.to_string(),
            }
            .emit();
        }
        applied.skipped_bad_data += done.rejected.len() as u64;
        applied.groups_written += done
            .committed
            .iter()
            .filter_map(|data| data.insert_cognito_groups.as_ref())
            .map(|r| r.affected_rows.max(0) as u64)
            .sum::<u64>();
    }
    Ok(applied)
}

/// Upserts users (new, changed or back), `batch_size` per statement; adds the users the
/// mirror refused because of their data to `refused`.
pub async fn write_upserts(
    hasura: &HasuraClient,
    mut users: Vec<UserRecord>,
    batch_size: usize,
    refused: &mut HashSet<uuid::Uuid>,
) -> anyhow::Result<Applied> {
    let mut applied = Applied::default();
    while !users.is_empty() {
        let rest = users.split_off(batch_size.max(1).min(users.len()));
        let batch = std::mem::replace(&mut users, rest);
        let outcome: BatchOutcome = write_users(hasura, batch, false)
            .await
            .context("cannot write users to Hasura")?;
        applied.upserted += outcome.inserted + outcome.updated;
        applied.skipped_older += outcome.skipped_older;
        applied.skipped_bad_data += outcome.skipped_bad_data;
        refused.extend(outcome.rejected);
    }
    Ok(applied)
}

/// What Cognito no longer has: `gone` (live rows) tombstoned, or removed with
/// `--on-delete delete`; `earlier` (rows tombstoned by earlier runs) removed or scrubbed.
/// Only rows observed before `started_at` are touched, one statement per batch.
pub async fn remove_users(
    hasura: &HasuraClient,
    pool: &str,
    gone: &[uuid::Uuid],
    earlier: &[uuid::Uuid],
    on_delete: OnDelete,
    started_at: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<Applied> {
    let batch_size = batch_size.max(1);
    let mut applied = Applied::default();
    let now = Utc::now();
    match on_delete {
        OnDelete::Tombstone | OnDelete::Scrub => {
            for ids in gone.chunks(batch_size) {
                let data = hasura
                    .post::<TombstoneUsersReconcile>(tombstone_users_reconcile::Variables {
                        pool: pool.to_owned(),
                        ids: ids.to_vec(),
                        before: started_at,
                        deleted_at: now,
                    })
                    .await
                    .context("cannot tombstone users in Hasura")?;
                applied.tombstoned += data
                    .update_cognito_users
                    .map_or(0, |r| r.affected_rows.max(0) as u64);
            }
            if on_delete == OnDelete::Scrub {
                applied.gone_scrubbed =
                    scrub_users(hasura, pool, gone, started_at, batch_size).await?;
                applied.scrubbed =
                    scrub_users(hasura, pool, earlier, started_at, batch_size).await?;
            }
        }
        OnDelete::Delete => {
            applied.tombstoned = delete_users(hasura, pool, gone, started_at, batch_size).await?;
            applied.deleted = delete_users(hasura, pool, earlier, started_at, batch_size).await?;
        }
    }
    Ok(applied)
}

/// Tombstones (or with `--on-delete delete` removes) the groups Cognito no longer has that
/// were observed before `started_at`; returns how many.
pub async fn remove_groups(
    hasura: &HasuraClient,
    pool: &str,
    names: &[String],
    on_delete: OnDelete,
    started_at: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<u64> {
    let now = Utc::now();
    let mut removed = 0;
    for names in names.chunks(batch_size.max(1)) {
        let affected = match on_delete {
            OnDelete::Delete => hasura
                .post::<DeleteGroupsReconcile>(delete_groups_reconcile::Variables {
                    pool: pool.to_owned(),
                    names: names.to_vec(),
                    before: started_at,
                })
                .await
                .context("cannot delete groups in Hasura")?
                .delete_cognito_groups
                .map_or(0, |r| r.affected_rows),
            OnDelete::Tombstone | OnDelete::Scrub => hasura
                .post::<TombstoneGroupsReconcile>(tombstone_groups_reconcile::Variables {
                    pool: pool.to_owned(),
                    names: names.to_vec(),
                    before: started_at,
                    deleted_at: now,
                })
                .await
                .context("cannot tombstone groups in Hasura")?
                .update_cognito_groups
                .map_or(0, |r| r.affected_rows),
        };
        removed += affected.max(0) as u64;
    }
    Ok(removed)
}

/// Removes users of the pool observed before `started_at`; returns how many.
async fn delete_users(
    hasura: &HasuraClient,
    pool: &str,
    ids: &[uuid::Uuid],
    started_at: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<u64> {
    let mut deleted = 0;
    for ids in ids.chunks(batch_size) {
        let data = hasura
            .post::<DeleteUsersReconcile>(delete_users_reconcile::Variables {
                pool: pool.to_owned(),
                ids: ids.to_vec(),
                before: started_at,
            })
            .await
            .context("cannot delete users in Hasura")?;
        deleted += data
            .delete_cognito_users
            .map_or(0, |r| r.affected_rows.max(0) as u64);
    }
    Ok(deleted)
}

/// Blanks the personal data of tombstoned users of the pool (not yet scrubbed); returns how many.
async fn scrub_users(
    hasura: &HasuraClient,
    pool: &str,
    ids: &[uuid::Uuid],
    started_at: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<u64> {
    let mut scrubbed = 0;
    for ids in ids.chunks(batch_size) {
        let data = hasura
            .post::<ScrubUsersReconcile>(scrub_users_reconcile::Variables {
                pool: pool.to_owned(),
                ids: ids.to_vec(),
                before: started_at,
                marker: SCRUB_MARKER.to_owned(),
                no_attributes: serde_json::json!({}),
            })
            .await
            .context("cannot scrub tombstoned users in Hasura")?;
        scrubbed += data
            .update_cognito_users
            .map_or(0, |r| r.affected_rows.max(0) as u64);
    }
    Ok(scrubbed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::reconcile::plan::tests::{digest, user};

    #[test]
    fn a_shard_takes_only_its_rows_off_the_page() {
        let row = |n: u128| digest(&user(n, "u", 1), false, 1);
        // Ids 0x0…, 0x0…, 0x1…, 0x3…: shards 0, 0, 1 and 3 of 16.
        let mut page: VecDeque<UserDigest> = [0u128, 1, 1 << 124, 3 << 124]
            .into_iter()
            .map(row)
            .collect();
        let shards = Shard::split(16).unwrap();
        let mut take = |index: usize| {
            let mut digests = Vec::new();
            let complete = take_front(&mut page, &shards[index], &mut digests);
            (digests.len(), complete)
        };
        assert_eq!(take(0), (2, true));
        assert_eq!(take(1), (1, true));
        assert_eq!(take(2), (0, true), "an empty shard");
        assert_eq!(
            take(3),
            (1, false),
            "the page ran out: shard 3 may go on in the next one"
        );
        assert!(page.is_empty());
    }
}
