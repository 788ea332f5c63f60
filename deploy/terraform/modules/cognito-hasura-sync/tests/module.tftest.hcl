# `terraform test` with a mocked AWS provider: plans only, nothing reaches AWS. It pins what
# the module computes for each worker_auth mode and the checks that must fail a plan.
# deploy/tests/test_terraform_cli.py runs it from the local provider mirror.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # Policy documents are rendered by the provider; the mock's random string is no JSON.
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

variables {
  user_pool_id            = "eu-west-1_Ab12Cd34E"
  container_image         = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/cognito-hasura-sync:1.4.2"
  hasura_graphql_endpoint = "https://hasura.example.com/v1/graphql"
  hasura_admin_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:hasura-admin"
  ecs_cluster_arn         = "arn:aws:ecs:eu-west-1:111122223333:cluster/workers"
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-0123456789abcdef0"]
}

run "admin_secret_is_the_default" {
  command = plan

  assert {
    condition     = length(aws_cognito_user_pool_client.worker) + length(aws_cognito_resource_server.sync) + length(aws_secretsmanager_secret.worker_client) == 0
    error_message = "The admin-secret mode creates no machine client."
  }
  assert {
    condition     = local.worker_secrets == [{ name = "HASURA_GRAPHQL_ADMIN_SECRET", valueFrom = var.hasura_admin_secret_arn }]
    error_message = "The task gets the admin secret and nothing else."
  }
  assert {
    condition     = length(local.worker_auth_environment) == 0
    error_message = "No machine client settings in the admin-secret mode."
  }
  assert {
    condition     = local.worker_environment.HASURA_ROLE == "cognito_sync"
    error_message = "The worker runs as cognito_sync with the admin secret too."
  }
  assert {
    condition     = [for statement in data.aws_iam_policy_document.execution.statement : statement.sid] == ["WriteTheLogStreams", "ReadTheAdminSecret"]
    error_message = "The execution role reads the admin secret only."
  }
  assert {
    condition     = jsondecode(aws_lambda_function.trigger["pre_token_generation"].environment[0].variables.CLIENT_CREDENTIALS_SCOPE_ROLES) == {}
    error_message = "No scope grants a role without a machine client."
  }
  assert {
    condition     = aws_lambda_function.trigger["pre_token_generation"].environment[0].variables.ALLOW_ADMIN_ROLE == "false"
    error_message = "The admin role is refused by default."
  }
  assert {
    condition     = jsondecode(output.hasura_graphql_jwt_secret).claims_format == "stringified_json"
    error_message = "Claims are a JSON string by default."
  }
  assert {
    condition     = local.worker_container.command == ["daemon", "--visibility-timeout", "60"]
    error_message = "The daemon asks for the queue's visibility timeout."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.no_running_task[0].dimensions.ClusterName == "workers"
    error_message = "The task alarm watches the service in its cluster."
  }
  assert {
    condition     = length(aws_sns_topic.alarms) == 0 && length(local.alarm_actions) == 0
    error_message = "No alarm topic unless asked for."
  }
}

run "client_credentials_with_the_pool_domain_prefix" {
  command = plan

  variables {
    worker_auth             = "client-credentials"
    hasura_admin_secret_arn = null
    user_pool_domain        = "myapp"
  }

  assert {
    condition     = local.worker_auth_environment.COGNITO_TOKEN_ENDPOINT == "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/token"
    error_message = "The token endpoint is on the pool's Cognito domain."
  }
  assert {
    condition     = local.worker_auth_environment.HASURA_AUTH == "client-credentials" && local.worker_auth_environment.COGNITO_OAUTH_SCOPES == "cognito-hasura-sync/sync"
    error_message = "The worker is told to use the client credentials grant for the sync scope."
  }
  assert {
    condition     = [for secret in local.worker_secrets : secret.name] == ["COGNITO_CLIENT_SECRET"]
    error_message = "The task gets the client secret and never the admin secret."
  }
  assert {
    condition     = [for statement in data.aws_iam_policy_document.execution.statement : statement.sid] == ["WriteTheLogStreams", "ReadTheClientSecret", "DecryptTheClientSecret"]
    error_message = "The execution role reads the client secret only."
  }
  assert {
    condition     = aws_cognito_user_pool_client.worker[0].allowed_oauth_flows == toset(["client_credentials"]) && aws_cognito_user_pool_client.worker[0].generate_secret
    error_message = "The machine client may only use the client credentials grant."
  }
  assert {
    condition     = jsondecode(aws_lambda_function.trigger["pre_token_generation"].environment[0].variables.CLIENT_CREDENTIALS_SCOPE_ROLES) == { "cognito-hasura-sync/sync" = "cognito_sync" }
    error_message = "The sync scope grants the cognito_sync role."
  }
}

run "client_credentials_with_a_custom_domain" {
  command = plan

  variables {
    worker_auth      = "client-credentials"
    user_pool_domain = "auth.example.com"
  }

  assert {
    condition     = local.worker_auth_environment.COGNITO_TOKEN_ENDPOINT == "https://auth.example.com/oauth2/token"
    error_message = "A custom domain serves the token endpoint itself."
  }
}

run "claims_as_a_json_object" {
  command = plan

  variables {
    claims_format = "json"
  }

  assert {
    condition     = aws_lambda_function.trigger["pre_token_generation"].environment[0].variables.CLAIMS_FORMAT == "json" && jsondecode(output.hasura_graphql_jwt_secret).claims_format == "json"
    error_message = "The Lambda and Hasura agree on the claims format."
  }
}

run "admin_role_allowed_only_explicitly" {
  command = plan

  variables {
    group_role_map   = { admins = "admin" }
    allow_admin_role = true
  }

  assert {
    condition     = aws_lambda_function.trigger["pre_token_generation"].environment[0].variables.ALLOW_ADMIN_ROLE == "true"
    error_message = "allow_admin_role reaches the Lambda."
  }
}

run "admin_role_from_a_group_fails_the_plan" {
  command = plan

  variables {
    group_role_map = { admins = "admin", staff = "editor" }
  }

  expect_failures = [aws_lambda_function.trigger]
}

run "admin_default_role_fails_the_plan" {
  command = plan

  variables {
    default_role = "admin"
  }

  expect_failures = [aws_lambda_function.trigger]
}

run "session_attribute_may_not_pick_the_role" {
  command = plan

  variables {
    session_attributes = { "custom:role" = "X-Hasura-Role" }
  }

  expect_failures = [var.session_attributes]
}

run "pool_of_another_region_fails_the_plan" {
  command = plan

  variables {
    user_pool_id = "us-east-1_Ab12Cd34E"
  }

  expect_failures = [data.aws_region.current]
}

run "untagged_image_fails_validation" {
  command = plan

  variables {
    container_image = "registry.local:5000/cognito-hasura-sync"
  }

  expect_failures = [var.container_image]
}

run "latest_image_fails_validation" {
  command = plan

  variables {
    container_image = "cognito-hasura-sync:latest"
  }

  expect_failures = [var.container_image]
}

run "client_credentials_without_a_domain_fails_the_plan" {
  command = plan

  variables {
    worker_auth = "client-credentials"
  }

  expect_failures = [aws_cognito_user_pool_client.worker]
}

run "admin_secret_mode_without_the_secret_fails_the_plan" {
  command = plan

  variables {
    hasura_admin_secret_arn = null
  }

  expect_failures = [aws_ecs_task_definition.worker]
}

run "alarm_topic_and_a_service_scaled_to_zero" {
  command = plan

  variables {
    alarm_topic_enabled = true
    desired_count       = 0
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 1 && length(local.alarm_actions) == 1
    error_message = "The alarms notify the module's topic."
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.no_running_task) == 0
    error_message = "A service scaled to zero has no task to miss."
  }
}

run "visibility_timeout_reaches_queue_and_daemon" {
  command = plan

  variables {
    queue_visibility_timeout_seconds = 120
  }

  assert {
    condition     = aws_sqs_queue.sync.visibility_timeout_seconds == 120 && local.worker_container.command[2] == "120"
    error_message = "One visibility timeout for the queue and the daemon."
  }
}
