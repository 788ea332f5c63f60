# The two Cognito triggers. The user pool's own Terraform owns its lambda_config, so this
# module only packages and permits them; see the outputs and deploy/README.md for the wiring.
# Nothing a function needs depends on the pool id, so the pool can reference these ARNs in the
# same configuration without a cycle (examples/complete does).
locals {
  lambdas = {
    pre_token_generation = {
      function_name = "${var.name}-pre-token-generation"
      description   = "${var.name}: adds Hasura claims to user pool tokens"
      environment = {
        GROUP_ROLE_MAP     = jsonencode(var.group_role_map)
        GROUP_PRECEDENCE   = jsonencode(var.group_precedence)
        DEFAULT_ROLE       = var.default_role
        SESSION_ATTRIBUTES = jsonencode(var.session_attributes)
        CLAIMS_NAMESPACE   = var.claims_namespace
        CLAIMS_FORMAT      = var.claims_format
        ALLOW_ADMIN_ROLE   = tostring(var.allow_admin_role)
        # Built from var.name, not from the resource server: see machine_client.tf.
        CLIENT_CREDENTIALS_SCOPE_ROLES = jsonencode({ for scope in local.machine_scopes : scope => var.machine_client_role })
      }
    }
    event_forwarder = {
      function_name = "${var.name}-event-forwarder"
      description   = "${var.name}: forwards PostConfirmation/PostAuthentication events to the sync queue"
      environment = {
        SYNC_SQS_QUEUE_URL = aws_sqs_queue.sync.id
      }
    }
  }
}

data "archive_file" "lambda" {
  for_each = local.lambdas

  type             = "zip"
  source_file      = "${path.module}/../../../lambdas/${each.key}/handler.py"
  output_path      = "${path.root}/.build/${var.name}-${each.key}.zip"
  output_file_mode = "0644"
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.lambdas

  name              = local.lambda_log_group_names[each.key]
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_lambda_function" "trigger" {
  for_each = local.lambdas
  #checkov:skip=CKV_AWS_116:Cognito invokes triggers synchronously; a Lambda DLQ only receives failed asynchronous invocations.
  #checkov:skip=CKV_AWS_117:The triggers call only AWS APIs (SQS) or nothing at all; a VPC would add cold-start latency inside Cognito's 5 second trigger budget and need NAT or an SQS endpoint.
  #checkov:skip=CKV_AWS_115:Reserved concurrency would throttle sign-ins: Cognito fails the user's request when its trigger is throttled.
  #checkov:skip=CKV_AWS_272:The code is packaged from this repository by archive_file; there is no signing profile in the build.

  function_name    = each.value.function_name
  description      = each.value.description
  role             = aws_iam_role.lambda[each.key].arn
  runtime          = var.lambda_runtime
  handler          = "handler.handler"
  filename         = data.archive_file.lambda[each.key].output_path
  source_code_hash = data.archive_file.lambda[each.key].output_base64sha256
  # Cognito gives a trigger 5 seconds in all.
  timeout     = 5
  memory_size = 128
  kms_key_arn = aws_kms_key.this.arn

  environment {
    variables = each.value.environment
  }

  tracing_config {
    mode = "PassThrough"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  tags = local.tags

  lifecycle {
    # The Lambda refuses such a mapping at sign-in too; failing the plan says so earlier.
    precondition {
      condition     = var.allow_admin_role || !(contains(values(var.group_role_map), "admin") || var.default_role == "admin")
      error_message = "group_role_map or default_role grants Hasura's admin role, which bypasses every permission: map the groups to roles of their own, or set allow_admin_role = true."
    }
  }
}

resource "aws_lambda_permission" "cognito" {
  for_each = local.lambdas

  statement_id  = "AllowCognitoUserPool"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.trigger[each.key].function_name
  principal     = "cognito-idp.amazonaws.com"
  source_arn    = local.user_pool_arn
}
