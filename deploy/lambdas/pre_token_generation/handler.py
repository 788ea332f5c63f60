"""Cognito Pre Token Generation trigger: puts Hasura session claims into user pool tokens.

Owns the mapping from a user's Cognito groups and attributes to the claims Hasura reads
(`x-hasura-user-id`, `x-hasura-allowed-roles`, `x-hasura-default-role`, optional extra
`x-hasura-*` session variables) under one namespaced claim, and from a machine client's OAuth
scopes to its role. A V1 event can only add string claims, so the claims are a JSON string
(`"claims_format": "stringified_json"` in Hasura's `HASURA_GRAPHQL_JWT_SECRET`); V2 and V3
events may add a JSON object instead (`"claims_format": "json"`), chosen by `CLAIMS_FORMAT`.

No setting can escalate: Hasura's `admin` role (unrestricted, it bypasses every permission) is
never granted unless `ALLOW_ADMIN_ROLE` says so, and `SESSION_ATTRIBUTES` cannot write the
claims that decide the role, so a user-writable attribute can never pick one.

Configuration (environment, all optional):

- `GROUP_ROLE_MAP`: JSON object, Cognito group -> Hasura role, either `"role"` or
  `{"role": "role", "precedence": 0}`. An allow-list: a group that is not listed grants nothing.
- `GROUP_PRECEDENCE`: JSON object, Cognito group -> precedence (lower wins), for groups whose
  `GROUP_ROLE_MAP` entry has none. The trigger event carries group names only, not the
  precedence configured on the group in Cognito.
- `DEFAULT_ROLE`: role used when no mapped group applies; always allowed. Default `user`.
- `SESSION_ATTRIBUTES`: JSON object, user attribute -> `x-hasura-...` claim name. Only
  attributes users cannot write themselves belong here (the app client's `write_attributes`).
- `CLAIMS_NAMESPACE`: claim that holds the Hasura claims. Default `https://hasura.io/jwt/claims`.
- `CLAIMS_FORMAT`: `stringified_json` (default) or `json`; `json` applies to V2 and V3 events,
  V1 events always get a string (and a logged warning when `json` was asked for).
- `CLIENT_CREDENTIALS_SCOPE_ROLES`: JSON object, OAuth scope -> Hasura role, for access tokens
  of the client credentials grant (V3 events only). Cognito issues a client only the scopes it
  is allowed, so a scope identifies the machine client without naming its id.
- `ALLOW_ADMIN_ROLE`: `true` lets the settings above grant `admin`; anything else refuses it.

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
# Hasura's superuser: it bypasses every permission, so granting it takes ALLOW_ADMIN_ROLE.
ADMIN_ROLE = "admin"
# Session variables this function computes itself or that decide the role (x-hasura-role picks
# the role of a request); SESSION_ATTRIBUTES may not set any of them.
RESERVED_CLAIMS = frozenset({USER_ID, ALLOWED_ROLES, DEFAULT_ROLE_CLAIM, "x-hasura-role"})
STRINGIFIED_JSON = "stringified_json"
CLAIMS_FORMATS = (STRINGIFIED_JSON, "json")
# Machine-to-machine tokens (V3 client credentials grant): no user, only a client and scopes.
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
    claims_format: str = STRINGIFIED_JSON
    scope_roles: Dict[str, str] = field(default_factory=dict)


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


def _admin_allowed(environ: Mapping[str, str]) -> bool:
    return environ.get("ALLOW_ADMIN_ROLE", "").strip().lower() == "true"


def _grantable(role: str, setting: str, environ: Mapping[str, str]) -> bool:
    """False, with the refusal logged, for the admin role without ALLOW_ADMIN_ROLE=true."""
    if role.strip() != ADMIN_ROLE or _admin_allowed(environ):
        return True
    LOG.error("%s grants Hasura's admin role, which bypasses every permission; refused "
              "(set ALLOW_ADMIN_ROLE=true to allow it)", setting)
    return False


def default_role(environ: Mapping[str, str]) -> str:
    role = environ.get("DEFAULT_ROLE", "").strip() or FALLBACK_ROLE
    return role if _grantable(role, "DEFAULT_ROLE", environ) else FALLBACK_ROLE


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Reads the configuration; drops (and logs) each invalid entry instead of failing."""
    group_roles: Dict[str, GroupRole] = {}
    for group, entry in _json_object(environ, "GROUP_ROLE_MAP").items():
        role = entry.get("role") if isinstance(entry, dict) else entry
        if _non_empty_string(role) and not _grantable(role, f"GROUP_ROLE_MAP[{group!r}]", environ):
            continue
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

    scope_roles: Dict[str, str] = {}
    for scope, role in _json_object(environ, "CLIENT_CREDENTIALS_SCOPE_ROLES").items():
        setting = f"CLIENT_CREDENTIALS_SCOPE_ROLES[{scope!r}]"
        if not _non_empty_string(role):
            LOG.error("%s has no role, ignoring the scope", setting)
        elif _grantable(role, setting, environ):
            scope_roles[scope] = role

    claims_format = environ.get("CLAIMS_FORMAT", "").strip() or STRINGIFIED_JSON
    if claims_format not in CLAIMS_FORMATS:
        LOG.error("CLAIMS_FORMAT must be one of %s, not %r; using %s",
                  ", ".join(CLAIMS_FORMATS), claims_format, STRINGIFIED_JSON)
        claims_format = STRINGIFIED_JSON
    return Settings(
        group_roles=group_roles,
        group_precedence=group_precedence,
        default_role=default_role(environ),
        session_attributes=session_attributes,
        namespace=_namespace(environ),
        claims_format=claims_format,
        scope_roles=scope_roles,
    )


def _namespace(environ: Mapping[str, str]) -> str:
    return environ.get("CLAIMS_NAMESPACE", "").strip() or DEFAULT_NAMESPACE


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


def machine_claims(scopes: List[str], settings: Settings) -> Optional[Dict[str, Any]]:
    """Claims for a client credentials token: the roles its granted scopes map to, in the
    order Cognito lists the scopes; None when no scope maps to a role."""
    roles: List[str] = []
    for scope in scopes:
        role = settings.scope_roles.get(scope)
        if role is not None and role not in roles:
            roles.append(role)
    if not roles:
        return None
    return {ALLOWED_ROLES: roles, DEFAULT_ROLE_CLAIM: roles[0]}


def _merge_claims(details: Optional[Dict[str, Any]], namespace: str, value: Any) -> Dict[str, Any]:
    details = dict(details or {})
    claims = dict(details.get("claimsToAddOrOverride") or {})
    claims[namespace] = value
    details["claimsToAddOrOverride"] = claims
    return details


def _answer(event: Dict[str, Any], claims: Dict[str, Any], settings: Settings,
            tokens: Tuple[str, ...]) -> Dict[str, Any]:
    """Writes the claims into the response of a V1 event (ID token, always a JSON string) or
    of a V2/V3 event (each of `tokens`, a JSON object when CLAIMS_FORMAT is json)."""
    encoded = json.dumps(claims, separators=(",", ":"), sort_keys=True)
    response = event.get("response") or {}
    if _event_version(event) >= 2:
        value = claims if settings.claims_format == "json" else encoded
        details = dict(response.get("claimsAndScopeOverrideDetails") or {})
        for token in tokens:
            details[token] = _merge_claims(details.get(token), settings.namespace, value)
        response["claimsAndScopeOverrideDetails"] = details
    else:
        if settings.claims_format != STRINGIFIED_JSON:
            LOG.warning("CLAIMS_FORMAT is %s but this is a V1 event, which can only add strings: "
                        "the claims are a JSON string; set the pool's pre token generation "
                        "trigger to V2_0 or V3_0", settings.claims_format)
        response["claimsOverrideDetails"] = _merge_claims(
            response.get("claimsOverrideDetails"), settings.namespace, encoded
        )
    event["response"] = response
    return event


def _client_credentials(event: Dict[str, Any], request: Mapping[str, Any]) -> Dict[str, Any]:
    client_id = (event.get("callerContext") or {}).get("clientId")
    settings = load_settings(os.environ)
    scopes = [scope for scope in request.get("scopes") or [] if isinstance(scope, str)]
    claims = machine_claims(scopes, settings)
    if claims is None:
        LOG.info("client credentials token for client %s with scopes %s: no scope maps to a "
                 "Hasura role, no Hasura claims", client_id, scopes)
        return event
    LOG.info("client credentials token for client %s: Hasura roles %s",
             client_id, claims[ALLOWED_ROLES])
    # The grant issues an access token only.
    return _answer(event, claims, settings, ("accessTokenGeneration",))


def handler(event: Dict[str, Any], context: Any) -> Dict[str, Any]:
    trigger = event.get("triggerSource", "")
    request = event.get("request") or {}
    if trigger == CLIENT_CREDENTIALS:
        try:
            return _client_credentials(event, request)
        except Exception:  # noqa: BLE001 - a bug here must not fail the token request
            LOG.exception("building Hasura claims for a client credentials token failed: "
                          "no Hasura claims")
            return event

    attributes = request.get("userAttributes") or {}
    groups = list((request.get("groupConfiguration") or {}).get("groupsToOverride") or [])
    try:
        settings = load_settings(os.environ)
        claims = build_claims(attributes, groups, settings)
    except Exception:  # noqa: BLE001 - a bug here must not lock users out; see module docs
        settings = Settings(default_role=default_role(os.environ),
                            namespace=_namespace(os.environ))
        LOG.exception("building Hasura claims failed, issuing only the default role %s",
                      settings.default_role)
        claims = build_claims(attributes, [], settings)

    if claims is None:
        LOG.warning("%s event without a sub: no Hasura claims added", trigger)
        return event
    return _answer(event, claims, settings, ("idTokenGeneration", "accessTokenGeneration"))
