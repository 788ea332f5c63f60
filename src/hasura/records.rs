//! Model records as the GraphQL inputs of the upserts, and mirrored rows read back as records.
//!
//! graphql_client generates its own input types for every operation, all with the same
//! fields; one macro body converts a record into each of them.

use std::collections::BTreeMap;

use crate::hasura::daemon_ops::apply_events;
use crate::hasura::operations::{upsert_groups, upsert_users};
use crate::hasura::reconcile_ops::reconcile_mirrored_users::ReconcileMirroredUsersCognitoUsers;
use crate::model::{GroupRecord, UserRecord};

/// A user as one row of `insert_cognito_users`. `deleted_at` and `synced_at` are left out:
/// the upsert sets `deleted_at` to its default (NULL, a seen user is alive) and the database
/// stamps `synced_at`.
macro_rules! user_input_from_record {
    ($($operation:ident),+) => {$(
        impl From<&UserRecord> for $operation::cognito_users_insert_input {
            fn from(user: &UserRecord) -> Self {
                $operation::cognito_users_insert_input {
                    id: Some(user.id),
                    user_pool_id: Some(user.user_pool_id.clone()),
                    username: Some(user.username.clone()),
                    email: user.email.clone(),
                    email_verified: user.email_verified,
                    phone_number: user.phone_number.clone(),
                    given_name: user.given_name.clone(),
                    family_name: user.family_name.clone(),
                    name: user.name.clone(),
                    enabled: Some(user.enabled),
                    status: Some(user.status.clone()),
                    attributes: Some(serde_json::to_value(&user.attributes).unwrap_or_default()),
                    groups: Some(serde_json::Value::from(user.groups.clone())),
                    cognito_created_at: user.cognito_created_at,
                    cognito_updated_at: user.cognito_updated_at,
                    observed_at: Some(user.observed_at),
                    content_hash: Some(user.content_hash.clone()),
                    deleted_at: None,
                    synced_at: None,
                }
            }
        }
    )+};
}

/// A group as one row of `insert_cognito_groups`, likewise.
macro_rules! group_input_from_record {
    ($($operation:ident),+) => {$(
        impl From<&GroupRecord> for $operation::cognito_groups_insert_input {
            fn from(group: &GroupRecord) -> Self {
                $operation::cognito_groups_insert_input {
                    user_pool_id: Some(group.user_pool_id.clone()),
                    name: Some(group.name.clone()),
                    description: group.description.clone(),
                    precedence: group.precedence.map(i64::from),
                    role_arn: group.role_arn.clone(),
                    cognito_created_at: group.cognito_created_at,
                    cognito_updated_at: group.cognito_updated_at,
                    observed_at: Some(group.observed_at),
                    content_hash: Some(group.content_hash.clone()),
                    deleted_at: None,
                    synced_at: None,
                }
            }
        }
    )+};
}

user_input_from_record!(upsert_users, apply_events);
group_input_from_record!(upsert_groups, apply_events);

/// A mirrored row as the record it was written from (`attributes` and `groups` as the
/// upserts write them: an object of strings, an array of names).
impl From<ReconcileMirroredUsersCognitoUsers> for UserRecord {
    fn from(row: ReconcileMirroredUsersCognitoUsers) -> Self {
        let text = |value: serde_json::Value| match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        let attributes: BTreeMap<String, String> = match row.attributes {
            serde_json::Value::Object(map) => map.into_iter().map(|(k, v)| (k, text(v))).collect(),
            _ => BTreeMap::new(),
        };
        let groups = match row.groups {
            serde_json::Value::Array(names) => names.into_iter().map(text).collect(),
            _ => Vec::new(),
        };
        UserRecord {
            id: row.id,
            user_pool_id: row.user_pool_id,
            username: row.username,
            email: row.email,
            email_verified: row.email_verified,
            phone_number: row.phone_number,
            given_name: row.given_name,
            family_name: row.family_name,
            name: row.name,
            enabled: row.enabled,
            status: row.status,
            attributes,
            groups,
            cognito_created_at: row.cognito_created_at,
            cognito_updated_at: row.cognito_updated_at,
            observed_at: row.observed_at,
            content_hash: row.content_hash,
        }
    }
}
