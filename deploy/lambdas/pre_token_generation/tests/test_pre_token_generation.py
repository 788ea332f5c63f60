"""Pre Token Generation trigger: claims for every trigger source and event version."""

import copy
import json
import logging

import pytest

SUB = "8a1b5c9e-3f2d-4e6a-9b7c-0d1e2f3a4b5c"

# Shapes follow the Cognito developer guide's pre token generation request/response syntax.
V1_EVENT = {
    "version": "1",
    "triggerSource": "TokenGeneration_Authentication",
    "region": "eu-west-1",
    "userPoolId": "eu-west-1_AbCdEf123",
    "userName": "alice",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "4tq1example0clientid0abcde"},
    "request": {
        "userAttributes": {
            "sub": SUB,
            "cognito:user_status": "CONFIRMED",
            "email_verified": "true",
            "email": "alice@example.com",
            "custom:tenant_id": "tenant-42",
        },
        "groupConfiguration": {
            "groupsToOverride": ["staff", "admins"],
            "iamRolesToOverride": [],
            "preferredRole": None,
        },
        "clientMetadata": {},
    },
    "response": {"claimsOverrideDetails": None},
}

V2_EVENT = {
    **V1_EVENT,
    "version": "2",
    "request": {**V1_EVENT["request"], "scopes": ["openid", "email", "aws.cognito.signin.user.admin"]},
    "response": {"claimsAndScopeOverrideDetails": None},
}

# V3 adds machine-to-machine tokens: no user, no attributes, no groups, only scopes.
V3_CLIENT_CREDENTIALS_EVENT = {
    "version": "3",
    "triggerSource": "TokenGeneration_ClientCredentials",
    "region": "eu-west-1",
    "userPoolId": "eu-west-1_AbCdEf123",
    "userName": None,
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "m2m0client0id0example"},
    "request": {"userAttributes": {}, "groupConfiguration": None, "scopes": ["reports/read"],
                "clientMetadata": {}},
    "response": {"claimsAndScopeOverrideDetails": None},
}

USER_TRIGGERS = (
    "TokenGeneration_HostedAuth",
    "TokenGeneration_Authentication",
    "TokenGeneration_NewPasswordChallenge",
    "TokenGeneration_AuthenticateDevice",
    "TokenGeneration_RefreshTokens",
)

NAMESPACE = "https://hasura.io/jwt/claims"
ONLY_THE_DEFAULT_ROLE = {
    "x-hasura-user-id": SUB,
    "x-hasura-default-role": "user",
    "x-hasura-allowed-roles": ["user"],
}
ROLE_MAP = json.dumps({"admins": {"role": "owner", "precedence": 1}, "staff": "editor"})


def make(template, **changes):
    event = copy.deepcopy(template)
    event.update(changes)
    return event


def v1_claims(event, namespace=NAMESPACE):
    added = event["response"]["claimsOverrideDetails"]["claimsToAddOrOverride"]
    # V1 can only add string claims: Hasura reads them with claims_format stringified_json.
    assert isinstance(added[namespace], str)
    return json.loads(added[namespace])


def v2_claims(event, namespace=NAMESPACE):
    details = event["response"]["claimsAndScopeOverrideDetails"]
    id_claims = details["idTokenGeneration"]["claimsToAddOrOverride"][namespace]
    access_claims = details["accessTokenGeneration"]["claimsToAddOrOverride"][namespace]
    assert isinstance(id_claims, str) and id_claims == access_claims
    return json.loads(id_claims)


@pytest.mark.parametrize("trigger", USER_TRIGGERS)
def test_v1_adds_stringified_claims_to_the_id_token(ptg, monkeypatch, trigger):
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    event = ptg.handler(make(V1_EVENT, triggerSource=trigger), None)

    assert v1_claims(event) == {
        "x-hasura-user-id": SUB,
        "x-hasura-default-role": "owner",
        "x-hasura-allowed-roles": ["owner", "user", "editor"],
    }
    assert "claimsAndScopeOverrideDetails" not in event["response"]


@pytest.mark.parametrize("version", ["2", "3"])
@pytest.mark.parametrize("trigger", USER_TRIGGERS)
def test_v2_and_v3_add_the_same_claims_to_id_and_access_tokens(ptg, monkeypatch,
                                                                version, trigger):
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    event = ptg.handler(make(V2_EVENT, version=version, triggerSource=trigger), None)

    assert v2_claims(event) == {
        "x-hasura-user-id": SUB,
        "x-hasura-default-role": "owner",
        "x-hasura-allowed-roles": ["owner", "user", "editor"],
    }
    assert "claimsOverrideDetails" not in event["response"]


@pytest.mark.parametrize("group_configuration", [None, {"groupsToOverride": None}])
def test_client_credentials_without_a_mapped_scope_gets_no_claims(ptg, monkeypatch,
                                                              group_configuration):
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    monkeypatch.setenv("CLIENT_CREDENTIALS_SCOPE_ROLES", json.dumps({"sync/write": "cognito_sync"}))
    event = make(V3_CLIENT_CREDENTIALS_EVENT)
    event["request"]["groupConfiguration"] = group_configuration

    answer = ptg.handler(event, None)

    assert answer["response"] == {"claimsAndScopeOverrideDetails": None}


def test_unknown_groups_grant_nothing(ptg, monkeypatch):
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    event = make(V1_EVENT)
    event["request"]["groupConfiguration"]["groupsToOverride"] = ["superusers", "root"]

    claims = v1_claims(ptg.handler(event, None))

    assert claims["x-hasura-allowed-roles"] == ["user"]
    assert claims["x-hasura-default-role"] == "user"


def test_user_without_groups_gets_the_configured_default_role(ptg, monkeypatch):
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    monkeypatch.setenv("DEFAULT_ROLE", "member")
    event = make(V2_EVENT)
    event["request"]["groupConfiguration"]["groupsToOverride"] = []

    claims = v2_claims(ptg.handler(event, None))

    assert claims["x-hasura-allowed-roles"] == ["member"]
    assert claims["x-hasura-default-role"] == "member"


def test_default_role_is_always_allowed_beside_mapped_roles(ptg, monkeypatch):
    monkeypatch.setenv("GROUP_ROLE_MAP", json.dumps({"staff": "editor"}))
    monkeypatch.setenv("DEFAULT_ROLE", "member")

    claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    assert claims["x-hasura-default-role"] == "editor"
    assert claims["x-hasura-allowed-roles"] == ["editor", "member"]


def test_lowest_precedence_wins_from_group_precedence(ptg, monkeypatch):
    monkeypatch.setenv("GROUP_ROLE_MAP", json.dumps({"admins": "owner", "staff": "editor"}))
    monkeypatch.setenv("GROUP_PRECEDENCE", json.dumps({"admins": 10, "staff": 2}))

    claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    assert claims["x-hasura-default-role"] == "editor"
    assert claims["x-hasura-allowed-roles"] == ["editor", "user", "owner"]


def test_map_precedence_overrides_group_precedence(ptg, monkeypatch):
    monkeypatch.setenv("GROUP_ROLE_MAP", json.dumps(
        {"admins": {"role": "owner", "precedence": 0}, "staff": "editor"}))
    monkeypatch.setenv("GROUP_PRECEDENCE", json.dumps({"admins": 10, "staff": 2}))

    claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    assert claims["x-hasura-default-role"] == "owner"


def test_groups_without_precedence_keep_the_event_order(ptg, monkeypatch):
    monkeypatch.setenv("GROUP_ROLE_MAP", json.dumps({"admins": "owner", "staff": "editor"}))

    claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    # The event lists staff first; with no precedence configured, the first listed group wins.
    assert claims["x-hasura-default-role"] == "editor"
    assert claims["x-hasura-allowed-roles"] == ["editor", "user", "owner"]


@pytest.mark.parametrize("bad_map", ["{not json", "[\"admins\"]", "42"])
def test_invalid_role_map_logs_and_issues_the_default_role(ptg, monkeypatch, caplog,
                                                           bad_map):
    monkeypatch.setenv("GROUP_ROLE_MAP", bad_map)
    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    assert claims == ONLY_THE_DEFAULT_ROLE
    assert "GROUP_ROLE_MAP" in caplog.text


def test_invalid_entries_are_dropped_one_by_one(ptg, monkeypatch, caplog):
    monkeypatch.setenv("GROUP_ROLE_MAP", json.dumps(
        {"admins": {"precedence": 0}, "staff": {"role": "editor", "precedence": "high"}}))
    monkeypatch.setenv("GROUP_PRECEDENCE", json.dumps({"staff": -1}))
    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    assert claims["x-hasura-allowed-roles"] == ["editor", "user"]
    assert "GROUP_ROLE_MAP['admins'] has no role" in caplog.text
    assert "GROUP_PRECEDENCE['staff']" in caplog.text


def test_session_attributes_become_hasura_session_variables(ptg, monkeypatch, caplog):
    monkeypatch.setenv("SESSION_ATTRIBUTES", json.dumps({
        "custom:tenant_id": "X-Hasura-Tenant-Id",
        "email": "x-hasura-email",
        "custom:missing": "x-hasura-missing",
        "custom:evil": "x-hasura-default-role",
        "custom:other": "tenant",
    }))
    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        claims = v2_claims(ptg.handler(make(V2_EVENT), None))

    assert claims["x-hasura-tenant-id"] == "tenant-42"
    assert claims["x-hasura-email"] == "alice@example.com"
    assert "x-hasura-missing" not in claims
    assert claims["x-hasura-default-role"] == "user"
    assert "tenant" not in claims
    assert "may not set x-hasura-default-role" in caplog.text


def test_claims_namespace_is_configurable(ptg, monkeypatch):
    monkeypatch.setenv("CLAIMS_NAMESPACE", "hasura")

    event = ptg.handler(make(V1_EVENT), None)

    assert v1_claims(event, namespace="hasura")["x-hasura-user-id"] == SUB


def test_existing_overrides_are_kept(ptg):
    event = make(V2_EVENT)
    event["response"]["claimsAndScopeOverrideDetails"] = {
        "accessTokenGeneration": {"scopesToAdd": ["reports/read"],
                                  "claimsToAddOrOverride": {"tier": "gold"}},
    }

    details = ptg.handler(event, None)["response"]["claimsAndScopeOverrideDetails"]

    assert details["accessTokenGeneration"]["scopesToAdd"] == ["reports/read"]
    assert details["accessTokenGeneration"]["claimsToAddOrOverride"]["tier"] == "gold"
    assert NAMESPACE in details["idTokenGeneration"]["claimsToAddOrOverride"]


def test_a_failure_while_building_claims_still_issues_the_default_role(ptg, monkeypatch, caplog):
    def broken(environ):
        raise RuntimeError("boom")

    monkeypatch.setattr(ptg, "load_settings", broken)
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    monkeypatch.setenv("DEFAULT_ROLE", "member")
    monkeypatch.setenv("CLAIMS_NAMESPACE", "hasura")
    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        claims = v1_claims(ptg.handler(make(V1_EVENT), None), namespace="hasura")

    assert claims == {
        "x-hasura-user-id": SUB,
        "x-hasura-default-role": "member",
        "x-hasura-allowed-roles": ["member"],
    }
    assert "building Hasura claims failed" in caplog.text


def test_event_without_sub_is_returned_unchanged(ptg):
    event = make(V1_EVENT)
    del event["request"]["userAttributes"]["sub"]

    assert ptg.handler(event, None)["response"] == {"claimsOverrideDetails": None}


# --- claims that cannot escalate ------------------------------------------------------------

ADMIN_MAPS = {
    "group_string": ("GROUP_ROLE_MAP", json.dumps({"admins": "admin", "staff": "editor"})),
    "group_object": ("GROUP_ROLE_MAP", json.dumps({"admins": {"role": "admin", "precedence": 0},
                                                    "staff": "editor"})),
    "default_role": ("DEFAULT_ROLE", "admin"),
}


@pytest.mark.parametrize("setting", sorted(ADMIN_MAPS))
def test_admin_role_is_refused_and_the_refusal_logged(ptg, monkeypatch, caplog, setting):
    name, value = ADMIN_MAPS[setting]
    monkeypatch.setenv(name, value)
    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        for template in (V1_EVENT, V2_EVENT):
            event = ptg.handler(make(template), None)
            claims = v1_claims(event) if template is V1_EVENT else v2_claims(event)
            assert "admin" not in claims["x-hasura-allowed-roles"], claims
            assert claims["x-hasura-default-role"] != "admin"

    assert "grants Hasura's admin role" in caplog.text
    assert "ALLOW_ADMIN_ROLE=true" in caplog.text


@pytest.mark.parametrize("allow", ["false", "1", "yes", ""])
def test_only_an_explicit_true_allows_the_admin_role(ptg, monkeypatch, allow):
    monkeypatch.setenv("GROUP_ROLE_MAP", json.dumps({"admins": "admin"}))
    monkeypatch.setenv("ALLOW_ADMIN_ROLE", allow)
    assert v1_claims(ptg.handler(make(V1_EVENT), None))["x-hasura-allowed-roles"] == ["user"]

    monkeypatch.setenv("ALLOW_ADMIN_ROLE", "True")
    claims = v1_claims(ptg.handler(make(V1_EVENT), None))
    assert claims["x-hasura-allowed-roles"] == ["admin", "user"]
    assert claims["x-hasura-default-role"] == "admin"


def test_the_fallback_after_a_failure_refuses_the_admin_role_too(ptg, monkeypatch):
    def broken(environ):
        raise RuntimeError("boom")

    monkeypatch.setattr(ptg, "load_settings", broken)
    monkeypatch.setenv("DEFAULT_ROLE", "admin")

    claims = v1_claims(ptg.handler(make(V1_EVENT), None))

    assert claims["x-hasura-allowed-roles"] == ["user"]


@pytest.mark.parametrize("claim", ["x-hasura-role", "X-Hasura-Role", "x-hasura-allowed-roles",
                                   "X-HASURA-ALLOWED-ROLES", "x-hasura-default-role",
                                   "X-Hasura-Default-Role", "x-hasura-user-id"])
def test_session_attributes_cannot_set_a_role_deciding_claim(ptg, monkeypatch, caplog, claim):
    monkeypatch.setenv("SESSION_ATTRIBUTES", json.dumps({"custom:tenant_id": claim}))
    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        claims = v2_claims(ptg.handler(make(V2_EVENT), None))

    assert claims == ONLY_THE_DEFAULT_ROLE
    assert f"may not set {claim}" in caplog.text


# --- claims as a JSON object ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2", "3"])
def test_v2_and_v3_offer_claims_as_a_json_object(ptg, monkeypatch, version):
    monkeypatch.setenv("GROUP_ROLE_MAP", ROLE_MAP)
    monkeypatch.setenv("CLAIMS_FORMAT", "json")

    details = ptg.handler(make(V2_EVENT, version=version), None)["response"][
        "claimsAndScopeOverrideDetails"]

    expected = {"x-hasura-user-id": SUB, "x-hasura-default-role": "owner",
                "x-hasura-allowed-roles": ["owner", "user", "editor"]}
    for token in ("idTokenGeneration", "accessTokenGeneration"):
        assert details[token]["claimsToAddOrOverride"][NAMESPACE] == expected


@pytest.mark.parametrize("claims_format,template,message", [
    ("json", V1_EVENT, "V1 event, which can only add strings"),
    ("yaml", V2_EVENT, "CLAIMS_FORMAT must be one of stringified_json, json"),
], ids=["json-asked-on-a-v1-event", "unknown-format"])
def test_claims_stay_a_json_string_where_an_object_cannot_be(ptg, monkeypatch, caplog,
                                                            claims_format, template, message):
    monkeypatch.setenv("CLAIMS_FORMAT", claims_format)
    with caplog.at_level(logging.WARNING, logger="pre_token_generation"):
        event = ptg.handler(make(template), None)

    # Both helpers assert the claims are a JSON string.
    claims = v1_claims(event) if template is V1_EVENT else v2_claims(event)
    assert claims["x-hasura-user-id"] == SUB
    assert message in caplog.text


# --- machine clients (client credentials grant) ------------------------------------------------

SYNC_SCOPE = "cognito-hasura-sync/sync"


@pytest.mark.parametrize("claims_format", ["stringified_json", "json"])
def test_client_credentials_scope_grants_its_role_in_the_access_token(ptg, monkeypatch,
                                                                       claims_format):
    monkeypatch.setenv("CLAIMS_FORMAT", claims_format)
    monkeypatch.setenv("CLIENT_CREDENTIALS_SCOPE_ROLES", json.dumps({SYNC_SCOPE: "cognito_sync"}))
    event = make(V3_CLIENT_CREDENTIALS_EVENT)
    event["request"]["scopes"] = ["reports/read", SYNC_SCOPE]

    details = ptg.handler(event, None)["response"]["claimsAndScopeOverrideDetails"]

    assert set(details) == {"accessTokenGeneration"}
    value = details["accessTokenGeneration"]["claimsToAddOrOverride"][NAMESPACE]
    claims = json.loads(value) if claims_format == "stringified_json" else value
    assert claims == {"x-hasura-default-role": "cognito_sync",
                      "x-hasura-allowed-roles": ["cognito_sync"]}


def test_client_credentials_scope_cannot_grant_admin(ptg, monkeypatch, caplog):
    monkeypatch.setenv("CLIENT_CREDENTIALS_SCOPE_ROLES", json.dumps({SYNC_SCOPE: "admin"}))
    event = make(V3_CLIENT_CREDENTIALS_EVENT)
    event["request"]["scopes"] = [SYNC_SCOPE]

    with caplog.at_level(logging.ERROR, logger="pre_token_generation"):
        answer = ptg.handler(event, None)

    assert answer["response"] == {"claimsAndScopeOverrideDetails": None}
    assert "CLIENT_CREDENTIALS_SCOPE_ROLES['cognito-hasura-sync/sync'] grants" in caplog.text


def test_user_tokens_never_get_a_scope_role(ptg, monkeypatch):
    monkeypatch.setenv("CLIENT_CREDENTIALS_SCOPE_ROLES", json.dumps({SYNC_SCOPE: "cognito_sync"}))
    event = make(V2_EVENT, version="3")
    event["request"]["scopes"] = [SYNC_SCOPE]

    assert "cognito_sync" not in v2_claims(ptg.handler(event, None))["x-hasura-allowed-roles"]
