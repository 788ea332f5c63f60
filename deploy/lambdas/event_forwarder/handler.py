"""Cognito trigger that forwards user events to the cognito-hasura-sync queue.

Owns one thing: putting the trigger event, unchanged, as a JSON message on the queue named by
`SYNC_SQS_QUEUE_URL`, so the worker re-reads that user from Cognito within seconds. Wired to
PostConfirmation (sign-up and forgot-password confirmations) and PostAuthentication.

The message is a hint, not the truth, and the scheduled reconcile catches anything missed, so a
queue error is logged and the user's sign-up or sign-in goes on. Cognito gives a trigger 5
seconds in all, which is why the SQS client's timeouts and retries are kept well inside that.
"""

import functools
import json
import logging
import os
from typing import Any, Dict

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

LOG = logging.getLogger("event_forwarder")
LOG.setLevel(logging.INFO)

FORWARDED_TRIGGERS = frozenset(
    {
        "PostConfirmation_ConfirmSignUp",
        "PostConfirmation_ConfirmForgotPassword",
        "PostAuthentication_Authentication",
    }
)

# Worst case: 2 attempts x (1 s connect + 1.5 s read) = 5 s, the whole trigger budget, and
# the standard retry mode only retries what can succeed. Sends normally take milliseconds.
CLIENT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=1.5,
    retries={"total_max_attempts": 2, "mode": "standard"},
)


@functools.lru_cache(maxsize=1)
def sqs_client() -> Any:
    """One client per execution environment, reused across invocations."""
    return boto3.client("sqs", config=CLIENT_CONFIG)


def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    trigger = event.get("triggerSource")
    if trigger not in FORWARDED_TRIGGERS:
        LOG.warning("trigger %s is not forwarded; check the user pool's lambda_config", trigger)
        return event

    queue_url = os.environ.get("SYNC_SQS_QUEUE_URL", "").strip()
    if not queue_url:
        LOG.error("SYNC_SQS_QUEUE_URL is not set: %s event for pool %s not forwarded",
                  trigger, event.get("userPoolId"))
        return event

    try:
        sent = sqs_client().send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(event, separators=(",", ":")),
        )
    except (BotoCoreError, ClientError) as err:
        LOG.error("forwarding %s event for pool %s failed, the reconcile will catch up: %s",
                  trigger, event.get("userPoolId"), err)
        return event

    LOG.info("forwarded %s event for pool %s as message %s",
             trigger, event.get("userPoolId"), sent.get("MessageId"))
    return event
