# Optional: `reconcile` as a one-off Fargate task on a schedule, besides the daemon's own
# leased cron. Same task definition, command overridden. The schedule's payload is encrypted
# with the module's key, which the scheduler role may use for this schedule only.
locals {
  reconcile_schedule_name = "${var.name}-reconcile"
  reconcile_schedule_arn  = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/default/${local.reconcile_schedule_name}"
}

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  count = var.scheduled_reconcile_enabled ? 1 : 0

  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid     = "RunTheReconcileTask"
    actions = ["ecs:RunTask"]
    # Any revision of this family: the schedule follows the service to new revisions.
    resources = ["${aws_ecs_task_definition.worker.arn_without_revision}:*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.ecs_cluster_arn]
    }
  }

  statement {
    sid       = "DecryptTheSchedule"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:scheduler:schedule:arn"
      values   = [local.reconcile_schedule_arn]
    }
  }

  statement {
    sid       = "PassTheTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task.arn, aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = var.scheduled_reconcile_enabled ? 1 : 0

  name   = "run-reconcile-task"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "reconcile" {
  count = var.scheduled_reconcile_enabled ? 1 : 0

  name                         = local.reconcile_schedule_name
  kms_key_arn                  = aws_kms_key.this.arn
  description                  = "cognito-hasura-sync reconcile for ${var.user_pool_id}"
  schedule_expression          = var.scheduled_reconcile_expression
  schedule_expression_timezone = var.scheduled_reconcile_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.ecs_cluster_arn
    role_arn = aws_iam_role.scheduler[0].arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.worker.arn
      launch_type         = "FARGATE"
      platform_version    = "LATEST"
      task_count          = 1

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.worker.id]
        assign_public_ip = false
      }
    }

    input = jsonencode({
      containerOverrides = [{ name = local.container_name, command = ["reconcile"] }]
    })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }
  }
}
