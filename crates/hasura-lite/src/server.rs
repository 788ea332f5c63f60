//! The HTTP side: `POST /v1/graphql` and `GET /healthz`, authentication (admin secret,
//! JWT) and role selection, one [`Session`] per request, and translation of every error
//! into Hasura's response shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Pos, ServerError, Variables};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::{Code, HasuraError};
use crate::jwt::JwtVerifier;
use crate::schema::{Session, SessionVariables};

/// Hasura's built-in superuser role.
pub const ADMIN_ROLE: &str = "admin";

/// Who may call the API.
pub enum Auth {
    /// No admin secret configured: every request is admin (Hasura's dev mode).
    Open,
    /// Requests must send this value in `x-hasura-admin-secret`.
    AdminSecret(String),
    /// Requests carry a bearer JWT, or the admin secret to be admin.
    Jwt {
        /// The admin secret.
        admin_secret: String,
        /// Verifies the tokens.
        verifier: Box<JwtVerifier>,
    },
}

/// The role a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Hasura's `admin`: the full schema.
    Admin,
    /// Any other role, from a JWT or chosen with `x-hasura-role`, with its session
    /// variables.
    Role {
        /// The selected role.
        name: String,
        /// The `x-hasura-*` session variables, names lower-cased.
        variables: BTreeMap<String, String>,
    },
}

impl Auth {
    /// Checks a request's headers and says which role it runs as, failing as Hasura does.
    /// With the admin secret (or without one configured) the request is admin unless
    /// `x-hasura-role` names another role, whose session variables are then the request's
    /// `x-hasura-*` headers. A bearer token runs as its default role or the one
    /// `x-hasura-role` picks among its allowed roles, with the token's session variables.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Principal, HasuraError> {
        let sent_secret = headers
            .get("x-hasura-admin-secret")
            .or_else(|| headers.get("x-hasura-access-key"))
            .and_then(|v| v.to_str().ok());
        let wrong_secret = || {
            HasuraError::new(
                Code::AccessDenied,
                "$",
                "invalid x-hasura-admin-secret/x-hasura-access-key",
            )
        };
        let requested_role = headers.get("x-hasura-role").and_then(|v| v.to_str().ok());
        let verifier = match self {
            Auth::Open => return Ok(from_headers(headers, requested_role)),
            Auth::AdminSecret(secret) => {
                return if sent_secret == Some(secret.as_str()) {
                    Ok(from_headers(headers, requested_role))
                } else {
                    Err(wrong_secret())
                };
            }
            Auth::Jwt {
                admin_secret,
                verifier,
            } => match sent_secret {
                Some(sent) if sent == admin_secret => {
                    return Ok(from_headers(headers, requested_role));
                }
                Some(_) => return Err(wrong_secret()),
                None => verifier,
            },
        };
        let authorization = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                HasuraError::new(
                    Code::AccessDenied,
                    "$",
                    "Missing 'Authorization' or 'Cookie' header in JWT authentication mode",
                )
            })?
            .to_str()
            .ok();
        let token = authorization
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                HasuraError::new(Code::InvalidJwt, "$", "Malformed Authorization header")
            })?;
        let claims = verifier.verify(token).await?;
        let requested = requested_role
            .map(str::to_owned)
            .unwrap_or(claims.default_role);
        if !claims.allowed_roles.contains(&requested) {
            return Err(HasuraError::new(
                Code::AccessDenied,
                "$",
                "Your requested role is not in allowed roles",
            ));
        }
        Ok(principal(requested, claims.session_variables))
    }
}

/// The role an admin-level request asks for with its headers.
fn from_headers(headers: &HeaderMap, requested_role: Option<&str>) -> Principal {
    let Some(role) = requested_role else {
        return Principal::Admin;
    };
    let variables = headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str();
            let secret = name == "x-hasura-admin-secret" || name == "x-hasura-access-key";
            (name.starts_with("x-hasura-") && !secret)
                .then(|| Some((name.to_owned(), value.to_str().ok()?.to_owned())))?
        })
        .collect();
    principal(role.to_owned(), variables)
}

/// The request's role; as in Hasura, `x-hasura-role` is itself a session variable.
fn principal(role: String, mut variables: BTreeMap<String, String>) -> Principal {
    if role == ADMIN_ROLE {
        return Principal::Admin;
    }
    variables.insert("x-hasura-role".to_owned(), role.clone());
    Principal::Role {
        name: role,
        variables,
    }
}

/// What every handler shares.
pub struct AppState {
    /// The admin schema.
    pub schema: Schema,
    /// The schema of each role with permissions in metadata.
    pub role_schemas: HashMap<String, Schema>,
    /// The schema of a role without any permission.
    pub no_access_schema: Schema,
    /// Connections to the database.
    pub pool: deadpool_postgres::Pool,
    /// Request authorisation.
    pub auth: Auth,
}

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/graphql", post(graphql))
        .route("/healthz", get(|| async { "OK" }))
        // Batched upserts are large; axum's 2 MB default would cut them short.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

#[derive(Deserialize)]
struct GraphqlBody {
    query: String,
    #[serde(default)]
    variables: Option<Json>,
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
}

async fn graphql(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let principal = match state.auth.check(&headers).await {
        Ok(principal) => principal,
        Err(err) => return text_response(StatusCode::OK, errors_body(&err)),
    };
    // Hasura accepts one request or a batch (a JSON array) answered by an array.
    let (batch, requests) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(message) => {
            let err = HasuraError::new(Code::ParseFailed, "$", message);
            return text_response(StatusCode::BAD_REQUEST, errors_body(&err));
        }
    };
    let mut bodies = Vec::with_capacity(requests.len());
    for request in requests {
        bodies.push(match execute(&state, &principal, request).await {
            // Serialised from async-graphql's value so fields keep the order of the query.
            Ok(data) => match serde_json::to_string(&data) {
                Ok(data) => format!("{{\"data\":{data}}}"),
                Err(e) => errors_body(&HasuraError::new(
                    Code::Unexpected,
                    "$",
                    format!("encoding the response: {e}"),
                )),
            },
            Err(err) => errors_body(&err),
        });
    }
    let body = if batch {
        format!("[{}]", bodies.join(","))
    } else {
        bodies.pop().unwrap_or_default()
    };
    text_response(StatusCode::OK, body)
}

/// Reads one request or a batch; says which it was.
fn parse_body(body: &[u8]) -> Result<(bool, Vec<GraphqlBody>), String> {
    let value: Json = serde_json::from_slice(body).map_err(|e| format!("Error in $: {e}"))?;
    let (batch, items) = match value {
        Json::Array(items) => (true, items),
        one => (false, vec![one]),
    };
    let requests = items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<Vec<GraphqlBody>, _>>()
        .map_err(|e| format!("Error in $: {e}"))?;
    Ok((batch, requests))
}

async fn execute(
    state: &AppState,
    principal: &Principal,
    body: GraphqlBody,
) -> Result<async_graphql::Value, HasuraError> {
    let (schema, variables) = match principal {
        Principal::Admin => (&state.schema, SessionVariables::default()),
        Principal::Role { name, variables } => (
            state
                .role_schemas
                .get(name)
                .unwrap_or(&state.no_access_schema),
            SessionVariables(variables.clone()),
        ),
    };
    let client = state.pool.get().await.map_err(|e| {
        HasuraError::new(
            Code::Unexpected,
            "$",
            format!("database connection error: {e}"),
        )
    })?;
    let session = Arc::new(Session::new(client));
    let mut request = async_graphql::Request::new(body.query.clone())
        .data(session.clone())
        .data(variables);
    if let Some(variables) = body.variables.filter(|v| !v.is_null()) {
        request = request.variables(Variables::from_json(variables));
    }
    if let Some(name) = body.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    let response = schema.execute(request).await;
    let ok = response.errors.is_empty();
    session
        .finish(ok)
        .await
        .map_err(|e| HasuraError::from_pg(&e, "$"))?;
    if let Some(first) = response.errors.first() {
        let err = translate(first, &body.query);
        if err.code == Code::Unexpected {
            tracing::warn!(message = %err.message, path = %err.path, "request failed unexpectedly");
        }
        return Err(err);
    }
    Ok(response.data)
}

fn text_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn errors_body(err: &HasuraError) -> String {
    json!({ "errors": [err.to_json()] }).to_string()
}

/// Turns an async-graphql error into Hasura's: resolver errors carry their code and path;
/// validation errors get Hasura's wording and a path rebuilt from the query.
fn translate(err: &ServerError, query: &str) -> HasuraError {
    let extensions = err
        .extensions
        .as_ref()
        .and_then(|e| serde_json::to_value(e).ok());
    if let Some(code) = extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .and_then(Json::as_str)
    {
        let path = extensions
            .as_ref()
            .and_then(|e| e.get("path"))
            .and_then(Json::as_str)
            .unwrap_or("$");
        let code = match code {
            "constraint-violation" => Code::ConstraintViolation,
            "data-exception" => Code::DataException,
            "access-denied" => Code::AccessDenied,
            "not-found" => Code::NotFound,
            "permission-error" => Code::PermissionError,
            "validation-failed" => Code::ValidationFailed,
            _ => Code::Unexpected,
        };
        return HasuraError::new(code, path, err.message.clone());
    }
    let field_path = err.locations.first().and_then(|pos| {
        async_graphql::parser::parse_query(query)
            .ok()
            .and_then(|doc| locate(&doc, *pos))
    });
    let base = field_path.unwrap_or_else(|| "$".to_owned());
    let message = err.message.as_str();
    // async-graphql's wording for a required variable without a value.
    if let Some(name) = message
        .strip_prefix("Variable ")
        .and_then(|rest| rest.strip_suffix(" is not defined."))
    {
        return HasuraError::validation(
            "$",
            format!("expecting a value for non-nullable variable: \"{name}\""),
        );
    }
    // A role without mutations: its schema has no mutation root.
    if message == "Schema is not configured for mutations." {
        return HasuraError::validation("$", "no mutations exist");
    }
    if let Some((field, ty)) = two_quoted(message, "Unknown field \"", "\" on type \"") {
        return HasuraError::validation(base, format!("field '{field}' not found in type: '{ty}'"));
    }
    if let Some((arg, field)) = two_quoted(message, "Unknown argument \"", "\" on field \"") {
        let parent = base
            .rsplit_once(".args")
            .map(|(p, _)| p.to_owned())
            .unwrap_or(base);
        return HasuraError::validation(parent, format!("'{field}' has no argument named '{arg}'"));
    }
    if let Some((_, arg)) = two_quoted(message, "Field \"", "\" argument \"") {
        return HasuraError::validation(
            format!("{base}.args"),
            format!("missing required field '{arg}'"),
        );
    }
    // Input value errors: `"objects.0.username", expected type "String"`, optionally
    // prefixed by "Invalid value for argument ".
    let detail = message
        .strip_prefix("Invalid value for argument ")
        .unwrap_or(message);
    if let Some((node, reason)) = detail
        .strip_prefix('"')
        .and_then(|rest| rest.split_once("\", "))
    {
        let args = base.find(".args").map_or(base.as_str(), |i| &base[..i]);
        let path = format!("{args}.args.{}", hasura_value_path(node));
        if let Some((field, ty)) = two_quoted(reason, "unknown field \"", "\" of type \"") {
            return HasuraError::validation(
                format!("{path}.{field}"),
                format!("field '{field}' not found in type: '{ty}'"),
            );
        }
        if let Some((field, _)) = two_quoted(reason, "field \"", "\" of type \"")
            && reason.ends_with("is required but not provided")
        {
            return HasuraError::validation(path, format!("missing required field '{field}'"));
        }
        return HasuraError::validation(path, reason.to_owned());
    }
    HasuraError::validation(base, message.to_owned())
}

/// `objects.0.username` as Hasura writes it: `objects[0].username`.
fn hasura_value_path(node: &str) -> String {
    let mut path = String::new();
    for segment in node.split('.') {
        if segment.parse::<usize>().is_ok() {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(segment);
        }
    }
    path
}

/// Finds `<a>...<b>...` where both are followed by a closing quote; returns the two names.
fn two_quoted(message: &str, a: &str, b: &str) -> Option<(String, String)> {
    let start = message.find(a)? + a.len();
    let rest = &message[start..];
    let first_end = rest.find(b)?;
    let first = &rest[..first_end];
    let rest = &rest[first_end + b.len()..];
    let second = &rest[..rest.find('"')?];
    Some((first.to_owned(), second.to_owned()))
}

/// The Hasura-style path (`$.selectionSet.a.selectionSet.b`, `.args.x` for an argument)
/// of the field or argument at `pos`.
fn locate(doc: &ExecutableDocument, pos: Pos) -> Option<String> {
    doc.operations
        .iter()
        .find_map(|(_, op)| locate_in(&op.node.selection_set.node, pos, "$"))
        .or_else(|| {
            doc.fragments
                .values()
                .find_map(|f| locate_in(&f.node.selection_set.node, pos, "$"))
        })
}

fn locate_in(set: &SelectionSet, pos: Pos, prefix: &str) -> Option<String> {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                let here = format!("{prefix}.selectionSet.{key}");
                if field.pos == pos || field.node.name.pos == pos {
                    return Some(here);
                }
                for (name, value) in &field.node.arguments {
                    if name.pos == pos || value.pos == pos {
                        return Some(format!("{here}.args.{}", name.node));
                    }
                }
                if let Some(found) = locate_in(&field.node.selection_set.node, pos, &here) {
                    return Some(found);
                }
            }
            Selection::InlineFragment(fragment) => {
                if let Some(found) = locate_in(&fragment.node.selection_set.node, pos, prefix) {
                    return Some(found);
                }
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    None
}
