"""Loads this Lambda's handler module by path and runs each test against an in-process moto SQS."""

import importlib.util
import pathlib

import pytest
from moto import mock_aws

HANDLER_PATH = pathlib.Path(__file__).resolve().parent.parent / "handler.py"


@pytest.fixture(scope="session")
def forwarder():
    spec = importlib.util.spec_from_file_location("event_forwarder_handler", HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sqs(forwarder, monkeypatch):
    """A mocked SQS with the sync queue created; yields (client, queue_url)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        forwarder.sqs_client.cache_clear()
        client = forwarder.sqs_client()
        queue_url = client.create_queue(QueueName="cognito-hasura-sync")["QueueUrl"]
        monkeypatch.setenv("SYNC_SQS_QUEUE_URL", queue_url)
        yield client, queue_url
    forwarder.sqs_client.cache_clear()
