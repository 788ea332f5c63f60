//! The typed GraphQL operations of reconcile and of the scheduler's lease, one per file in
//! `graphql/`, checked against `schema.graphql` like those in [`super::operations`].

use graphql_client::GraphQLQuery;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/reconcile_mirror_first.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ReconcileMirrorFirst;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/reconcile_user_digests.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ReconcileUserDigests;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/tombstone_users_reconcile.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct TombstoneUsersReconcile;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/delete_users_reconcile.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct DeleteUsersReconcile;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/scrub_users_reconcile.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ScrubUsersReconcile;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/tombstone_groups_reconcile.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct TombstoneGroupsReconcile;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/delete_groups_reconcile.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct DeleteGroupsReconcile;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/acquire_lease.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct AcquireLease;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/heartbeat_lease.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct HeartbeatLease;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/release_lease.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ReleaseLease;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/lease_holder.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct LeaseHolder;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/reconcile_mirrored_users.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ReconcileMirroredUsers;
