//! Decoding SQS message bodies into the users and groups they name.
//!
//! A change event is a hint, never the truth: the daemon re-reads whatever an event names from
//! Cognito and writes what Cognito says now. This module only answers "what does this message
//! name?" — it does no I/O, logs nothing and counts nothing; the daemon does that with the
//! [`DecodedEvent`]s and the [`Targets`] it gets from here.
//!
//! [`decode`] detects the shape of one message body:
//!
//! - a raw Cognito Lambda trigger event sent by a forwarder function (`triggerSource`, ...);
//! - an EventBridge event of CloudTrail origin (`detail-type` "AWS API Call via CloudTrail" or
//!   "AWS Service Event via CloudTrail"), or a bare CloudTrail record;
//! - the native format for other producers (`{"user_pool_id": ..., "sub" | "username": ...}`);
//! - any of these wrapped in an SNS notification (`"Type": "Notification"`, payload in
//!   `Message`); SNS raw message delivery is the payload itself and needs no unwrapping.
//!
//! [`reduce`] folds a batch of decoded events into a [`Targets`]: each user and group once, the
//! events of other pools and the ignored ones counted, and whether a pool-wide reconcile is
//! asked for. The table of which event names what is in `docs/events.md`.

mod cloudtrail;
mod native;
mod reduce;
mod trigger;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use reduce::{Targets, reduce};

/// The shape a message body was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFormat {
    /// A Cognito Lambda trigger event, as a forwarder function received it.
    CognitoTrigger,
    /// A CloudTrail record of a Cognito API call (EventBridge "AWS API Call via CloudTrail").
    CloudTrail,
    /// A CloudTrail record of managed login / hosted UI activity ("AWS Service Event via
    /// CloudTrail"): page views, sign-ups and confirmations that are not API calls.
    CloudTrailServiceEvent,
    /// The native format documented in `docs/events.md`.
    Native,
}

impl EventFormat {
    /// A stable lower-case name, fit for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::CognitoTrigger => "cognito_trigger",
            EventFormat::CloudTrail => "cloudtrail",
            EventFormat::CloudTrailServiceEvent => "cloudtrail_service_event",
            EventFormat::Native => "native",
        }
    }
}

impl fmt::Display for EventFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded message: what it names, in which pool, and why it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEvent {
    pub format: EventFormat,
    /// Whether the body was an SNS notification whose `Message` held the event.
    pub wrapped_in_sns: bool,
    /// The user pool the event is about; `None` when the record does not say (CloudTrail
    /// records of unauthenticated calls such as `SignUp` carry a client id, not a pool id).
    pub user_pool_id: Option<String>,
    pub action: EventAction,
    /// The CloudTrail `eventName`, the trigger's `triggerSource` or the native `reason`.
    pub reason: String,
}

/// What an event asks the daemon to re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    /// Re-read one user. `group` is the group a membership change named, if any: the user's
    /// group list comes from re-reading the user; the group is re-read too so that its row
    /// exists.
    User {
        user: UserRef,
        group: Option<String>,
    },
    /// Re-read one group's definition. `deleted` is set for `DeleteGroup`: every former
    /// member's group list changed too, and no record names them.
    Group { name: String, deleted: bool },
    /// The event changed users it does not identify (a hidden username and no sub, a user
    /// import): reconcile the pool early.
    PoolWide,
    /// The event changes nothing the mirror holds: acknowledge it.
    Ignore(IgnoreReason),
}

/// How an event identifies a user. The `sub` is preferred: it is the mirror's key and
/// survives deletion; a username is used only when no sub is given.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserRef {
    Sub(uuid::Uuid),
    Username(String),
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserRef::Sub(sub) => write!(f, "sub {sub}"),
            UserRef::Username(name) => write!(f, "username {name:?}"),
        }
    }
}

/// Why an event changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The recorded call failed (`errorCode` set, or an HTTP error status for managed login).
    FailedCall { error_code: String },
    /// A read-only call (`List*`, `Get*`, `Describe*`, `readOnly: true`).
    ReadOnly,
    /// A call or trigger that changes nothing the mirror holds (sign-in, token refresh,
    /// MFA settings, devices, pool configuration, ...).
    NoMirroredChange,
    /// A trigger that fires before the change it announces (`PreSignUp_*`, `UserMigration_*`,
    /// ...): the user may not exist yet; a later event or the reconcile carries the change.
    BeforeChange,
    /// A sign-up whose record names no user (the hosted UI's `Signup_POST`, a `SignUp`
    /// without its `userSub`): the new user is `UNCONFIRMED` and cannot sign in; the event
    /// that confirms it (`Confirm_POST`, `ConfirmSignUp`, the `PostConfirmation_*` trigger)
    /// names it by sub, and the scheduled reconcile catches one never confirmed. No
    /// pool-wide scan is asked for.
    AwaitsConfirmation,
    /// A Cognito user pool operation this decoder does not know, naming no user.
    UnknownOperation,
    /// A CloudTrail event of another service (for example `aws.cognito-identity`).
    NotUserPool { source: String },
}

impl IgnoreReason {
    /// A stable lower-case name, fit for a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            IgnoreReason::FailedCall { .. } => "failed_call",
            IgnoreReason::ReadOnly => "read_only",
            IgnoreReason::NoMirroredChange => "no_mirrored_change",
            IgnoreReason::BeforeChange => "before_change",
            IgnoreReason::AwaitsConfirmation => "awaits_confirmation",
            IgnoreReason::UnknownOperation => "unknown_operation",
            IgnoreReason::NotUserPool { .. } => "not_user_pool",
        }
    }
}

/// Why a message body could not be decoded. Such a message can never be applied: the daemon
/// leaves it to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("message body is JSON {found}, not an object")]
    NotAnObject { found: &'static str },
    #[error("message body matches no known event shape (top-level keys: {keys})")]
    UnknownShape { keys: String },
    #[error("malformed {shape}: {error}")]
    Malformed {
        shape: &'static str,
        error: serde_json::Error,
    },
    #[error("{shape} has an empty user pool id")]
    MissingPoolId { shape: &'static str },
    #[error("{shape} has an empty `{field}`")]
    EmptyField {
        shape: &'static str,
        field: &'static str,
    },
    #[error("native event's sub {value:?} is not a UUID")]
    InvalidSub { value: String },
    #[error(
        "EventBridge event with detail-type {detail_type:?} (source {event_source:?}) is not a CloudTrail event"
    )]
    NotCloudTrail {
        event_source: String,
        detail_type: String,
    },
    #[error(
        "SNS {message_type} message for topic {topic_arn}: not an event; a cross-account \
         subscription must be confirmed by hand (SubscribeURL in the message)"
    )]
    SnsControlMessage {
        message_type: String,
        topic_arn: String,
    },
    #[error("SNS notification wraps another SNS notification")]
    NestedSns,
    #[error("SNS notification's Message: {0}")]
    SnsMessage(Box<DecodeError>),
}

/// Decodes one SQS message body into what it names.
///
/// # Errors
///
/// A [`DecodeError`] when the body is not JSON, matches no known shape, is malformed for the
/// shape it has, or is an SNS control message rather than an event.
pub fn decode(body: &str) -> Result<DecodedEvent, DecodeError> {
    decode_object(parse_object(body)?, false)
}

fn parse_object(text: &str) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_str::<Value>(text).map_err(DecodeError::NotJson)? {
        Value::Object(object) => Ok(object),
        other => Err(DecodeError::NotAnObject {
            found: json_kind(&other),
        }),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The shapes a body can have, told apart by their top-level keys, checked in this order.
enum Shape {
    Sns,
    EventBridge,
    CloudTrailRecord,
    Trigger,
    Native,
}

impl Shape {
    fn detect(object: &Map<String, Value>) -> Result<Shape, DecodeError> {
        let has = |key: &str| object.contains_key(key);
        if has("Type") && has("TopicArn") {
            Ok(Shape::Sns)
        } else if has("detail-type") && has("source") && has("detail") {
            Ok(Shape::EventBridge)
        } else if has("triggerSource") {
            Ok(Shape::Trigger)
        } else if has("eventSource") && has("eventName") {
            Ok(Shape::CloudTrailRecord)
        } else if has("user_pool_id") {
            Ok(Shape::Native)
        } else {
            Err(DecodeError::UnknownShape {
                keys: describe_keys(object),
            })
        }
    }
}

/// Names the top-level keys for an error message, bounded so a huge body stays readable.
fn describe_keys(object: &Map<String, Value>) -> String {
    const MAX_KEYS: usize = 12;
    if object.is_empty() {
        return "none".to_owned();
    }
    let mut keys: Vec<String> = object
        .keys()
        .take(MAX_KEYS)
        .map(|key| format!("{:?}", key.chars().take(40).collect::<String>()))
        .collect();
    if object.len() > MAX_KEYS {
        keys.push(format!("... {} more", object.len() - MAX_KEYS));
    }
    keys.join(", ")
}

/// The SNS fields that matter here.
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    message_type: String,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Message")]
    message: String,
}

fn decode_object(object: Map<String, Value>, in_sns: bool) -> Result<DecodedEvent, DecodeError> {
    let shape = Shape::detect(&object)?;
    let value = Value::Object(object);
    let mut event = match shape {
        Shape::Sns if in_sns => return Err(DecodeError::NestedSns),
        Shape::Sns => return decode_sns(value),
        Shape::EventBridge => cloudtrail::decode_eventbridge(value)?,
        Shape::CloudTrailRecord => cloudtrail::decode_bare_record(value)?,
        Shape::Trigger => trigger::decode(value)?,
        Shape::Native => native::decode(value)?,
    };
    event.wrapped_in_sns = in_sns;
    Ok(event)
}

fn decode_sns(value: Value) -> Result<DecodedEvent, DecodeError> {
    let envelope: SnsEnvelope = wire::typed(value, "SNS message")?;
    if envelope.message_type != "Notification" {
        return Err(DecodeError::SnsControlMessage {
            message_type: envelope.message_type,
            topic_arn: envelope.topic_arn,
        });
    }
    parse_object(&envelope.message)
        .and_then(|inner| decode_object(inner, true))
        .map_err(|error| match error {
            DecodeError::NestedSns => DecodeError::NestedSns,
            other => DecodeError::SnsMessage(Box::new(other)),
        })
}
