"""The container image, docker-compose.yml and Terraform's task definition agree with each other
and with the environment variables the Rust binaries actually read.

Docker cannot run here, so this reads deploy/Dockerfile, .dockerignore and the compose file.
The env names come from the Rust sources (clap `env = "..."` attributes and `env::var("...")`
calls), so the check follows the CLI as it grows.
"""

import pathlib
import re
import tomllib

import pytest
import yaml

from terraform_hcl import parse

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERIGNORE = REPO / ".dockerignore"
ECS_TF = DEPLOY / "terraform" / "modules" / "cognito-hasura-sync" / "ecs.tf"

# Read by the AWS SDK and tracing-subscriber rather than by clap.
SDK_ENV = {
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "RUST_LOG",
    # Rust's std::env::temp_dir: where a scan's pages read ahead are kept.
    "TMPDIR",
}
# Without these the worker cannot start (docs/DESIGN.md)...
WORKER_REQUIRED = {"COGNITO_USER_POOL_ID", "HASURA_GRAPHQL_ENDPOINT", "SYNC_SQS_QUEUE_URL"}
# ... nor without one of these credentials (src/config.rs, `Settings::require_hasura`): the
# admin secret, or the Cognito machine client that worker_auth = "client-credentials" sets
# (COGNITO_OAUTH_SCOPES is optional to the binary: without it Cognito grants every scope the
# client is allowed; the module always sets it).
ADMIN_SECRET_ENV = {"HASURA_GRAPHQL_ADMIN_SECRET"}
MACHINE_CLIENT_ENV = {"HASURA_AUTH", "COGNITO_TOKEN_ENDPOINT", "COGNITO_CLIENT_ID",
                      "COGNITO_CLIENT_SECRET", "COGNITO_OAUTH_SCOPES"}
WORKER_CREDENTIALS = (ADMIN_SECRET_ENV, MACHINE_CLIENT_ENV)
# Real Hasura v2 server settings used here (a typo would be silently ignored by Hasura).
HASURA_ENV = {
    "HASURA_GRAPHQL_DATABASE_URL", "HASURA_GRAPHQL_METADATA_DATABASE_URL",
    "HASURA_GRAPHQL_ADMIN_SECRET", "HASURA_GRAPHQL_JWT_SECRET",
    "HASURA_GRAPHQL_UNAUTHORIZED_ROLE", "HASURA_GRAPHQL_ENABLE_CONSOLE",
    "HASURA_GRAPHQL_DEV_MODE", "HASURA_GRAPHQL_ENABLED_LOG_TYPES",
    "HASURA_GRAPHQL_MIGRATIONS_SERVER_TIMEOUT", "HASURA_GRAPHQL_SERVER_PORT",
}
ENV_ATTRIBUTE = re.compile(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"')
ENV_CALL = re.compile(r'\benv::var(?:_os)?\(\s*"([A-Z][A-Z0-9_]*)"')


def rust_env_names(source_dir):
    names = set()
    for path in sorted(source_dir.rglob("*.rs")):
        text = path.read_text(encoding="utf-8")
        names.update(ENV_ATTRIBUTE.findall(text))
        names.update(ENV_CALL.findall(text))
    return names


def worker_env_names_or_skip():
    names = rust_env_names(REPO / "src")
    if not names:
        pytest.skip("src/**/*.rs declares no env attributes yet: re-check once the CLI lands")
    return names


def compose():
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def dockerfile_stages():
    """[(stage name, base, [(instruction, argument)])] in file order, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", argument.strip(), re.IGNORECASE)
            stages.append((match.group(2), match.group(1), []))
        elif stages:
            stages[-1][2].append((instruction, argument.strip()))
    return stages


def stage(name):
    for stage_name, base, instructions in dockerfile_stages():
        if stage_name == name:
            return base, instructions
    raise AssertionError(f"no stage {name}")


def instructions_of(name, kind):
    """Instructions of one kind in a stage and in the local stages it is built FROM."""
    base, instructions = stage(name)
    local = {stage_name for stage_name, _, _ in dockerfile_stages()}
    inherited = instructions_of(base, kind) if base in local else []
    return inherited + [argument for instruction, argument in instructions if instruction == kind]


def env_names(name):
    names = set()
    for argument in instructions_of(name, "ENV"):
        names.update(re.findall(r"([A-Z][A-Z0-9_]*)=", argument))
    return names


def dockerignore_excludes(path):
    """Docker's rule: the last matching pattern wins; a pattern matches a path or its parents."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    parts = pathlib.PurePosixPath(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def terraform_worker_env():
    """(plain variables, secrets) the task definition can set, over both worker_auth modes."""
    ecs = parse(ECS_TF)
    locals_ = {}
    for block in ecs["locals"]:
        locals_.update(block)
    static = re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=",
                        locals_["worker_environment"] + locals_["worker_auth_environment"])
    assert locals_["worker_container"]["secrets"] == "${local.worker_secrets}"
    secrets = re.findall(r'\bname\s*=\s*"([A-Z][A-Z0-9_]+)"', locals_["worker_secrets"])
    return set(static), set(secrets)


# --- Dockerfile -----------------------------------------------------------------------------

def test_dockerfile_caches_dependencies_and_builds_the_release_binary():
    _, builder = stage("builder")
    runs = [argument for instruction, argument in builder if instruction == "RUN"]
    copies = [argument for instruction, argument in builder if instruction == "COPY"]
    assert "cargo chef cook --release" in runs[0]
    assert copies[0].startswith("--from=planner") and "recipe.json" in copies[0]
    cook = [i for i, step in enumerate(builder) if "cargo chef cook" in step[1]][0]
    copy_all = builder.index(("COPY", ". ."))
    build = [i for i, step in enumerate(builder) if "cargo build --release" in step[1]][0]
    assert cook < copy_all < build, "dependencies are cooked before the sources are copied"
    _, planner = stage("planner")
    assert ("RUN", "cargo chef prepare --recipe-path recipe.json") in planner


def test_worker_image_runs_the_binary_as_non_root_with_a_health_check():
    package = tomllib.loads((REPO / "Cargo.toml").read_text(encoding="utf-8"))["package"]["name"]
    stages = dockerfile_stages()
    assert stages[-1][0] == "worker", "the worker is the default (last) target"
    assert stages[-1][1] == "runtime"
    assert re.match(r"debian:\$\{DEBIAN_RELEASE\}-slim$", stage("runtime")[0])

    users = instructions_of("worker", "USER")
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert instructions_of("worker", "ENTRYPOINT") == [f'["/usr/local/bin/{package}"]']
    assert instructions_of("worker", "CMD") == ['["daemon"]']
    health = instructions_of("worker", "HEALTHCHECK")
    assert len(health) == 1 and "http://127.0.0.1:8080/healthz" in health[0]
    copies = instructions_of("worker", "COPY")
    assert f"--from=builder /build/target/release/{package} /usr/local/bin/{package}" in copies


def test_hasura_lite_image_serves_the_project_migrations_and_metadata():
    names = env_names("hasura-lite")
    assert names <= rust_env_names(REPO / "crates" / "hasura-lite" / "src"), names
    assert instructions_of("hasura-lite", "ENTRYPOINT") == ['["/usr/local/bin/hasura-lite"]']
    assert "http://127.0.0.1:8080/healthz" in instructions_of("hasura-lite", "HEALTHCHECK")[0]
    copies = instructions_of("hasura-lite", "COPY")
    assert "deploy/hasura/migrations /hasura-migrations" in copies
    assert "deploy/hasura/metadata /hasura-metadata" in copies


def test_base_images_are_pinned():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M))
    local = {name for name, _, _ in dockerfile_stages()}
    for _, base, _ in dockerfile_stages():
        if base in local:
            continue
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert ":" in resolved and not resolved.endswith(":latest"), resolved
    assert "cargo install cargo-chef --version" in DOCKERFILE.read_text(encoding="utf-8")


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest():
    for needed in ["Cargo.toml", "Cargo.lock", "src/main.rs", "crates/hasura-lite/Cargo.toml",
                   "crates/testbed/src/lib.rs", "graphql/upsert_users.graphql", "schema.graphql",
                   "deploy/hasura/migrations/default/1732500000000_init/up.sql",
                   "deploy/hasura/metadata/databases/databases.yaml"]:
        assert not dockerignore_excludes(needed), needed
    for dropped in ["target/release/cognito-hasura-sync", ".git/HEAD", ".venv/bin/python",
                    ".venv-checkov/bin/checkov", "deploy/terraform/examples/complete/main.tf",
                    "deploy/lambdas/event_forwarder/handler.py", "deploy/Dockerfile",
                    "crates/hasura-lite/target/debug/x", "deploy/__pycache__/x.pyc"]:
        assert dockerignore_excludes(dropped), dropped
    for instruction in instructions_of("hasura-lite", "COPY"):
        source = instruction.split()[0]
        if not source.startswith("--from"):
            assert (REPO / source).exists() and not dockerignore_excludes(source), source


# --- docker-compose.yml ---------------------------------------------------------------------

def test_compose_has_the_stack_and_pins_every_image():
    services = compose()["services"]
    assert set(services) == {"postgres", "hasura", "moto", "moto-init", "worker", "backfill"}
    for name, service in services.items():
        if "image" in service and "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name


def test_compose_runs_real_hasura_v2_with_the_project_migrations_and_metadata():
    hasura = compose()["services"]["hasura"]
    assert re.fullmatch(r"hasura/graphql-engine:v2\.\d+\.\d+\.cli-migrations-v3", hasura["image"])
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in hasura["volumes"]}
    assert mounts == {"/hasura-migrations": "./hasura/migrations",
                      "/hasura-metadata": "./hasura/metadata"}
    for source in mounts.values():
        assert (DEPLOY / source).is_dir()
    assert set(hasura["environment"]) <= HASURA_ENV
    assert hasura["ports"] == ["8080:8080"]


def test_compose_hasura_reaches_postgres_with_its_credentials():
    services = compose()["services"]
    postgres = services["postgres"]["environment"]
    url = services["hasura"]["environment"]["HASURA_GRAPHQL_DATABASE_URL"]
    assert url == (f"postgres://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{postgres['POSTGRES_DB']}")


def test_compose_moto_matches_the_pinned_test_bed_version():
    pins = dict(re.findall(r"^moto\[server\]==(\S+)$()", (REPO / "requirements.txt").read_text(),
                           re.M))
    services = compose()["services"]
    assert services["moto"]["image"] == f"motoserver/moto:{next(iter(pins))}"
    assert services["moto-init"]["image"] == services["moto"]["image"]


def test_compose_worker_points_at_the_compose_services():
    services = compose()["services"]
    worker = services["worker"]
    environment = worker["environment"]
    hasura_port = services["hasura"]["ports"][0].split(":")[1]
    assert environment["HASURA_GRAPHQL_ENDPOINT"] == f"http://hasura:{hasura_port}/v1/graphql"
    assert environment["HASURA_GRAPHQL_ADMIN_SECRET"] == (
        services["hasura"]["environment"]["HASURA_GRAPHQL_ADMIN_SECRET"])
    moto_port = services["moto"]["ports"][0].split(":")[1]
    assert environment["AWS_ENDPOINT_URL"] == f"http://moto:{moto_port}"
    assert environment["SYNC_SQS_QUEUE_URL"] == (
        f"http://moto:{moto_port}/123456789012/{moto_init_module().QUEUE_NAME}")
    assert worker["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile", "target": "worker"}
    assert (DEPLOY / ".." / worker["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert worker["command"] == ["daemon"]
    assert worker["ports"] == ["8081:8080"] and environment["LISTEN_ADDR"] == "0.0.0.0:8080"
    assert worker["depends_on"]["moto-init"] == {"condition": "service_completed_successfully"}

    backfill = services["backfill"]
    assert backfill["command"] == ["backfill"] and backfill["profiles"] == ["backfill"]
    assert backfill["environment"] == environment and backfill["build"] == worker["build"]


def test_compose_worker_gets_every_setting_it_needs():
    worker = compose()["services"]["worker"]
    init = compose()["services"]["moto-init"]
    env_file = init["entrypoint"][init["entrypoint"].index("--env-file") + 1]
    assert f". {env_file}" in worker["entrypoint"][2]
    # The pool id comes from moto-init's env file; everything else is set in compose.
    environment = set(worker["environment"])
    assert WORKER_REQUIRED - {"COGNITO_USER_POOL_ID"} <= environment
    assert any(credential <= environment for credential in WORKER_CREDENTIALS), environment


def cli_subcommands():
    """Subcommands of the worker CLI, kebab-case, from `pub enum Command` in src/cli.rs."""
    text = (REPO / "src" / "cli.rs").read_text(encoding="utf-8")
    body = re.search(r"pub enum Command\s*\{(.*?)\n\}", text, re.S)
    assert body, "src/cli.rs has no `pub enum Command`"
    variants = re.findall(r"^    ([A-Z][A-Za-z0-9]*)\b", body.group(1), re.M)
    return {re.sub(r"(?<!^)([A-Z])", r"-\1", variant).lower() for variant in variants}


# `daemon` and `reconcile` join the CLI after `backfill`. Until the `daemon` subcommand exists,
# the settings only it reads may be set without being declared yet; once it exists they must be.
DAEMON_ONLY_ENV = {"SYNC_SQS_QUEUE_URL", "LISTEN_ADDR", "RECONCILE_SCHEDULE"}
LATER_SUBCOMMANDS = {"daemon", "reconcile"}


def test_compose_and_terraform_set_only_env_the_worker_reads():
    known = worker_env_names_or_skip() | SDK_ENV
    pending = set() if "daemon" in cli_subcommands() else DAEMON_ONLY_ENV
    declared = WORKER_REQUIRED.union(*WORKER_CREDENTIALS) - pending
    assert declared <= known, declared - known
    static, secrets = terraform_worker_env()
    for where, names in [("compose", set(compose()["services"]["worker"]["environment"])),
                         ("terraform", static | secrets), ("Dockerfile", env_names("worker"))]:
        assert names - pending <= known, (where, names - pending - known)


def test_commands_used_by_the_deployment_exist_in_the_cli():
    subcommands = cli_subcommands()
    assert {"backfill", "status", "check", "jwt-secret"} <= subcommands
    services = compose()["services"]
    used = {services["worker"]["command"][0], services["backfill"]["command"][0], "reconcile",
            re.fullmatch(r'\["(\S+)"\]', instructions_of("worker", "CMD")[0]).group(1)}
    assert used == {"daemon", "backfill", "reconcile"}
    assert used - LATER_SUBCOMMANDS <= subcommands


def test_health_checks_use_a_tool_the_image_installs():
    ecs = parse(ECS_TF)
    container = [block for block in ecs["locals"] if "worker_container" in block][0][
        "worker_container"]
    command = container["healthCheck"]["command"]
    assert command[:2] == ["CMD", "curl"] and command[-1] == "http://127.0.0.1:${local.listen_port}/healthz"
    installs = " ".join(instructions_of("runtime", "RUN"))
    assert re.search(r"apt-get install [^&]*\bcurl\b", installs)
    assert "curl" in instructions_of("worker", "HEALTHCHECK")[0]


def test_terraform_task_sets_every_required_setting():
    static, secrets = terraform_worker_env()
    assert WORKER_REQUIRED <= static
    for credential in WORKER_CREDENTIALS:
        assert credential <= static | secrets, credential
    assert secrets == {"HASURA_GRAPHQL_ADMIN_SECRET", "COGNITO_CLIENT_SECRET"}
    assert not secrets & static


def moto_init_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("moto_init", DEPLOY / "compose" / "moto_init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
