output "existing_lambda_config" {
  description = "The pool's triggers as Terraform reads them now (`aws cognito-idp describe-user-pool` shows all): a function already on pre_token_generation_config or post_confirmation must be chained with the module's (README.md)."
  value       = data.aws_cognito_user_pool.existing.lambda_config
}

output "pre_token_generation_lambda_arn" {
  description = "Attach to the pool's pre_token_generation_config, or invoke it from the function already there."
  value       = module.cognito_hasura_sync.pre_token_generation_lambda_arn
}

output "event_forwarder_lambda_arn" {
  description = "Attach to the pool's post_confirmation (and optionally post_authentication) unless a function is already there."
  value       = module.cognito_hasura_sync.event_forwarder_lambda_arn
}

output "hasura_graphql_jwt_secret" {
  description = "HASURA_GRAPHQL_JWT_SECRET for the existing Hasura, if it should accept the pool's tokens."
  value       = module.cognito_hasura_sync.hasura_graphql_jwt_secret
}

output "cluster_arn" {
  description = "The ECS cluster the worker runs in."
  value       = coalesce(var.ecs_cluster_arn, one(aws_ecs_cluster.this[*].arn))
}

output "service_name" {
  description = "The daemon's ECS service."
  value       = module.cognito_hasura_sync.service_name
}

output "task_definition_arn" {
  description = "Run check/backfill/reconcile/status one-off tasks with this."
  value       = module.cognito_hasura_sync.task_definition_arn
}

output "security_group_id" {
  description = "For one-off tasks' network configuration."
  value       = module.cognito_hasura_sync.security_group_id
}

output "log_group_name" {
  description = "The worker's CloudWatch log group (daemon and one-off tasks)."
  value       = module.cognito_hasura_sync.log_group_name
}

output "queue_url" {
  description = "The sync queue."
  value       = module.cognito_hasura_sync.queue_url
}

output "queue_arn" {
  description = "The sync queue's ARN, destination of DLQ redrives."
  value       = module.cognito_hasura_sync.queue_arn
}

output "dlq_url" {
  description = "The dead-letter queue, for inspecting and purging."
  value       = module.cognito_hasura_sync.dlq_url
}

output "dlq_arn" {
  description = "The dead-letter queue's ARN, source of redrives."
  value       = module.cognito_hasura_sync.dlq_arn
}
