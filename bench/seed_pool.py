#!/usr/bin/env python3
"""Creates a Cognito user pool full of users in moto (or any Cognito endpoint) for the demo
and the benchmark: groups, custom attributes, disabled users, non-ASCII names.

Users are created in parallel (moto_server is threaded). Prints the pool id on stdout.

    .venv/bin/python bench/seed_pool.py --endpoint http://127.0.0.1:5055 --users 3000

With --bulk the same users (same attributes, groups and disabled flags, in the
FORCE_CHANGE_PASSWORD status AdminCreateUser leaves them in, but every 13th one federated:
EXTERNAL_PROVIDER, which moto cannot make) are sent in one request to cognito-lite's bulk
import instead (the benchmarks' in-memory Cognito; moto has no import):

    .venv/bin/python bench/seed_pool.py --bulk --endpoint http://127.0.0.1:PORT --users 100000
"""

import argparse
import concurrent.futures
import json
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

GROUPS = [
    ("admins", "Administrators", 1),
    ("editors", "Éditeurs", 5),
    ("readers", "Read-only users", 10),
    ("beta-testers", "Early access", None),
]
NAMES = ["Zoë", "Ñandú", "Jürgen", "Åsa", "François", "山田", "Ольга", "Chloé", "Dvořák", "Ana"]


def user_spec(i):
    """User number i: attributes, groups and whether it is disabled (deterministic)."""
    given = NAMES[i % len(NAMES)]
    family = f"Family{i}"
    attributes = {
        "email": f"user-{i:06}@example.test",
        "email_verified": "true",
        "given_name": given,
        "family_name": family,
        "name": f"{given} {family}",
        "custom:tenant": f"tenant-{i % 8}",
        "custom:plan": ["free", "pro", "enterprise"][i % 3],
    }
    groups = []
    if i % 50 == 0:
        groups.append("admins")
    if i % 5 == 0:
        groups.append("editors")
    if i % 2 == 0:
        groups.append("readers")
    if i % 7 == 0:
        groups.append("beta-testers")
    return f"user-{i:06}", attributes, groups, i % 97 == 0


def bulk_import(endpoint, pool_name, users, with_groups, group_every):
    """Sends the whole pool to cognito-lite's POST /__cognito-lite/import; returns the pool id.
    With group_every N > 1 only every Nth user is in groups (its own, else readers)."""
    user_list = []
    for i in range(users):
        username, attributes, groups, disabled = user_spec(i)
        if not with_groups or i % group_every:
            groups = []
        elif group_every > 1 and not groups:
            groups = ["readers"]
        user_list.append(
            {
                "username": username,
                "attributes": attributes,
                "groups": groups,
                "enabled": not disabled,
                # Every 13th user signed in through an identity provider (moto cannot make these).
                "status": "EXTERNAL_PROVIDER" if i % 13 == 0 else "FORCE_CHANGE_PASSWORD",
            }
        )
    body = {
        "pool_name": pool_name,
        "custom_attributes": ["tenant", "plan"],
        "groups": [
            {"name": name, "description": description, "precedence": precedence}
            for name, description, precedence in (GROUPS if with_groups else [])
        ],
        "users": user_list,
    }
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/__cognito-lite/import",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.load(response)["user_pool_id"]
    except urllib.error.HTTPError as error:
        sys.exit(f"import failed: HTTP {error.code}: {error.read().decode(errors='replace')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="Cognito endpoint, e.g. moto's URL")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--pool-name", default="demo-pool")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument(
        "--bulk", action="store_true", help="one cognito-lite import request instead of boto3 calls"
    )
    parser.add_argument(
        "--no-groups", action="store_true", help="with --bulk: a pool without groups (only ListUsers reads it)"
    )
    parser.add_argument(
        "--group-every",
        type=int,
        default=1,
        metavar="N",
        help="with --bulk: only every Nth user is in groups (its own, else readers); 3: a third",
    )
    args = parser.parse_args()
    if (args.no_groups or args.group_every != 1) and not args.bulk:
        parser.error("--no-groups and --group-every need --bulk")
    if args.group_every < 1:
        parser.error("--group-every must be at least 1")

    if args.bulk:
        started = time.monotonic()
        pool_id = bulk_import(args.endpoint, args.pool_name, args.users, not args.no_groups, args.group_every)
        print(
            f"imported pool {pool_id} with {args.users} users in {0 if args.no_groups else len(GROUPS)} groups "
            f"in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
        print(pool_id)
        return

    client = boto3.client(
        "cognito-idp",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=args.threads, retries={"max_attempts": 10, "mode": "standard"}),
    )
    pool_id = client.create_user_pool(
        PoolName=args.pool_name,
        Schema=[
            {"Name": "tenant", "AttributeDataType": "String", "Mutable": True},
            {"Name": "plan", "AttributeDataType": "String", "Mutable": True},
        ],
    )["UserPool"]["Id"]
    for name, description, precedence in GROUPS:
        kwargs = {"UserPoolId": pool_id, "GroupName": name, "Description": description}
        if precedence is not None:
            kwargs["Precedence"] = precedence
        client.create_group(**kwargs)

    def create(i):
        username, attributes, groups, disabled = user_spec(i)
        client.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
            MessageAction="SUPPRESS",
        )
        for group in groups:
            client.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
        if disabled:
            client.admin_disable_user(UserPoolId=pool_id, Username=username)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) as pool:
        for n, _ in enumerate(pool.map(create, range(args.users)), start=1):
            if n % 5000 == 0:
                print(f"  {n} users created", file=sys.stderr)
    print(
        f"created pool {pool_id} with {args.users} users in {len(GROUPS)} groups "
        f"in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    print(pool_id)


if __name__ == "__main__":
    main()
