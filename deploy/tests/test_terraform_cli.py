"""Real Terraform on the module, offline: `terraform test` runs tests/module.tftest.hcl (plans
against a mocked AWS provider), and `terraform console` renders the EventBridge pattern, which
must be exactly what terraform_hcl.render gives the moto-matcher tests in
test_eventbridge_rule.py.

Providers come from a local filesystem mirror (TERRAFORM_PROVIDER_MIRROR, default
/opt/tf-plugins) holding hashicorp/aws; nothing is downloaded. The mirror has no
hashicorp/archive, so the tests work on a copy of the module whose one archive_file data
source (the Lambda zips, which a plan against mocked AWS never reads) is replaced by fixed
paths.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from terraform_hcl import MODULE, defaults, merged, render

MIRROR = pathlib.Path(os.environ.get("TERRAFORM_PROVIDER_MIRROR", "/opt/tf-plugins"))
REQUIRED = {
    "user_pool_id": "eu-west-1_Ab12Cd34E",
    "container_image": "cognito-hasura-sync:1.4.2",
    "hasura_graphql_endpoint": "https://hasura.example.com/v1/graphql",
    "hasura_admin_secret_arn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:admin",
    "ecs_cluster_arn": "arn:aws:ecs:eu-west-1:111122223333:cluster/workers",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0"],
}


def without_archive_provider(module_dir):
    """Replaces the archive_file data source and its provider requirement in the copy."""
    edits = {
        "versions.tf": [(r"\n\s*archive = \{[^}]*\}", "")],
        "lambda.tf": [
            (r'data "archive_file" "lambda" \{.*?\n\}\n', ""),
            (r"data\.archive_file\.lambda\[each\.key\]\.output_path",
             '"${path.module}/${each.key}.zip"'),
            (r"data\.archive_file\.lambda\[each\.key\]\.output_base64sha256", '"unused"'),
        ],
    }
    for name, substitutions in edits.items():
        path = module_dir / name
        text = path.read_text(encoding="utf-8")
        for pattern, replacement in substitutions:
            text, count = re.subn(pattern, replacement, text, flags=re.S)
            assert count == 1, f"{name}: expected one {pattern!r}; the module changed shape"
        path.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def terraform(tmp_path_factory):
    """Runs terraform in an initialised copy of the module: terraform(*args, input=None)."""
    binary = shutil.which("terraform")
    if binary is None or not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"needs terraform on PATH and hashicorp/aws in the provider mirror {MIRROR}")
    root = tmp_path_factory.mktemp("terraform")
    module_dir = root / "module"
    shutil.copytree(MODULE, module_dir, ignore=shutil.ignore_patterns(".terraform*", ".build"))
    without_archive_provider(module_dir)
    config = root / "terraformrc"
    config.write_text(
        'provider_installation {\n'
        f'  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n'
        '}\n', encoding="utf-8")
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(root),
                   "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1",
                   "CHECKPOINT_DISABLE": "1"}

    def run(*args, input=None):
        return subprocess.run([binary, *args, "-no-color"], cwd=module_dir, env=environment,
                              input=input, capture_output=True, text=True, timeout=900,
                              check=False)

    initialised = run("init", "-backend=false", "-input=false")
    assert initialised.returncode == 0, initialised.stderr + initialised.stdout
    return run


def test_terraform_test_passes(terraform):
    result = terraform("test")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
    assert summary and summary.group(2) == "0", result.stdout
    runs = len(re.findall(r'^\s*run "', (MODULE / "tests" / "module.tftest.hcl").read_text(
        encoding="utf-8"), re.M))
    assert int(summary.group(1)) == runs, result.stdout


@pytest.mark.parametrize("client_ids", [[], ["4example1clientid2abc3"]],
                         ids=["without_client_ids", "with_client_ids"])
def test_terraform_renders_the_pattern_the_matcher_tests_use(terraform, client_ids):
    variables = {**REQUIRED, "user_pool_client_ids": client_ids}
    arguments = []
    for name, value in variables.items():
        arguments += ["-var", f"{name}={json.dumps(value) if isinstance(value, list) else value}"]
    result = terraform("console", *arguments,
                       input="jsonencode(local.cognito_change_pattern)\n")
    assert result.returncode == 0, result.stderr
    # The console prints the string as an HCL literal, whose escapes here are JSON's.
    rendered = json.loads(json.loads(result.stdout.strip().splitlines()[-1]))

    module = merged(MODULE)
    expected = render(module["locals"]["cognito_change_pattern"], module,
                      {**defaults(module), **variables})
    assert rendered == expected
