# Least privilege, one role per job:
# - the worker task role: the Cognito reads and SQS consume calls the binary makes, on this
#   pool and this queue only;
# - the task execution role: pulling the image, writing its log stream, reading the one secret
#   the task gets (the admin secret, or the machine client's secret);
# - one role per Lambda: its own log group, and SendMessage on the queue for the forwarder.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid = "ReadTheUserPool"
    actions = [
      "cognito-idp:AdminGetUser",
      "cognito-idp:AdminListGroupsForUser",
      "cognito-idp:DescribeUserPool",
      "cognito-idp:ListGroups",
      "cognito-idp:ListUsers",
      "cognito-idp:ListUsersInGroup",
    ]
    resources = [local.user_pool_arn]
  }

  statement {
    sid = "ConsumeTheSyncQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
    ]
    resources = [aws_sqs_queue.sync.arn]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "cognito-read-sqs-consume"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]
    content {
      sid       = "PullTheImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken supports no resource-level permissions; AWS requires "*".
    for_each = var.ecr_repository_arn == null ? [] : ["*"]
    content {
      sid       = "GetRegistryToken"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "WriteTheLogStreams"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:log-stream:*"]
  }

  dynamic "statement" {
    for_each = local.machine_client ? [] : [var.hasura_admin_secret_arn]
    content {
      sid       = "ReadTheAdminSecret"
      actions   = local.admin_secret_is_ssm ? ["ssm:GetParameters"] : ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.machine_client || var.hasura_admin_secret_kms_key_arn == null ? [] : [var.hasura_admin_secret_kms_key_arn]
    content {
      sid       = "DecryptTheAdminSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.admin_secret_is_ssm ? "ssm.${local.region}.amazonaws.com" : "secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = local.machine_client ? [aws_secretsmanager_secret.worker_client[0].arn] : []
    content {
      sid       = "ReadTheClientSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.machine_client ? [aws_kms_key.this.arn] : []
    content {
      sid       = "DecryptTheClientSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-read-secret"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.lambdas

  name               = each.value.function_name
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "lambda" {
  for_each = local.lambdas

  statement {
    sid       = "WriteItsLogStreams"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[each.key].arn}:log-stream:*"]
  }

  dynamic "statement" {
    for_each = each.key == "event_forwarder" ? [aws_sqs_queue.sync.arn] : []
    content {
      sid       = "SendToTheSyncQueue"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.lambdas

  name   = "logs-and-queue"
  role   = aws_iam_role.lambda[each.key].id
  policy = data.aws_iam_policy_document.lambda[each.key].json
}
