//! Errors in the shape Hasura v2 sends them: `{"message", "extensions": {"path", "code"}}`,
//! and the mapping from PostgreSQL errors (SQLSTATE) to Hasura's codes and messages.

use async_graphql::ErrorExtensions as _;
use serde_json::{Value as Json, json};

/// Hasura's `extensions.code` values this engine produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The request does not fit the schema or an argument is unusable.
    ValidationFailed,
    /// A unique, foreign key, not-null, check or exclusion constraint was violated.
    ConstraintViolation,
    /// PostgreSQL rejected a value (bad uuid, number out of range, ...).
    DataException,
    /// Missing or wrong admin secret, no credentials, or a role the token does not allow.
    AccessDenied,
    /// A bearer token that does not verify.
    InvalidJwt,
    /// A verified token without `x-hasura-allowed-roles` or `x-hasura-default-role`.
    JwtMissingRoleClaims,
    /// A permission names a session variable the request does not carry.
    NotFound,
    /// A written row fails the `check` of the role's insert or update permission.
    PermissionError,
    /// Anything else that went wrong on the server side.
    Unexpected,
    /// The request body is not a GraphQL request.
    ParseFailed,
}

impl Code {
    /// The code as Hasura spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ValidationFailed => "validation-failed",
            Code::ConstraintViolation => "constraint-violation",
            Code::DataException => "data-exception",
            Code::AccessDenied => "access-denied",
            Code::InvalidJwt => "invalid-jwt",
            Code::JwtMissingRoleClaims => "jwt-missing-role-claims",
            Code::NotFound => "not-found",
            Code::PermissionError => "permission-error",
            Code::Unexpected => "unexpected",
            Code::ParseFailed => "parse-failed",
        }
    }
}

/// One Hasura error. Deliberately not `Display`: `?` in a resolver then goes through the
/// `From` impl below, which keeps code and path, instead of async-graphql's blanket one.
#[derive(Debug, Clone)]
pub struct HasuraError {
    /// What Hasura puts in `extensions.code`.
    pub code: Code,
    /// Human readable message.
    pub message: String,
    /// JSON path into the request, e.g. `$.selectionSet.cognito_users.args.where`.
    pub path: String,
}

impl HasuraError {
    /// Builds an error.
    pub fn new(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            path: path.into(),
        }
    }

    /// A `validation-failed` error.
    pub fn validation(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Code::ValidationFailed, path, message)
    }

    /// Maps a PostgreSQL error the way Hasura does: constraint classes get a prefix and
    /// `constraint-violation`, data exceptions keep PostgreSQL's message.
    pub fn from_pg(err: &tokio_postgres::Error, path: impl Into<String>) -> Self {
        let Some(db) = err.as_db_error() else {
            return Self::new(
                Code::Unexpected,
                path,
                format!("database query error: {err}"),
            );
        };
        let message = db.message();
        let (code, message) = match db.code().code() {
            "23505" => (
                Code::ConstraintViolation,
                format!("Uniqueness violation. {message}"),
            ),
            "23503" => (
                Code::ConstraintViolation,
                format!("Foreign key violation. {message}"),
            ),
            "23502" => (
                Code::ConstraintViolation,
                format!("Not-NULL violation. {message}"),
            ),
            "23514" => (
                Code::ConstraintViolation,
                format!("Check constraint violation. {message}"),
            ),
            "23P01" => (
                Code::ConstraintViolation,
                format!("Exclusion violation. {message}"),
            ),
            class if class.starts_with("22") => (Code::DataException, message.to_owned()),
            _ => (Code::Unexpected, format!("database query error: {message}")),
        };
        Self::new(code, path, message)
    }

    /// The error as one element of the response's `errors` array.
    pub fn to_json(&self) -> Json {
        json!({
            "message": self.message,
            "extensions": { "path": self.path, "code": self.code.as_str() },
        })
    }

    /// Wraps the error for async-graphql, keeping code and path in its extensions so the
    /// server can rebuild the Hasura shape.
    pub fn into_graphql(self) -> async_graphql::Error {
        let HasuraError {
            code,
            message,
            path,
        } = self;
        async_graphql::Error::new(message).extend_with(|_, e| {
            e.set("code", code.as_str());
            e.set("path", path.as_str());
        })
    }
}

impl From<HasuraError> for async_graphql::Error {
    fn from(err: HasuraError) -> Self {
        err.into_graphql()
    }
}
