"""Cognito trigger that forwards user events to the cognito-hasura-sync queue.

Owns one thing: putting a hint about the trigger event on the queue named by
`SYNC_SQS_QUEUE_URL`, so the worker re-reads that user from Cognito within seconds. Wired to
PostConfirmation (sign-up and forgot-password confirmations) and PostAuthentication.

The hint is the trigger event cut down to what the worker reads (`triggerSource`, `userPoolId`,
`userName`, `request.userAttributes.sub`) plus `version`, `region` and the forwarding `time`
for the logs: the worker re-reads the user from Cognito anyway, so the user's other attributes
and the `clientMetadata` (personal data, free-form input) never reach the queue.

The message is a hint, not the truth, and the scheduled reconcile catches anything missed, so
any failure here is logged and the user's sign-up or sign-in goes on: the handler never raises.
Cognito gives a trigger 5 seconds in all, which is why the SQS client's timeouts and retries
are kept well inside that.
"""

import datetime
import functools
import json
import logging
import os
from typing import Any, Dict, Mapping

import boto3
from botocore.config import Config

LOG = logging.getLogger("event_forwarder")
LOG.setLevel(logging.INFO)

FORWARDED_TRIGGERS = frozenset(
    {
        "PostConfirmation_ConfirmSignUp",
        "PostConfirmation_ConfirmForgotPassword",
        "PostAuthentication_Authentication",
    }
)

# Worst case: 2 attempts x (0.3 s connect + 0.7 s read) + at most 1 s of backoff between them
# (standard mode) = 3 s, leaving 2 s of the 5 s for a cold start. Sends take milliseconds.
CLIENT_CONFIG = Config(
    connect_timeout=0.3,
    read_timeout=0.7,
    retries={"total_max_attempts": 2, "mode": "standard"},
)


@functools.lru_cache(maxsize=1)
def sqs_client() -> Any:
    """One client per execution environment, reused across invocations."""
    return boto3.client("sqs", config=CLIENT_CONFIG)


def hint(event: Mapping[str, Any], now: datetime.datetime) -> Dict[str, Any]:
    """The part of a trigger event the worker reads, and where and when it came from."""
    attributes = (event.get("request") or {}).get("userAttributes") or {}
    user_attributes = {"sub": attributes["sub"]} if "sub" in attributes else {}
    return {
        "version": event.get("version"),
        "triggerSource": event.get("triggerSource"),
        "region": event.get("region"),
        "userPoolId": event.get("userPoolId"),
        "userName": event.get("userName"),
        "time": now.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "request": {"userAttributes": user_attributes},
    }


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
        body = json.dumps(hint(event, datetime.datetime.now(datetime.timezone.utc)),
                          separators=(",", ":"))
        sent = sqs_client().send_message(QueueUrl=queue_url, MessageBody=body)
    except Exception as err:  # noqa: BLE001 - a failed hint must never fail the user's request
        LOG.error("forwarding %s event for pool %s failed, the reconcile will catch up: %s",
                  trigger, event.get("userPoolId"), err)
        return event

    LOG.info("forwarded %s event for pool %s as message %s",
             trigger, event.get("userPoolId"), sent.get("MessageId"))
    return event
