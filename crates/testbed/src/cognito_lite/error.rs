//! The errors cognito-lite answers with: Cognito's error codes and messages, sent in the AWS
//! JSON protocol shape the FaultProxy also uses, so the SDK parses the same typed errors.

use axum::http::StatusCode;
use axum::response::Response;

/// One Cognito error: the `__type` code and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// `InvalidParameterException`, `UserNotFoundException`, ...
    pub code: &'static str,
    /// What Cognito says, as close to the service's wording as known.
    pub message: String,
}

impl ApiError {
    fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterException", message)
    }

    pub(crate) fn invalid_password(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidPasswordException", message)
    }

    /// The pool does not exist; the message names it (the reader tells a missing pool from a
    /// missing group by this).
    pub(crate) fn pool_not_found(pool_id: &str) -> ApiError {
        ApiError::new(
            "ResourceNotFoundException",
            format!("User pool {pool_id} does not exist."),
        )
    }

    pub(crate) fn client_not_found(client_id: &str) -> ApiError {
        ApiError::new(
            "ResourceNotFoundException",
            format!("User pool client {client_id} does not exist."),
        )
    }

    pub(crate) fn group_not_found() -> ApiError {
        ApiError::new("ResourceNotFoundException", "Group not found.")
    }

    pub(crate) fn user_not_found() -> ApiError {
        ApiError::new("UserNotFoundException", "User does not exist.")
    }

    pub(crate) fn username_exists(message: &str) -> ApiError {
        ApiError::new("UsernameExistsException", message)
    }

    pub(crate) fn group_exists(name: &str) -> ApiError {
        ApiError::new(
            "GroupExistsException",
            format!("A group with the name {name} already exists."),
        )
    }

    pub(crate) fn unknown_operation(target: &str) -> ApiError {
        ApiError::new(
            "UnknownOperationException",
            format!("cognito-lite does not implement {target:?}"),
        )
    }

    /// Cognito's wording for a pagination token it does not accept.
    pub(crate) fn bad_token(token: &str) -> ApiError {
        ApiError::invalid_parameter(format!(
            "Paging marker {token} is invalid for request {}",
            uuid::Uuid::new_v4()
        ))
    }

    /// The HTTP answer: status 400, `x-amzn-ErrorType`, `{"__type", "message"}`.
    pub(crate) fn into_response(self) -> Response {
        crate::proxy::aws_error(StatusCode::BAD_REQUEST, self.code, &self.message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
