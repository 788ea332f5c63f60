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

output "queue_arn" {
  description = "The sync queue's ARN, destination of DLQ redrives."
  value       = module.cognito_hasura_sync.queue_arn
}

output "dlq_url" {
  description = "The dead-letter queue, for inspecting and purging."
  value       = module.cognito_hasura_sync.dlq_url
}

output "log_group_name" {
  description = "The worker's CloudWatch log group (daemon and one-off tasks)."
  value       = module.cognito_hasura_sync.log_group_name
}

output "service_name" {
  description = "The daemon's ECS service."
  value       = module.cognito_hasura_sync.service_name
}
