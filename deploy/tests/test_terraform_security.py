"""The module's security settings, rendered from its HCL (terraform_hcl.render) where Terraform
would compute them: the worker's two ways to authenticate, claims that cannot escalate, the
checks that fail a plan early, and the alarms.
"""

import functools
import importlib.util
import json
import re

import pytest

import terraform_hcl
from terraform_hcl import MODULE, TERRAFORM, defaults, merged, render

REPO = terraform_hcl.DEPLOY.parent
PRE_TOKEN_HANDLER = terraform_hcl.DEPLOY / "lambdas" / "pre_token_generation" / "handler.py"
POOL = "eu-west-1_Ab12Cd34E"
MACHINE_CLIENT_ENV = {"HASURA_AUTH", "COGNITO_TOKEN_ENDPOINT", "COGNITO_CLIENT_ID",
                      "COGNITO_OAUTH_SCOPES"}


@functools.lru_cache(maxsize=None)
def module():
    return merged(MODULE)


def variables(**changes):
    values = defaults(module())
    values.update(user_pool_id=POOL, **changes)
    return values


def one(block):
    if isinstance(block, list):
        assert len(block) == 1, block
        return block[0]
    return block


def resource(type_, name):
    return module()["resource"][(type_, name)]


@functools.lru_cache(maxsize=None)
def pre_token_handler():
    spec = importlib.util.spec_from_file_location("pre_token_handler", PRE_TOKEN_HANDLER)
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    return handler


# --- the worker's machine client ------------------------------------------------------------

def test_machine_client_exists_only_for_client_credentials():
    for type_, name in [("aws_cognito_resource_server", "sync"),
                        ("aws_cognito_user_pool_client", "worker"),
                        ("aws_secretsmanager_secret", "worker_client"),
                        ("aws_secretsmanager_secret_version", "worker_client")]:
        count = resource(type_, name)["count"]
        assert render(count, module(), variables(worker_auth="client-credentials")) == 1, name
        assert render(count, module(), variables()) == 0, name
    assert module()["variable"]["worker_auth"]["default"] == "admin-secret"


def test_machine_client_may_only_use_client_credentials_for_its_one_scope():
    client = resource("aws_cognito_user_pool_client", "worker")
    assert client["generate_secret"] is True
    assert client["allowed_oauth_flows"] == ["client_credentials"]
    assert client["allowed_oauth_flows_user_pool_client"] is True
    assert client["allowed_oauth_scopes"] == "${aws_cognito_resource_server.sync[0].scope_identifiers}"
    assert "explicit_auth_flows" not in client and "callback_urls" not in client
    assert client["user_pool_id"] == "${var.user_pool_id}"

    server = resource("aws_cognito_resource_server", "sync")
    scope = one(server["scope"])
    identifier = render(server["identifier"], module(), variables())
    scope_name = render(scope["scope_name"], module(), variables())
    assert f"{identifier}/{scope_name}" == render("${local.machine_scope}", module(), variables())
    assert identifier == "cognito-hasura-sync"


def test_client_secret_is_kept_in_secrets_manager_under_the_module_key():
    secret = resource("aws_secretsmanager_secret", "worker_client")
    assert secret["kms_key_id"] == "${aws_kms_key.this.arn}"
    version = resource("aws_secretsmanager_secret_version", "worker_client")
    assert version["secret_string"] == "${aws_cognito_user_pool_client.worker[0].client_secret}"
    assert version["secret_id"] == "${aws_secretsmanager_secret.worker_client[0].id}"


@pytest.mark.parametrize("domain,endpoint", [
    ("myapp", "https://myapp.auth.eu-west-1.amazoncognito.com/oauth2/token"),
    ("auth.example.com", "https://auth.example.com/oauth2/token"),
])
def test_worker_gets_the_machine_client_settings(domain, endpoint):
    values = variables(worker_auth="client-credentials", user_pool_domain=domain)
    environment = render("${local.worker_auth_environment}", module(), values,
                         {"local.region": "eu-west-1"})
    assert environment == {
        "HASURA_AUTH": "client-credentials",
        "COGNITO_TOKEN_ENDPOINT": endpoint,
        "COGNITO_CLIENT_ID": "${aws_cognito_user_pool_client.worker[0].id}",
        "COGNITO_OAUTH_SCOPES": "cognito-hasura-sync/sync",
    }
    assert set(environment) == MACHINE_CLIENT_ENV
    assert "local.worker_auth_environment" in module()["locals"]["worker_environment"]
    # The role the token carries is the one the worker asks for, in both modes.
    assert "HASURA_ROLE = var.machine_client_role" in re.sub(
        r"\s+", " ", module()["locals"]["worker_environment"])
    assert render("${local.worker_auth_environment}", module(), variables()) == {}


def test_each_mode_checks_its_own_setting_at_plan_time():
    client = resource("aws_cognito_user_pool_client", "worker")
    domain_check = one(one(client["lifecycle"])["precondition"])
    values = variables(worker_auth="client-credentials")
    assert render(domain_check["condition"], module(), values) is False
    assert render(domain_check["condition"], module(), {**values, "user_pool_domain": "x"})

    task = resource("aws_ecs_task_definition", "worker")
    secret_check = one(one(task["lifecycle"])["precondition"])
    assert render(secret_check["condition"], module(), variables()) is False
    assert render(secret_check["condition"], module(), variables(
        hasura_admin_secret_arn="arn:aws:ssm:eu-west-1:111122223333:parameter/x"))
    assert render(secret_check["condition"], module(), values)


def test_pre_token_lambda_gives_the_machine_client_its_role():
    environment = module()["locals"]["lambdas"]["pre_token_generation"]["environment"]
    scope_roles = environment["CLIENT_CREDENTIALS_SCOPE_ROLES"]
    # The pool references this Lambda; a reference to the pool's client would be a cycle.
    assert "aws_" not in json.dumps(environment)
    assert "local.machine_scopes" in scope_roles and "var.machine_client_role" in scope_roles

    handler = pre_token_handler()
    machine_scope = render("${local.machine_scope}", module(), variables())
    role = module()["variable"]["machine_client_role"]["default"]
    settings = handler.load_settings({"CLIENT_CREDENTIALS_SCOPE_ROLES": json.dumps(
        {machine_scope: role})})
    assert handler.machine_claims([machine_scope], settings) == {
        "x-hasura-allowed-roles": ["cognito_sync"], "x-hasura-default-role": "cognito_sync"}


def test_module_sets_exactly_the_settings_the_pre_token_lambda_reads():
    source = PRE_TOKEN_HANDLER.read_text(encoding="utf-8")
    read = set(re.findall(r'environ(?:\.get\(|, )"([A-Z_]+)"', source))
    environment = module()["locals"]["lambdas"]["pre_token_generation"]["environment"]
    assert set(environment) == read


# --- claims that cannot escalate -------------------------------------------------------------

@pytest.mark.parametrize("changes,allowed", [
    ({}, True),
    ({"group_role_map": {"admins": "manager"}}, True),
    ({"group_role_map": {"admins": "admin"}}, False),
    ({"default_role": "admin"}, False),
    ({"group_role_map": {"admins": "admin"}, "allow_admin_role": True}, True),
])
def test_plan_fails_on_an_admin_mapping_unless_allowed(changes, allowed):
    function = resource("aws_lambda_function", "trigger")
    check = one(one(function["lifecycle"])["precondition"])
    assert render(check["condition"], module(), variables(**changes)) is allowed
    environment = module()["locals"]["lambdas"]["pre_token_generation"]["environment"]
    assert render(environment["ALLOW_ADMIN_ROLE"], module(), variables(**changes)) == (
        "true" if changes.get("allow_admin_role") else "false")


def test_session_attributes_may_not_name_what_the_lambda_reserves():
    validations = module()["variable"]["session_attributes"]["validation"]
    reserved = set()
    for validation in validations:
        listed = re.search(r"contains\(\[([^\]]*)\]", validation["condition"])
        if listed:
            reserved |= set(re.findall(r'"([^"]+)"', listed.group(1)))
    assert reserved == set(pre_token_handler().RESERVED_CLAIMS)
    assert "x-hasura-role" in reserved


@pytest.mark.parametrize("claims_format", ["stringified_json", "json"])
def test_lambda_and_hasura_agree_on_the_claims_format(claims_format):
    environment = module()["locals"]["lambdas"]["pre_token_generation"]["environment"]
    values = variables(claims_format=claims_format)
    assert render(environment["CLAIMS_FORMAT"], module(), values) == claims_format
    jwt = render("${local.jwt_secret_base}", module(), values)
    assert jwt["claims_format"] == claims_format
    assert claims_format in pre_token_handler().CLAIMS_FORMATS


@pytest.mark.parametrize("path", sorted((TERRAFORM / "examples").glob("*/main.tf")),
                         ids=lambda path: path.parent.name)
def test_examples_grant_no_admin_and_keep_session_attributes_read_only(path):
    example = merged(path.parent)
    example_variables = defaults(example)
    sources = set()
    for call in example["module"].values():
        arguments = {key: render(call[key], example, example_variables) for key in (
            "group_role_map", "default_role", "allow_admin_role", "session_attributes")
            if key in call}
        if not arguments.get("allow_admin_role"):
            assert "admin" not in (arguments.get("group_role_map") or {}).values(), path
            assert arguments.get("default_role") != "admin", path
        sources |= set(arguments.get("session_attributes") or {})
    for (type_, name), client in example["resource"].items():
        if type_ == "aws_cognito_user_pool_client" and sources:
            assert "write_attributes" in client, f"{name} lets users write every attribute"
            assert not sources & set(client["write_attributes"]), name


# --- checks that fail a plan early ----------------------------------------------------------

@pytest.mark.parametrize("region,valid", [("eu-west-1", True), ("us-east-1", False)])
def test_pool_must_be_in_the_provider_region(region, valid):
    check = one(one(module()["data"][("aws_region", "current")]["lifecycle"])["postcondition"])
    known = {"self.name": region}
    assert render(check["condition"], module(), variables(), known) is valid
    assert region in render(check["error_message"], module(), variables(), known)


@pytest.mark.parametrize("image,valid", [
    ("111122223333.dkr.ecr.eu-west-1.amazonaws.com/cognito-hasura-sync:1.4.2", True),
    ("ghcr.io/example/cognito-hasura-sync@sha256:" + "0123456789abcdef" * 4, True),
    ("registry.local:5000/cognito-hasura-sync:v2", True),
    ("cognito-hasura-sync", False),
    ("cognito-hasura-sync:latest", False),
    ("registry.local:5000/cognito-hasura-sync", False),
    ("ghcr.io/example/cognito-hasura-sync@sha256:short", False),
    ("", False),
])
def test_image_must_be_pinned(image, valid):
    check = one(module()["variable"]["container_image"]["validation"])
    assert render(check["condition"], module(), variables(container_image=image)) is valid


def test_queue_visibility_timeout_is_what_the_daemon_asks_for():
    queue = resource("aws_sqs_queue", "sync")
    assert queue["visibility_timeout_seconds"] == "${var.queue_visibility_timeout_seconds}"
    command = module()["locals"]["worker_container"]["command"]
    flag = command[command.index("--visibility-timeout") + 1]
    assert render(flag, module(), variables(queue_visibility_timeout_seconds=90)) == "90"
    declared = [path for path in (REPO / "src").rglob("*.rs")
                if re.search(r"#\[arg\(\s*long\b[^\]]*\]\s*pub visibility_timeout:",
                             path.read_text(encoding="utf-8"))]
    assert declared, "the daemon no longer has --visibility-timeout"


# --- alarms ----------------------------------------------------------------------------------

def alarms():
    return {name: body for (type_, name), body in module()["resource"].items()
            if type_ == "aws_cloudwatch_metric_alarm"}


def test_alarms_watch_the_dlq_the_queue_age_the_tasks_and_the_reconcile():
    found = {name: (alarm["namespace"], alarm["metric_name"]) for name, alarm in alarms().items()}
    assert found == {
        "queue": ("AWS/SQS", "${each.value.metric}"),
        "no_running_task": ("AWS/ECS", "CPUUtilization"),
        "reconcile_failed": (
            "${local.alarm_namespace}",
            "${aws_cloudwatch_log_metric_filter.reconcile_failed.metric_transformation[0].name}"),
    }
    queue = alarms()["queue"]
    assert queue["dimensions"] == {"QueueName": "${each.value.queue}"}
    assert (queue["statistic"], queue["comparison_operator"]) == ("Maximum", "GreaterThanThreshold")
    queue_alarms = render("${local.queue_alarms}", module(), variables())
    assert {name: (alarm["queue"], alarm["metric"], alarm["threshold"])
            for name, alarm in queue_alarms.items()} == {
        "dlq-not-empty": ("${aws_sqs_queue.dlq.name}", "ApproximateNumberOfMessagesVisible", 0),
        "queue-oldest-message-age": ("${aws_sqs_queue.sync.name}",
                                     "ApproximateAgeOfOldestMessage", 900),
    }
    tasks = alarms()["no_running_task"]
    assert tasks["treat_missing_data"] == "breaching"
    assert (tasks["statistic"], tasks["threshold"], tasks["comparison_operator"]) == (
        "SampleCount", 1, "LessThanThreshold")
    assert render(tasks["count"], module(), variables(desired_count=0)) == 0
    cluster = render(tasks["dimensions"]["ClusterName"], module(), variables(
        ecs_cluster_arn="arn:aws:ecs:eu-west-1:111122223333:cluster/workers"))
    assert cluster == "workers"
    for name, alarm in alarms().items():
        assert alarm["alarm_actions"] == alarm["ok_actions"] == "${local.alarm_actions}", name
        assert alarm.get("alarm_description"), name


def test_alarm_actions_include_the_optional_topic():
    actions = module()["locals"]["alarm_actions"]
    assert actions == "${concat(var.alarm_actions, aws_sns_topic.alarms[*].arn)}"
    topic = resource("aws_sns_topic", "alarms")
    assert topic["kms_master_key_id"] == "${aws_kms_key.this.id}"
    assert render(topic["count"], module(), variables(alarm_topic_enabled=True)) == 1
    assert render(topic["count"], module(), variables()) == 0


def rust_sources():
    return "\n".join(path.read_text(encoding="utf-8")
                     for path in sorted((REPO / "src").rglob("*.rs")))


def test_reconcile_filter_matches_what_the_daemon_logs():
    metric_filter = resource("aws_cloudwatch_log_metric_filter", "reconcile_failed")
    assert metric_filter["log_group_name"] == "${aws_cloudwatch_log_group.worker.name}"
    comparisons = re.findall(r'\$\.(\w+)\s*=\s*"([^"]*)"', metric_filter["pattern"])
    by_field = {}
    for field, value in comparisons:
        by_field.setdefault(field, set()).add(value)
    assert by_field == {"message": {"reconcile finished"}, "result": {"failed", "braked"}}

    source = rust_sources()
    # JSON logs put the message and the fields at the top of each line ($.message, $.result).
    assert re.search(r"\.json\(\)\s*\.flatten_event\(true\)", source)
    event = re.search(r'tracing::\w+!\((?:(?!tracing::).)*?"reconcile finished"\s*\)', source, re.S)
    assert event, "no log line says \"reconcile finished\""
    assert re.search(r"\bresult\s*=", event.group(0))
    results = re.search(r"pub const RESULTS: \[&str; \d+\] = \[([^\]]*)\]", source)
    assert {"failed", "braked"} <= set(re.findall(r'"(\w+)"', results.group(1)))
    alarm = alarms()["reconcile_failed"]
    assert (alarm["statistic"], alarm["threshold"], alarm["comparison_operator"]) == (
        "Sum", 1, "GreaterThanOrEqualToThreshold")
