variable "name" {
  description = "Name prefix for the resources this configuration creates."
  type        = string
  default     = "cognito-hasura-sync"
}

variable "user_pool_id" {
  description = "Id of the existing user pool (<region>_<id>); the provider must be configured for that region."
  type        = string
}

variable "container_image" {
  description = "Worker image built from deploy/Dockerfile and pushed to ecr_repository_arn, pinned by tag or digest."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository holding container_image; null when the image is elsewhere."
  type        = string
  default     = null
}

variable "hasura_graphql_endpoint" {
  description = "The existing Hasura's GraphQL endpoint as the worker reaches it, ending in /v1/graphql, for example https://hasura.internal.example.com/v1/graphql."
  type        = string
}

variable "worker_auth" {
  description = "How the worker authenticates to Hasura: \"admin-secret\" (hasura_admin_secret_arn) or \"client-credentials\" (a machine client the module adds to the pool; needs the pool's pre token generation trigger at V3_0, deploy/SECURITY.md)."
  type        = string
  default     = "admin-secret"
}

variable "hasura_admin_secret_arn" {
  description = "Secrets Manager secret (or SSM SecureString parameter) ARN holding the existing Hasura's admin secret; for worker_auth = \"admin-secret\"."
  type        = string
  default     = null
}

variable "user_pool_domain" {
  description = "For worker_auth = \"client-credentials\": the pool's domain (prefix or custom domain); null takes the one the pool has."
  type        = string
  default     = null
}

variable "hasura_admin_secret_kms_key_arn" {
  description = "Customer managed KMS key of that secret; null when it uses the AWS managed key."
  type        = string
  default     = null
}

variable "hasura_egress_cidr_blocks" {
  description = "CIDR blocks of the existing Hasura when the worker reaches it on hasura_port rather than 443."
  type        = list(string)
  default     = []
}

variable "hasura_port" {
  description = "Port of the existing Hasura for hasura_egress_cidr_blocks."
  type        = number
  default     = 8080
}

variable "ecs_cluster_arn" {
  description = "Existing ECS cluster for the worker; null creates one named after var.name."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC for the worker tasks (the one Hasura is reachable from)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with NAT or VPC endpoints) for the worker tasks."
  type        = list(string)
}

variable "desired_count" {
  description = "Daemon tasks: 0 for the first apply (backfill runs alone), then 2."
  type        = number
  default     = 0
}

variable "user_pool_client_ids" {
  description = "App clients whose unauthenticated calls are tracked; null takes every client of the pool."
  type        = list(string)
  default     = null
}

variable "group_role_map" {
  description = "Cognito group -> Hasura role for the pre token generation Lambda."
  type        = map(string)
  default     = {}
}

variable "group_precedence" {
  description = "Cognito group -> precedence (lower wins), as configured on the pool's groups."
  type        = map(number)
  default     = {}
}

variable "default_role" {
  description = "Hasura role every signed-in user gets."
  type        = string
  default     = "user"
}

variable "session_attributes" {
  description = "User attribute -> x-hasura-* session variable; use only attributes users cannot write themselves."
  type        = map(string)
  default     = {}
}

variable "jwt_audience" {
  description = "App client id Hasura checks in ID tokens; null skips the check."
  type        = string
  default     = null
}

variable "reconcile_schedule" {
  description = "The daemon's reconcile schedule (RECONCILE_SCHEDULE), in UTC: standard five-field cron, e.g. \"17 3 * * *\" for 03:17 daily, or six fields with seconds first, e.g. \"0 17 3 * * *\" (not EventBridge's cron(...)); \"off\" disables it; null keeps the binary's hourly default."
  type        = string
  default     = null
}

variable "alarm_actions" {
  description = "Existing SNS topics (or other alarm action ARNs) the module's alarms notify."
  type        = list(string)
  default     = []
}
