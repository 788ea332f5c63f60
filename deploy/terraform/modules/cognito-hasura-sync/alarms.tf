# Alarms for trouble an operator must act on, without reading logs:
# - a message in the dead-letter queue (a hint the worker could not apply after
#   queue_max_receive_count receives, or an event EventBridge could not deliver);
# - the sync queue's oldest message older than alarm_oldest_message_age_seconds (the worker is
#   down, stuck or failing on every message);
# - no daemon task running;
# - a reconcile that failed or was stopped by its safety brake, counted from the worker's JSON
#   logs: the daemon logs "reconcile finished" with result = failed or braked.
locals {
  alarm_actions    = concat(var.alarm_actions, aws_sns_topic.alarms[*].arn)
  alarm_namespace  = "CognitoHasuraSync/${var.name}"
  ecs_cluster_name = regex("[^/]+$", var.ecs_cluster_arn)

  # The two queue alarms: the maximum over 5 minutes above a threshold.
  queue_alarms = {
    "dlq-not-empty" = {
      description = "Messages in ${aws_sqs_queue.dlq.name}: hints the worker could not apply. Read them, fix the cause, then redrive with `cognito-hasura-sync redrive` (or `aws sqs start-message-move-task`)."
      queue       = aws_sqs_queue.dlq.name
      metric      = "ApproximateNumberOfMessagesVisible"
      threshold   = 0
    }
    "queue-oldest-message-age" = {
      description = "The oldest message of ${aws_sqs_queue.sync.name} waits longer than ${var.alarm_oldest_message_age_seconds} s: the worker is down, stuck, or failing on every message (its logs and /readyz say why)."
      queue       = aws_sqs_queue.sync.name
      metric      = "ApproximateAgeOfOldestMessage"
      threshold   = var.alarm_oldest_message_age_seconds
    }
  }
}

resource "aws_sns_topic" "alarms" {
  count = var.alarm_topic_enabled ? 1 : 0

  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.id
  tags              = local.tags
}

resource "aws_sns_topic_policy" "alarms" {
  count = var.alarm_topic_enabled ? 1 : 0

  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarm_topic[0].json
}

data "aws_iam_policy_document" "alarm_topic" {
  count = var.alarm_topic_enabled ? 1 : 0

  statement {
    sid       = "ThisAccountsAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms[0].arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "queue" {
  for_each = local.queue_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/SQS"
  metric_name         = each.value.metric
  dimensions          = { QueueName = each.value.queue }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# ECS reports a service's CPUUtilization only while one of its tasks runs (no Container
# Insights needed): any sample means a task ran that minute; no task, no data: breaching.
resource "aws_cloudwatch_metric_alarm" "no_running_task" {
  count = var.desired_count > 0 ? 1 : 0

  alarm_name          = "${var.name}-no-running-task"
  alarm_description   = "No task of ${aws_ecs_service.daemon.name} has run for 5 minutes: nothing applies change events. Check the service's events and stopped tasks."
  namespace           = "AWS/ECS"
  metric_name         = "CPUUtilization"
  dimensions          = { ClusterName = local.ecs_cluster_name, ServiceName = aws_ecs_service.daemon.name }
  statistic           = "SampleCount"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_log_metric_filter" "reconcile_failed" {
  name           = "${var.name}-reconcile-failed-or-braked"
  log_group_name = aws_cloudwatch_log_group.worker.name
  # LOG_FORMAT=json writes the event's message and fields at the top level of each line.
  pattern = "{ ($.message = \"reconcile finished\") && (($.result = \"failed\") || ($.result = \"braked\")) }"

  metric_transformation {
    name      = "ReconcileFailedOrBraked"
    namespace = local.alarm_namespace
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "reconcile_failed" {
  alarm_name          = "${var.name}-reconcile-failed-or-braked"
  alarm_description   = "A reconcile failed or its safety brake stopped it (nothing was written). The log line \"reconcile finished\" and `cognito-hasura-sync status` say why."
  namespace           = local.alarm_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.reconcile_failed.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}
