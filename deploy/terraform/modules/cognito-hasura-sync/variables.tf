variable "name" {
  description = "Name prefix for every resource this module creates."
  type        = string
  default     = "cognito-hasura-sync"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,39}$", var.name))
    error_message = "name must start with a letter and have at most 40 letters, digits or hyphens."
  }
}

variable "user_pool_id" {
  description = "Id of the Cognito user pool to mirror (<region>_<id>)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+_[0-9A-Za-z]+$", var.user_pool_id))
    error_message = "user_pool_id must look like <region>_<id>."
  }
}

variable "container_image" {
  description = "Worker image (built from deploy/Dockerfile), pinned by tag or digest."
  type        = string

  validation {
    condition     = !endswith(var.container_image, ":latest") && length(var.container_image) > 0
    error_message = "container_image must be pinned to a tag or digest, not :latest."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository the image is pulled from; null when the image is not in ECR."
  type        = string
  default     = null

  validation {
    condition     = var.ecr_repository_arn == null || can(regex("^arn:[^:]+:ecr:[^:]+:[0-9]{12}:repository/.+$", var.ecr_repository_arn))
    error_message = "ecr_repository_arn must be an ECR repository ARN."
  }
}

variable "hasura_graphql_endpoint" {
  description = "Full URL of Hasura's GraphQL endpoint, ending in /v1/graphql."
  type        = string

  validation {
    condition     = can(regex("^https?://[^/]+(/.*)?/v1/graphql$", var.hasura_graphql_endpoint))
    error_message = "hasura_graphql_endpoint must be a full http(s) URL ending in /v1/graphql."
  }
}

variable "hasura_admin_secret_arn" {
  description = "ARN of the Secrets Manager secret or SSM SecureString parameter holding Hasura's admin secret. ECS injects it; it never appears in the task definition."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:(secretsmanager:[^:]+:[0-9]{12}:secret:.+|ssm:[^:]+:[0-9]{12}:parameter/.+)$", var.hasura_admin_secret_arn))
    error_message = "hasura_admin_secret_arn must be a Secrets Manager secret ARN or an SSM parameter ARN."
  }
}

variable "hasura_admin_secret_kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts the admin secret; null when it uses the AWS managed key."
  type        = string
  default     = null
}

variable "ecs_cluster_arn" {
  description = "ARN of the ECS cluster that runs the worker service and the one-off tasks."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the worker's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the worker tasks; they need a route to the AWS APIs (NAT or VPC endpoints) and to Hasura."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "hasura_egress_cidr_blocks" {
  description = "CIDR blocks where Hasura listens, when it is reached on a port other than 443."
  type        = list(string)
  default     = []
}

variable "hasura_port" {
  description = "TCP port Hasura is reached on from the worker (egress rule for hasura_egress_cidr_blocks)."
  type        = number
  default     = 8080
}

variable "metrics_ingress_cidr_blocks" {
  description = "CIDR blocks allowed to scrape the worker's /metrics and health endpoints on port 8080."
  type        = list(string)
  default     = []
}

variable "desired_count" {
  description = "Number of daemon tasks; two survive a task or zone loss, and the lease keeps the scheduled reconcile single."
  type        = number
  default     = 2

  validation {
    condition     = var.desired_count >= 0 && var.desired_count <= 10
    error_message = "desired_count must be between 0 and 10."
  }
}

variable "task_cpu" {
  description = "Fargate CPU units per task."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Fargate memory (MiB) per task."
  type        = number
  default     = 512
}

variable "log_retention_days" {
  description = "Retention of the worker's and the Lambdas' CloudWatch log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts."
  }
}

variable "log_level" {
  description = "RUST_LOG filter for the worker."
  type        = string
  default     = "info"
}

variable "reconcile_schedule" {
  description = "Cron expression for the reconcile the daemon runs itself under its lease (RECONCILE_SCHEDULE); null keeps the binary's default."
  type        = string
  default     = null
}

variable "scheduled_reconcile_enabled" {
  description = "Also run `reconcile` as a one-off ECS task from EventBridge Scheduler (for pools where the daemon is scaled to zero, or as a second safety net)."
  type        = bool
  default     = false
}

variable "scheduled_reconcile_expression" {
  description = "EventBridge Scheduler expression for the one-off reconcile task."
  type        = string
  default     = "cron(17 3 * * ? *)"

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.scheduled_reconcile_expression))
    error_message = "scheduled_reconcile_expression must be a cron(...) or rate(...) expression."
  }
}

variable "scheduled_reconcile_timezone" {
  description = "Time zone of scheduled_reconcile_expression."
  type        = string
  default     = "UTC"
}

variable "extra_environment" {
  description = "Additional plain environment variables for the worker container (never secrets)."
  type        = map(string)
  default     = {}
}

variable "queue_visibility_timeout_seconds" {
  description = "How long a received message stays hidden while the worker applies it."
  type        = number
  default     = 60
}

variable "queue_max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue. The daemon retries a failing message with backoff (5 s doubling to 300 s), so 10 receives ride out about 20 minutes of Hasura or Cognito outage."
  type        = number
  default     = 10

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000
    error_message = "queue_max_receive_count must be between 1 and 1000."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long failed messages wait in the dead-letter queue (maximum 14 days)."
  type        = number
  default     = 1209600
}

variable "tracked_event_names" {
  description = "CloudTrail eventName values of Cognito operations that change users or groups, API calls and managed login (hosted UI) requests such as Confirm_POST; each becomes a sync hint on the queue (docs/events.md lists what the worker does with each). (Admin)RespondToAuthChallenge moves users out of FORCE_CHANGE_PASSWORD but also fires on every MFA sign-in: drop it for MFA-heavy pools and let the reconcile catch those."
  type        = list(string)
  default = [
    "AdminAddUserToGroup",
    "AdminConfirmSignUp",
    "AdminCreateUser",
    "AdminDeleteUser",
    "AdminDeleteUserAttributes",
    "AdminDisableProviderForUser",
    "AdminDisableUser",
    "AdminEnableUser",
    "AdminLinkProviderForUser",
    "AdminRemoveUserFromGroup",
    "AdminResetUserPassword",
    "AdminRespondToAuthChallenge",
    "AdminSetUserPassword",
    "AdminUpdateUserAttributes",
    "ConfirmForgotPassword",
    "ConfirmSignUp",
    "Confirm_POST",
    "CreateGroup",
    "DeleteGroup",
    "DeleteUser",
    "DeleteUserAttributes",
    "RespondToAuthChallenge",
    "SignUp",
    "Signup_POST",
    "StartUserImportJob",
    "UpdateGroup",
    "UpdateUserAttributes",
    "VerifyUserAttribute",
  ]
}

variable "user_pool_client_ids" {
  description = "App client ids of the pool. Unauthenticated calls (SignUp, ConfirmSignUp, ConfirmForgotPassword, RespondToAuthChallenge) name a client, not a pool: with this set only this pool's clients' calls are forwarded; empty forwards such calls of every pool in the account and region (the worker re-reads by sub, so another pool's users change nothing). Self-service calls made with a user's access token (DeleteUser, UpdateUserAttributes, VerifyUserAttribute, DeleteUserAttributes) name neither and are forwarded either way."
  type        = list(string)
  default     = []
}

variable "group_role_map" {
  description = "Cognito group -> Hasura role for the pre token generation Lambda (GROUP_ROLE_MAP). Groups not listed grant no role."
  type        = map(string)
  default     = {}
}

variable "group_precedence" {
  description = "Cognito group -> precedence (lower wins) used to pick x-hasura-default-role (GROUP_PRECEDENCE)."
  type        = map(number)
  default     = {}
}

variable "default_role" {
  description = "Hasura role every signed-in user gets, and the default role when no mapped group applies."
  type        = string
  default     = "user"
}

variable "session_attributes" {
  description = "User attribute -> x-hasura-* session variable added to the claims (SESSION_ATTRIBUTES)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for claim in values(var.session_attributes) : startswith(lower(claim), "x-hasura-")])
    error_message = "session_attributes values must be x-hasura-* claim names."
  }
}

variable "claims_namespace" {
  description = "Claim that carries the Hasura claims (HASURA_GRAPHQL_JWT_SECRET claims_namespace)."
  type        = string
  default     = "https://hasura.io/jwt/claims"
}

variable "jwt_audience" {
  description = "Optional audience (app client id) Hasura checks in the ID token; null skips the check."
  type        = string
  default     = null
}

variable "lambda_runtime" {
  description = "Python runtime of the two Lambdas."
  type        = string
  default     = "python3.12"
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
