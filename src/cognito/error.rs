//! The reader's error type and the one classifier that decides, for every failed Cognito
//! request, whether to slow down and retry, retry, or give up.

use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// A Cognito read that failed for good.
#[derive(Debug, thiserror::Error)]
pub enum CognitoError {
    #[error(
        "user pool {pool} does not exist for these AWS credentials: check COGNITO_USER_POOL_ID and that the credentials are of the pool's account"
    )]
    PoolNotFound { pool: String },
    /// A group named by the caller is gone (deleted since it was listed).
    #[error("group {group:?} does not exist in user pool {pool}")]
    GroupNotFound { pool: String, group: String },
    /// The pagination token expired or does not match the request: restart the shard.
    #[error("user pool {pool}: pagination token of shard {shard:?} was rejected")]
    PaginationTokenRejected { pool: String, shard: String },
    /// A listing the reader pages through itself had its token rejected again after being
    /// started over `restarts` times (the pool is changing faster than it can be listed).
    #[error(
        "user pool {pool}: {operation} pagination token rejected after {restarts} restarts of the listing: {message}"
    )]
    ListingRestartsExhausted {
        pool: String,
        operation: &'static str,
        restarts: u32,
        message: String,
    },
    /// The reader's cancellation token fired while the call waited or retried.
    #[error("user pool {pool}: {operation} cancelled")]
    Cancelled {
        pool: String,
        operation: &'static str,
    },
    #[error("user pool {pool}: access denied to {operation}: {message}")]
    AccessDenied {
        pool: String,
        operation: &'static str,
        message: String,
    },
    /// Cognito answered something the reader cannot use (e.g. a user without a `sub`).
    #[error("user pool {pool}: unusable {operation} response: {message}")]
    InvalidResponse {
        pool: String,
        operation: &'static str,
        message: String,
    },
    /// Any other failure; `retryable` says whether it gave up only because retries ran out.
    #[error("user pool {pool}: {operation} failed: {message}")]
    Api {
        pool: String,
        operation: &'static str,
        message: String,
        retryable: bool,
    },
}

/// What to do about one failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Slow the shared limiter down, back off, retry.
    Throttled,
    /// Back off and retry, a bounded number of times; the reason names it in telemetry.
    Transient(&'static str),
    /// Give up now.
    Permanent(Permanent),
}

/// The permanent failures callers tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permanent {
    /// ResourceNotFoundException: the pool, or the group of a group call.
    ResourceNotFound,
    /// UserNotFoundException: a single-user read found nobody.
    UserNotFound,
    AccessDenied,
    PaginationTokenRejected,
    /// Not Cognito's answer: the caller cancelled the reader.
    Cancelled,
    Other,
}

impl Permanent {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Permanent::ResourceNotFound => "not_found",
            Permanent::UserNotFound => "user_not_found",
            Permanent::AccessDenied => "access_denied",
            Permanent::PaginationTokenRejected => "pagination_token_rejected",
            Permanent::Cancelled => "cancelled",
            Permanent::Other => "rejected",
        }
    }
}

/// The facts about a failed request that the classifier looks at, taken out of the SDK's
/// error so the decisions can be tested without an HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Cognito answered with an error document.
    Service {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The attempt timed out.
    Timeout,
    /// The request did not get an answer: connection refused or reset, DNS, TLS.
    Network,
    /// The SDK could not build or send the request (bad input, missing credentials).
    Local(String),
    /// An answer arrived but could not be read.
    BadResponse(String),
    /// The reader was cancelled before an answer arrived.
    Cancelled,
}

impl Failure {
    pub(crate) fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::ServiceError(service) => Failure::Service {
                status: service.raw().status().as_u16(),
                code: service.err().code().map(str::to_owned),
                message: service
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| DisplayErrorContext(service.err()).to_string()),
            },
            SdkError::TimeoutError(_) => Failure::Timeout,
            SdkError::DispatchFailure(dispatch) if dispatch.is_timeout() => Failure::Timeout,
            SdkError::DispatchFailure(dispatch) if dispatch.is_io() => Failure::Network,
            SdkError::DispatchFailure(dispatch) if dispatch.is_user() => {
                Failure::Local(DisplayErrorContext(err).to_string())
            }
            // Other dispatch failures (e.g. the connection dropped mid-request) are transient.
            SdkError::DispatchFailure(_) => Failure::Network,
            SdkError::ResponseError(_) => {
                Failure::BadResponse(DisplayErrorContext(err).to_string())
            }
            _ => Failure::Local(DisplayErrorContext(err).to_string()),
        }
    }

    /// The one retry classifier. `sent_token` says whether the request carried a pagination
    /// token, which is what an InvalidParameterException about a token refers to.
    pub(crate) fn verdict(&self, sent_token: bool) -> Verdict {
        let (status, code, message) = match self {
            Failure::Service {
                status,
                code,
                message,
            } => (*status, code.as_deref(), message.as_str()),
            Failure::Timeout => return Verdict::Transient("timeout"),
            Failure::Network => return Verdict::Transient("network"),
            Failure::BadResponse(_) => return Verdict::Transient("bad_response"),
            Failure::Local(_) => return Verdict::Permanent(Permanent::Other),
            Failure::Cancelled => return Verdict::Permanent(Permanent::Cancelled),
        };
        match code {
            Some(
                "TooManyRequestsException"
                | "LimitExceededException"
                | "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded",
            ) => Verdict::Throttled,
            Some("ResourceNotFoundException") => Verdict::Permanent(Permanent::ResourceNotFound),
            Some("UserNotFoundException") => Verdict::Permanent(Permanent::UserNotFound),
            Some(
                "NotAuthorizedException"
                | "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "ExpiredTokenException",
            ) => Verdict::Permanent(Permanent::AccessDenied),
            // moto's paginator answers a stale or mismatched token with `InvalidToken`.
            Some("InvalidToken") if sent_token => {
                Verdict::Permanent(Permanent::PaginationTokenRejected)
            }
            // Cognito: "Paging marker ... is invalid for request ..." and similar.
            Some("InvalidParameterException") if sent_token && mentions_token(message) => {
                Verdict::Permanent(Permanent::PaginationTokenRejected)
            }
            Some("InternalErrorException" | "InternalFailure" | "ServiceUnavailable") => {
                Verdict::Transient("server_error")
            }
            _ if status == 429 => Verdict::Throttled,
            _ if status >= 500 => Verdict::Transient("server_error"),
            _ => Verdict::Permanent(Permanent::Other),
        }
    }

    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Failure::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Service {
                status,
                code,
                message,
            } => {
                format!(
                    "{} (HTTP {status}): {message}",
                    code.as_deref().unwrap_or("unknown error")
                )
            }
            Failure::Timeout => "request timed out".to_owned(),
            Failure::Network => "network error".to_owned(),
            Failure::Cancelled => "cancelled".to_owned(),
            Failure::Local(message) | Failure::BadResponse(message) => message.clone(),
        }
    }
}

fn mentions_token(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["pagination", "paging marker", "token"]
        .iter()
        .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str, message: &str) -> Failure {
        Failure::Service {
            status,
            code: Some(code.to_owned()),
            message: message.to_owned(),
        }
    }

    #[test]
    fn throttling_codes_slow_down() {
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "ThrottlingException",
        ] {
            assert_eq!(
                service(400, code, "Rate exceeded").verdict(false),
                Verdict::Throttled,
                "{code}"
            );
        }
        let no_code = Failure::Service {
            status: 429,
            code: None,
            message: String::new(),
        };
        assert_eq!(no_code.verdict(false), Verdict::Throttled);
    }

    #[test]
    fn server_and_network_errors_are_transient() {
        assert_eq!(
            service(500, "InternalErrorException", "boom").verdict(false),
            Verdict::Transient("server_error")
        );
        let bare_500 = Failure::Service {
            status: 503,
            code: None,
            message: String::new(),
        };
        assert_eq!(bare_500.verdict(true), Verdict::Transient("server_error"));
        assert_eq!(
            Failure::Timeout.verdict(false),
            Verdict::Transient("timeout")
        );
        assert_eq!(
            Failure::Network.verdict(false),
            Verdict::Transient("network")
        );
        assert_eq!(
            Failure::BadResponse("eof".into()).verdict(false),
            Verdict::Transient("bad_response")
        );
    }

    #[test]
    fn not_found_and_access_errors_are_permanent() {
        let permanent = |f: Failure| match f.verdict(false) {
            Verdict::Permanent(p) => p,
            other => panic!("{f:?} classified as {other:?}"),
        };
        assert_eq!(
            permanent(service(400, "ResourceNotFoundException", "pool")),
            Permanent::ResourceNotFound
        );
        assert_eq!(
            permanent(service(
                400,
                "UserNotFoundException",
                "User does not exist."
            )),
            Permanent::UserNotFound
        );
        assert_eq!(
            permanent(service(400, "NotAuthorizedException", "no")),
            Permanent::AccessDenied
        );
        assert_eq!(
            permanent(service(403, "AccessDeniedException", "no")),
            Permanent::AccessDenied
        );
        assert_eq!(
            permanent(service(400, "InvalidParameterException", "bad filter")),
            Permanent::Other
        );
        assert_eq!(
            permanent(Failure::Local("no credentials".into())),
            Permanent::Other
        );
        assert_eq!(permanent(Failure::Cancelled), Permanent::Cancelled);
    }

    #[test]
    fn token_rejection_needs_a_token_in_the_request() {
        let cognito = service(
            400,
            "InvalidParameterException",
            "Paging marker CAIS is invalid for request 1234",
        );
        assert_eq!(
            cognito.verdict(true),
            Verdict::Permanent(Permanent::PaginationTokenRejected)
        );
        assert_eq!(cognito.verdict(false), Verdict::Permanent(Permanent::Other));
        let moto = service(
            400,
            "InvalidToken",
            "Invalid Token: Input inconsistent with page token",
        );
        assert_eq!(
            moto.verdict(true),
            Verdict::Permanent(Permanent::PaginationTokenRejected)
        );
        let other_param = service(400, "InvalidParameterException", "Limit must be <= 60");
        assert_eq!(
            other_param.verdict(true),
            Verdict::Permanent(Permanent::Other)
        );
    }

    #[test]
    fn message_names_code_and_status() {
        assert_eq!(service(400, "X", "why").message(), "X (HTTP 400): why");
        assert_eq!(service(400, "X", "why").code(), Some("X"));
    }
}
