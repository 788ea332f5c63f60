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
  description = "Id of the Cognito user pool to mirror (<region>_<id>); the region must be the AWS provider's (a precondition checks it)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+_[0-9A-Za-z]+$", var.user_pool_id))
    error_message = "user_pool_id must look like <region>_<id>."
  }
}

variable "container_image" {
  description = "Worker image (built from deploy/Dockerfile), pinned by a tag other than latest (repository:1.4.2) or by digest (repository@sha256:...)."
  type        = string

  validation {
    # The tag follows the last "/", so a registry port (host:5000/image) is not a tag.
    condition     = can(regex("^([^@]+@sha256:[0-9a-f]{64}|([^/]+/)*[^/:@]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$", var.container_image)) && !endswith(var.container_image, ":latest")
    error_message = "container_image must be pinned to a tag other than latest (repository:1.4.2) or a digest (repository@sha256:...)."
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

variable "worker_auth" {
  description = "How the worker authenticates to Hasura: \"admin-secret\" (Hasura's admin secret from hasura_admin_secret_arn, with the worker's role in x-hasura-role) or \"client-credentials\" (a Cognito machine client this module creates; its access token carries only machine_client_role, and the task never sees the admin secret)."
  type        = string
  default     = "admin-secret"

  validation {
    condition     = contains(["admin-secret", "client-credentials"], var.worker_auth)
    error_message = "worker_auth must be \"admin-secret\" or \"client-credentials\"."
  }
}

variable "hasura_admin_secret_arn" {
  description = "ARN of the Secrets Manager secret or SSM SecureString parameter holding Hasura's admin secret, for worker_auth = \"admin-secret\" (null otherwise). ECS injects it; it never appears in the task definition."
  type        = string
  default     = null

  validation {
    condition     = var.hasura_admin_secret_arn == null || can(regex("^arn:[^:]+:(secretsmanager:[^:]+:[0-9]{12}:secret:.+|ssm:[^:]+:[0-9]{12}:parameter/.+)$", var.hasura_admin_secret_arn))
    error_message = "hasura_admin_secret_arn must be a Secrets Manager secret ARN or an SSM parameter ARN."
  }
}

variable "user_pool_domain" {
  description = "For worker_auth = \"client-credentials\": the user pool's domain, a prefix (the domain of aws_cognito_user_pool_domain, giving https://<prefix>.auth.<region>.amazoncognito.com) or a custom domain name (auth.example.com). The worker fetches its token from <domain>/oauth2/token."
  type        = string
  default     = null

  validation {
    condition     = var.user_pool_domain == null || can(regex("^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(\\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$", var.user_pool_domain))
    error_message = "user_pool_domain must be a domain prefix or a domain name, without https:// or a path."
  }
}

variable "machine_client_role" {
  description = "Hasura role the worker's machine client gets (worker_auth = \"client-credentials\"), and the role the worker sends in x-hasura-role; deploy/hasura/metadata defines its permissions."
  type        = string
  default     = "cognito_sync"

  validation {
    condition     = var.machine_client_role != "admin" && length(var.machine_client_role) > 0
    error_message = "machine_client_role must name a role other than admin: the point of the machine client is a worker that cannot touch other tables."
  }
}

variable "machine_client_token_validity_minutes" {
  description = "Lifetime of the machine client's access tokens; the worker fetches a new one before each expires."
  type        = number
  default     = 60

  validation {
    condition     = var.machine_client_token_validity_minutes >= 5 && var.machine_client_token_validity_minutes <= 1440
    error_message = "machine_client_token_validity_minutes must be between 5 and 1440 (Cognito's limits)."
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

variable "exclude_attributes" {
  description = "Cognito attributes never copied into the mirror (SYNC_EXCLUDE_ATTRIBUTES), e.g. [\"phone_number\", \"custom:national_id\"]; `sub` and `username` cannot be excluded."
  type        = list(string)
  default     = []
}

variable "include_groups" {
  description = "Mirror only these groups (SYNC_INCLUDE_GROUPS); null mirrors every group."
  type        = list(string)
  default     = null

  validation {
    condition     = var.include_groups == null || length(coalesce(var.include_groups, [])) > 0
    error_message = "include_groups must name at least one group, or be null for every group."
  }
}

variable "reconcile_schedule" {
  description = "Schedule of the reconcile the daemon runs itself under its lease (RECONCILE_SCHEDULE), in the daemon's cron syntax, not EventBridge's: standard five-field cron `min hour day month weekday` (e.g. \"17 * * * *\", hourly at :17) or six fields with seconds first (e.g. \"0 17 * * * *\"), evaluated in UTC; \"off\" disables it; null keeps the binary's default, hourly (\"0 0 * * * *\")."
  type        = string
  default     = null
}

variable "scheduled_reconcile_enabled" {
  description = "Also run `reconcile` as a one-off ECS task from EventBridge Scheduler (for pools where the daemon is scaled to zero, or as a second safety net)."
  type        = bool
  default     = false
}

variable "scheduled_reconcile_expression" {
  description = "EventBridge Scheduler expression for the one-off reconcile task, in EventBridge's syntax, not the daemon's cron: `cron(min hour day-of-month month day-of-week year)` with `?` in one of the two day fields (e.g. \"cron(17 3 * * ? *)\", daily at 03:17) or `rate(value unit)` (e.g. \"rate(6 hours)\"), evaluated in scheduled_reconcile_timezone."
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
  description = "How long a received message stays hidden while the worker applies it: the daemon asks for it on every receive (--visibility-timeout) and it is the queue's default for any other consumer. The daemon extends it for a batch that takes longer."
  type        = number
  default     = 60

  validation {
    condition     = var.queue_visibility_timeout_seconds >= 1 && var.queue_visibility_timeout_seconds <= 43200
    error_message = "queue_visibility_timeout_seconds must be between 1 and 43200 (SQS's limits)."
  }
}

variable "queue_max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue. Each receive of a failing message first spends the daemon's own retries (3 per request: a second or two when Hasura refuses connections, about 22 s when it does not answer them, 4 attempts of up to the 5 s connect timeout), then the message stays hidden for a backoff of 5 s doubling to 300 s by receive count (5, 10, 20, 40, 80, 160, then 300 s): the default 10 receives ride out 25 to 29 minutes of Hasura or Cognito outage (1515 s of backoff plus the retries), and each further receive adds about 5 minutes."
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
  description = "Cognito group -> Hasura role for the pre token generation Lambda (GROUP_ROLE_MAP). Groups not listed grant no role. Hasura's admin role bypasses every permission: it is refused unless allow_admin_role is true."
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
  description = "User attribute -> x-hasura-* session variable added to the claims (SESSION_ATTRIBUTES). List only attributes users cannot write themselves (leave them out of the app clients' write_attributes), or users choose their own session variables."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for claim in values(var.session_attributes) : startswith(lower(claim), "x-hasura-")])
    error_message = "session_attributes values must be x-hasura-* claim names."
  }

  validation {
    condition     = alltrue([for claim in values(var.session_attributes) : !contains(["x-hasura-role", "x-hasura-default-role", "x-hasura-allowed-roles", "x-hasura-user-id"], lower(claim))])
    error_message = "session_attributes may not set x-hasura-role, x-hasura-default-role, x-hasura-allowed-roles or x-hasura-user-id: the role and the user id come from groups and sub only."
  }
}

variable "allow_admin_role" {
  description = "Let group_role_map or default_role grant Hasura's admin role (unrestricted: it bypasses every permission). Off, the plan fails on such a mapping and the Lambda refuses it."
  type        = bool
  default     = false
}

variable "claims_format" {
  description = "How the Hasura claims are written: \"stringified_json\" (a JSON string, works with every trigger version) or \"json\" (a JSON object, needs the pool's pre token generation trigger at V2_0 or V3_0: V1_0 events can only add strings). The hasura_graphql_jwt_secret output follows it."
  type        = string
  default     = "stringified_json"

  validation {
    condition     = contains(["stringified_json", "json"], var.claims_format)
    error_message = "claims_format must be \"stringified_json\" or \"json\"."
  }
}

variable "claims_namespace" {
  description = "Claim that carries the Hasura claims (HASURA_GRAPHQL_JWT_SECRET claims_namespace)."
  type        = string
  default     = "https://hasura.io/jwt/claims"
}

variable "jwt_audience" {
  description = "Optional audience (app client id) Hasura checks in the aud claim; null skips the check. Only ID tokens carry aud: Cognito access tokens name their client in client_id, which Hasura v2 does not check, so an access token of any client of the pool is still accepted (deploy/SECURITY.md)."
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

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or recovers (SNS topics, ...), besides the module's own topic when alarm_topic_enabled."
  type        = list(string)
  default     = []
}

variable "alarm_topic_enabled" {
  description = "Create an SNS topic (encrypted with the module's key) for the alarms; subscribe to it yourself (output alarm_topic_arn)."
  type        = bool
  default     = false
}

variable "alarm_oldest_message_age_seconds" {
  description = "Alarm when the oldest message of the sync queue is older than this. A healthy worker applies messages within seconds; with the default queue_max_receive_count (10), one failing message is retried with backoff for 25 to 29 minutes before the DLQ."
  type        = number
  default     = 900

  validation {
    condition     = var.alarm_oldest_message_age_seconds >= 60
    error_message = "alarm_oldest_message_age_seconds must be at least 60."
  }
}
