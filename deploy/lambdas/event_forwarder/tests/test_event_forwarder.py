"""Event forwarder: Cognito trigger events land on the sync queue; failures never block users."""

import copy
import json
import logging

import pytest

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
        },
        "clientMetadata": {},
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
def test_forwarded_event_is_on_the_queue_and_returned_unchanged(forwarder, sqs, event):
    client, queue_url = sqs
    original = copy.deepcopy(event)

    answer = forwarder.handler(event, None)

    assert answer == original
    assert drain(client, queue_url) == [original]


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


def test_client_stays_inside_the_cognito_trigger_budget(forwarder, sqs):
    client, _ = sqs
    config = client.meta.config
    attempts = config.retries["total_max_attempts"]

    # Cognito abandons a trigger after 5 seconds and fails the user's request with it.
    assert client is forwarder.sqs_client()
    assert attempts * (config.connect_timeout + config.read_timeout) <= 5
