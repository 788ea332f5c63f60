output "user_pool_id" {
  description = "The example user pool."
  value       = aws_cognito_user_pool.this.id
}

output "hasura_graphql_jwt_secret" {
  description = "Set as HASURA_GRAPHQL_JWT_SECRET on the Hasura service."
  value       = module.cognito_hasura_sync.hasura_graphql_jwt_secret
}

output "queue_url" {
  description = "The sync queue."
  value       = module.cognito_hasura_sync.queue_url
}

output "dlq_arn" {
  description = "The dead-letter queue, for redrives."
  value       = module.cognito_hasura_sync.dlq_arn
}

output "task_definition_arn" {
  description = "Run backfill/reconcile one-off tasks with this."
  value       = module.cognito_hasura_sync.task_definition_arn
}

output "security_group_id" {
  description = "For one-off tasks' network configuration."
  value       = module.cognito_hasura_sync.security_group_id
}

output "cluster_arn" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.arn
}
