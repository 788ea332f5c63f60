//! One shard's ListUsers scan, shared by backfill and reconcile: pages in order, each user
//! joined to its groups, and a start over when Cognito rejects the pagination token.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cognito::{CognitoError, CognitoReader, Memberships, Shard};
use crate::model::UserRecord;

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

/// Pages through one shard from `token`, joining groups, until done, cancelled or failed.
pub async fn scan_shard(
    reader: CognitoReader,
    shard: Shard,
    mut token: Option<String>,
    memberships: Arc<Memberships>,
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
                    if let Some(groups) = memberships.get(&user.id) {
                        user.set_groups(groups.clone());
                    }
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
