# CloudTrail records every user- and group-changing Cognito API call and every managed login
# (hosted UI) request; EventBridge delivers the ones for this pool to the sync queue.
# Admin* and group calls carry the pool id in requestParameters, some user calls and the
# managed login events in additionalEventData. Two kinds of call carry no pool id at all:
# - unauthenticated calls (SignUp, ConfirmSignUp, ...) carry an app client id, matched by
#   user_pool_client_ids when given;
# - self-service calls made with the user's own access token (DeleteUser,
#   UpdateUserAttributes, ...) carry neither a pool id nor a client id, so they are matched by
#   name. Other pools' calls get through too; the worker re-reads by sub in its own pool, so
#   they change nothing.
locals {
  # Encoded on both sides because a conditional's two objects must otherwise have one type.
  unauthenticated_call_filter = jsondecode(
    length(var.user_pool_client_ids) > 0
    ? jsonencode({ requestParameters = { clientId = var.user_pool_client_ids } })
    : jsonencode({
      requestParameters   = { userPoolId = [{ exists = false }] }
      additionalEventData = { userPoolId = [{ exists = false }] }
    })
  )

  self_service_event_names = ["DeleteUser", "DeleteUserAttributes", "UpdateUserAttributes", "VerifyUserAttribute"]

  cognito_change_pattern = {
    source        = ["aws.cognito-idp"]
    "detail-type" = ["AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"]
    detail = {
      eventSource = ["cognito-idp.amazonaws.com"]
      eventName   = var.tracked_event_names
      "$or" = [
        { requestParameters = { userPoolId = [var.user_pool_id] } },
        { additionalEventData = { userPoolId = [var.user_pool_id] } },
        { eventName = local.self_service_event_names },
        local.unauthenticated_call_filter,
      ]
    }
  }
}

resource "aws_cloudwatch_event_rule" "cognito_changes" {
  name          = "${var.name}-cognito-changes"
  description   = "User and group changes in ${var.user_pool_id}, for ${var.name}"
  event_pattern = jsonencode(local.cognito_change_pattern)
  tags          = local.tags
}

resource "aws_cloudwatch_event_target" "sync_queue" {
  rule      = aws_cloudwatch_event_rule.cognito_changes.name
  target_id = "sync-queue"
  arn       = aws_sqs_queue.sync.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 20
  }

  # Events EventBridge could not deliver land in the DLQ too, so nothing is silently dropped.
  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}
