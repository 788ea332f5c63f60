//! CloudTrail records of Cognito user pool activity, in an EventBridge envelope
//! (`source` `aws.cognito-idp`) or bare.
//!
//! Two kinds of record: API calls (`eventType` `AwsApiCall`, EventBridge detail-type "AWS API
//! Call via CloudTrail") and managed login / hosted UI activity (`AwsServiceEvent`, "AWS
//! Service Event via CloudTrail"). Cognito hides usernames in both
//! (`HIDDEN_DUE_TO_SECURITY_REASONS`) and records the user's `sub` instead: in
//! `additionalEventData.sub` for API calls, in `additionalEventData.requestParameters.sub`
//! (a list, like every hosted UI request parameter) for service events. Users are identified
//! by that sub, never by a hidden username. The table of operations is in `docs/events.md`.

use serde::Deserialize;
use serde_json::Value;

use super::wire::{lenient, parse_sub, pool_id, typed, visible_username};
use super::{DecodeError, DecodedEvent, EventAction, EventFormat, IgnoreReason, UserRef};

const USER_POOL_EVENT_SOURCE: &str = "cognito-idp.amazonaws.com";
const API_CALL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
const SERVICE_EVENT_DETAIL_TYPE: &str = "AWS Service Event via CloudTrail";
const SERVICE_EVENT_TYPE: &str = "AwsServiceEvent";

#[derive(Deserialize)]
struct EventBridgeEnvelope {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_source: String,
    event_name: String,
    #[serde(default, deserialize_with = "lenient")]
    event_type: Option<String>,
    /// `null`, absent or `""` on success (managed login events write `""`).
    #[serde(default, deserialize_with = "lenient")]
    error_code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    read_only: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    request_parameters: Option<RequestParameters>,
    #[serde(default, deserialize_with = "lenient")]
    response_elements: Option<ResponseElements>,
    #[serde(default, deserialize_with = "lenient")]
    additional_event_data: Option<AdditionalEventData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestParameters {
    #[serde(default, deserialize_with = "lenient")]
    user_pool_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    username: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    group_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseElements {
    /// `SignUp` answers with the new user's sub.
    #[serde(default, deserialize_with = "lenient")]
    user_sub: Option<String>,
    /// `AdminCreateUser` answers with the user, attributes included unless hidden.
    #[serde(default, deserialize_with = "lenient")]
    user: Option<ResponseUser>,
}

#[derive(Deserialize)]
struct ResponseUser {
    #[serde(default, deserialize_with = "lenient")]
    attributes: Option<Vec<Attribute>>,
}

#[derive(Deserialize)]
struct Attribute {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdditionalEventData {
    #[serde(default, deserialize_with = "lenient")]
    sub: Option<String>,
    /// Service events carry the pool here (API calls have it in `requestParameters`).
    #[serde(default, deserialize_with = "lenient")]
    user_pool_id: Option<String>,
    /// Service events: the hosted UI request's parameters, each a list of strings.
    #[serde(default, deserialize_with = "lenient")]
    request_parameters: Option<ServiceRequestParameters>,
    #[serde(default, deserialize_with = "lenient")]
    response_parameters: Option<ServiceResponseParameters>,
}

#[derive(Deserialize)]
struct ServiceRequestParameters {
    #[serde(default, deserialize_with = "lenient")]
    sub: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ServiceResponseParameters {
    /// The HTTP status the hosted UI answered (written as `200` or `200.0`).
    #[serde(default, deserialize_with = "lenient")]
    status: Option<f64>,
}

impl Record {
    fn additional(&self) -> Option<&AdditionalEventData> {
        self.additional_event_data.as_ref()
    }

    fn user_pool_id(&self) -> Option<String> {
        let from_request = self
            .request_parameters
            .as_ref()
            .and_then(|request| request.user_pool_id.clone());
        pool_id(from_request)
            .or_else(|| pool_id(self.additional().and_then(|data| data.user_pool_id.clone())))
    }

    /// The failure code of a failed call: `errorCode` when set and not empty.
    fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref().filter(|code| !code.is_empty())
    }

    /// The sub of an API call's user: `additionalEventData.sub`, else what the response says
    /// (`SignUp`'s `userSub`, `AdminCreateUser`'s `sub` attribute when not hidden).
    fn api_call_sub(&self) -> Option<uuid::Uuid> {
        let response = self.response_elements.as_ref();
        parse_sub(self.additional().and_then(|data| data.sub.as_deref()))
            .or_else(|| parse_sub(response.and_then(|response| response.user_sub.as_deref())))
            .or_else(|| {
                let attributes = response?.user.as_ref()?.attributes.as_ref()?;
                let sub = attributes
                    .iter()
                    .find(|attribute| attribute.name == "sub")?;
                parse_sub(sub.value.as_deref())
            })
    }

    /// The user an API call names: its sub, else a username that is not hidden.
    fn api_call_user(&self) -> Option<UserRef> {
        self.api_call_sub().map(UserRef::Sub).or_else(|| {
            let username = self
                .request_parameters
                .as_ref()
                .and_then(|request| request.username.as_deref());
            visible_username(username).map(UserRef::Username)
        })
    }

    fn group_name(&self) -> Option<String> {
        let name = self
            .request_parameters
            .as_ref()
            .and_then(|request| request.group_name.clone());
        name.filter(|name| !name.is_empty())
    }

    /// The sub of a service event: the hosted UI form's `sub` field, else `additionalEventData.sub`.
    fn service_event_sub(&self) -> Option<uuid::Uuid> {
        let data = self.additional()?;
        let from_form = data
            .request_parameters
            .as_ref()
            .and_then(|params| params.sub.as_ref());
        from_form
            .and_then(|subs| subs.iter().find_map(|sub| parse_sub(Some(sub))))
            .or_else(|| parse_sub(data.sub.as_deref()))
    }

    fn service_event_status(&self) -> Option<f64> {
        self.additional()?.response_parameters.as_ref()?.status
    }
}

pub(super) fn decode_eventbridge(value: Value) -> Result<DecodedEvent, DecodeError> {
    let envelope: EventBridgeEnvelope = typed(value, "EventBridge event")?;
    let format = match envelope.detail_type.as_str() {
        API_CALL_DETAIL_TYPE => EventFormat::CloudTrail,
        SERVICE_EVENT_DETAIL_TYPE => EventFormat::CloudTrailServiceEvent,
        _ => {
            return Err(DecodeError::NotCloudTrail {
                event_source: envelope.source,
                detail_type: envelope.detail_type,
            });
        }
    };
    let record: Record = typed(envelope.detail, "CloudTrail record (EventBridge detail)")?;
    Ok(decode_record(record, format))
}

pub(super) fn decode_bare_record(value: Value) -> Result<DecodedEvent, DecodeError> {
    let record: Record = typed(value, "CloudTrail record")?;
    let format = match record.event_type.as_deref() {
        Some(SERVICE_EVENT_TYPE) => EventFormat::CloudTrailServiceEvent,
        _ => EventFormat::CloudTrail,
    };
    Ok(decode_record(record, format))
}

fn decode_record(record: Record, format: EventFormat) -> DecodedEvent {
    let action = if record.event_source != USER_POOL_EVENT_SOURCE {
        EventAction::Ignore(IgnoreReason::NotUserPool {
            source: record.event_source.clone(),
        })
    } else if format == EventFormat::CloudTrailServiceEvent {
        service_event_action(&record)
    } else {
        api_call_action(&record)
    };
    DecodedEvent {
        format,
        wrapped_in_sns: false,
        user_pool_id: record.user_pool_id(),
        action,
        reason: record.event_name,
    }
}

/// What a user pool API call changes, by operation name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// Changes one user (created, deleted, enabled, attributes, status, linked identities).
    User,
    /// Adds a user to a group or removes one: the user's group list changes.
    Membership,
    /// Creates or updates a group's definition.
    Group,
    /// Deletes a group: its members' group lists change too.
    GroupDeleted,
    /// Changes users no record names.
    PoolWide,
    /// Changes nothing the mirror holds.
    NoMirroredChange,
    /// Reads only.
    ReadOnly,
    /// Not in this table.
    Unlisted,
}

fn classify(event_name: &str) -> Operation {
    match event_name {
        "AdminCreateUser" | "AdminDeleteUser" | "DeleteUser" | "AdminDisableUser" | "AdminEnableUser"
        | "AdminUpdateUserAttributes" | "UpdateUserAttributes" | "AdminDeleteUserAttributes"
        | "DeleteUserAttributes" | "VerifyUserAttribute" | "SignUp" | "ConfirmSignUp" | "AdminConfirmSignUp"
        | "AdminSetUserPassword" | "AdminResetUserPassword" | "ConfirmForgotPassword"
        // Answering NEW_PASSWORD_REQUIRED moves a user out of FORCE_CHANGE_PASSWORD.
        | "RespondToAuthChallenge" | "AdminRespondToAuthChallenge"
        | "AdminLinkProviderForUser" | "AdminDisableProviderForUser" => Operation::User,
        "AdminAddUserToGroup" | "AdminRemoveUserFromGroup" => Operation::Membership,
        "CreateGroup" | "UpdateGroup" => Operation::Group,
        "DeleteGroup" => Operation::GroupDeleted,
        // An import job creates and updates users with no record per user.
        "StartUserImportJob" | "DeleteUserPool" => Operation::PoolWide,
        // Sign-in, passwords, MFA, devices, sessions: none of it is mirrored.
        "InitiateAuth" | "AdminInitiateAuth" | "ChangePassword" | "ForgotPassword" | "ResendConfirmationCode"
        | "GlobalSignOut" | "AdminUserGlobalSignOut" | "RevokeToken" | "SetUserMFAPreference"
        | "AdminSetUserMFAPreference" | "SetUserSettings" | "AdminSetUserSettings" | "AssociateSoftwareToken"
        | "VerifySoftwareToken" | "ConfirmDevice" | "ForgetDevice" | "AdminForgetDevice" | "UpdateDeviceStatus"
        | "AdminUpdateDeviceStatus" | "UpdateAuthEventFeedback" | "AdminUpdateAuthEventFeedback"
        | "StartWebAuthnRegistration" | "CompleteWebAuthnRegistration" | "DeleteWebAuthnCredential"
        // Pool configuration.
        | "CreateUserPool" | "UpdateUserPool" | "AddCustomAttributes" | "CreateUserPoolClient"
        | "UpdateUserPoolClient" | "DeleteUserPoolClient" | "CreateUserPoolDomain" | "UpdateUserPoolDomain"
        | "DeleteUserPoolDomain" | "CreateIdentityProvider" | "UpdateIdentityProvider" | "DeleteIdentityProvider"
        | "CreateResourceServer" | "UpdateResourceServer" | "DeleteResourceServer" | "SetUICustomization"
        | "SetRiskConfiguration" | "SetUserPoolMfaConfig" | "SetLogDeliveryConfiguration"
        | "CreateUserImportJob" | "StopUserImportJob" | "TagResource" | "UntagResource" => {
            Operation::NoMirroredChange
        }
        name if ["Get", "List", "Describe", "AdminGet", "AdminList"].iter().any(|prefix| name.starts_with(prefix)) => {
            Operation::ReadOnly
        }
        _ => Operation::Unlisted,
    }
}

fn api_call_action(record: &Record) -> EventAction {
    if let Some(code) = record.error_code() {
        return EventAction::Ignore(IgnoreReason::FailedCall {
            error_code: code.to_owned(),
        });
    }
    let user_or_pool = |group: Option<String>| match record.api_call_user() {
        Some(user) => EventAction::User { user, group },
        // The username is hidden and no sub was recorded: the changed user is unknown.
        None => EventAction::PoolWide,
    };
    let operation = classify(&record.event_name);
    match operation {
        // The record of a sign-up normally has the new user's sub (`userSub`); one without it
        // leaves the user to its confirmation, which names it.
        Operation::User if record.event_name == "SignUp" && record.api_call_user().is_none() => {
            EventAction::Ignore(IgnoreReason::AwaitsConfirmation)
        }
        Operation::User => user_or_pool(None),
        Operation::Membership => user_or_pool(record.group_name()),
        Operation::Group | Operation::GroupDeleted => match record.group_name() {
            Some(name) => EventAction::Group {
                name,
                deleted: operation == Operation::GroupDeleted,
            },
            None => EventAction::PoolWide,
        },
        Operation::PoolWide => EventAction::PoolWide,
        Operation::NoMirroredChange => EventAction::Ignore(IgnoreReason::NoMirroredChange),
        Operation::ReadOnly => EventAction::Ignore(IgnoreReason::ReadOnly),
        Operation::Unlisted if record.read_only == Some(true) => {
            EventAction::Ignore(IgnoreReason::ReadOnly)
        }
        // A new operation that names a user: re-reading that user is cheap and always safe.
        Operation::Unlisted => match record.api_call_sub() {
            Some(sub) => EventAction::User {
                user: UserRef::Sub(sub),
                group: None,
            },
            None => EventAction::Ignore(IgnoreReason::UnknownOperation),
        },
    }
}

/// The hosted UI event that creates a user without recording its sub.
const HOSTED_UI_SIGN_UP: &str = "Signup_POST";

fn service_event_action(record: &Record) -> EventAction {
    if let Some(code) = record.error_code() {
        return EventAction::Ignore(IgnoreReason::FailedCall {
            error_code: code.to_owned(),
        });
    }
    if let Some(status) = record
        .service_event_status()
        .filter(|status| *status >= 400.0)
    {
        return EventAction::Ignore(IgnoreReason::FailedCall {
            error_code: format!("HTTP {status}"),
        });
    }
    if record.read_only == Some(true) {
        return EventAction::Ignore(IgnoreReason::ReadOnly);
    }
    match record.service_event_sub() {
        Some(sub) => EventAction::User {
            user: UserRef::Sub(sub),
            group: None,
        },
        // The user is UNCONFIRMED; the hosted UI's confirmation (`Confirm_POST`, with the sub
        // in its form) or the PostConfirmation trigger names it.
        None if record.event_name == HOSTED_UI_SIGN_UP => {
            EventAction::Ignore(IgnoreReason::AwaitsConfirmation)
        }
        // Sign-in pages, token exchanges, federated callbacks without a sub: nothing names a
        // change; federated users are caught by TokenGeneration_* triggers or the reconcile.
        None => EventAction::Ignore(IgnoreReason::NoMirroredChange),
    }
}
