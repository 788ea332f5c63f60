//! Bulk import: a whole pool (custom attributes, groups, users with their groups, enabled
//! flag and any UserStatus, `EXTERNAL_PROVIDER` included) in one request, for seeding
//! benchmark pools of 100,000 users in seconds instead of hundreds of thousands of calls.
//!
//! Users go through the same checks as AdminCreateUser (username pattern, attributes in the
//! schema, email and phone formats). The import is all or nothing: the pool is registered
//! only when every group and user was accepted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::store::{CustomAttribute, Group, NewUser, Pool, Store, user_status};
use crate::pool::{UserSpec, UserState};

/// The body of `POST /__cognito-lite/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolImport {
    /// The pool's name (ids are assigned).
    pub pool_name: String,
    /// Custom attributes, without `custom:`; all mutable strings.
    #[serde(default)]
    pub custom_attributes: Vec<String>,
    #[serde(default)]
    pub groups: Vec<GroupImport>,
    #[serde(default)]
    pub users: Vec<UserImport>,
}

/// One group of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupImport {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub precedence: Option<i32>,
    #[serde(default)]
    pub role_arn: Option<String>,
}

/// One user of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserImport {
    pub username: String,
    /// Attributes other than `sub` (`email`, `custom:tenant`, `identities`, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Names of groups declared in the same import.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Any Cognito UserStatus; `CONFIRMED` when absent.
    #[serde(default = "confirmed")]
    pub status: String,
    /// The user's `sub`; a random UUID v4 when absent.
    #[serde(default)]
    pub sub: Option<uuid::Uuid>,
}

fn enabled_by_default() -> bool {
    true
}

fn confirmed() -> String {
    "CONFIRMED".to_owned()
}

impl From<&UserSpec> for UserImport {
    /// The user a [`UserSpec`] describes, in the status its state leads to.
    fn from(spec: &UserSpec) -> UserImport {
        let status = match spec.state {
            UserState::Confirmed => "CONFIRMED",
            UserState::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            UserState::Unconfirmed => "UNCONFIRMED",
        };
        UserImport {
            username: spec.username.clone(),
            attributes: spec.attributes.iter().cloned().collect(),
            groups: spec.groups.clone(),
            enabled: spec.enabled,
            status: status.to_owned(),
            sub: None,
        }
    }
}

/// What an import created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub user_pool_id: String,
    pub users: usize,
    pub groups: usize,
}

impl Store {
    /// Builds the pool, checks every group and user, then registers it.
    pub fn import(&self, import: PoolImport) -> Result<Imported, ApiError> {
        let custom = import
            .custom_attributes
            .into_iter()
            .map(|name| CustomAttribute {
                name,
                data_type: "String".into(),
                mutable: true,
            })
            .collect();
        let mut pool = Pool::new(&import.pool_name, custom)?;
        let groups = import.groups.len();
        for group in import.groups {
            pool.create_group(Group::new(
                group.name,
                group.description,
                group.precedence,
                group.role_arn,
            ))?;
        }
        let users = import.users.len();
        for user in import.users {
            let status = user_status(&user.status)?;
            pool.create_user(
                NewUser {
                    username: user.username,
                    sub: user.sub,
                    attributes: user.attributes.into_iter().collect(),
                    enabled: user.enabled,
                    status,
                    groups: user.groups,
                },
                "User account already exists",
            )?;
        }
        Ok(Imported {
            user_pool_id: self.insert(pool),
            users,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(users: Vec<UserImport>) -> PoolImport {
        PoolImport {
            pool_name: "bulk".into(),
            custom_attributes: vec!["tenant".into()],
            groups: vec![GroupImport {
                name: "admins".into(),
                description: Some("Admins".into()),
                precedence: Some(1),
                role_arn: None,
            }],
            users,
        }
    }

    fn user(name: &str) -> UserImport {
        serde_json::from_value(serde_json::json!({ "username": name })).unwrap()
    }

    #[test]
    fn imports_users_in_any_status_with_groups() {
        let store = Store::new();
        let mut federated = user("Google_1234");
        federated.status = "EXTERNAL_PROVIDER".into();
        federated
            .attributes
            .insert("identities".into(), "[]".into());
        federated.groups = vec!["admins".into()];
        let mut disabled = UserImport::from(&UserSpec::numbered(7).disabled());
        disabled.sub = Some(uuid::Uuid::nil());
        let imported = store
            .import(import(vec![federated, disabled, user("plain")]))
            .unwrap();
        assert_eq!((imported.users, imported.groups), (3, 1));
        let pool = store.pool(&imported.user_pool_id).unwrap();
        let pool = pool.read();
        let google = pool.user("Google_1234").unwrap();
        assert_eq!(google.status, "EXTERNAL_PROVIDER");
        assert!(google.groups.contains("admins"));
        let numbered = pool.user("user-000007").unwrap();
        assert!(!numbered.enabled);
        assert_eq!(numbered.sub, uuid::Uuid::nil().to_string());
        assert_eq!(numbered.attribute("custom:tenant"), Some("tenant-3"));
        assert_eq!(pool.user("plain").unwrap().status, "CONFIRMED");
    }

    #[test]
    fn a_bad_user_rejects_the_whole_import() {
        let store = Store::new();
        let mut bad_status = user("b");
        bad_status.status = "ACTIVE".into();
        let mut unknown_group = user("c");
        unknown_group.groups = vec!["nope".into()];
        let mut custom = user("d");
        custom
            .attributes
            .insert("custom:undeclared".into(), "x".into());
        for users in [
            vec![user("a"), bad_status],
            vec![unknown_group],
            vec![custom],
            vec![user("a"), user("a")],
        ] {
            let err = store.import(import(users)).unwrap_err();
            assert!(
                err.code == "InvalidParameterException" || err.code == "UsernameExistsException",
                "{err}"
            );
        }
        assert_eq!(store.pool_count(), 0, "nothing registered");
    }
}
