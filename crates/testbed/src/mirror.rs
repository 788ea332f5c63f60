//! Reading the mirror tables (`cognito_users`, `cognito_groups`) straight from PostgreSQL,
//! so tests assert on what is stored, not on what the GraphQL layer says.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// One row of `cognito_users`.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorUser {
    pub id: Uuid,
    pub user_pool_id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub phone_number: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub enabled: bool,
    pub status: String,
    pub attributes: Value,
    pub groups: Value,
    pub cognito_created_at: Option<DateTime<Utc>>,
    pub cognito_updated_at: Option<DateTime<Utc>>,
    pub observed_at: DateTime<Utc>,
    pub content_hash: String,
    pub deleted_at: Option<DateTime<Utc>>,
    pub synced_at: DateTime<Utc>,
}

/// One row of `cognito_groups`.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorGroup {
    pub user_pool_id: String,
    pub name: String,
    pub description: Option<String>,
    pub precedence: Option<i32>,
    pub role_arn: Option<String>,
    pub cognito_created_at: Option<DateTime<Utc>>,
    pub cognito_updated_at: Option<DateTime<Utc>>,
    pub observed_at: DateTime<Utc>,
    pub content_hash: String,
    pub deleted_at: Option<DateTime<Utc>>,
    pub synced_at: DateTime<Utc>,
}

impl MirrorUser {
    /// The group names stored in `groups` (a JSON array of strings).
    pub fn group_names(&self) -> Vec<String> {
        self.groups
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

const USER_COLUMNS: &str = "id, user_pool_id, username, email, email_verified, phone_number, given_name, \
    family_name, name, enabled, status, attributes, groups, cognito_created_at, cognito_updated_at, \
    observed_at, content_hash, deleted_at, synced_at";

const GROUP_COLUMNS: &str = "user_pool_id, name, description, precedence, role_arn, cognito_created_at, \
    cognito_updated_at, observed_at, content_hash, deleted_at, synced_at";

/// Every mirrored user of a pool (tombstones included), ordered by `id`.
pub async fn users(
    client: &tokio_postgres::Client,
    user_pool_id: &str,
) -> anyhow::Result<Vec<MirrorUser>> {
    let rows = client
        .query(
            &format!("SELECT {USER_COLUMNS} FROM public.cognito_users WHERE user_pool_id = $1 ORDER BY id"),
            &[&user_pool_id],
        )
        .await
        .context("reading cognito_users")?;
    rows.iter().map(user_from_row).collect()
}

/// One mirrored user by sub, if present.
pub async fn user(client: &tokio_postgres::Client, id: Uuid) -> anyhow::Result<Option<MirrorUser>> {
    let row = client
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM public.cognito_users WHERE id = $1"),
            &[&id],
        )
        .await
        .context("reading cognito_users")?;
    row.as_ref().map(user_from_row).transpose()
}

/// Every mirrored group of a pool (tombstones included), ordered by name.
pub async fn groups(
    client: &tokio_postgres::Client,
    user_pool_id: &str,
) -> anyhow::Result<Vec<MirrorGroup>> {
    let rows = client
        .query(
            &format!("SELECT {GROUP_COLUMNS} FROM public.cognito_groups WHERE user_pool_id = $1 ORDER BY name"),
            &[&user_pool_id],
        )
        .await
        .context("reading cognito_groups")?;
    rows.iter().map(group_from_row).collect()
}

fn user_from_row(row: &tokio_postgres::Row) -> anyhow::Result<MirrorUser> {
    Ok(MirrorUser {
        id: row.try_get("id")?,
        user_pool_id: row.try_get("user_pool_id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        email_verified: row.try_get("email_verified")?,
        phone_number: row.try_get("phone_number")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        name: row.try_get("name")?,
        enabled: row.try_get("enabled")?,
        status: row.try_get("status")?,
        attributes: row.try_get("attributes")?,
        groups: row.try_get("groups")?,
        cognito_created_at: row.try_get("cognito_created_at")?,
        cognito_updated_at: row.try_get("cognito_updated_at")?,
        observed_at: row.try_get("observed_at")?,
        content_hash: row.try_get("content_hash")?,
        deleted_at: row.try_get("deleted_at")?,
        synced_at: row.try_get("synced_at")?,
    })
}

fn group_from_row(row: &tokio_postgres::Row) -> anyhow::Result<MirrorGroup> {
    Ok(MirrorGroup {
        user_pool_id: row.try_get("user_pool_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        precedence: row.try_get("precedence")?,
        role_arn: row.try_get("role_arn")?,
        cognito_created_at: row.try_get("cognito_created_at")?,
        cognito_updated_at: row.try_get("cognito_updated_at")?,
        observed_at: row.try_get("observed_at")?,
        content_hash: row.try_get("content_hash")?,
        deleted_at: row.try_get("deleted_at")?,
        synced_at: row.try_get("synced_at")?,
    })
}

/// One row version of `cognito_users`: `id`, `xmin` (changes with every update of the row)
/// and `synced_at`.
pub type RowVersion = (Uuid, String, DateTime<Utc>);

/// Every row version of `cognito_users`, by id: equal before and after a run that changed no
/// row (PostgreSQL's own record of updates).
pub async fn row_versions(client: &tokio_postgres::Client) -> anyhow::Result<Vec<RowVersion>> {
    let rows = client
        .query(
            "SELECT id, xmin::text, synced_at FROM cognito_users ORDER BY id",
            &[],
        )
        .await
        .context("reading row versions")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
