//! Decoder tests: one per shape, from fixtures modelled on AWS's documented records in
//! `tests/fixtures/events/`, and one per edge.

use uuid::Uuid;

use super::*;

const OUR_POOL: &str = "us-east-1_Ab12Cd34E";
const ALICE: &str = "5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f";
const CREATED: &str = "3b2f1e0d-9c8b-4a7f-b6e5-d4c3b2a1f0e9";
const SIGNED_UP: &str = "7c6d5e4f-3a2b-4c1d-8e0f-9a8b7c6d5e4f";
const FEDERATED: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/events/",
            $name,
            ".json"
        ))
    };
}

fn decoded(body: &str) -> DecodedEvent {
    decode(body).unwrap_or_else(|error| panic!("decode failed: {error}"))
}

fn sub_user(sub: &str) -> EventAction {
    EventAction::User {
        user: UserRef::Sub(Uuid::parse_str(sub).unwrap()),
        group: None,
    }
}

fn assert_event(
    event: &DecodedEvent,
    format: EventFormat,
    pool: Option<&str>,
    action: EventAction,
    reason: &str,
) {
    assert_eq!(event.format, format, "{event:?}");
    assert_eq!(event.user_pool_id.as_deref(), pool, "{event:?}");
    assert_eq!(event.action, action, "{event:?}");
    assert_eq!(event.reason, reason, "{event:?}");
}

// --- Cognito trigger events -------------------------------------------------------------

#[test]
fn post_confirmation_trigger_names_the_user_by_sub() {
    let event = decoded(fixture!("trigger_post_confirmation"));
    assert_event(
        &event,
        EventFormat::CognitoTrigger,
        Some(OUR_POOL),
        sub_user(ALICE),
        "PostConfirmation_ConfirmSignUp",
    );
    assert!(!event.wrapped_in_sns);
}

#[test]
fn post_authentication_trigger_names_the_user_by_sub() {
    let event = decoded(fixture!("trigger_post_authentication"));
    assert_event(
        &event,
        EventFormat::CognitoTrigger,
        Some(OUR_POOL),
        sub_user(ALICE),
        "PostAuthentication_Authentication",
    );
}

#[test]
fn token_generation_for_a_federated_sign_in_names_the_user() {
    let event = decoded(fixture!("trigger_token_generation_hosted_auth"));
    assert_event(
        &event,
        EventFormat::CognitoTrigger,
        Some(OUR_POOL),
        sub_user(FEDERATED),
        "TokenGeneration_HostedAuth",
    );
}

#[test]
fn token_refresh_trigger_is_ignored() {
    let event = decoded(fixture!("trigger_token_generation_refresh"));
    assert_eq!(
        event.action,
        EventAction::Ignore(IgnoreReason::NoMirroredChange)
    );
}

#[test]
fn pre_sign_up_trigger_fires_before_the_user_exists_and_is_ignored() {
    let event = decoded(fixture!("trigger_pre_sign_up"));
    assert_event(
        &event,
        EventFormat::CognitoTrigger,
        Some(OUR_POOL),
        EventAction::Ignore(IgnoreReason::BeforeChange),
        "PreSignUp_SignUp",
    );
}

#[test]
fn trigger_without_sub_falls_back_to_the_username() {
    let body = r#"{"version":"1","triggerSource":"PostConfirmation_ConfirmForgotPassword","region":"us-east-1",
        "userPoolId":"us-east-1_Ab12Cd34E","userName":"bob","callerContext":{"awsSdkVersion":"x","clientId":"y"},
        "request":{"userAttributes":{"email":"bob@example.com"}},"response":{}}"#;
    let event = decoded(body);
    assert_eq!(
        event.action,
        EventAction::User {
            user: UserRef::Username("bob".to_owned()),
            group: None
        }
    );
}

#[test]
fn trigger_naming_no_user_asks_for_the_pool() {
    let body = r#"{"triggerSource":"PostAuthentication_Authentication","userPoolId":"us-east-1_Ab12Cd34E","request":{}}"#;
    assert_eq!(decoded(body).action, EventAction::PoolWide);
}

#[test]
fn trigger_with_empty_pool_id_is_an_error() {
    let body =
        r#"{"triggerSource":"PostConfirmation_ConfirmSignUp","userPoolId":"","userName":"bob"}"#;
    assert!(
        matches!(decode(body), Err(DecodeError::MissingPoolId { .. })),
        "{:?}",
        decode(body)
    );
}

#[test]
fn trigger_without_pool_id_is_malformed() {
    let body = r#"{"triggerSource":"PostConfirmation_ConfirmSignUp","userName":"bob"}"#;
    let error = decode(body).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(error.to_string().contains("userPoolId"), "{error}");
}

// --- CloudTrail API calls ---------------------------------------------------------------

#[test]
fn admin_create_user_with_hidden_username_is_identified_by_sub() {
    let event = decoded(fixture!("eventbridge_admin_create_user"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        sub_user(CREATED),
        "AdminCreateUser",
    );
}

#[test]
fn admin_delete_user_names_the_sub_to_tombstone() {
    let event = decoded(fixture!("eventbridge_admin_delete_user"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        sub_user(CREATED),
        "AdminDeleteUser",
    );
}

#[test]
fn group_membership_change_names_user_and_group() {
    let event = decoded(fixture!("eventbridge_admin_add_user_to_group"));
    let user = UserRef::Sub(Uuid::parse_str(ALICE).unwrap());
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        EventAction::User {
            user,
            group: Some("editors".to_owned()),
        },
        "AdminAddUserToGroup",
    );
}

#[test]
fn delete_group_names_the_group_as_deleted() {
    let event = decoded(fixture!("eventbridge_delete_group"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        EventAction::Group {
            name: "legacy-beta".to_owned(),
            deleted: true,
        },
        "DeleteGroup",
    );
}

#[test]
fn failed_call_is_ignored() {
    let event = decoded(fixture!("eventbridge_admin_disable_user_failed"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        EventAction::Ignore(IgnoreReason::FailedCall {
            error_code: "UserNotFoundException".to_owned(),
        }),
        "AdminDisableUser",
    );
}

#[test]
fn read_only_call_is_ignored() {
    let event = decoded(fixture!("eventbridge_list_users"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        EventAction::Ignore(IgnoreReason::ReadOnly),
        "ListUsers",
    );
}

#[test]
fn hidden_username_without_sub_asks_for_the_pool() {
    let event = decoded(fixture!("eventbridge_update_attributes_no_sub"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        EventAction::PoolWide,
        "AdminUpdateUserAttributes",
    );
}

#[test]
fn sign_up_has_no_pool_id_but_names_the_sub() {
    let event = decoded(fixture!("eventbridge_sign_up"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        None,
        sub_user(SIGNED_UP),
        "SignUp",
    );
}

#[test]
fn sub_is_taken_from_the_response_when_additional_data_lacks_it() {
    let sign_up = r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"SignUp",
        "eventType":"AwsApiCall","requestParameters":{"clientId":"abc","username":"HIDDEN_DUE_TO_SECURITY_REASONS"},
        "responseElements":{"userConfirmed":false,"userSub":"7c6d5e4f-3a2b-4c1d-8e0f-9a8b7c6d5e4f"}}"#;
    assert_eq!(decoded(sign_up).action, sub_user(SIGNED_UP));

    let create = r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"AdminCreateUser",
        "requestParameters":{"userPoolId":"us-east-1_Ab12Cd34E","username":"HIDDEN_DUE_TO_SECURITY_REASONS"},
        "responseElements":{"user":{"attributes":[{"name":"email","value":"x@example.com"},
        {"name":"sub","value":"3b2f1e0d-9c8b-4a7f-b6e5-d4c3b2a1f0e9"}]}}}"#;
    assert_eq!(decoded(create).action, sub_user(CREATED));
}

#[test]
fn visible_username_is_used_when_no_sub_is_recorded() {
    let body = r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"AdminEnableUser",
        "requestParameters":{"userPoolId":"us-east-1_Ab12Cd34E","username":"carol"}}"#;
    assert_eq!(
        decoded(body).action,
        EventAction::User {
            user: UserRef::Username("carol".to_owned()),
            group: None
        }
    );
}

/// A successful API call record of `event_name` naming ALICE by sub, with a hidden username
/// and the group `editors`.
fn api_call(event_name: &str) -> String {
    serde_json::json!({
        "eventVersion": "1.08",
        "eventSource": "cognito-idp.amazonaws.com",
        "eventName": event_name,
        "eventType": "AwsApiCall",
        "readOnly": false,
        "requestParameters": {
            "userPoolId": OUR_POOL,
            "username": "HIDDEN_DUE_TO_SECURITY_REASONS",
            "groupName": "editors"
        },
        "responseElements": null,
        "additionalEventData": { "sub": ALICE }
    })
    .to_string()
}

#[test]
fn operation_table() {
    let alice = sub_user(ALICE);
    let alice_in_editors = EventAction::User {
        user: UserRef::Sub(Uuid::parse_str(ALICE).unwrap()),
        group: Some("editors".to_owned()),
    };
    let editors = EventAction::Group {
        name: "editors".to_owned(),
        deleted: false,
    };
    let cases = [
        ("AdminCreateUser", alice.clone()),
        ("AdminDeleteUser", alice.clone()),
        ("DeleteUser", alice.clone()),
        ("AdminDisableUser", alice.clone()),
        ("AdminEnableUser", alice.clone()),
        ("AdminUpdateUserAttributes", alice.clone()),
        ("UpdateUserAttributes", alice.clone()),
        ("AdminDeleteUserAttributes", alice.clone()),
        ("DeleteUserAttributes", alice.clone()),
        ("VerifyUserAttribute", alice.clone()),
        ("SignUp", alice.clone()),
        ("ConfirmSignUp", alice.clone()),
        ("AdminConfirmSignUp", alice.clone()),
        ("AdminSetUserPassword", alice.clone()),
        ("AdminResetUserPassword", alice.clone()),
        ("ConfirmForgotPassword", alice.clone()),
        ("RespondToAuthChallenge", alice.clone()),
        ("AdminRespondToAuthChallenge", alice.clone()),
        ("AdminLinkProviderForUser", alice.clone()),
        ("AdminDisableProviderForUser", alice.clone()),
        ("AdminAddUserToGroup", alice_in_editors.clone()),
        ("AdminRemoveUserFromGroup", alice_in_editors),
        ("CreateGroup", editors.clone()),
        ("UpdateGroup", editors),
        (
            "DeleteGroup",
            EventAction::Group {
                name: "editors".to_owned(),
                deleted: true,
            },
        ),
        ("StartUserImportJob", EventAction::PoolWide),
        ("DeleteUserPool", EventAction::PoolWide),
        (
            "AdminInitiateAuth",
            EventAction::Ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "ChangePassword",
            EventAction::Ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "AdminSetUserMFAPreference",
            EventAction::Ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "AdminUserGlobalSignOut",
            EventAction::Ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "UpdateUserPool",
            EventAction::Ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "CreateUserPoolClient",
            EventAction::Ignore(IgnoreReason::NoMirroredChange),
        ),
        ("AdminGetUser", EventAction::Ignore(IgnoreReason::ReadOnly)),
        (
            "AdminListGroupsForUser",
            EventAction::Ignore(IgnoreReason::ReadOnly),
        ),
        (
            "ListUsersInGroup",
            EventAction::Ignore(IgnoreReason::ReadOnly),
        ),
        (
            "DescribeUserPool",
            EventAction::Ignore(IgnoreReason::ReadOnly),
        ),
        ("GetGroup", EventAction::Ignore(IgnoreReason::ReadOnly)),
    ];
    for (event_name, expected) in cases {
        let event = decoded(&api_call(event_name));
        assert_eq!(event.action, expected, "{event_name}");
        assert_eq!(event.reason, event_name);
        assert_eq!(
            event.user_pool_id.as_deref(),
            Some(OUR_POOL),
            "{event_name}"
        );
    }
}

#[test]
fn unidentified_user_or_group_asks_for_the_pool() {
    for event_name in ["AdminRemoveUserFromGroup", "AdminDisableUser", "DeleteUser"] {
        let mut record: serde_json::Value = serde_json::from_str(&api_call(event_name)).unwrap();
        record["additionalEventData"] = serde_json::Value::Null;
        assert_eq!(
            decoded(&record.to_string()).action,
            EventAction::PoolWide,
            "{event_name}"
        );
    }
    for event_name in ["CreateGroup", "DeleteGroup"] {
        let mut record: serde_json::Value = serde_json::from_str(&api_call(event_name)).unwrap();
        record["requestParameters"]["groupName"] = serde_json::Value::Null;
        assert_eq!(
            decoded(&record.to_string()).action,
            EventAction::PoolWide,
            "{event_name}"
        );
    }
}

#[test]
fn failed_calls_change_nothing_whatever_the_operation() {
    for event_name in [
        "AdminDeleteUser",
        "DeleteGroup",
        "StartUserImportJob",
        "AdminAddUserToGroup",
    ] {
        let mut record: serde_json::Value = serde_json::from_str(&api_call(event_name)).unwrap();
        record["errorCode"] = "AccessDeniedException".into();
        let expected = IgnoreReason::FailedCall {
            error_code: "AccessDeniedException".to_owned(),
        };
        assert_eq!(
            decoded(&record.to_string()).action,
            EventAction::Ignore(expected),
            "{event_name}"
        );
    }
    // Success is written as an absent, null or empty errorCode.
    for error_code in [serde_json::Value::Null, "".into()] {
        let mut record: serde_json::Value =
            serde_json::from_str(&api_call("AdminDeleteUser")).unwrap();
        record["errorCode"] = error_code;
        assert_eq!(decoded(&record.to_string()).action, sub_user(ALICE));
    }
}

#[test]
fn trigger_table() {
    let ignore = |reason| EventAction::Ignore(reason);
    let cases = [
        ("PostConfirmation_ConfirmSignUp", sub_user(ALICE)),
        ("PostConfirmation_ConfirmForgotPassword", sub_user(ALICE)),
        ("PostAuthentication_Authentication", sub_user(ALICE)),
        ("TokenGeneration_HostedAuth", sub_user(ALICE)),
        ("TokenGeneration_Authentication", sub_user(ALICE)),
        ("TokenGeneration_NewPasswordChallenge", sub_user(ALICE)),
        ("TokenGeneration_AuthenticateDevice", sub_user(ALICE)),
        (
            "TokenGeneration_RefreshTokens",
            ignore(IgnoreReason::NoMirroredChange),
        ),
        ("PreSignUp_SignUp", ignore(IgnoreReason::BeforeChange)),
        (
            "PreSignUp_AdminCreateUser",
            ignore(IgnoreReason::BeforeChange),
        ),
        (
            "PreSignUp_ExternalProvider",
            ignore(IgnoreReason::BeforeChange),
        ),
        (
            "UserMigration_Authentication",
            ignore(IgnoreReason::BeforeChange),
        ),
        (
            "PreAuthentication_Authentication",
            ignore(IgnoreReason::BeforeChange),
        ),
        (
            "CustomMessage_AdminCreateUser",
            ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "CustomEmailSender_SignUp",
            ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "DefineAuthChallenge_Authentication",
            ignore(IgnoreReason::NoMirroredChange),
        ),
        (
            "VerifyAuthChallengeResponse_Authentication",
            ignore(IgnoreReason::NoMirroredChange),
        ),
        ("SomeFutureTrigger_Thing", sub_user(ALICE)),
    ];
    for (trigger_source, expected) in cases {
        let body = serde_json::json!({
            "version": "1",
            "triggerSource": trigger_source,
            "region": "us-east-1",
            "userPoolId": OUR_POOL,
            "userName": "alice",
            "callerContext": { "awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "abc" },
            "request": { "userAttributes": { "sub": ALICE, "email": "alice@example.com" } },
            "response": {}
        });
        let event = decoded(&body.to_string());
        assert_eq!(event.action, expected, "{trigger_source}");
        assert_eq!(event.reason, trigger_source);
    }
}

#[test]
fn bare_cloudtrail_record_is_decoded_like_an_eventbridge_one() {
    let event = decoded(fixture!("cloudtrail_record_admin_enable_user"));
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        sub_user(ALICE),
        "AdminEnableUser",
    );
}

#[test]
fn identity_pool_events_are_ignored() {
    let event = decoded(fixture!("eventbridge_cognito_identity"));
    assert_eq!(
        event.action,
        EventAction::Ignore(IgnoreReason::NotUserPool {
            source: "cognito-identity.amazonaws.com".to_owned()
        })
    );
    assert_eq!(event.user_pool_id, None);
}

#[test]
fn unlisted_operations_re_read_a_named_user_or_are_ignored() {
    let with_sub = r#"{"eventSource":"cognito-idp.amazonaws.com","eventName":"AdminFutureUserThing",
        "readOnly":false,"requestParameters":{"userPoolId":"us-east-1_Ab12Cd34E"},
        "additionalEventData":{"sub":"5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"}}"#;
    assert_eq!(decoded(with_sub).action, sub_user(ALICE));

    let without = r#"{"eventSource":"cognito-idp.amazonaws.com","eventName":"SetFuturePoolSetting",
        "readOnly":false,"requestParameters":{"userPoolId":"us-east-1_Ab12Cd34E"}}"#;
    assert_eq!(
        decoded(without).action,
        EventAction::Ignore(IgnoreReason::UnknownOperation)
    );

    let read_only = r#"{"eventSource":"cognito-idp.amazonaws.com","eventName":"FetchFutureThing","readOnly":true,
        "additionalEventData":{"sub":"5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"}}"#;
    assert_eq!(
        decoded(read_only).action,
        EventAction::Ignore(IgnoreReason::ReadOnly)
    );
}

#[test]
fn sign_in_is_ignored_even_with_a_sub() {
    let body = r#"{"eventSource":"cognito-idp.amazonaws.com","eventName":"InitiateAuth",
        "requestParameters":{"authFlow":"USER_SRP_AUTH","clientId":"abc"},
        "additionalEventData":{"sub":"5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"}}"#;
    assert_eq!(
        decoded(body).action,
        EventAction::Ignore(IgnoreReason::NoMirroredChange)
    );
}

#[test]
fn import_job_asks_for_the_pool() {
    let body = r#"{"eventSource":"cognito-idp.amazonaws.com","eventName":"StartUserImportJob",
        "requestParameters":{"userPoolId":"us-east-1_Ab12Cd34E","jobId":"import-1"}}"#;
    assert_eq!(decoded(body).action, EventAction::PoolWide);
}

#[test]
fn unexpected_field_types_count_as_absent() {
    // A sub that is not a string and a hidden attribute list must not fail the message.
    let body = r#"{"eventSource":"cognito-idp.amazonaws.com","eventName":"AdminDeleteUser",
        "requestParameters":{"userPoolId":"us-east-1_Ab12Cd34E","username":"HIDDEN_DUE_TO_SECURITY_REASONS"},
        "responseElements":{"user":{"attributes":"HIDDEN_DUE_TO_SECURITY_REASONS"}},
        "additionalEventData":{"sub":42}}"#;
    assert_eq!(decoded(body).action, EventAction::PoolWide);
}

#[test]
fn eventbridge_event_that_is_not_cloudtrail_is_an_error() {
    let body = r#"{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events",
        "account":"123456789012","time":"2026-11-20T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}"#;
    let error = decode(body).unwrap_err();
    assert!(
        matches!(error, DecodeError::NotCloudTrail { .. }),
        "{error:?}"
    );
}

#[test]
fn eventbridge_detail_without_event_name_is_malformed() {
    let body = r#"{"detail-type":"AWS API Call via CloudTrail","source":"aws.cognito-idp",
        "detail":{"eventSource":"cognito-idp.amazonaws.com"}}"#;
    let error = decode(body).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}");
    assert!(error.to_string().contains("eventName"), "{error}");
}

// --- CloudTrail service events (managed login / hosted UI) -------------------------------

#[test]
fn hosted_ui_confirmation_names_the_sub_from_the_form() {
    let event = decoded(fixture!("eventbridge_hosted_ui_confirm_post"));
    assert_event(
        &event,
        EventFormat::CloudTrailServiceEvent,
        Some(OUR_POOL),
        sub_user(SIGNED_UP),
        "Confirm_POST",
    );
}

#[test]
fn hosted_ui_sign_up_without_sub_waits_for_its_confirmation() {
    let event = decoded(fixture!("eventbridge_hosted_ui_signup_post"));
    assert_event(
        &event,
        EventFormat::CloudTrailServiceEvent,
        Some(OUR_POOL),
        EventAction::Ignore(IgnoreReason::AwaitsConfirmation),
        "Signup_POST",
    );
}

#[test]
fn a_self_service_sign_up_asks_for_no_pool_wide_scan() {
    // The hosted UI journey: the sign-up names nobody, its confirmation names the sub.
    let hosted = [
        decoded(fixture!("eventbridge_hosted_ui_signup_post")),
        decoded(fixture!("eventbridge_hosted_ui_confirm_post")),
    ];
    let targets = reduce(&hosted, OUR_POOL);
    assert!(!targets.pool_wide);
    assert_eq!(
        targets.users,
        [UserRef::Sub(Uuid::parse_str(SIGNED_UP).unwrap())].into()
    );
    assert_eq!(targets.ignored, 1);

    // The API journey: SignUp's record carries the new sub (`userSub`); the PostConfirmation
    // trigger names its user by sub too.
    let api = [
        decoded(fixture!("eventbridge_sign_up")),
        decoded(fixture!("trigger_post_confirmation")),
    ];
    let targets = reduce(&api, OUR_POOL);
    assert!(!targets.pool_wide);
    assert_eq!(targets.users.len(), 2);

    // A SignUp record without its sub is left to the confirmation as well, not to a scan.
    let bare = r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"SignUp",
        "eventType":"AwsApiCall","requestParameters":{"clientId":"abc","username":"HIDDEN_DUE_TO_SECURITY_REASONS"},
        "responseElements":{"userConfirmed":false}}"#;
    assert_eq!(
        decoded(bare).action,
        EventAction::Ignore(IgnoreReason::AwaitsConfirmation)
    );
}

#[test]
fn hosted_ui_page_view_with_empty_error_code_is_read_only() {
    let event = decoded(fixture!("eventbridge_hosted_ui_login_get"));
    assert_event(
        &event,
        EventFormat::CloudTrailServiceEvent,
        None,
        EventAction::Ignore(IgnoreReason::ReadOnly),
        "Login_GET",
    );
}

#[test]
fn hosted_ui_error_status_is_a_failed_call() {
    let body = r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"Confirm_POST",
        "eventType":"AwsServiceEvent","readOnly":false,"additionalEventData":{"responseParameters":{"status":400.0},
        "requestParameters":{"sub":["7c6d5e4f-3a2b-4c1d-8e0f-9a8b7c6d5e4f"]},"userPoolId":"us-east-1_Ab12Cd34E"}}"#;
    let event = decoded(body);
    assert_eq!(event.format, EventFormat::CloudTrailServiceEvent);
    assert_eq!(
        event.action,
        EventAction::Ignore(IgnoreReason::FailedCall {
            error_code: "HTTP 400".to_owned()
        })
    );
}

#[test]
fn hosted_ui_token_exchange_changes_nothing() {
    let body = r#"{"eventVersion":"1.08","eventSource":"cognito-idp.amazonaws.com","eventName":"Token_POST",
        "eventType":"AwsServiceEvent","readOnly":false,"requestParameters":null,"responseElements":null,
        "additionalEventData":{"responseParameters":{"status":200},"requestParameters":{"grant_type":["refresh_token"]},
        "userPoolId":"us-east-1_Ab12Cd34E"}}"#;
    assert_eq!(
        decoded(body).action,
        EventAction::Ignore(IgnoreReason::NoMirroredChange)
    );
}

// --- SNS ---------------------------------------------------------------------------------

#[test]
fn sns_wrapped_cloudtrail_event_is_unwrapped() {
    let event = decoded(fixture!("sns_notification_admin_delete_user"));
    assert!(event.wrapped_in_sns);
    assert_event(
        &event,
        EventFormat::CloudTrail,
        Some(OUR_POOL),
        sub_user(CREATED),
        "AdminDeleteUser",
    );
}

#[test]
fn sns_wrapped_trigger_is_unwrapped() {
    let event = decoded(fixture!("sns_notification_post_confirmation"));
    assert!(event.wrapped_in_sns);
    assert_event(
        &event,
        EventFormat::CognitoTrigger,
        Some(OUR_POOL),
        sub_user(ALICE),
        "PostConfirmation_ConfirmSignUp",
    );
}

#[test]
fn raw_sns_delivery_is_the_payload_itself() {
    // With raw message delivery SQS receives the published payload unchanged.
    let event = decoded(fixture!("eventbridge_admin_delete_user"));
    assert!(!event.wrapped_in_sns);
    assert_eq!(event.action, sub_user(CREATED));
}

#[test]
fn sns_subscription_confirmation_is_an_error_naming_the_topic() {
    let error = decode(fixture!("sns_subscription_confirmation")).unwrap_err();
    assert!(
        matches!(error, DecodeError::SnsControlMessage { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("arn:aws:sns:us-east-1:210987654321:cognito-changes"),
        "{error}"
    );
}

#[test]
fn sns_message_that_is_not_an_event_is_an_error_saying_so() {
    let body = r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"hello"}"#;
    let error = decode(body).unwrap_err();
    assert!(
        matches!(&error, DecodeError::SnsMessage(inner) if matches!(**inner, DecodeError::NotJson(_))),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("SNS notification's Message: message body is not JSON"),
        "{error}"
    );
}

#[test]
fn sns_inside_sns_is_an_error() {
    let inner = r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:123456789012:t","Message":"{}"}"#;
    let body = serde_json::json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:123456789012:o", "Message": inner});
    assert!(matches!(
        decode(&body.to_string()),
        Err(DecodeError::NestedSns)
    ));
}

#[test]
fn sns_notification_without_message_is_an_error() {
    let body = r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:123456789012:t"}"#;
    let error = decode(body).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                shape: "SNS message",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("`Message`"), "{error}");
}

// --- Native format -----------------------------------------------------------------------

#[test]
fn native_with_sub() {
    let event = decoded(fixture!("native_sub"));
    assert_event(
        &event,
        EventFormat::Native,
        Some(OUR_POOL),
        sub_user(ALICE),
        "profile-service: email changed",
    );
}

#[test]
fn native_with_username() {
    let event = decoded(fixture!("native_username"));
    assert_event(
        &event,
        EventFormat::Native,
        Some(OUR_POOL),
        EventAction::User {
            user: UserRef::Username("alice".to_owned()),
            group: None,
        },
        "support-tool: account re-enabled",
    );
}

#[test]
fn native_with_group_only() {
    let event = decoded(fixture!("native_group"));
    assert_eq!(
        event.action,
        EventAction::Group {
            name: "editors".to_owned(),
            deleted: false
        }
    );
}

#[test]
fn native_with_pool_only_asks_for_the_pool() {
    let event = decoded(fixture!("native_pool"));
    assert_event(
        &event,
        EventFormat::Native,
        Some(OUR_POOL),
        EventAction::PoolWide,
        "bulk import finished",
    );
}

#[test]
fn native_sub_wins_over_username_and_keeps_the_group() {
    let body = r#"{"user_pool_id":"us-east-1_Ab12Cd34E","sub":"5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f",
        "username":"alice","group":"editors"}"#;
    let event = decoded(body);
    let user = UserRef::Sub(Uuid::parse_str(ALICE).unwrap());
    assert_eq!(
        event.action,
        EventAction::User {
            user,
            group: Some("editors".to_owned())
        }
    );
    assert_eq!(event.reason, "unspecified");
}

#[test]
fn native_errors_say_what_is_wrong() {
    let invalid_sub = r#"{"user_pool_id":"us-east-1_Ab12Cd34E","sub":"not-a-uuid"}"#;
    assert!(
        matches!(decode(invalid_sub), Err(DecodeError::InvalidSub { value }) if value == "not-a-uuid")
    );

    let empty_pool = r#"{"user_pool_id":"","sub":"5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"}"#;
    assert!(matches!(
        decode(empty_pool),
        Err(DecodeError::MissingPoolId {
            shape: "native event"
        })
    ));

    let empty_username = r#"{"user_pool_id":"us-east-1_Ab12Cd34E","username":""}"#;
    assert!(matches!(
        decode(empty_username),
        Err(DecodeError::EmptyField {
            field: "username",
            ..
        })
    ));

    let typo = r#"{"user_pool_id":"us-east-1_Ab12Cd34E","usrname":"alice"}"#;
    let error = decode(typo).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                shape: "native event",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("usrname"), "{error}");

    let wrong_type = r#"{"user_pool_id":42}"#;
    assert!(matches!(
        decode(wrong_type),
        Err(DecodeError::Malformed { .. })
    ));
}

// --- Bodies that are not events ----------------------------------------------------------

#[test]
fn unparseable_body_is_not_json() {
    for body in ["", "not json", "{\"user_pool_id\":", "<xml/>"] {
        assert!(
            matches!(decode(body), Err(DecodeError::NotJson(_))),
            "{body:?}: {:?}",
            decode(body)
        );
    }
}

#[test]
fn json_that_is_not_an_object_is_refused() {
    let error = decode(r#""{\"user_pool_id\":\"x\"}""#).unwrap_err();
    assert!(
        matches!(error, DecodeError::NotAnObject { found: "a string" }),
        "{error:?}"
    );
    assert!(matches!(
        decode("[1,2]"),
        Err(DecodeError::NotAnObject { found: "an array" })
    ));
}

#[test]
fn json_object_matching_no_shape_names_its_keys() {
    let error = decode(r#"{"hello":"world","user":"alice"}"#).unwrap_err();
    assert!(
        matches!(error, DecodeError::UnknownShape { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        r#"message body matches no known event shape (top-level keys: "hello", "user")"#
    );
    assert_eq!(
        decode("{}").unwrap_err().to_string(),
        "message body matches no known event shape (top-level keys: none)"
    );
}

#[test]
fn unknown_shape_error_stays_short_for_huge_objects() {
    let object: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| (format!("{}{i}", "k".repeat(100)), serde_json::Value::Null))
        .collect();
    let message = decode(&serde_json::Value::Object(object).to_string())
        .unwrap_err()
        .to_string();
    assert!(message.contains("... 88 more"), "{message}");
    assert!(message.len() < 800, "{} chars", message.len());
}

// --- Decode then reduce ------------------------------------------------------------------

#[test]
fn a_decoded_batch_reduces_to_each_user_once() {
    let bodies = [
        fixture!("trigger_post_confirmation"),
        fixture!("cloudtrail_record_admin_enable_user"),
        fixture!("native_sub"),
        fixture!("eventbridge_admin_add_user_to_group"),
        fixture!("eventbridge_admin_create_user"),
        fixture!("sns_notification_admin_delete_user"),
        fixture!("eventbridge_sign_up"),
        fixture!("eventbridge_list_users"),
        fixture!("eventbridge_admin_disable_user_failed"),
        fixture!("trigger_pre_sign_up"),
    ];
    let mut events: Vec<DecodedEvent> = bodies.iter().map(|body| decoded(body)).collect();
    let mut other_pool = decoded(fixture!("native_username"));
    other_pool.user_pool_id = Some("eu-west-1_Other1234".to_owned());
    events.push(other_pool);

    let targets = reduce(&events, OUR_POOL);
    let subs = [ALICE, CREATED, SIGNED_UP].map(|sub| UserRef::Sub(Uuid::parse_str(sub).unwrap()));
    assert_eq!(targets.users, subs.into_iter().collect());
    assert_eq!(targets.groups, ["editors".to_owned()].into_iter().collect());
    assert!(!targets.pool_wide);
    assert_eq!(targets.applied, 7);
    assert_eq!(targets.applied_without_pool_id, 1);
    assert_eq!(targets.ignored, 3);
    assert_eq!(targets.other_pool, 1);
}
