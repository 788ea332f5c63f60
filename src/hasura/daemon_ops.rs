//! The daemon's typed GraphQL operations: the one mutation that applies a batch of change
//! events (upserts, tombstones and early reconcile requests in one transaction), the
//! readiness probe, reading and serving the pending early reconcile requests, and reading the
//! mirror's rows of named users (`sync-user`).

use graphql_client::GraphQLQuery;

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

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/pending_requests.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct PendingRequests;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/serve_requests.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct ServeRequests;

#[derive(GraphQLQuery)]
#[graphql(
    schema_path = "schema.graphql",
    query_path = "graphql/mirror_users.graphql",
    custom_scalars_module = "crate::hasura::scalars",
    response_derives = "Debug, Clone",
    variables_derives = "Debug, Clone",
    skip_serializing_none
)]
pub struct MirrorUsers;
