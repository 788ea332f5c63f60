"""docker-compose.yml's `moto-init` service runs as compose starts it.

Docker cannot run here, so the test runs `deploy/compose/moto_init.py` the way the container
would: the command from the service's entrypoint, the script and env file from its volumes, and
exactly the environment compose gives the service (anchors merged, `${VAR:-default}` resolved),
against a real `moto_server` on 127.0.0.1. Only the endpoint changes, from the compose network's
`moto` host to the local server. A variable the service lacks (boto3 reads the region from
`AWS_DEFAULT_REGION`, not `AWS_REGION`) fails here as it fails in compose.
"""

import json
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import pytest
import yaml

from terraform_hcl import MODULE, defaults, merged

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
COMPOSE = DEPLOY / "docker-compose.yml"
MOTO_SERVER = REPO / ".venv" / "bin" / "moto_server"


def service(name):
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"][name]


def interpolated(value):
    """Compose's `${NAME:-default}` with nothing set on the host: the default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto_server.log").open("w")
    server = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto_server did not start on {endpoint}")
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)
    log.close()


def run_moto_init(endpoint, demo_dir):
    """Runs the service's entrypoint with its environment; returns (completed process, env file)."""
    init = service("moto-init")
    environment = {name: interpolated(value) for name, value in init["environment"].items()}
    assert environment["AWS_ENDPOINT_URL"] == "http://moto:5000"
    environment["AWS_ENDPOINT_URL"] = endpoint

    mounts = {}
    for volume in init["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    entrypoint = list(init["entrypoint"])
    assert entrypoint[0] == "python"
    script = DEPLOY / mounts[entrypoint[1]]
    env_file_in_container = pathlib.PurePosixPath(entrypoint[entrypoint.index("--env-file") + 1])
    # The env file lives on the named volume mounted at its parent directory.
    assert not mounts[str(env_file_in_container.parent)].startswith(".")
    env_file = demo_dir / env_file_in_container.name
    arguments = [str(env_file) if argument == str(env_file_in_container) else argument
                 for argument in entrypoint[2:]]
    # HOME points at an empty directory so no ~/.aws file on this machine fills in a setting.
    environment["HOME"] = str(demo_dir)
    completed = subprocess.run([sys.executable, str(script), *arguments], env=environment,
                               capture_output=True, text=True, timeout=120, check=False)
    return completed, env_file


def test_moto_init_runs_with_exactly_the_compose_environment(moto_endpoint, tmp_path):
    completed, env_file = run_moto_init(moto_endpoint, tmp_path)
    assert completed.returncode == 0, completed.stderr
    first = env_file.read_text(encoding="utf-8")
    pool_id = re.fullmatch(r"COGNITO_USER_POOL_ID=(\S+)\n", first).group(1)

    # A restarted stack runs it again: nothing new is created.
    again, _ = run_moto_init(moto_endpoint, tmp_path)
    assert again.returncode == 0, again.stderr
    assert env_file.read_text(encoding="utf-8") == first

    region = service("moto-init")["environment"]["AWS_REGION"]
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name=region)
    cognito = session.client("cognito-idp", endpoint_url=moto_endpoint)
    pools = cognito.list_user_pools(MaxResults=60)["UserPools"]
    assert [pool["Id"] for pool in pools] == [pool_id]
    assert pool_id.startswith(f"{region}_")
    assert len(cognito.list_users(UserPoolId=pool_id)["Users"]) == 3

    sqs = session.client("sqs", endpoint_url=moto_endpoint)
    worker_queue_url = service("worker")["environment"]["SYNC_SQS_QUEUE_URL"]
    queue_name = worker_queue_url.rsplit("/", 1)[1]
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{queue_name}-dlq")
    # One number everywhere: the module's default, the demo queue, the docs.
    assert int(redrive["maxReceiveCount"]) == module_max_receive_count() == 10
    assert len(sqs.list_queues()["QueueUrls"]) == 2


def module_max_receive_count():
    return defaults(merged(MODULE))["queue_max_receive_count"]


def test_worker_and_backfill_get_the_region_the_sdks_read():
    # The Rust SDK reads AWS_REGION, boto3 AWS_DEFAULT_REGION: compose sets both, equal.
    for name in ("moto-init", "worker", "backfill"):
        environment = service(name)["environment"]
        assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"], name
