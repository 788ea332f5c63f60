"""The module's EventBridge rule forwards every Cognito event the worker acts on, with and
without `user_pool_client_ids`.

The pattern is rendered from the module's HCL as Terraform would (terraform_hcl.render) and
evaluated by moto's EventBridge pattern matcher. The events are the decoder's own EventBridge
fixtures (tests/fixtures/events/eventbridge_*.json, read only) and the self-service calls
in deploy/tests/fixtures/, which carry neither a pool id nor a client id.
"""

import copy
import functools
import json
import pathlib
import re

import pytest
from moto.events.models import EventPattern, EventPatternParser

import terraform_hcl

REPO = terraform_hcl.DEPLOY.parent
DECODER_FIXTURES = REPO / "tests" / "fixtures" / "events"
SELF_SERVICE = terraform_hcl.DEPLOY / "tests" / "fixtures" / "eventbridge_self_service_calls.json"
POOL = "us-east-1_Ab12Cd34E"
CLIENT = "4example1clientid2abc3"
CONFIGURATIONS = {"without_client_ids": [], "with_client_ids": [CLIENT, "2other0client"]}


def decoder_fixtures():
    paths = sorted(DECODER_FIXTURES.glob("eventbridge_*.json"))
    assert len(paths) >= 10, f"the decoder's EventBridge fixtures moved from {DECODER_FIXTURES}"
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in paths}


def ignored_by_the_decoder():
    """Fixture names whose decoder test expects `EventAction::Ignore`, read from the Rust tests."""
    ignored, used = set(), set()
    for path in sorted((REPO / "src").rglob("*.rs")):
        text = path.read_text(encoding="utf-8")
        for body in re.split(r"\n\s*(?:#\[test\]\s*)?(?:async\s+)?fn\s+", text):
            names = set(re.findall(r'fixture!\("(eventbridge_\w+)"\)', body))
            used |= names
            if len(names) == 1 and "EventAction::Ignore" in body:
                ignored |= names
    return ignored, used


@functools.lru_cache(maxsize=None)
def module():
    return terraform_hcl.merged(terraform_hcl.MODULE)


@functools.lru_cache(maxsize=None)
def pattern(client_ids):
    variables = terraform_hcl.defaults(module())
    variables.update(user_pool_id=POOL, user_pool_client_ids=list(client_ids))
    rendered = json.dumps(terraform_hcl.render(module()["locals"]["cognito_change_pattern"],
                                               module(), variables))
    # The parser rejects what EventBridge rejects (empty arrays, scalars where lists belong).
    return EventPattern(rendered, EventPatternParser(rendered).parse())


def matches(client_ids, event):
    return pattern(tuple(client_ids)).matches_event(event)


def acted_on():
    ignored, used = ignored_by_the_decoder()
    fixtures = decoder_fixtures()
    assert set(fixtures) <= used, f"fixtures no decoder test uses: {set(fixtures) - used}"
    events = {name: event for name, event in fixtures.items() if name not in ignored}
    for event in json.loads(SELF_SERVICE.read_text(encoding="utf-8")):
        events[f"self_service_{event['detail']['eventName']}"] = event
    return events


def test_the_fixtures_cover_both_kinds_of_cloudtrail_event_and_calls_without_a_pool():
    events = acted_on()
    detail_types = {event["detail-type"] for event in events.values()}
    assert detail_types == {"AWS API Call via CloudTrail", "AWS Service Event via CloudTrail"}
    self_service = {event["detail"]["eventName"] for event in events.values()
                    if not (event["detail"].get("requestParameters") or {}).get("userPoolId")
                    and not (event["detail"].get("requestParameters") or {}).get("clientId")
                    and not (event["detail"].get("additionalEventData") or {}).get("userPoolId")}
    assert {"DeleteUser", "UpdateUserAttributes", "VerifyUserAttribute",
            "DeleteUserAttributes"} <= self_service


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_every_event_the_decoder_acts_on_matches_the_rule(configuration):
    client_ids = CONFIGURATIONS[configuration]
    missed = [name for name, event in sorted(acted_on().items())
              if not matches(client_ids, event)]
    assert missed == []


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_reads_page_views_and_identity_pools_stay_out(configuration):
    fixtures = decoder_fixtures()
    for name in ("eventbridge_list_users", "eventbridge_hosted_ui_login_get",
                 "eventbridge_cognito_identity"):
        assert not matches(CONFIGURATIONS[configuration], fixtures[name]), name


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_admin_calls_of_another_pool_stay_out(configuration):
    event = copy.deepcopy(decoder_fixtures()["eventbridge_admin_delete_user"])
    event["detail"]["requestParameters"]["userPoolId"] = "us-east-1_OtherPool1"
    assert not matches(CONFIGURATIONS[configuration], event)


def test_client_ids_keep_out_unauthenticated_calls_of_other_clients():
    event = copy.deepcopy(decoder_fixtures()["eventbridge_sign_up"])
    assert matches(CONFIGURATIONS["with_client_ids"], event)
    event["detail"]["requestParameters"]["clientId"] = "9someone0elses"
    assert not matches(CONFIGURATIONS["with_client_ids"], event)
    assert matches(CONFIGURATIONS["without_client_ids"], event)


def test_self_service_names_are_tracked():
    self_service = set(module()["locals"]["self_service_event_names"])
    assert self_service <= set(module()["variable"]["tracked_event_names"]["default"])
    for event in json.loads(SELF_SERVICE.read_text(encoding="utf-8")):
        assert event["detail"]["eventName"] in self_service
