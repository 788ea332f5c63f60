"""Cognito Pre Token Generation trigger: puts Hasura session claims into user pool tokens.

Owns the mapping from a user's Cognito groups and attributes to the claims Hasura reads
(`x-hasura-user-id`, `x-hasura-allowed-roles`, `x-hasura-default-role`, optional extra
`x-hasura-*` session variables), encoded as a JSON string under one namespaced claim so that
Hasura's `HASURA_GRAPHQL_JWT_SECRET` uses `"claims_format": "stringified_json"`.

Configuration (environment, all optional):

- `GROUP_ROLE_MAP`: JSON object, Cognito group -> Hasura role, either `"role"` or
  `{"role": "role", "precedence": 0}`. An allow-list: a group that is not listed grants nothing.
- `GROUP_PRECEDENCE`: JSON object, Cognito group -> precedence (lower wins), for groups whose
  `GROUP_ROLE_MAP` entry has none. The trigger event carries group names only, not the
  precedence configured on the group in Cognito.
- `DEFAULT_ROLE`: role used when no mapped group applies; always allowed. Default `user`.
- `SESSION_ATTRIBUTES`: JSON object, user attribute -> `x-hasura-...` claim name.
- `CLAIMS_NAMESPACE`: claim that holds the Hasura claims. Default `https://hasura.io/jwt/claims`.

Sign-in must never fail because of this function's configuration: every invalid setting is
logged and ignored, and a user always gets at least the default role.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

LOG = logging.getLogger("pre_token_generation")
LOG.setLevel(logging.INFO)

DEFAULT_NAMESPACE = "https://hasura.io/jwt/claims"
FALLBACK_ROLE = "user"
USER_ID = "x-hasura-user-id"
ALLOWED_ROLES = "x-hasura-allowed-roles"
DEFAULT_ROLE_CLAIM = "x-hasura-default-role"
# Session variables this function computes itself; SESSION_ATTRIBUTES may not override them.
RESERVED_CLAIMS = frozenset({USER_ID, ALLOWED_ROLES, DEFAULT_ROLE_CLAIM})
# Machine-to-machine tokens (V3 client credentials grant) have no user to describe.
CLIENT_CREDENTIALS = "TokenGeneration_ClientCredentials"


@dataclass(frozen=True)
class GroupRole:
    role: str
    precedence: Optional[int] = None


@dataclass(frozen=True)
class Settings:
    group_roles: Dict[str, GroupRole] = field(default_factory=dict)
    group_precedence: Dict[str, int] = field(default_factory=dict)
    default_role: str = FALLBACK_ROLE
    session_attributes: Dict[str, str] = field(default_factory=dict)
    namespace: str = DEFAULT_NAMESPACE


def _json_object(environ: Mapping[str, str], name: str) -> Dict[str, Any]:
    raw = environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as err:
        LOG.error("%s is not valid JSON, ignoring it: %s", name, err)
        return {}
    if not isinstance(value, dict):
        LOG.error("%s must be a JSON object, ignoring it", name)
        return {}
    return value


def _precedence(value: Any) -> Optional[int]:
    # bool is an int subclass; `true` is never a meaningful precedence.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Reads the configuration; drops (and logs) each invalid entry instead of failing."""
    group_roles: Dict[str, GroupRole] = {}
    for group, entry in _json_object(environ, "GROUP_ROLE_MAP").items():
        if _non_empty_string(entry):
            group_roles[group] = GroupRole(entry)
        elif isinstance(entry, dict) and _non_empty_string(entry.get("role")):
            precedence = _precedence(entry.get("precedence"))
            if "precedence" in entry and precedence is None:
                LOG.error("GROUP_ROLE_MAP[%r].precedence must be a non-negative integer", group)
            group_roles[group] = GroupRole(entry["role"], precedence)
        else:
            LOG.error("GROUP_ROLE_MAP[%r] has no role, ignoring the group", group)

    group_precedence: Dict[str, int] = {}
    for group, value in _json_object(environ, "GROUP_PRECEDENCE").items():
        precedence = _precedence(value)
        if precedence is None:
            LOG.error("GROUP_PRECEDENCE[%r] must be a non-negative integer, ignoring it", group)
        else:
            group_precedence[group] = precedence

    session_attributes: Dict[str, str] = {}
    for attribute, claim in _json_object(environ, "SESSION_ATTRIBUTES").items():
        if not _non_empty_string(claim) or not claim.lower().startswith("x-hasura-"):
            LOG.error("SESSION_ATTRIBUTES[%r] must name an x-hasura-* claim, ignoring it", attribute)
        elif claim.lower() in RESERVED_CLAIMS:
            LOG.error("SESSION_ATTRIBUTES[%r] may not set %s, ignoring it", attribute, claim)
        else:
            session_attributes[attribute] = claim.lower()

    default_role = environ.get("DEFAULT_ROLE", "").strip() or FALLBACK_ROLE
    namespace = environ.get("CLAIMS_NAMESPACE", "").strip() or DEFAULT_NAMESPACE
    return Settings(group_roles, group_precedence, default_role, session_attributes, namespace)


def build_claims(
    user_attributes: Mapping[str, Any], groups: List[str], settings: Settings
) -> Optional[Dict[str, Any]]:
    """Hasura claims for one user, or None when there is no user (`sub`) to describe."""
    sub = user_attributes.get("sub")
    if not _non_empty_string(sub):
        return None

    # (precedence known?, precedence, position in the event, role): lowest sorts first, so a
    # group with a configured precedence beats one without, and ties keep Cognito's order.
    ranked: List[Tuple[int, int, int, str]] = []
    for position, group in enumerate(groups):
        mapping = settings.group_roles.get(group)
        if mapping is None:
            continue
        precedence = mapping.precedence
        if precedence is None:
            precedence = settings.group_precedence.get(group)
        ranked.append((0 if precedence is not None else 1, precedence or 0, position, mapping.role))
    ranked.sort()

    default_role = ranked[0][3] if ranked else settings.default_role
    allowed: List[str] = []
    for role in [default_role, settings.default_role] + [entry[3] for entry in ranked]:
        if role not in allowed:
            allowed.append(role)

    claims: Dict[str, Any] = {
        USER_ID: sub,
        ALLOWED_ROLES: allowed,
        DEFAULT_ROLE_CLAIM: default_role,
    }
    for attribute, claim in sorted(settings.session_attributes.items()):
        value = user_attributes.get(attribute)
        if value is not None:
            claims[claim] = str(value)
    return claims


def _event_version(event: Mapping[str, Any]) -> int:
    try:
        return int(str(event.get("version", "1")))
    except ValueError:
        LOG.warning("unknown trigger event version %r, answering as version 1", event.get("version"))
        return 1


def _merge_claims(details: Optional[Dict[str, Any]], namespace: str, encoded: str) -> Dict[str, Any]:
    details = dict(details or {})
    claims = dict(details.get("claimsToAddOrOverride") or {})
    claims[namespace] = encoded
    details["claimsToAddOrOverride"] = claims
    return details


def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    trigger = event.get("triggerSource", "")
    request = event.get("request") or {}
    if trigger == CLIENT_CREDENTIALS:
        LOG.info("client credentials token for client %s: no user, no Hasura claims",
                 (event.get("callerContext") or {}).get("clientId"))
        return event

    attributes = request.get("userAttributes") or {}
    groups = list((request.get("groupConfiguration") or {}).get("groupsToOverride") or [])
    try:
        settings = load_settings(os.environ)
        claims = build_claims(attributes, groups, settings)
    except Exception:  # noqa: BLE001 - a bug here must not lock users out; see module docs
        settings = Settings(
            default_role=os.environ.get("DEFAULT_ROLE", "").strip() or FALLBACK_ROLE,
            namespace=os.environ.get("CLAIMS_NAMESPACE", "").strip() or DEFAULT_NAMESPACE,
        )
        LOG.exception("building Hasura claims failed, issuing only the default role %s",
                      settings.default_role)
        claims = build_claims(attributes, [], settings)

    if claims is None:
        LOG.warning("%s event without a sub: no Hasura claims added", trigger)
        return event

    encoded = json.dumps(claims, separators=(",", ":"), sort_keys=True)
    response = event.get("response") or {}
    if _event_version(event) >= 2:
        details = dict(response.get("claimsAndScopeOverrideDetails") or {})
        for token in ("idTokenGeneration", "accessTokenGeneration"):
            details[token] = _merge_claims(details.get(token), settings.namespace, encoded)
        response["claimsAndScopeOverrideDetails"] = details
    else:
        response["claimsOverrideDetails"] = _merge_claims(
            response.get("claimsOverrideDetails"), settings.namespace, encoded
        )
    event["response"] = response
    return event
