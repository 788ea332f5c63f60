//! Re-syncing named users now (`sync-user`), for the support ticket that says "my role is
//! wrong": the event path's read and write, driven by an operator instead of a message.
//!
//! Each user is read exactly as the consumer reads a user an event names
//! ([`CognitoToHasura`]'s [`Store::read`]: by sub with AdminGetUser and the ListUsers
//! `sub =` fallback, or by username, plus AdminListGroupsForUser, under the reader's quota
//! limits) and written with its one guarded `ApplyEvents` mutation ([`Store::write`]): a user
//! Cognito no longer has is tombstoned, and the row guard keeps a newer read that reached the
//! mirror first. Around the write the mirror's rows are read, before to say what changes and
//! after to say whether the guard kept a newer state instead. The records themselves are
//! built where the daemon's are (by the reader), so whatever shapes the daemon's records
//! shapes these too.

use std::collections::BTreeSet;
use std::fmt;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::consumer::{CognitoToHasura, Reads, Store, Written};
use crate::cognito::CognitoReader;
use crate::events::{Targets, UserRef};
use crate::hasura::HasuraClient;
use crate::hasura::daemon_ops::{MirrorUsers, mirror_users};
use crate::model::UserRecord;
use crate::state::lease::DEFAULT_SCAN_LEASE_TTL;
use crate::telemetry::operator::UserSynced;

/// Users read and written together: one `ApplyEvents` mutation each.
const CHUNK: usize = 100;

/// What became of one named user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserOutcome {
    /// Cognito has the user, the mirror did not.
    Inserted,
    /// Cognito's state differs from the mirror's (a tombstoned row is revived).
    Updated,
    /// The mirror already holds Cognito's state (or the tombstone of a user Cognito no
    /// longer has).
    Unchanged,
    /// Cognito no longer has the user: its row is tombstoned.
    Tombstoned,
    /// The row guard kept a newer read that reached the mirror meanwhile.
    Superseded,
    /// Neither Cognito nor the mirror knows the identifier.
    NotFound,
    /// Cognito could not be read, or the mirror refused the write.
    Failed,
}

impl UserOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            UserOutcome::Inserted => "inserted",
            UserOutcome::Updated => "updated",
            UserOutcome::Unchanged => "unchanged",
            UserOutcome::Tombstoned => "tombstoned",
            UserOutcome::Superseded => "superseded",
            UserOutcome::NotFound => "not_found",
            UserOutcome::Failed => "failed",
        }
    }

    /// Whether the identifier was synced (or, in a dry run, could be).
    pub fn is_success(self) -> bool {
        !matches!(self, UserOutcome::NotFound | UserOutcome::Failed)
    }
}

/// One field that differs between the mirror and Cognito. Values are shown only for fields
/// that carry no personal data (enabled, status, groups, the tombstone); the others are
/// named only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cognito: Option<serde_json::Value>,
}

/// One line of the report: an identifier as given, and what became of the user it names.
#[derive(Debug, Clone, Serialize)]
pub struct UserSync {
    pub identifier: String,
    pub outcome: UserOutcome,
    pub sub: Option<uuid::Uuid>,
    pub username: Option<String>,
    /// For `updated`: what differed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// For `failed`: why; for `superseded`: the newer state's read time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What `sync-user` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct UserSyncReport {
    pub user_pool_id: String,
    pub dry_run: bool,
    pub users: Vec<UserSync>,
}

impl UserSyncReport {
    /// Identifiers that could not be synced.
    pub fn failures(&self) -> usize {
        self.users
            .iter()
            .filter(|u| !u.outcome.is_success())
            .count()
    }
}

/// How an operator names a user: a UUID is a `sub`, anything else a username.
pub fn parse_identifier(text: &str) -> UserRef {
    match uuid::Uuid::parse_str(text) {
        Ok(sub) => UserRef::Sub(sub),
        Err(_) => UserRef::Username(text.to_owned()),
    }
}

/// Re-reads `identifiers` from Cognito and, unless `dry_run`, writes them as the daemon does.
///
/// # Errors
///
/// Only when the mirror cannot be read; a user that cannot be read or written is a failed
/// line of the report.
pub async fn sync_users(
    reader: CognitoReader,
    hasura: HasuraClient,
    identifiers: &[String],
    dry_run: bool,
) -> anyhow::Result<UserSyncReport> {
    // sync-user reads user by user and never scans a burst: the lease settings go unused.
    let store = CognitoToHasura::new(
        reader,
        hasura.clone(),
        hasura,
        "sync-user".to_owned(),
        DEFAULT_SCAN_LEASE_TTL,
    );
    let pool = store.pool().to_owned();
    let mut unique = BTreeSet::new();
    let identifiers: Vec<&String> = identifiers
        .iter()
        .filter(|i| unique.insert(i.as_str()))
        .collect();
    let mut users = Vec::with_capacity(identifiers.len());
    for chunk in identifiers.chunks(CHUNK) {
        let named: Vec<(&str, UserRef)> = chunk
            .iter()
            .map(|i| (i.as_str(), parse_identifier(i)))
            .collect();
        users.extend(sync_chunk(&store, &named, dry_run).await?);
    }
    for user in &users {
        UserSynced {
            identifier: &user.identifier,
            outcome: user.outcome.as_str(),
            dry_run,
            detail: user.detail.as_deref(),
        }
        .emit();
    }
    Ok(UserSyncReport {
        user_pool_id: pool,
        dry_run,
        users,
    })
}

/// Reads, plans, writes and verifies one chunk of named users.
async fn sync_chunk(
    store: &CognitoToHasura,
    named: &[(&str, UserRef)],
    dry_run: bool,
) -> anyhow::Result<Vec<UserSync>> {
    let targets = Targets {
        users: named.iter().map(|(_, user)| user.clone()).collect(),
        ..Targets::default()
    };
    let before = Mirror::read(store, &targets).await?;
    let reads = store.read(&targets).await;
    let mut planned: Vec<(UserSync, Option<&UserRecord>)> = named
        .iter()
        .flat_map(|(identifier, user)| plan(identifier, user, &reads, &before))
        .collect();
    let writes = planned.iter().any(|(line, _)| line.outcome.is_success());
    if dry_run || !writes {
        return Ok(planned.into_iter().map(|(line, _)| line).collect());
    }
    match store.write(&reads, &[]).await {
        Ok(written) => {
            let after = Mirror::read(store, &targets).await?;
            for (line, read) in &mut planned {
                verify(line, *read, &written, &after, named);
            }
        }
        Err(error) => {
            for (line, _) in &mut planned {
                if line.outcome.is_success() {
                    line.outcome = UserOutcome::Failed;
                    line.detail = Some(format!("the mirror refused the write: {error}"));
                }
            }
        }
    }
    Ok(planned.into_iter().map(|(line, _)| line).collect())
}

/// What writing Cognito's answer for `user` changes in the mirror as it was `before`; more
/// than one line when a gone username names several live rows. Each line comes with the
/// record read, when Cognito has the user.
fn plan<'r>(
    identifier: &str,
    user: &UserRef,
    reads: &'r Reads,
    before: &Mirror,
) -> Vec<(UserSync, Option<&'r UserRecord>)> {
    let line = |outcome, sub, username: Option<&str>| UserSync {
        identifier: identifier.to_owned(),
        outcome,
        sub,
        username: username.map(str::to_owned),
        changes: Vec::new(),
        detail: None,
    };
    match reads.user(user) {
        None => vec![(
            UserSync {
                detail: Some(format!("{user} was not read")),
                ..line(UserOutcome::Failed, None, None)
            },
            None,
        )],
        Some(Err(error)) => vec![(
            UserSync {
                detail: Some(error.to_string()),
                ..line(UserOutcome::Failed, None, None)
            },
            None,
        )],
        Some(Ok(Some(record))) => {
            let mut synced = line(
                UserOutcome::Inserted,
                Some(record.id),
                Some(&record.username),
            );
            if let Some(row) = before.by_id(record.id) {
                synced.changes = changes(row, record);
                synced.outcome = if synced.changes.is_empty() {
                    UserOutcome::Unchanged
                } else {
                    UserOutcome::Updated
                };
            }
            vec![(synced, Some(record))]
        }
        Some(Ok(None)) => {
            let rows = before.named(user);
            if rows.is_empty() {
                return vec![(line(UserOutcome::NotFound, None, None), None)];
            }
            let live: Vec<&MirrorRow> = rows.iter().copied().filter(|r| r.is_live()).collect();
            let (outcome, rows) = if live.is_empty() {
                (UserOutcome::Unchanged, rows)
            } else {
                (UserOutcome::Tombstoned, live)
            };
            rows.into_iter()
                .map(|row| {
                    let stored = &row.record;
                    (line(outcome, Some(stored.id), Some(&stored.username)), None)
                })
                .collect()
        }
    }
}

/// Checks a planned line against the mirror after the write: the record the mirror refused
/// fails, and a row the guard kept at a newer state is superseded.
fn verify(
    line: &mut UserSync,
    read: Option<&UserRecord>,
    written: &Written,
    after: &Mirror,
    named: &[(&str, UserRef)],
) {
    if !line.outcome.is_success() {
        return;
    }
    let user = named
        .iter()
        .find(|(identifier, _)| *identifier == line.identifier)
        .map(|(_, user)| user);
    if let Some(error) = user.and_then(|u| written.rejected_users.get(u)) {
        line.outcome = UserOutcome::Failed;
        line.detail = Some(format!("the mirror refused the record: {error}"));
        return;
    }
    let Some(row) = line.sub.and_then(|sub| after.by_id(sub)) else {
        if read.is_some() {
            line.outcome = UserOutcome::Failed;
            line.detail = Some("the mirror has no row for it after the write".to_owned());
        }
        return;
    };
    let kept = match read {
        Some(record) => row.is_live() && row.record.content_hash == record.content_hash,
        None => !row.is_live(),
    };
    if !kept {
        line.outcome = UserOutcome::Superseded;
        line.changes.clear();
        line.detail = Some(format!(
            "the mirror holds a newer read, observed at {}",
            row.record.observed_at.to_rfc3339()
        ));
    }
}

/// One mirrored user: the record the row holds, and its tombstone.
struct MirrorRow {
    record: UserRecord,
    deleted_at: Option<DateTime<Utc>>,
}

impl MirrorRow {
    fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

/// The mirror's rows of a chunk's named users, tombstones included.
struct Mirror {
    rows: Vec<MirrorRow>,
}

impl Mirror {
    async fn read(store: &CognitoToHasura, targets: &Targets) -> anyhow::Result<Mirror> {
        let (mut ids, mut usernames) = (Vec::new(), Vec::new());
        for user in &targets.users {
            match user {
                UserRef::Sub(sub) => ids.push(*sub),
                UserRef::Username(name) => usernames.push(name.clone()),
            }
        }
        let pool = store.pool();
        let data = store
            .hasura
            .post::<MirrorUsers>(mirror_users::Variables {
                pool: pool.to_owned(),
                ids,
                usernames,
            })
            .await
            .with_context(|| format!("reading the mirror's rows of the named users of {pool}"))?;
        Ok(Mirror {
            rows: data
                .cognito_users
                .into_iter()
                .map(|row| MirrorRow {
                    deleted_at: row.deleted_at,
                    record: row.into(),
                })
                .collect(),
        })
    }

    fn by_id(&self, id: uuid::Uuid) -> Option<&MirrorRow> {
        self.rows.iter().find(|r| r.record.id == id)
    }

    /// The rows an identifier names.
    fn named(&self, user: &UserRef) -> Vec<&MirrorRow> {
        self.rows
            .iter()
            .filter(|r| match user {
                UserRef::Sub(sub) => r.record.id == *sub,
                UserRef::Username(name) => r.record.username == *name,
            })
            .collect()
    }
}

/// The fields in which Cognito's `record` differs from the mirror's `row` (the names a
/// reconcile's review gives, [`UserRecord::changed_fields`]), with the values of those that
/// carry no personal data; empty when the row is live and holds the record's content.
fn changes(row: &MirrorRow, record: &UserRecord) -> Vec<FieldChange> {
    if row.is_live() && row.record.content_hash == record.content_hash {
        return Vec::new();
    }
    let stored = &row.record;
    let mut changes: Vec<FieldChange> = stored
        .changed_fields(record)
        .into_iter()
        .map(|field| {
            let values = match field.as_str() {
                "enabled" => Some((stored.enabled.into(), record.enabled.into())),
                "status" => Some((stored.status.clone().into(), record.status.clone().into())),
                "groups" => Some((stored.groups.clone().into(), record.groups.clone().into())),
                _ => None,
            };
            let (mirror, cognito) = values.unzip();
            FieldChange {
                field,
                mirror,
                cognito,
            }
        })
        .collect();
    if !row.is_live() {
        changes.push(FieldChange {
            field: "deleted".to_owned(),
            mirror: Some(true.into()),
            cognito: Some(false.into()),
        });
    }
    if changes.is_empty() {
        // Same fields, another hash: the hash encoding changed; the write refreshes it.
        changes.push(FieldChange {
            field: "content_hash".to_owned(),
            mirror: None,
            cognito: None,
        });
    }
    changes
}

impl fmt::Display for UserSyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = if self.dry_run { "would be " } else { "" };
        for user in &self.users {
            write!(f, "{}: ", user.identifier)?;
            match user.outcome {
                UserOutcome::NotFound => {
                    write!(f, "not found: known neither to Cognito nor to the mirror")?
                }
                UserOutcome::Failed => write!(f, "failed")?,
                UserOutcome::Unchanged => write!(f, "unchanged")?,
                UserOutcome::Superseded => write!(f, "superseded")?,
                outcome => write!(f, "{would}{}", outcome.as_str())?,
            }
            let mut names = Vec::new();
            if let Some(username) = user.username.as_ref().filter(|u| **u != user.identifier) {
                names.push(format!("username {username}"));
            }
            if let Some(sub) = user.sub.filter(|s| s.to_string() != user.identifier) {
                names.push(format!("sub {sub}"));
            }
            if !names.is_empty() {
                write!(f, " ({})", names.join(", "))?;
            }
            if !user.changes.is_empty() {
                let fields: Vec<String> = user.changes.iter().map(FieldChange::describe).collect();
                write!(f, ": {}", fields.join(", "))?;
            }
            if let Some(detail) = &user.detail {
                write!(f, ": {detail}")?;
            }
            writeln!(f)?;
        }
        if self.dry_run {
            writeln!(f, "dry run: nothing was written")?;
        }
        Ok(())
    }
}

impl FieldChange {
    /// `field`, or `field mirror → cognito` when the values are shown.
    fn describe(&self) -> String {
        match (&self.mirror, &self.cognito) {
            (Some(mirror), Some(cognito)) => format!("{} {mirror} → {cognito}", self.field),
            _ => self.field.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MirrorScope, UserSource};

    fn record(given_name: &str, groups: &[&str]) -> UserRecord {
        let mut record = UserRecord::from_source(
            UserSource {
                user_pool_id: "us-east-1_Test".into(),
                username: "alice".into(),
                attributes: vec![
                    ("sub".into(), "5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f".into()),
                    ("given_name".into(), given_name.into()),
                    ("custom:tenant".into(), "acme".into()),
                ],
                enabled: true,
                status: "CONFIRMED".into(),
                created_at: None,
                updated_at: None,
                observed_at: Utc::now(),
            },
            &MirrorScope::default(),
        )
        .unwrap();
        record.set_groups(groups.iter().map(|g| (*g).to_owned()).collect());
        record
    }

    /// The mirror's live row holding `record`.
    fn row(record: &UserRecord) -> MirrorRow {
        MirrorRow {
            record: record.clone(),
            deleted_at: None,
        }
    }

    fn fields(changes: &[FieldChange]) -> Vec<&str> {
        changes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn the_same_state_has_no_changes() {
        let record = record("Alice", &["editors"]);
        assert!(changes(&row(&record), &record).is_empty());
    }

    #[test]
    fn changes_name_personal_fields_and_show_groups() {
        let stored = row(&record("Alice", &["editors"]));
        let read = record("Alicia", &["admins", "editors"]);
        let found = changes(&stored, &read);
        // Named as a reconcile's review names them: the column and the attribute.
        assert_eq!(
            fields(&found),
            vec!["attributes.given_name", "given_name", "groups"]
        );
        assert_eq!(found[1].mirror, None, "personal data is named, not shown");
        assert_eq!(found[2].mirror, Some(serde_json::json!(["editors"])));
        assert_eq!(
            found[2].cognito,
            Some(serde_json::json!(["admins", "editors"]))
        );
    }

    #[test]
    fn a_revived_row_and_a_custom_attribute_are_changes() {
        let read = record("Alice", &[]);
        let mut stored = row(&read);
        stored.deleted_at = Some(Utc::now());
        stored
            .record
            .attributes
            .insert("custom:tenant".into(), "other".into());
        assert_eq!(
            fields(&changes(&stored, &read)),
            vec!["attributes.custom:tenant", "deleted"]
        );
    }

    #[test]
    fn identifiers_are_subs_when_they_are_uuids() {
        assert_eq!(
            parse_identifier("5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"),
            UserRef::Sub("5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f".parse().unwrap())
        );
        assert_eq!(parse_identifier("alice"), UserRef::Username("alice".into()));
    }
}
