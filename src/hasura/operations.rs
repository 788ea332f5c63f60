//! The typed GraphQL operations, one per file in `graphql/`, checked against `schema.graphql`.
//!
//! Input types skip `None` fields when serialised: Hasura then applies the column default
//! (for example `id` and `started_at` of a run, or `NULL` for `deleted_at` of an upserted user),
//! where an explicit `null` would overwrite it.

use graphql_client::GraphQLQuery;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/upsert_users.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct UpsertUsers;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/upsert_groups.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct UpsertGroups;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/user_digests.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct UserDigests;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/group_digests.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct GroupDigests;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/insert_run.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct InsertRun;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/update_run.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct UpdateRun;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/unfinished_run.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct UnfinishedRun;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/recent_runs.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct RecentRuns;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/check_schema.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct CheckSchema;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/run_record.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct RunRecord;
