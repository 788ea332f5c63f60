"""One-shot setup of the docker-compose demo's moto: the sync queue, its DLQ and a user pool.

Owns the local AWS state `deploy/docker-compose.yml` starts from: it creates (or finds) the
queue pair with the same redrive as the Terraform module (a message goes to the dead-letter
queue after `queue_max_receive_count` = 10 receives), a user pool with two groups and a
few users, and writes `COGNITO_USER_POOL_ID=...` to the env file the worker sources, because
moto picks pool ids at random. Running it twice changes nothing.
"""

import argparse
import pathlib
import sys
from typing import Any, Dict

import boto3

QUEUE_NAME = "cognito-hasura-sync"
DLQ_NAME = "cognito-hasura-sync-dlq"
POOL_NAME = "cognito-hasura-sync-demo"
MAX_RECEIVE_COUNT = 10
GROUPS = {"admins": 0, "staff": 10}
USERS = {
    "alice@example.com": ["admins"],
    "bob@example.com": ["staff"],
    "carol@example.com": [],
}


def ensure_queues(sqs: Any) -> Dict[str, str]:
    dlq_url = sqs.create_queue(QueueName=DLQ_NAME, Attributes={
        "MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = '{"deadLetterTargetArn":"%s","maxReceiveCount":"%d"}' % (dlq_arn, MAX_RECEIVE_COUNT)
    queue_url = sqs.create_queue(QueueName=QUEUE_NAME, Attributes={
        "VisibilityTimeout": "60", "ReceiveMessageWaitTimeSeconds": "20",
        "SqsManagedSseEnabled": "true", "RedrivePolicy": redrive})["QueueUrl"]
    return {"queue_url": queue_url, "dlq_url": dlq_url}


def ensure_pool(cognito: Any) -> str:
    for pool in cognito.list_user_pools(MaxResults=60)["UserPools"]:
        if pool["Name"] == POOL_NAME:
            return pool["Id"]
    pool_id = cognito.create_user_pool(
        PoolName=POOL_NAME, UsernameAttributes=["email"], AutoVerifiedAttributes=["email"],
    )["UserPool"]["Id"]
    for group, precedence in GROUPS.items():
        cognito.create_group(UserPoolId=pool_id, GroupName=group, Precedence=precedence)
    for email, groups in USERS.items():
        cognito.admin_create_user(
            UserPoolId=pool_id, Username=email, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": email},
                            {"Name": "email_verified", "Value": "true"}],
        )
        for group in groups:
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)
    return pool_id


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=pathlib.Path, required=True,
                        help="where to write COGNITO_USER_POOL_ID=... for the worker")
    args = parser.parse_args(argv)

    queues = ensure_queues(boto3.client("sqs"))
    pool_id = ensure_pool(boto3.client("cognito-idp"))
    args.env_file.parent.mkdir(parents=True, exist_ok=True)
    args.env_file.write_text(f"COGNITO_USER_POOL_ID={pool_id}\n", encoding="utf-8")
    print(f"user pool {pool_id}, queue {queues['queue_url']}, dead-letter queue {queues['dlq_url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
