//! The daemon's typed GraphQL operations: the one mutation that applies a batch of change
//! events (upserts and tombstones in one transaction) and the readiness probe.

use graphql_client::GraphQLQuery;

use crate::model::{GroupRecord, UserRecord};

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/apply_events.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ApplyEvents;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/daemon_probe.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct DaemonProbe;

/// A user as one row of the batch upsert. Like the backfill's upsert, `deleted_at` is left
/// out (NULL: a user Cognito has is alive) and the database stamps `synced_at`.
pub fn user_input(user: &UserRecord) -> apply_events::cognito_users_insert_input {
    apply_events::cognito_users_insert_input {
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

/// A group as one row of the batch upsert.
pub fn group_input(group: &GroupRecord) -> apply_events::cognito_groups_insert_input {
    apply_events::cognito_groups_insert_input {
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
