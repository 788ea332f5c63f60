"""Event forwarder: a cut-down hint of each Cognito trigger event lands on the sync queue, with
every field the worker's decoder reads and no personal data; failures never block users."""

import copy
import datetime
import json
import logging
import pathlib
import re
import socket
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
LAMBDA_TF = REPO / "deploy" / "terraform" / "modules" / "cognito-hasura-sync" / "lambda.tf"

SUB = "5f0c2b1a-7d3e-4c9b-8a6f-1e2d3c4b5a69"

# Shapes follow the Cognito developer guide's PostConfirmation / PostAuthentication syntax.
POST_CONFIRMATION = {
    "version": "1",
    "region": "eu-west-1",
    "userPoolId": "eu-west-1_AbCdEf123",
    "userName": "bob",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "4tq1example0clientid0abcde"},
    "triggerSource": "PostConfirmation_ConfirmSignUp",
    "request": {
        "userAttributes": {
            "sub": SUB,
            "cognito:email_alias": "bob@example.com",
            "cognito:user_status": "CONFIRMED",
            "email_verified": "true",
            "email": "bob@example.com",
            "phone_number": "+15555550100",
        },
        "clientMetadata": {"referrer": "newsletter", "birthday": "1990-01-01"},
    },
    "response": {},
}

POST_AUTHENTICATION = {
    **POST_CONFIRMATION,
    "triggerSource": "PostAuthentication_Authentication",
    "request": {**POST_CONFIRMATION["request"], "newDeviceUsed": False},
}


def make(template, **changes):
    event = copy.deepcopy(template)
    event.update(changes)
    return event


def drain(client, queue_url):
    messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                      WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


@pytest.mark.parametrize("event", [
    make(POST_CONFIRMATION),
    make(POST_CONFIRMATION, triggerSource="PostConfirmation_ConfirmForgotPassword"),
    make(POST_AUTHENTICATION),
], ids=lambda event: event["triggerSource"])
def test_forwarded_hint_is_on_the_queue_and_the_event_returned_unchanged(forwarder, sqs, event):
    client, queue_url = sqs
    original = copy.deepcopy(event)
    before = datetime.datetime.now(datetime.timezone.utc)

    answer = forwarder.handler(event, None)

    assert answer == original
    [message] = drain(client, queue_url)
    sent_at = datetime.datetime.fromisoformat(message.pop("time"))
    assert before - datetime.timedelta(seconds=1) <= sent_at <= datetime.datetime.now(
        datetime.timezone.utc)
    assert message == {
        "version": "1",
        "triggerSource": original["triggerSource"],
        "region": "eu-west-1",
        "userPoolId": "eu-west-1_AbCdEf123",
        "userName": "bob",
        "request": {"userAttributes": {"sub": SUB}},
    }


def rust_structs():
    """{name: (rename_all, [(field, type)])} of every struct in the event decoder's sources."""
    structs = {}
    for path in sorted((REPO / "src").rglob("*.rs")):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?struct\s+(\w+)\s*\{(.*?)\n\}",
                                 text, re.S):
            attributes, name, body = match.groups()
            rename = re.search(r'rename_all\s*=\s*"(\w+)"', attributes)
            fields = re.findall(r"^\s*(?:pub\s+)?(\w+):\s*([^,\n]+),", body, re.M)
            structs.setdefault(name, (rename.group(1) if rename else None, fields))
    return structs


def decoder_paths(structs, name, prefix=()):
    """JSON paths the decoder reads below a struct: field names renamed as serde does."""
    rename, fields = structs[name]
    for field, type_ in fields:
        key = field
        if rename == "camelCase":
            head, *rest = field.split("_")
            key = head + "".join(part.title() for part in rest)
        inner = re.sub(r"^Option<(.*)>$", r"\1", type_.strip())
        if inner in structs:
            yield from decoder_paths(structs, inner, prefix + (key,))
        else:
            yield prefix + (key,)


def test_hint_carries_every_field_the_worker_decoder_reads(forwarder, sqs):
    client, queue_url = sqs
    structs = rust_structs()
    assert "TriggerEvent" in structs, "the decoder's trigger event struct moved or was renamed"
    paths = set(decoder_paths(structs, "TriggerEvent"))
    assert {("triggerSource",), ("userPoolId",), ("request", "userAttributes", "sub")} <= paths

    forwarder.handler(make(POST_CONFIRMATION), None)

    [message] = drain(client, queue_url)
    for path in paths:
        assert value_at(message, path) == value_at(POST_CONFIRMATION, path), path


def value_at(event, path):
    node = event
    for key in path:
        assert key in node, (path, event)
        node = node[key]
    return node


@pytest.mark.parametrize("trigger", ["PreSignUp_SignUp", "TokenGeneration_Authentication"])
def test_other_triggers_are_not_forwarded(forwarder, sqs, caplog, trigger):
    client, queue_url = sqs
    event = make(POST_CONFIRMATION, triggerSource=trigger)

    with caplog.at_level(logging.WARNING, logger="event_forwarder"):
        assert forwarder.handler(event, None) == make(POST_CONFIRMATION, triggerSource=trigger)

    assert drain(client, queue_url) == []
    assert "is not forwarded" in caplog.text


def test_queue_failure_is_logged_and_does_not_block_the_user(forwarder, sqs, monkeypatch, caplog):
    client, queue_url = sqs
    client.delete_queue(QueueUrl=queue_url)

    with caplog.at_level(logging.ERROR, logger="event_forwarder"):
        answer = forwarder.handler(make(POST_CONFIRMATION), None)

    assert answer == POST_CONFIRMATION
    assert "forwarding PostConfirmation_ConfirmSignUp event for pool eu-west-1_AbCdEf123 failed" \
        in caplog.text


def test_missing_queue_url_is_logged_and_does_not_block_the_user(forwarder, sqs, monkeypatch,
                                                                 caplog):
    client, queue_url = sqs
    monkeypatch.delenv("SYNC_SQS_QUEUE_URL")

    with caplog.at_level(logging.ERROR, logger="event_forwarder"):
        answer = forwarder.handler(make(POST_CONFIRMATION), None)

    assert answer == POST_CONFIRMATION
    assert drain(client, queue_url) == []
    assert "SYNC_SQS_QUEUE_URL is not set" in caplog.text


def test_any_failure_is_logged_and_the_event_returned(forwarder, monkeypatch, caplog):
    def broken():
        raise RuntimeError("no client today")

    monkeypatch.setenv("SYNC_SQS_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q")
    monkeypatch.setattr(forwarder, "sqs_client", broken)
    with caplog.at_level(logging.ERROR, logger="event_forwarder"):
        answer = forwarder.handler(make(POST_AUTHENTICATION), None)

    assert answer == POST_AUTHENTICATION
    assert "no client today" in caplog.text


def lambda_timeout():
    return int(re.search(r"^\s*timeout\s*=\s*(\d+)", LAMBDA_TF.read_text(encoding="utf-8"),
                         re.M).group(1))


# Two of the 5 s Cognito allows are kept for a cold start (importing boto3, first TLS).
SEND_BUDGET_SECONDS = 3


def test_client_retries_and_timeouts_fit_inside_the_trigger_budget(forwarder, sqs):
    client, _ = sqs
    config = client.meta.config
    attempts = config.retries["total_max_attempts"]
    assert config.retries["mode"] == "standard"
    assert client is forwarder.sqs_client()

    # Standard mode sleeps at most min(2 ** i, 20) s (throttling scale) before retry i + 1.
    backoff = sum(min(2 ** i, 20) for i in range(attempts - 1))
    worst = attempts * (config.connect_timeout + config.read_timeout) + backoff
    assert worst <= SEND_BUDGET_SECONDS < lambda_timeout() <= 5


@pytest.fixture
def silent_endpoint():
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_a_hanging_queue_endpoint_never_outlasts_the_budget(forwarder, sqs, silent_endpoint,
                                                            monkeypatch, caplog):
    endpoint, accepted = silent_endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    forwarder.sqs_client.cache_clear()

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="event_forwarder"):
        answer = forwarder.handler(make(POST_CONFIRMATION), None)
    elapsed = time.monotonic() - started

    assert answer == POST_CONFIRMATION
    assert len(accepted) == 2, "one send and one retry"
    assert elapsed <= SEND_BUDGET_SECONDS, elapsed
    assert "failed, the reconcile will catch up" in caplog.text
