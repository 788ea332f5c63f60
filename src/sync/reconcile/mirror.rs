//! Reconcile's side of the mirror: reading the pool's digests by key, and writing a plan
//! (upserts through the backfill's writer, tombstones, hard deletes and scrubs in batches).
//! Every statement names the pool in its `where`, so no other pool's row is ever touched.
//! A user or group the mirror refuses because of its data is left out, logged and counted;
//! the rest of the plan is written.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Utc};

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
use crate::sync::reconcile::plan::{
    GroupDigest, OnDelete, Plan, PlannedUser, SCRUB_MARKER, UserDigest,
};
use crate::sync::writer::{BatchOutcome, write_users};
use crate::telemetry::records::RecordRejected;

/// The pool's groups and user digests as the mirror holds them.
#[derive(Debug, Default)]
pub struct MirrorSnapshot {
    pub groups: Vec<GroupDigest>,
    pub users: Vec<UserDigest>,
    /// Requests it took.
    pub reads: u64,
}

/// Reads the pool's digests, `page_size` users per request, paged by key. The first request
/// also brings the groups and the row count, so a pool of n users takes ceil(n / page_size)
/// requests (one when empty).
pub async fn read_mirror(
    hasura: &HasuraClient,
    pool: &str,
    page_size: usize,
) -> anyhow::Result<MirrorSnapshot> {
    let limit = page_size.max(1) as i64;
    let first = hasura
        .post::<ReconcileMirrorFirst>(reconcile_mirror_first::Variables {
            pool: pool.to_owned(),
            limit,
        })
        .await
        .context("cannot read the mirror's groups and users")?;
    let total = first
        .users_total
        .aggregate
        .map_or(0, |a| a.count.max(0) as u64);
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
    let mut snapshot = MirrorSnapshot {
        groups,
        users: Vec::with_capacity(total as usize),
        reads: 1,
    };
    let mut last_page = first.cognito_users.len() as i64;
    snapshot
        .users
        .extend(first.cognito_users.into_iter().map(|u| UserDigest {
            id: u.id,
            username: u.username,
            content_hash: u.content_hash,
            deleted_at: u.deleted_at,
            observed_at: u.observed_at,
        }));
    // A short page ends the pool; so does a full one that reaches the count read with the
    // first page (rows added since are read too: the loop goes on while pages come back full).
    while last_page == limit && (snapshot.users.len() as u64) != total {
        let after = snapshot
            .users
            .last()
            .map(|u| u.id)
            .context("a full page without rows")?;
        let page = hasura
            .post::<ReconcileUserDigests>(reconcile_user_digests::Variables {
                pool: pool.to_owned(),
                after,
                limit,
            })
            .await
            .context("cannot read the mirror's users")?;
        snapshot.reads += 1;
        last_page = page.cognito_users.len() as i64;
        snapshot
            .users
            .extend(page.cognito_users.into_iter().map(|u| UserDigest {
                id: u.id,
                username: u.username,
                content_hash: u.content_hash,
                deleted_at: u.deleted_at,
                observed_at: u.observed_at,
            }));
    }
    Ok(snapshot)
}

/// What writing a plan did.
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

/// Writes `plan`: groups, then users in upserts of `batch_size`, then what Cognito no
/// longer has, one statement per batch. `started_at` guards the deletes: only rows observed
/// before it are touched.
pub async fn apply(
    hasura: &HasuraClient,
    pool: &str,
    plan: Plan,
    on_delete: OnDelete,
    started_at: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<Applied> {
    let batch_size = batch_size.max(1);
    let mut applied = Applied::default();
    let now = Utc::now();
    for chunk in plan.groups.records.chunks(batch_size) {
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
    let mut upserts: Vec<UserRecord> = plan.upserts;
    let mut refused = HashSet::new();
    while !upserts.is_empty() {
        let rest = upserts.split_off(batch_size.min(upserts.len()));
        let batch = std::mem::replace(&mut upserts, rest);
        let outcome: BatchOutcome = write_users(hasura, batch, false)
            .await
            .context("cannot write users to Hasura")?;
        applied.upserted += outcome.inserted + outcome.updated;
        applied.skipped_older += outcome.skipped_older;
        applied.skipped_bad_data += outcome.skipped_bad_data;
        refused.extend(outcome.rejected);
    }
    let refused_of =
        |users: &[PlannedUser]| users.iter().filter(|u| refused.contains(&u.id)).count() as u64;
    applied.refused_inserts = refused_of(&plan.insert);
    applied.refused_updates = refused_of(&plan.update);
    applied.refused_revives = refused_of(&plan.revive);
    let gone: Vec<uuid::Uuid> = plan.tombstone.iter().map(|u| u.id).collect();
    let earlier: Vec<uuid::Uuid> = plan.purge.iter().map(|u: &PlannedUser| u.id).collect();
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
                    scrub_users(hasura, pool, &gone, started_at, batch_size).await?;
                applied.scrubbed =
                    scrub_users(hasura, pool, &earlier, started_at, batch_size).await?;
            }
        }
        OnDelete::Delete => {
            applied.tombstoned = delete_users(hasura, pool, &gone, started_at, batch_size).await?;
            applied.deleted = delete_users(hasura, pool, &earlier, started_at, batch_size).await?;
        }
    }
    for names in plan.groups.tombstone.chunks(batch_size) {
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
        applied.groups_tombstoned += affected.max(0) as u64;
    }
    Ok(applied)
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
