# The worker: `daemon` as an ECS Fargate service, and the task definition `backfill` and
# `reconcile` reuse as one-off tasks with the command overridden.
locals {
  container_name = "worker"
  listen_port    = 8080

  # HASURA_ROLE: the role whose permissions bound the worker, whichever credential it holds.
  worker_environment = merge(
    {
      COGNITO_USER_POOL_ID    = var.user_pool_id
      AWS_REGION              = local.region
      HASURA_GRAPHQL_ENDPOINT = var.hasura_graphql_endpoint
      HASURA_ROLE             = var.machine_client_role
      SYNC_SQS_QUEUE_URL      = aws_sqs_queue.sync.id
      LISTEN_ADDR             = "0.0.0.0:${local.listen_port}"
      LOG_FORMAT              = "json"
      RUST_LOG                = var.log_level
    },
    { for key, value in { RECONCILE_SCHEDULE = var.reconcile_schedule } : key => value if value != null },
    local.worker_scope_environment,
    local.worker_auth_environment,
    var.extra_environment,
  )

  # What the mirror holds; unset mirrors every attribute and group.
  worker_scope_environment = { for key, value in {
    SYNC_EXCLUDE_ATTRIBUTES = length(var.exclude_attributes) > 0 ? join(",", var.exclude_attributes) : null
    SYNC_INCLUDE_GROUPS     = var.include_groups == null ? null : join(",", var.include_groups)
  } : key => value if value != null }

  # The machine client's settings; its secret comes in through `secrets`.
  worker_auth_environment = local.machine_client ? {
    HASURA_AUTH            = "client-credentials"
    COGNITO_TOKEN_ENDPOINT = local.token_endpoint
    COGNITO_CLIENT_ID      = aws_cognito_user_pool_client.worker[0].id
    COGNITO_OAUTH_SCOPES   = local.machine_scope
  } : {}

  # Exactly one credential reaches the task: the admin secret or the machine client's secret.
  worker_secrets = local.machine_client ? [
    { name = "COGNITO_CLIENT_SECRET", valueFrom = aws_secretsmanager_secret.worker_client[0].arn },
    ] : [
    { name = "HASURA_GRAPHQL_ADMIN_SECRET", valueFrom = var.hasura_admin_secret_arn },
  ]

  worker_container = {
    name      = local.container_name
    image     = var.container_image
    essential = true
    # backfill and reconcile tasks override the whole command.
    command = ["daemon", "--visibility-timeout", tostring(var.queue_visibility_timeout_seconds)]
    # Checkpoints live in Hasura. The only files are a scan's pages read ahead while group
    # memberships are listed (at most 512 MiB, deleted as they are read), on the task's
    # ephemeral storage at /scratch, the image's TMPDIR.
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "scratch", containerPath = "/scratch", readOnly = false }]
    # The daemon finishes the SQS batch in flight on SIGTERM; 30 s covers a batch.
    stopTimeout  = 30
    portMappings = [{ containerPort = local.listen_port, protocol = "tcp" }]
    environment  = [for name in sort(keys(local.worker_environment)) : { name = name, value = local.worker_environment[name] }]
    secrets      = local.worker_secrets
    healthCheck = {
      command     = ["CMD", "curl", "--fail", "--silent", "--max-time", "2", "http://127.0.0.1:${local.listen_port}/healthz"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 20
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = local.container_name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = local.worker_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_security_group" "worker" {
  name        = "${var.name}-worker"
  description = "${var.name} worker tasks"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.worker.id
  description       = "AWS APIs (Cognito, SQS, logs, ECR) and an HTTPS Hasura endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "hasura" {
  for_each = toset(var.hasura_egress_cidr_blocks)

  security_group_id = aws_security_group.worker.id
  description       = "Hasura GraphQL endpoint"
  ip_protocol       = "tcp"
  from_port         = var.hasura_port
  to_port           = var.hasura_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "metrics" {
  for_each = toset(var.metrics_ingress_cidr_blocks)

  security_group_id = aws_security_group.worker.id
  description       = "Prometheus scrape of /metrics and health probes"
  ip_protocol       = "tcp"
  from_port         = local.listen_port
  to_port           = local.listen_port
  cidr_ipv4         = each.value
}

resource "aws_ecs_task_definition" "worker" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([local.worker_container])

  # A bind mount without a host path: Fargate ephemeral storage, gone with the task. The
  # image's VOLUME at the same path gives it the app user's ownership.
  volume {
    name = "scratch"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = local.machine_client || var.hasura_admin_secret_arn != null
      error_message = "worker_auth = \"admin-secret\" needs hasura_admin_secret_arn."
    }
  }
}

resource "aws_ecs_service" "daemon" {
  name             = "${var.name}-daemon"
  cluster          = var.ecs_cluster_arn
  task_definition  = aws_ecs_task_definition.worker.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # Replace one task at a time: the old one keeps consuming until the new one is healthy.
  deployment_minimum_healthy_percent = 50
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  propagate_tags = "SERVICE"
  tags           = local.tags
}
