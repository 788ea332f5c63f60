# A complete deployment: a user pool wired to the module's triggers, an ECS cluster, the module.
resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cognito_user_pool" "this" {
  name = var.name
  # V2_0 trigger events (claims in the access token too) need the Essentials or Plus plan; on
  # the Lite plan use lambda_version = "V1_0" (ID token only), which the Lambda also answers.
  user_pool_tier           = "ESSENTIALS"
  deletion_protection      = "ACTIVE"
  auto_verified_attributes = ["email"]
  username_attributes      = ["email"]
  mfa_configuration        = "OPTIONAL"

  software_token_mfa_configuration {
    enabled = true
  }

  lambda_config {
    pre_token_generation_config {
      lambda_arn     = module.cognito_hasura_sync.pre_token_generation_lambda_arn
      lambda_version = "V2_0"
    }
    post_confirmation   = module.cognito_hasura_sync.event_forwarder_lambda_arn
    post_authentication = module.cognito_hasura_sync.event_forwarder_lambda_arn
  }

  schema {
    name                = "tenant_id"
    attribute_data_type = "String"
    mutable             = true
    string_attribute_constraints {
      min_length = 1
      max_length = 64
    }
  }
}

resource "aws_cognito_user_pool_client" "app" {
  name                                 = "${var.name}-app"
  user_pool_id                         = aws_cognito_user_pool.this.id
  generate_secret                      = false
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = ["openid", "email", "profile"]
  callback_urls                        = var.app_client_callback_urls
  supported_identity_providers         = ["COGNITO"]
  prevent_user_existence_errors        = "ENABLED"
  # custom:tenant_id becomes x-hasura-tenant-id: users may read it but never write it.
  read_attributes  = ["custom:tenant_id", "email", "email_verified", "name"]
  write_attributes = ["email", "name"]
}

resource "aws_cognito_user_group" "admins" {
  name         = "admins"
  user_pool_id = aws_cognito_user_pool.this.id
  precedence   = 0
}

resource "aws_cognito_user_group" "staff" {
  name         = "staff"
  user_pool_id = aws_cognito_user_pool.this.id
  precedence   = 10
}

module "cognito_hasura_sync" {
  source = "../../modules/cognito-hasura-sync"

  name                    = var.name
  user_pool_id            = aws_cognito_user_pool.this.id
  container_image         = var.container_image
  ecr_repository_arn      = var.ecr_repository_arn
  hasura_graphql_endpoint = var.hasura_graphql_endpoint
  hasura_admin_secret_arn = var.hasura_admin_secret_arn
  ecs_cluster_arn         = aws_ecs_cluster.this.arn
  vpc_id                  = var.vpc_id
  subnet_ids              = var.private_subnet_ids
  desired_count           = var.desired_count

  # Group precedence mirrors the groups above: the trigger event only names the groups.
  # Nobody gets Hasura's admin role (it bypasses every permission): admins read every
  # profile through the support role of deploy/hasura/metadata.
  group_role_map       = { admins = "support", staff = "editor" }
  group_precedence     = { admins = 0, staff = 10 }
  default_role         = "user"
  session_attributes   = { "custom:tenant_id" = "x-hasura-tenant-id" }
  jwt_audience         = aws_cognito_user_pool_client.app.id
  user_pool_client_ids = [aws_cognito_user_pool_client.app.id]

  scheduled_reconcile_enabled = true
}
