//! Conversion of the SDK's user and group shapes into the normalised model.

use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserOutput;
use aws_sdk_cognitoidentityprovider::primitives::DateTime as AwsDateTime;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, GroupType, UserStatusType, UserType};
use chrono::{DateTime, Utc};

use crate::model::{GroupRecord, InvalidUser, MirrorScope, UserRecord, UserSource};
use crate::telemetry::records::RecordSanitized;

pub(crate) fn aws_time(time: &AwsDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

fn attribute_pairs(attributes: &[AttributeType]) -> Vec<(String, String)> {
    // An attribute without a value carries nothing to mirror.
    attributes
        .iter()
        .filter_map(|a| a.value().map(|v| (a.name().to_owned(), v.to_owned())))
        .collect()
}

fn status_text(status: Option<&UserStatusType>) -> String {
    status.map_or("UNKNOWN", UserStatusType::as_str).to_owned()
}

/// A user from ListUsers or ListUsersInGroup.
pub(crate) fn user_from_list(
    pool: &str,
    user: &UserType,
    observed_at: DateTime<Utc>,
    scope: &MirrorScope,
) -> Result<UserRecord, InvalidUser> {
    storable_user(
        scope,
        UserSource {
            user_pool_id: pool.to_owned(),
            username: user.username().unwrap_or_default().to_owned(),
            attributes: attribute_pairs(user.attributes()),
            enabled: user.enabled(),
            status: status_text(user.user_status()),
            created_at: user.user_create_date().and_then(aws_time),
            updated_at: user.user_last_modified_date().and_then(aws_time),
            observed_at,
        },
    )
}

/// A user from AdminGetUser.
pub(crate) fn user_from_admin_get(
    pool: &str,
    user: &AdminGetUserOutput,
    observed_at: DateTime<Utc>,
    scope: &MirrorScope,
) -> Result<UserRecord, InvalidUser> {
    storable_user(
        scope,
        UserSource {
            user_pool_id: pool.to_owned(),
            username: user.username().to_owned(),
            attributes: attribute_pairs(user.user_attributes()),
            enabled: user.enabled(),
            status: status_text(user.user_status()),
            created_at: user.user_create_date().and_then(aws_time),
            updated_at: user.user_last_modified_date().and_then(aws_time),
            observed_at,
        },
    )
}

/// Every user read from Cognito is built here: within the mirror's scope, cleaned of what
/// PostgreSQL cannot store, the cleaning reported.
fn storable_user(scope: &MirrorScope, source: UserSource) -> Result<UserRecord, InvalidUser> {
    let mut user = UserRecord::from_source(source, scope)?;
    let key = user.id.to_string();
    for field in user.sanitize() {
        RecordSanitized {
            kind: "user",
            key: &key,
            field: &field,
        }
        .emit();
    }
    Ok(user)
}

/// The `sub` of a user listed by ListUsersInGroup.
pub(crate) fn user_sub(user: &UserType) -> Option<uuid::Uuid> {
    user.attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
}

pub(crate) fn group_record(
    pool: &str,
    group: &GroupType,
    observed_at: DateTime<Utc>,
) -> Option<GroupRecord> {
    let mut record = GroupRecord::new(
        pool,
        group.group_name()?,
        group.description().map(str::to_owned),
        group.precedence(),
        group.role_arn().map(str::to_owned),
        group.creation_date().and_then(aws_time),
        group.last_modified_date().and_then(aws_time),
        observed_at,
    );
    for field in record.sanitize() {
        RecordSanitized {
            kind: "group",
            key: &record.name,
            field: &field,
        }
        .emit();
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, value: &str) -> AttributeType {
        AttributeType::builder()
            .name(name)
            .value(value)
            .build()
            .unwrap()
    }

    fn sample_user() -> UserType {
        UserType::builder()
            .username("zoë")
            .attributes(attr("email_verified", "true"))
            .attributes(attr("sub", "6f1c2a44-3b7e-4c55-9d0e-0a1b2c3d4e5f"))
            .attributes(attr("email", "zoe@example.com"))
            .attributes(attr("given_name", "Zoë"))
            .attributes(attr("family_name", "Ødegård 山田"))
            .attributes(attr("custom:tenant", "acme"))
            .attributes(AttributeType::builder().name("nickname").build().unwrap())
            .enabled(false)
            .user_status(UserStatusType::ForceChangePassword)
            .user_create_date(AwsDateTime::from_secs_and_nanos(1_700_000_000, 123_456_789))
            .user_last_modified_date(AwsDateTime::from_secs(1_700_000_100))
            .build()
    }

    #[test]
    fn list_user_is_normalised() {
        let observed = Utc::now();
        let user = user_from_list(
            "us-east-1_pool",
            &sample_user(),
            observed,
            &MirrorScope::default(),
        )
        .unwrap();
        assert_eq!(user.id.to_string(), "6f1c2a44-3b7e-4c55-9d0e-0a1b2c3d4e5f");
        assert_eq!(user.username, "zoë");
        assert_eq!(user.email.as_deref(), Some("zoe@example.com"));
        assert_eq!(user.email_verified, Some(true));
        assert_eq!(user.given_name.as_deref(), Some("Zoë"));
        assert_eq!(user.family_name.as_deref(), Some("Ødegård 山田"));
        assert_eq!(user.phone_number, None);
        assert!(!user.enabled);
        assert_eq!(user.status, "FORCE_CHANGE_PASSWORD");
        assert_eq!(
            user.attributes.get("custom:tenant").map(String::as_str),
            Some("acme")
        );
        assert_eq!(
            user.attributes.get("sub").map(String::as_str),
            Some("6f1c2a44-3b7e-4c55-9d0e-0a1b2c3d4e5f")
        );
        assert!(
            !user.attributes.contains_key("nickname"),
            "valueless attribute dropped"
        );
        assert_eq!(
            user.cognito_created_at.unwrap().timestamp_subsec_nanos(),
            123_456_000,
            "microseconds kept"
        );
        assert_eq!(user.cognito_updated_at.unwrap().timestamp(), 1_700_000_100);
        assert_eq!(user.observed_at, observed);
        assert_eq!(user.content_hash, user.compute_hash());
        assert_eq!(user_sub(&sample_user()), Some(user.id));
    }

    #[test]
    fn user_without_sub_is_rejected() {
        let user = UserType::builder()
            .username("x")
            .attributes(attr("email", "x@example.com"))
            .build();
        assert!(matches!(
            user_from_list("p", &user, Utc::now(), &MirrorScope::default()),
            Err(InvalidUser::MissingSub { .. })
        ));
        assert_eq!(user_sub(&user), None);
    }

    #[test]
    fn group_is_normalised() {
        let group = GroupType::builder()
            .group_name("admins")
            .description("Administrators — ünïcode")
            .precedence(3)
            .role_arn("arn:aws:iam::123456789012:role/admin")
            .creation_date(AwsDateTime::from_secs(1_600_000_000))
            .last_modified_date(AwsDateTime::from_secs(1_600_000_500))
            .build();
        let record = group_record("p", &group, Utc::now()).unwrap();
        assert_eq!(record.name, "admins");
        assert_eq!(
            record.description.as_deref(),
            Some("Administrators — ünïcode")
        );
        assert_eq!(record.precedence, Some(3));
        assert_eq!(
            record.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/admin")
        );
        assert_eq!(
            record.cognito_created_at.unwrap().timestamp(),
            1_600_000_000
        );
        assert_eq!(
            record.cognito_updated_at.unwrap().timestamp(),
            1_600_000_500
        );
        assert!(group_record("p", &GroupType::builder().build(), Utc::now()).is_none());
    }
}
