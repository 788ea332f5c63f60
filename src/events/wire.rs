//! Serde helpers shared by the shape decoders: typed parsing with a shape name in the error,
//! and lenient fields for records whose schema AWS does not promise.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::DecodeError;

/// Values Cognito writes into CloudTrail instead of a username or other private field.
const HIDDEN_VALUES: [&str; 2] = [
    "HIDDEN_DUE_TO_SECURITY_REASONS",
    "HIDDEN_FOR_SECURITY_REASONS",
];

/// Parses a detected shape into its typed struct; a failure names the shape.
pub(super) fn typed<T: DeserializeOwned>(
    value: Value,
    shape: &'static str,
) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|error| DecodeError::Malformed { shape, error })
}

/// A field that is `None` unless it holds a `T`. CloudTrail records have no published schema
/// per operation and hide private fields behind strings (an attribute list can be
/// `"HIDDEN_DUE_TO_SECURITY_REASONS"`), so an unexpected type means "not given", which leads
/// to the conservative outcome (re-read more), instead of failing the whole message.
pub(super) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Whether Cognito replaced this value with its "hidden" marker.
pub(super) fn is_hidden(value: &str) -> bool {
    HIDDEN_VALUES.contains(&value)
}

/// A username as a reference, unless it is empty or hidden.
pub(super) fn visible_username(value: Option<&str>) -> Option<String> {
    value
        .filter(|name| !name.is_empty() && !is_hidden(name))
        .map(str::to_owned)
}

/// A sub as a UUID; anything else (hidden, empty, not a UUID) is no sub.
pub(super) fn parse_sub(value: Option<&str>) -> Option<uuid::Uuid> {
    value.and_then(|sub| uuid::Uuid::parse_str(sub).ok())
}

/// A pool id, unless empty.
pub(super) fn pool_id(value: Option<String>) -> Option<String> {
    value.filter(|pool| !pool.is_empty())
}
