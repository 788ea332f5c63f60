# worker_auth = "client-credentials": the worker authenticates to Hasura as a Cognito machine
# client instead of with the admin secret. A resource server defines one scope; the app client
# may request only that scope with the client credentials grant; the pre token generation
# Lambda (V3_0 trigger: client credentials tokens reach no earlier version) turns the scope
# into machine_client_role. The client secret goes to Secrets Manager, encrypted with the
# module's key, and ECS hands it to the task as COGNITO_CLIENT_SECRET.
#
# The Lambda learns the scope from var.name alone, never from these resources: the pool that
# references the Lambda's ARN must not depend on a client of itself.
locals {
  machine_scope_name = "sync"
  machine_scope      = "${var.name}/${local.machine_scope_name}"
  machine_scopes     = local.machine_client ? [local.machine_scope] : []
  # A prefix is Cognito's own domain; anything with a dot is a custom domain.
  token_endpoint = (
    var.user_pool_domain == null ? null
    : strcontains(var.user_pool_domain, ".") ? "https://${var.user_pool_domain}/oauth2/token"
    : "https://${var.user_pool_domain}.auth.${local.region}.amazoncognito.com/oauth2/token"
  )
}

resource "aws_cognito_resource_server" "sync" {
  count = local.machine_client ? 1 : 0

  identifier   = var.name
  name         = "${var.name} worker"
  user_pool_id = var.user_pool_id

  scope {
    scope_name        = local.machine_scope_name
    scope_description = "Read and write the Cognito mirror tables in Hasura as ${var.machine_client_role}"
  }
}

resource "aws_cognito_user_pool_client" "worker" {
  count = local.machine_client ? 1 : 0

  name                                 = "${var.name}-worker"
  user_pool_id                         = var.user_pool_id
  generate_secret                      = true
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["client_credentials"]
  allowed_oauth_scopes                 = aws_cognito_resource_server.sync[0].scope_identifiers
  enable_token_revocation              = true
  prevent_user_existence_errors        = "ENABLED"
  access_token_validity                = var.machine_client_token_validity_minutes

  token_validity_units {
    access_token = "minutes"
  }

  lifecycle {
    precondition {
      condition     = var.user_pool_domain != null
      error_message = "worker_auth = \"client-credentials\" needs user_pool_domain: the token endpoint is on the pool's domain."
    }
  }
}

resource "aws_secretsmanager_secret" "worker_client" {
  count = local.machine_client ? 1 : 0
  #checkov:skip=CKV2_AWS_57:The value is the Cognito app client's generated secret; it changes only when Terraform replaces the client, which writes the new value here, so a rotation Lambda has nothing to rotate.

  name_prefix             = "${var.name}-worker-client-"
  description             = "${var.name}: secret of the worker's Cognito machine client"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "worker_client" {
  count = local.machine_client ? 1 : 0

  secret_id     = aws_secretsmanager_secret.worker_client[0].id
  secret_string = aws_cognito_user_pool_client.worker[0].client_secret
}
