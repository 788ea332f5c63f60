# A complete deployment: a user pool wired to the module's triggers, an ECS cluster, the module.
# The worker holds no admin secret: it authenticates to Hasura as a Cognito machine client
# (worker_auth = "client-credentials"), whose tokens carry only the cognito_sync role.
resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cognito_user_pool" "this" {
  name = var.name
  # V3_0 trigger events (claims in the access token too, and machine client tokens) need the
  # Essentials or Plus plan. On the Lite plan use lambda_version = "V1_0" (ID token only),
  # which the Lambda also answers, with worker_auth = "admin-secret".
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
      lambda_version = "V3_0"
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

# The token endpoint of the worker's machine client: https://<domain>.auth.<region>.amazoncognito.com/oauth2/token.
resource "aws_cognito_user_pool_domain" "this" {
  domain       = var.user_pool_domain
  user_pool_id = aws_cognito_user_pool.this.id
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
  worker_auth             = "client-credentials"
  user_pool_domain        = aws_cognito_user_pool_domain.this.domain
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

  # A V3 trigger writes the claims as a JSON object (stringified_json is for V1 events).
  claims_format = "json"

  scheduled_reconcile_enabled = true
}
