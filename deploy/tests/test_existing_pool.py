"""examples/existing-pool: the module next to a pool, a Hasura and a cluster managed elsewhere.

Terraform cannot run here, so these tests read the parsed HCL: the example creates nothing
Cognito (the pool and its lambda_config belong to their owner), calls the module with only
variables it declares, passes every required one, turns the ECS-scheduled reconcile off, and
outputs what the runbook needs (checkov runs on it in test_terraform.py). Every output of both
examples that reads the module names an output the module has.
"""

import importlib.util
import json
import re
import pytest
from terraform_hcl import DEPLOY, MODULE, TERRAFORM, merged

EXAMPLES = TERRAFORM / "examples"
EXISTING = EXAMPLES / "existing-pool"
RUNBOOK_OUTPUTS = {"log_group_name", "dlq_url", "dlq_arn", "queue_url", "queue_arn",
                   "task_definition_arn", "security_group_id", "cluster_arn", "service_name"}


def blocks(directory, kind):
    """{name: body} of every `kind` block (variable, output, module) in a directory."""
    return merged(directory)[kind]


def test_the_existing_pool_example_creates_nothing_in_cognito():
    assert (EXISTING / "README.md").is_file()
    created = {type_ for type_, _ in merged(EXISTING)["resource"]}
    assert not {t for t in created if t.startswith("aws_cognito_")}, created
    # Only the optional cluster besides the module's own resources.
    assert created == {"aws_ecs_cluster"}


def test_the_module_gets_only_variables_it_declares_and_every_required_one():
    declared = blocks(MODULE, "variable")
    required = {name for name, body in declared.items() if "default" not in body}
    for example in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        call = blocks(example, "module")["cognito_hasura_sync"]
        passed = set(call) - {"source"}
        assert passed <= set(declared), (example.name, passed - set(declared))
        assert required <= passed, (example.name, required - passed)


def test_the_existing_pool_example_wires_its_inputs_through():
    call = blocks(EXISTING, "module")["cognito_hasura_sync"]
    assert call["user_pool_id"] == "${var.user_pool_id}"
    assert call["hasura_graphql_endpoint"] == "${var.hasura_graphql_endpoint}"
    assert call["hasura_admin_secret_arn"] == "${var.hasura_admin_secret_arn}"
    # One reconcile schedule: the daemon's own.
    assert call["scheduled_reconcile_enabled"] is False
    assert call["reconcile_schedule"] == "${var.reconcile_schedule}"
    variables = blocks(EXISTING, "variable")
    for name in ("user_pool_id", "hasura_graphql_endpoint", "container_image", "vpc_id",
                 "private_subnet_ids"):
        assert "default" not in variables[name], name
    # The admin secret by default; the machine client (which adds a client to the pool) on request.
    assert variables["worker_auth"]["default"] == "admin-secret"
    assert call["worker_auth"] == "${var.worker_auth}"
    # The first apply runs no daemon: the backfill goes first.
    assert variables["desired_count"]["default"] == 0
    for name, body in variables.items():
        assert body.get("description") and body.get("type"), name


@pytest.mark.parametrize("example", ["complete", "existing-pool"])
def test_the_examples_output_what_the_runbook_needs(example):
    outputs = blocks(EXAMPLES / example, "output")
    assert RUNBOOK_OUTPUTS <= set(outputs), RUNBOOK_OUTPUTS - set(outputs)
    module_outputs = set(blocks(MODULE, "output"))
    for name, body in outputs.items():
        assert body.get("description"), name
        for used in re.findall(r"module\.cognito_hasura_sync\.([a-z_]+)", str(body["value"])):
            assert used in module_outputs, (example, name, used)


def test_the_existing_pool_example_shows_the_triggers_already_on_the_pool():
    outputs = blocks(EXISTING, "output")
    assert outputs["existing_lambda_config"]["value"] == "${data.aws_cognito_user_pool.existing.lambda_config}"
    readme = (EXISTING / "README.md").read_text(encoding="utf-8")
    for needed in ("pre_token_generation_config", "post_confirmation", "lambda_config",
                   "describe-user-pool", "update-user-pool"):
        assert needed in readme, needed


def test_a_chained_pre_token_function_keeps_its_own_claims_next_to_hasuras():
    # What README.md's chaining snippet relies on: the module's function, handed an event
    # whose response another function already filled, adds to it and replaces nothing.
    spec = importlib.util.spec_from_file_location(
        "pre_token_generation_handler", DEPLOY / "lambdas" / "pre_token_generation" / "handler.py")
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    event = {
        "version": "2", "triggerSource": "TokenGeneration_Authentication",
        "request": {"userAttributes": {"sub": "0b5e7a9c-1d2f-4c3b-9a8e-7f6d5c4b3a21"},
                    "groupConfiguration": {"groupsToOverride": []}},
        "response": {"claimsAndScopeOverrideDetails": {
            "idTokenGeneration": {"claimsToAddOrOverride": {"tenant": "acme"}},
            "groupOverrideDetails": {"groupsToOverride": ["beta"]}}},
    }
    answer = json.loads(json.dumps(handler.handler(json.loads(json.dumps(event)), None)))
    details = answer["response"]["claimsAndScopeOverrideDetails"]
    assert details["groupOverrideDetails"] == {"groupsToOverride": ["beta"]}
    id_claims = details["idTokenGeneration"]["claimsToAddOrOverride"]
    assert id_claims["tenant"] == "acme"
    hasura = id_claims["https://hasura.io/jwt/claims"]
    hasura = hasura if isinstance(hasura, dict) else json.loads(hasura)
    assert hasura["x-hasura-user-id"] == "0b5e7a9c-1d2f-4c3b-9a8e-7f6d5c4b3a21"
    assert "https://hasura.io/jwt/claims" in details["accessTokenGeneration"]["claimsToAddOrOverride"]


def test_the_runbook_reads_only_outputs_both_examples_have():
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    used = set(re.findall(r"terraform output -raw (\w+)", readme))
    assert RUNBOOK_OUTPUTS <= used, RUNBOOK_OUTPUTS - used
    for example in ("complete", "existing-pool"):
        assert used <= set(blocks(EXAMPLES / example, "output")), (example, used)


def test_the_runbook_states_the_modules_dead_letter_receive_count():
    receives = blocks(MODULE, "variable")["queue_max_receive_count"]["default"]
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert f"after {receives} failed receives" in readme
    assert f"it failed {receives} receives" in readme
    assert not re.search(r"after (?!%d\b)\d+ (failed )?receives" % receives, readme)
