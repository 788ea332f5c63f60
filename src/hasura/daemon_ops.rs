//! The daemon's typed GraphQL operations: the one mutation that applies a batch of change
//! events (upserts and tombstones in one transaction) and the readiness probe.

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
