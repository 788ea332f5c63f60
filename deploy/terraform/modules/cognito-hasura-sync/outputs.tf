output "queue_url" {
  description = "URL of the sync queue (SYNC_SQS_QUEUE_URL)."
  value       = aws_sqs_queue.sync.id
}

output "queue_arn" {
  description = "ARN of the sync queue."
  value       = aws_sqs_queue.sync.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue (source of `aws sqs start-message-move-task`)."
  value       = aws_sqs_queue.dlq.arn
}

output "pre_token_generation_lambda_arn" {
  description = "Wire into the pool: lambda_config { pre_token_generation_config { lambda_arn = this, lambda_version = \"V3_0\" } } (V3_0 for worker_auth = \"client-credentials\": machine client tokens reach only a V3 trigger; V2_0 otherwise, or V1_0 on the Lite plan with claims_format = \"stringified_json\")."
  value       = aws_lambda_function.trigger["pre_token_generation"].arn
}

output "event_forwarder_lambda_arn" {
  description = "Wire into the pool: lambda_config { post_confirmation = this, post_authentication = this (optional) }."
  value       = aws_lambda_function.trigger["event_forwarder"].arn
}

output "task_definition_arn" {
  description = "Task definition of the worker; run `backfill` / `reconcile` with it by overriding the command."
  value       = aws_ecs_task_definition.worker.arn
}

output "service_name" {
  description = "Name of the daemon ECS service."
  value       = aws_ecs_service.daemon.name
}

output "security_group_id" {
  description = "Security group of the worker tasks (also for one-off tasks)."
  value       = aws_security_group.worker.id
}

output "task_role_arn" {
  description = "IAM role the worker's code runs as."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "IAM role ECS uses to pull the image, write logs and read the admin secret."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the worker."
  value       = aws_cloudwatch_log_group.worker.name
}

output "hasura_graphql_jwt_secret" {
  description = "Value for the Hasura service's HASURA_GRAPHQL_JWT_SECRET; `cognito-hasura-sync jwt-secret` prints the same JSON."
  value       = jsonencode(local.jwt_secret)
}

output "machine_client_id" {
  description = "App client id of the worker's Cognito machine client (worker_auth = \"client-credentials\"), null otherwise."
  value       = one(aws_cognito_user_pool_client.worker[*].id)
}

output "machine_client_secret_arn" {
  description = "Secrets Manager secret holding the machine client's secret (worker_auth = \"client-credentials\"), null otherwise."
  value       = one(aws_secretsmanager_secret.worker_client[*].arn)
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (alarm_topic_enabled), null otherwise; subscribe to it."
  value       = one(aws_sns_topic.alarms[*].arn)
}
