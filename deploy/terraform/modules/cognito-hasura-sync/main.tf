data "aws_region" "current" {
  lifecycle {
    # Every ARN, the issuer, the rule and the token endpoint are built from the provider's
    # region: a pool of another region would leave them all pointing at nothing.
    postcondition {
      condition     = startswith(var.user_pool_id, "${self.name}_")
      error_message = "user_pool_id ${var.user_pool_id} is not in the AWS provider's region ${self.name}: configure the provider for the pool's region."
    }
  }
}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  # `name` is deprecated in aws provider 6 (in favour of `region`) but exists in 5 and 6.
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  user_pool_arn = "arn:${local.partition}:cognito-idp:${local.region}:${local.account_id}:userpool/${var.user_pool_id}"
  issuer        = "https://cognito-idp.${local.region}.amazonaws.com/${var.user_pool_id}"

  worker_log_group_name = "/ecs/${var.name}"
  lambda_log_group_names = {
    pre_token_generation = "/aws/lambda/${var.name}-pre-token-generation"
    event_forwarder      = "/aws/lambda/${var.name}-event-forwarder"
  }

  admin_secret_is_ssm = can(regex("^arn:[^:]+:ssm:", var.hasura_admin_secret_arn))
  machine_client      = var.worker_auth == "client-credentials"

  # Same JSON as `cognito-hasura-sync jwt-secret`: Hasura verifies Cognito tokens against the
  # pool's JWKS and reads the claims the pre token generation Lambda writes, as a JSON string
  # or (V2/V3 triggers) as a JSON object.
  jwt_secret_base = {
    type          = "RS256"
    jwk_url       = "${local.issuer}/.well-known/jwks.json"
    claims_format = var.claims_format
    issuer        = local.issuer
  }
  jwt_secret = merge(local.jwt_secret_base, {
    for key, value in {
      claims_namespace = var.claims_namespace == "https://hasura.io/jwt/claims" ? null : var.claims_namespace
      audience         = var.jwt_audience
    } : key => value if value != null
  })

  tags = merge({ "app" = var.name }, var.tags)
}

# One customer managed key for the log groups, the Lambdas' environment and the schedule.
resource "aws_kms_key" "this" {
  description             = "${var.name}: CloudWatch Logs, Lambda environment and schedule encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource means this key only; the account root statement is what lets IAM policies grant use of the key at all.
  #checkov:skip=CKV_AWS_111:Same key policy: write access is limited to this key by definition.
  #checkov:skip=CKV_AWS_356:Key policies must name "*" as the resource; it is this key.
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsUsesKeyForOurLogGroups"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        for name in concat([local.worker_log_group_name], values(local.lambda_log_group_names)) :
        "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"
      ]
    }
  }

  # CloudWatch alarms publish to the alarm topic, which this key encrypts.
  dynamic "statement" {
    for_each = var.alarm_topic_enabled ? ["cloudwatch.amazonaws.com"] : []
    content {
      sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
      resources = ["*"]
      principals {
        type        = "Service"
        identifiers = [statement.value]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}
