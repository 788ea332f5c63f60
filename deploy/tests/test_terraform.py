"""These tests parse every .tf file and check what matters by reading it, without providers or
AWS (test_terraform_cli.py runs real Terraform against a mocked provider).

They pin the least-privilege IAM, the queue wiring, the trigger permissions and the
`HASURA_GRAPHQL_JWT_SECRET` output, and run checkov on the module (zero failed checks, every
skip justified in a `#checkov:skip=CKV_...:reason` comment).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from terraform_hcl import defaults, merged, parse, policy_statements, render

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
TERRAFORM = DEPLOY / "terraform"
MODULE = TERRAFORM / "modules" / "cognito-hasura-sync"
EXAMPLE = TERRAFORM / "examples" / "complete"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))


COGNITO_READS = {
    "cognito-idp:ListUsers",
    "cognito-idp:ListGroups",
    "cognito-idp:ListUsersInGroup",
    "cognito-idp:AdminGetUser",
    "cognito-idp:AdminListGroupsForUser",
    "cognito-idp:DescribeUserPool",
}
SQS_CONSUME = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
}
# User- and group-changing operations the rule must forward at the least; the module may track
# more (VerifyUserAttribute, ...).
REQUIRED_EVENT_NAMES = {
    "AdminCreateUser", "AdminDeleteUser", "AdminDisableUser", "AdminEnableUser",
    "AdminUpdateUserAttributes", "AdminAddUserToGroup", "AdminRemoveUserFromGroup",
    "CreateGroup", "UpdateGroup", "DeleteGroup", "SignUp", "ConfirmSignUp",
    "AdminConfirmSignUp", "DeleteUser", "UpdateUserAttributes", "AdminSetUserPassword",
    "AdminResetUserPassword", "AdminDeleteUserAttributes", "DeleteUserAttributes",
    "AdminLinkProviderForUser", "AdminDisableProviderForUser",
}


@pytest.fixture(scope="module")
def module():
    return merged(MODULE)


def action_names(node):
    """Every IAM action named under an `actions` key, in plain lists, dynamic blocks or
    conditional expressions."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "actions":
                yield from re.findall(r"[a-z0-9-]+:[A-Za-z*]+", json.dumps(value))
            else:
                yield from action_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from action_names(item)


def one(block):
    """A nested block parses as a list of bodies; these tests expect exactly one."""
    if isinstance(block, list):
        assert len(block) == 1, block
        return block[0]
    return block


def statements(policy_document):
    found = policy_document.get("statement", [])
    return found if isinstance(found, list) else [found]


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_terraform_file_parses(path):
    assert parse(path)


def test_module_and_example_exist():
    assert (MODULE / "variables.tf").is_file() and (EXAMPLE / "main.tf").is_file()
    assert len(TF_FILES) >= 12


def test_task_role_has_exactly_the_cognito_reads_on_the_pool_and_sqs_consume_on_the_queue(module):
    task = module["data"][("aws_iam_policy_document", "task")]
    by_service = {}
    for statement in statements(task):
        assert statement.get("effect", "Allow") == "Allow"
        assert "condition" not in statement and "not_actions" not in statement
        for action in statement["actions"]:
            service = action.split(":")[0]
            by_service.setdefault(service, set()).add(action)
            assert statement["resources"] == {
                "cognito-idp": ["${local.user_pool_arn}"],
                "sqs": ["${aws_sqs_queue.sync.arn}"],
            }[service], action
    assert by_service == {"cognito-idp": COGNITO_READS, "sqs": SQS_CONSUME}

    assert module["locals"]["user_pool_arn"] == (
        "arn:${local.partition}:cognito-idp:${local.region}:${local.account_id}"
        ":userpool/${var.user_pool_id}"
    )
    roles = [policy["role"] for (type_, _), policy in module["resource"].items()
             if type_ == "aws_iam_role_policy" and policy["role"] == "${aws_iam_role.task.id}"]
    assert len(roles) == 1, "the task role has exactly one policy"
    attachments = [key for key in module["resource"] if key[0] == "aws_iam_role_policy_attachment"]
    assert attachments == [], "no managed policies: every permission is spelled out"


ADMIN_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:hasura-admin-AbCdEf"
ADMIN_SECRET_PARAMETER = "arn:aws:ssm:eu-west-1:111122223333:parameter/hasura/admin-secret"
WORKER_AUTH = {
    "admin-secret": {"worker_auth": "admin-secret", "hasura_admin_secret_arn": ADMIN_SECRET_ARN},
    "admin-secret-ssm": {"worker_auth": "admin-secret",
                         "hasura_admin_secret_arn": ADMIN_SECRET_PARAMETER},
    "client-credentials": {"worker_auth": "client-credentials", "user_pool_domain": "myapp"},
}


def variables_for(module, **changes):
    variables = defaults(module)
    variables.update(user_pool_id="eu-west-1_Ab12Cd34E", **changes)
    return variables


@pytest.mark.parametrize("mode", sorted(WORKER_AUTH))
def test_execution_role_only_pulls_logs_and_reads_the_one_secret(module, mode):
    variables = variables_for(module, ecr_repository_arn=None, **WORKER_AUTH[mode])
    by_sid = {statement["sid"]: statement for statement in policy_statements(
        module["data"][("aws_iam_policy_document", "execution")], module, variables)}
    assert by_sid.pop("WriteTheLogStreams")["resources"] == [
        "${aws_cloudwatch_log_group.worker.arn}:log-stream:*"]
    expected = {
        "admin-secret": {"ReadTheAdminSecret": (["secretsmanager:GetSecretValue"],
                                                [ADMIN_SECRET_ARN])},
        "admin-secret-ssm": {"ReadTheAdminSecret": (["ssm:GetParameters"],
                                                    [ADMIN_SECRET_PARAMETER])},
        "client-credentials": {
            "ReadTheClientSecret": (["secretsmanager:GetSecretValue"],
                                    ["${aws_secretsmanager_secret.worker_client[0].arn}"]),
            "DecryptTheClientSecret": (["kms:Decrypt"], ["${aws_kms_key.this.arn}"]),
        },
    }[mode]
    assert {sid: (s["actions"], s["resources"]) for sid, s in by_sid.items()} == expected
    if mode == "client-credentials":
        condition = one(by_sid["DecryptTheClientSecret"]["condition"])
        assert condition["variable"] == "kms:ViaService"
        assert condition["values"] == ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]


def test_execution_role_may_pull_from_the_one_repository(module):
    repository = "arn:aws:ecr:eu-west-1:111122223333:repository/cognito-hasura-sync"
    variables = variables_for(module, ecr_repository_arn=repository, **WORKER_AUTH["admin-secret"])
    by_sid = {statement["sid"]: statement for statement in policy_statements(
        module["data"][("aws_iam_policy_document", "execution")], module, variables)}
    assert by_sid["PullTheImage"]["resources"] == [repository]
    assert by_sid["GetRegistryToken"] == {"sid": "GetRegistryToken",
                                          "actions": ["ecr:GetAuthorizationToken"],
                                          "resources": ["*"]}


def test_forwarder_may_only_send_to_the_sync_queue(module):
    policy = module["data"][("aws_iam_policy_document", "lambda")]
    assert sorted(action_names(policy)) == [
        "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"]
    send = one(one(policy["dynamic"])["statement"]["content"])
    assert send["resources"] == ["${statement.value}"]
    assert one(policy["dynamic"])["statement"]["for_each"] == (
        '${each.key == "event_forwarder" ? [aws_sqs_queue.sync.arn] : []}')


def test_queue_redrives_to_the_dlq_and_both_are_encrypted(module):
    queue = module["resource"][("aws_sqs_queue", "sync")]
    dlq = module["resource"][("aws_sqs_queue", "dlq")]
    assert queue["sqs_managed_sse_enabled"] is True and dlq["sqs_managed_sse_enabled"] is True
    redrive = queue["redrive_policy"]
    assert "deadLetterTargetArn = aws_sqs_queue.dlq.arn" in redrive
    assert "maxReceiveCount = var.queue_max_receive_count" in redrive
    allow = module["resource"][("aws_sqs_queue_redrive_allow_policy", "dlq")]
    assert 'redrivePermission = "byQueue"' in allow["redrive_allow_policy"]
    assert "aws_sqs_queue.sync.arn" in allow["redrive_allow_policy"]


def test_only_the_eventbridge_rule_and_the_forwarder_role_may_send(module):
    policy = module["data"][("aws_iam_policy_document", "sync_queue")]
    allows = [s for s in statements(policy) if s.get("effect", "Allow") == "Allow"]
    senders = set()
    for statement in allows:
        assert statement["actions"] == ["sqs:SendMessage"]
        assert statement["resources"] == ["${aws_sqs_queue.sync.arn}"]
        principal = statement["principals"]
        principal = principal[0] if isinstance(principal, list) else principal
        senders.add((principal["type"], tuple(principal["identifiers"])))
        if principal["type"] == "Service":
            condition = statement["condition"]
            condition = condition[0] if isinstance(condition, list) else condition
            assert condition == {"test": "ArnEquals", "variable": "aws:SourceArn",
                                 "values": ["${aws_cloudwatch_event_rule.cognito_changes.arn}"]}
    assert senders == {
        ("Service", ("events.amazonaws.com",)),
        ("AWS", ('${aws_iam_role.lambda["event_forwarder"].arn}',)),
    }


def test_eventbridge_rule_tracks_user_and_group_changes_of_this_pool(module):
    pattern = module["locals"]["cognito_change_pattern"]
    assert pattern["source"] == ["aws.cognito-idp"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail",
                                      "AWS Service Event via CloudTrail"]
    assert pattern["detail"]["eventName"] == "${var.tracked_event_names}"
    assert pattern["detail"]["$or"] == [
        {"requestParameters": {"userPoolId": ["${var.user_pool_id}"]}},
        {"additionalEventData": {"userPoolId": ["${var.user_pool_id}"]}},
        {"eventName": "${local.self_service_event_names}"},
        "${local.unauthenticated_call_filter}",
    ]
    # Unauthenticated calls carry a client id, no pool id: this pool's clients, or no pool id.
    unauthenticated = module["locals"]["unauthenticated_call_filter"]
    assert "requestParameters = {clientId = var.user_pool_client_ids}" in unauthenticated
    assert unauthenticated.count("userPoolId = [{exists = false}]") == 2
    tracked = set(module["variable"]["tracked_event_names"]["default"])
    assert REQUIRED_EVENT_NAMES <= tracked
    # Reads and sign-ins change nothing in the mirror; they would only flood the queue.
    assert not {name for name in tracked if name.startswith(("List", "Get", "Describe", "Initiate"))}
    target = module["resource"][("aws_cloudwatch_event_target", "sync_queue")]
    assert target["arn"] == "${aws_sqs_queue.sync.arn}"
    assert one(target["dead_letter_config"])["arn"] == "${aws_sqs_queue.dlq.arn}"


def test_cognito_may_invoke_both_lambdas_from_this_pool_only(module):
    permission = module["resource"][("aws_lambda_permission", "cognito")]
    assert permission["principal"] == "cognito-idp.amazonaws.com"
    assert permission["source_arn"] == "${local.user_pool_arn}"
    assert permission["for_each"] == "${local.lambdas}"
    assert set(module["locals"]["lambdas"]) == {"pre_token_generation", "event_forwarder"}
    archive = module["data"][("archive_file", "lambda")]
    assert archive["source_file"] == "${path.module}/../../../lambdas/${each.key}/handler.py"
    for name in module["locals"]["lambdas"]:
        assert (MODULE / "../../../lambdas" / name / "handler.py").resolve().is_file()
    function = module["resource"][("aws_lambda_function", "trigger")]
    assert function["runtime"] == "${var.lambda_runtime}"
    assert module["variable"]["lambda_runtime"]["default"] == "python3.12"
    assert function["handler"] == "handler.handler"
    assert function["timeout"] <= 5


def test_daemon_service_and_task_definition(module):
    service = module["resource"][("aws_ecs_service", "daemon")]
    assert service["launch_type"] == "FARGATE"
    assert service["desired_count"] == "${var.desired_count}"
    assert module["variable"]["desired_count"]["default"] == 2
    assert one(service["network_configuration"])["assign_public_ip"] is False

    container = module["locals"]["worker_container"]
    assert container["command"] == [
        "daemon", "--visibility-timeout", "${tostring(var.queue_visibility_timeout_seconds)}"]
    assert container["stopTimeout"] == 30
    assert container["readonlyRootFilesystem"] is True
    # The read-ahead's TMPDIR (the image's VOLUME) is the one writable path.
    assert container["mountPoints"] == [
        {"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False}]
    task = module["resource"][("aws_ecs_task_definition", "worker")]
    assert one(task["volume"]) == {"name": "scratch"}
    assert "/healthz" in " ".join(container["healthCheck"]["command"])
    assert container["secrets"] == "${local.worker_secrets}"
    for mode, secret in [("admin-secret", {"name": "HASURA_GRAPHQL_ADMIN_SECRET",
                                           "valueFrom": ADMIN_SECRET_ARN}),
                         ("client-credentials", {
                             "name": "COGNITO_CLIENT_SECRET",
                             "valueFrom": "${aws_secretsmanager_secret.worker_client[0].arn}"})]:
        variables = variables_for(module, **WORKER_AUTH[mode])
        assert render("${local.worker_secrets}", module, variables) == [secret], mode
    environment = module["locals"]["worker_environment"] + module["locals"][
        "worker_auth_environment"]
    assert "SECRET" not in environment
    assert container["logConfiguration"]["options"]["awslogs-group"] == (
        "${aws_cloudwatch_log_group.worker.name}")

    for key in [("aws_cloudwatch_log_group", "worker"), ("aws_cloudwatch_log_group", "lambda")]:
        group = module["resource"][key]
        assert group["kms_key_id"] == "${aws_kms_key.this.arn}"
        assert group["retention_in_days"] == "${var.log_retention_days}"


def test_reconcile_schedule_is_optional_and_overrides_the_command(module):
    schedule = module["resource"][("aws_scheduler_schedule", "reconcile")]
    assert schedule["count"] == "${var.scheduled_reconcile_enabled ? 1 : 0}"
    assert module["variable"]["scheduled_reconcile_enabled"]["default"] is False
    assert 'command = ["reconcile"]' in one(schedule["target"])["input"]
    policy = {s["sid"]: s for s in statements(module["data"][("aws_iam_policy_document", "scheduler")])}
    assert set(policy) == {"RunTheReconcileTask", "DecryptTheSchedule", "PassTheTaskRoles"}
    assert schedule["kms_key_arn"] == "${aws_kms_key.this.arn}"
    assert one(policy["DecryptTheSchedule"]["condition"])["values"] == [
        "${local.reconcile_schedule_arn}"]
    assert schedule["name"] == "${local.reconcile_schedule_name}"
    assert module["locals"]["reconcile_schedule_arn"].endswith(
        ":schedule/default/${local.reconcile_schedule_name}")
    assert policy["RunTheReconcileTask"]["actions"] == ["ecs:RunTask"]
    # RunTask is authorized against family:revision, so the family alone would match nothing.
    assert policy["RunTheReconcileTask"]["resources"] == [
        "${aws_ecs_task_definition.worker.arn_without_revision}:*"]
    assert policy["PassTheTaskRoles"]["resources"] == [
        "${aws_iam_role.task.arn}", "${aws_iam_role.execution.arn}"]


def render_jwt_secret(module, region, pool_id, **changes):
    """Evaluates the module's jwt_secret_base for one region and pool."""
    variables = variables_for(module, **changes)
    variables["user_pool_id"] = pool_id
    return render(module["locals"]["jwt_secret_base"], module, variables,
                  {"local.region": region})


def test_jwt_secret_output_is_what_hasura_needs(module):
    assert module["output"]["hasura_graphql_jwt_secret"]["value"] == "${jsonencode(local.jwt_secret)}"
    assert render_jwt_secret(module, "eu-central-1", "eu-central-1_Zz9") == {
        "type": "RS256",
        "jwk_url": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Zz9/.well-known/jwks.json",
        "claims_format": "stringified_json",
        "issuer": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Zz9",
    }
    assert render_jwt_secret(module, "eu-central-1", "eu-central-1_Zz9",
                             claims_format="json")["claims_format"] == "json"
    jwt_secret = module["locals"]["jwt_secret"]
    assert jwt_secret.startswith("${merge(local.jwt_secret_base, {for key, value in {")
    assert "claims_namespace = var.claims_namespace" in jwt_secret
    assert "audience = var.jwt_audience" in jwt_secret
    assert jwt_secret.endswith(": key => value if value != null})}")
    assert {"claims_namespace", "jwt_audience"} <= set(module["variable"])


def test_every_variable_and_output_is_documented(module):
    for name, variable in module["variable"].items():
        assert variable.get("description"), name
        assert variable.get("type"), name
    for name, output in module["output"].items():
        assert output.get("description"), name


REGION = re.compile(r"\b(us|eu|ap|sa|ca|me|af|il|mx|cn)(-gov)?-(north|south|east|west|central|"
                    r"northeast|northwest|southeast|southwest)-\d\b")


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_no_hard_coded_region_account_or_partition(path):
    text = path.read_text(encoding="utf-8")
    assert not REGION.search(text), REGION.search(text)
    assert not re.search(r"(?<![\d{])\d{12}(?![\d}])", text), "hard-coded account id"
    assert "arn:aws:" not in text and "arn:aws-" not in text, "use data.aws_partition"


def test_module_reads_region_account_and_partition_from_data_sources(module):
    data = module["data"]
    for key in [("aws_region", "current"), ("aws_caller_identity", "current"),
                ("aws_partition", "current")]:
        assert key in data
    assert "provider" not in parse(MODULE / "versions.tf"), "a reusable module configures no provider"
    assert not [key for key in module["module"]], "plain resources, no registry modules"


def checkov_binary():
    candidates = [os.environ.get("CHECKOV"), str(REPO / ".venv-checkov" / "bin" / "checkov"),
                  shutil.which("checkov")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("checkov not found: create it with `python3 -m venv .venv-checkov && "
                ".venv-checkov/bin/pip install -r deploy/requirements-checkov.txt` (or set CHECKOV)")


SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


# The example enables what the module's defaults leave off (the reconcile schedule), so
# checkov sees every resource; the Dockerfile is checked by checkov's dockerfile framework.
CHECKOV_TARGETS = {
    "module": ["--directory", str(MODULE), "--framework", "terraform"],
    "example": ["--directory", str(EXAMPLE), "--framework", "terraform"],
    "existing-pool example": ["--directory", str(TERRAFORM / "examples" / "existing-pool"),
                              "--framework", "terraform"],
    "dockerfile": ["--file", str(DEPLOY / "Dockerfile"), "--framework", "dockerfile"],
}


@pytest.mark.parametrize("target", sorted(CHECKOV_TARGETS))
def test_checkov_finds_no_failed_check_and_every_skip_is_justified(target):
    result = subprocess.run(
        [checkov_binary(), *CHECKOV_TARGETS[target], "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    assert result.returncode == 0, result.stderr

    for check in report["results"]["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason.split()) >= 5, (check["check_id"], check["resource"], reason)

    for path in sorted(TERRAFORM.rglob("*.tf")) + [DEPLOY / "Dockerfile"]:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                assert re.fullmatch(r"CKV2?_AWS_\d+", match.group(1)), line
                assert match.group(2) and len(match.group(2).split()) >= 5, line


def test_readme_shows_the_task_role_policy_the_module_creates(module):
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("Worker **task role**"):]
    start = section.index("```json") + len("```json")
    shown = json.loads(section[start:section.index("```", start)])
    by_sid = {statement["Sid"]: statement for statement in shown["Statement"]}
    task = statements(module["data"][("aws_iam_policy_document", "task")])
    assert set(by_sid) == {statement["sid"] for statement in task}
    for statement in task:
        assert sorted(by_sid[statement["sid"]]["Action"]) == sorted(statement["actions"])


# `cognito-hasura-sync jwt-secret` and the module output must give Hasura the same JSON, or
# one of the two deploy paths breaks sign-in.
CLI = pathlib.Path(__file__).resolve().parents[2] / "target" / "debug" / "cognito-hasura-sync"


def cli_jwt_secret(*args):
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: scripts/test.sh builds it (cargo build) before pytest")
    # No AWS settings at all: the command needs neither credentials nor network.
    env = {"PATH": os.environ.get("PATH", "")}
    out = subprocess.run([str(CLI), "jwt-secret", *args], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("region,pool", [("eu-central-1", "eu-central-1_Zz9"),
                                         ("us-east-1", "us-east-1_AbCdEf123")])
def test_cli_prints_what_terraform_outputs(module, region, pool):
    assert cli_jwt_secret("--user-pool-id", pool) == render_jwt_secret(module, region, pool)


def test_cli_options_add_the_keys_terraform_merges_in(module):
    # The module merges claims_namespace (when not Hasura's default) and audience (when set).
    expected = render_jwt_secret(module, "eu-west-1", "eu-west-1_Q1")
    expected.update({"claims_namespace": "https://example.com/claims", "audience": "client123"})
    assert cli_jwt_secret("--user-pool-id", "eu-west-1_Q1", "--claims-namespace",
                      "https://example.com/claims", "--audience", "client123") == expected
    default_namespace = cli_jwt_secret("--user-pool-id", "eu-west-1_Q1", "--claims-namespace",
                                   "https://hasura.io/jwt/claims")
    assert default_namespace == render_jwt_secret(module, "eu-west-1", "eu-west-1_Q1")
