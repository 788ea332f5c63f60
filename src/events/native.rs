//! The native event format for producers other than AWS (documented in `docs/events.md`):
//! `{"user_pool_id": ..., "sub" | "username": ..., "group": ..., "reason": ...}`.
//!
//! Unknown fields are refused: a misspelt `"usrname"` would otherwise turn a one-user hint
//! into a pool-wide reconcile without anyone noticing.

use serde::Deserialize;
use serde_json::Value;

use super::wire::typed;
use super::{DecodeError, DecodedEvent, EventAction, EventFormat, UserRef};

const SHAPE: &str = "native event";

/// The `reason` recorded when a producer gives none.
const DEFAULT_REASON: &str = "unspecified";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeEvent {
    user_pool_id: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A present field must not be empty: an empty name names nothing.
fn non_empty(value: Option<String>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match value {
        Some(text) if text.is_empty() => Err(DecodeError::EmptyField {
            shape: SHAPE,
            field,
        }),
        other => Ok(other),
    }
}

pub(super) fn decode(value: Value) -> Result<DecodedEvent, DecodeError> {
    let event: NativeEvent = typed(value, SHAPE)?;
    if event.user_pool_id.is_empty() {
        return Err(DecodeError::MissingPoolId { shape: SHAPE });
    }
    let sub = match non_empty(event.sub, "sub")? {
        Some(text) => Some(
            uuid::Uuid::parse_str(&text).map_err(|_| DecodeError::InvalidSub { value: text })?,
        ),
        None => None,
    };
    let username = non_empty(event.username, "username")?;
    let group = non_empty(event.group, "group")?;
    // The sub wins over a username given alongside it: it is the mirror's key.
    let user = sub.map(UserRef::Sub).or(username.map(UserRef::Username));
    let action = match (user, group) {
        (Some(user), group) => EventAction::User { user, group },
        (None, Some(name)) => EventAction::Group {
            name,
            deleted: false,
        },
        (None, None) => EventAction::PoolWide,
    };
    Ok(DecodedEvent {
        format: EventFormat::Native,
        wrapped_in_sns: false,
        user_pool_id: Some(event.user_pool_id),
        action,
        reason: event
            .reason
            .filter(|reason| !reason.is_empty())
            .unwrap_or_else(|| DEFAULT_REASON.to_owned()),
    })
}
