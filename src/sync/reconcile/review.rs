//! A dry run's review of its plan: one entry per planned user with the kind of change and the
//! names of the fields it writes ([`Plan::changes`]), for a person to check before a real run.
//!
//! The mirror's digests hold only a hash, which says that a user differs but not where. The
//! review reads the mirrored fields of the users that differ — those the plan updates or
//! revives, never the unchanged ones — `batch_size` users per Hasura request, only in a dry
//! run: ceil(differing / batch_size) more requests of about 1 KB per user. Inserts,
//! tombstones, deletes and scrubs need no read.

use std::collections::HashMap;

use anyhow::Context;

use crate::hasura::HasuraClient;
use crate::hasura::reconcile_ops::{ReconcileMirroredUsers, reconcile_mirrored_users};
use crate::model::UserRecord;
use crate::sync::reconcile::plan::{OnDelete, Plan, PlannedChange};

/// The plan's per-user changes, reading the mirrored rows of the users that differ.
pub async fn review(
    hasura: &HasuraClient,
    pool: &str,
    plan: &Plan,
    on_delete: OnDelete,
    batch_size: usize,
) -> anyhow::Result<Vec<PlannedChange>> {
    let mut mirrored: HashMap<uuid::Uuid, UserRecord> = HashMap::new();
    for ids in plan.reviewed_ids().chunks(batch_size.max(1)) {
        let rows = hasura
            .post::<ReconcileMirroredUsers>(reconcile_mirrored_users::Variables {
                pool: pool.to_owned(),
                ids: ids.to_vec(),
            })
            .await
            .with_context(|| {
                format!(
                    "cannot read the mirrored fields of {} users of pool {pool} that differ",
                    ids.len()
                )
            })?;
        mirrored.extend(
            rows.cognito_users
                .into_iter()
                .map(|row| (row.id, UserRecord::from(row))),
        );
    }
    Ok(plan.changes(on_delete, &mirrored))
}
