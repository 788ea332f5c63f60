# The module next to a user pool and a Hasura that already exist and are managed elsewhere.
# This configuration changes neither: it creates the queues, the EventBridge rule, the two
# Lambdas, the worker service and its IAM, the alarms, and (unless ecs_cluster_arn is given) a
# cluster. Only worker_auth = "client-credentials" adds to the pool: a machine app client and
# its resource server.
# The pool's triggers are wired by whoever owns the pool's lambda_config: see README.md.

# Reading the pool fails the plan when the id is wrong or the provider's region is not the
# pool's, before anything is created; its current triggers are shown in an output.
data "aws_cognito_user_pool" "existing" {
  user_pool_id = var.user_pool_id
}

data "aws_cognito_user_pool_clients" "existing" {
  user_pool_id = var.user_pool_id
}

locals {
  # A machine client's token endpoint is on the pool's domain: the custom one, else the prefix.
  user_pool_domain = try(coalesce(
    var.user_pool_domain,
    data.aws_cognito_user_pool.existing.custom_domain,
    data.aws_cognito_user_pool.existing.domain,
  ), null)
}

resource "aws_ecs_cluster" "this" {
  count = var.ecs_cluster_arn == null ? 1 : 0

  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

module "cognito_hasura_sync" {
  source = "../../modules/cognito-hasura-sync"

  name                            = var.name
  user_pool_id                    = var.user_pool_id
  container_image                 = var.container_image
  ecr_repository_arn              = var.ecr_repository_arn
  hasura_graphql_endpoint         = var.hasura_graphql_endpoint
  worker_auth                     = var.worker_auth
  hasura_admin_secret_arn         = var.hasura_admin_secret_arn
  user_pool_domain                = local.user_pool_domain
  hasura_admin_secret_kms_key_arn = var.hasura_admin_secret_kms_key_arn
  hasura_egress_cidr_blocks       = var.hasura_egress_cidr_blocks
  hasura_port                     = var.hasura_port
  ecs_cluster_arn                 = coalesce(var.ecs_cluster_arn, one(aws_ecs_cluster.this[*].arn))
  vpc_id                          = var.vpc_id
  subnet_ids                      = var.private_subnet_ids
  desired_count                   = var.desired_count

  group_role_map     = var.group_role_map
  group_precedence   = var.group_precedence
  default_role       = var.default_role
  session_attributes = var.session_attributes
  jwt_audience       = var.jwt_audience
  # Unauthenticated calls (SignUp, ConfirmSignUp, ...) name an app client, not the pool:
  # match this pool's clients unless a list is given.
  user_pool_client_ids = var.user_pool_client_ids != null ? var.user_pool_client_ids : data.aws_cognito_user_pool_clients.existing.client_ids

  # The daemon reconciles on its own schedule (reconcile_schedule); the ECS-scheduled
  # reconcile stays off so the pool is not scanned twice.
  reconcile_schedule          = var.reconcile_schedule
  scheduled_reconcile_enabled = false

  alarm_actions = var.alarm_actions
}
