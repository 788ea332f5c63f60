//! Cognito Lambda trigger events, as a forwarder function sends them: the common parameters
//! (`version`, `triggerSource`, `region`, `userPoolId`, `userName`, `callerContext`) and the
//! user's attributes in `request.userAttributes`, where `sub` is present once the user exists.

use serde::Deserialize;
use serde_json::Value;

use super::wire::{lenient, parse_sub, typed, visible_username};
use super::{DecodeError, DecodedEvent, EventAction, EventFormat, IgnoreReason, UserRef};

const SHAPE: &str = "Cognito trigger event";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerEvent {
    trigger_source: String,
    user_pool_id: String,
    #[serde(default, deserialize_with = "lenient")]
    user_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    request: Option<TriggerRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TriggerRequest {
    #[serde(default, deserialize_with = "lenient")]
    user_attributes: Option<UserAttributes>,
}

#[derive(Deserialize)]
struct UserAttributes {
    #[serde(default, deserialize_with = "lenient")]
    sub: Option<String>,
}

/// What a trigger source tells about the user it fires for.
enum TriggerKind {
    /// Fires after the user was created, confirmed, signed in or had tokens issued.
    UserChanged,
    Ignore(IgnoreReason),
}

fn classify(trigger_source: &str) -> TriggerKind {
    // A refresh issues tokens for an unchanged user, and is by far the most frequent trigger.
    if trigger_source == "TokenGeneration_RefreshTokens" {
        return TriggerKind::Ignore(IgnoreReason::NoMirroredChange);
    }
    let family = trigger_source
        .split_once('_')
        .map_or(trigger_source, |(family, _)| family);
    match family {
        // Sign-up and migration fire before the user exists; pre-authentication and inbound
        // federation fire before a sign-in that may still be refused.
        "PreSignUp" | "UserMigration" | "PreAuthentication" | "InboundFederation" => {
            TriggerKind::Ignore(IgnoreReason::BeforeChange)
        }
        "CustomMessage"
        | "CustomEmailSender"
        | "CustomSMSSender"
        | "DefineAuthChallenge"
        | "CreateAuthChallenge"
        | "VerifyAuthChallengeResponse" => TriggerKind::Ignore(IgnoreReason::NoMirroredChange),
        // PostConfirmation, PostAuthentication (federated attribute mapping updates the user
        // at each sign-in), TokenGeneration (the only trigger a federated user's first
        // sign-in reliably fires), and sources added after this was written: the forwarder was
        // set up to send them, and re-reading a user is always safe.
        _ => TriggerKind::UserChanged,
    }
}

pub(super) fn decode(value: Value) -> Result<DecodedEvent, DecodeError> {
    let event: TriggerEvent = typed(value, SHAPE)?;
    if event.user_pool_id.is_empty() {
        return Err(DecodeError::MissingPoolId { shape: SHAPE });
    }
    let action = match classify(&event.trigger_source) {
        TriggerKind::Ignore(reason) => EventAction::Ignore(reason),
        TriggerKind::UserChanged => {
            let sub = event
                .request
                .and_then(|request| request.user_attributes)
                .and_then(|attributes| attributes.sub);
            match (
                parse_sub(sub.as_deref()),
                visible_username(event.user_name.as_deref()),
            ) {
                (Some(sub), _) => EventAction::User {
                    user: UserRef::Sub(sub),
                    group: None,
                },
                (None, Some(username)) => EventAction::User {
                    user: UserRef::Username(username),
                    group: None,
                },
                (None, None) => EventAction::PoolWide,
            }
        }
    };
    Ok(DecodedEvent {
        format: EventFormat::CognitoTrigger,
        wrapped_in_sns: false,
        user_pool_id: Some(event.user_pool_id),
        action,
        reason: event.trigger_source,
    })
}
