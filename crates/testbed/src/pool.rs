//! Describing users and groups and creating them in a Cognito user pool (moto) fast: users
//! are created concurrently, each in the state its [`UserSpec`] asks for (confirmed, forced
//! to change password, unconfirmed, disabled, in groups).

use std::collections::BTreeSet;

use anyhow::{Context as _, anyhow};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::DisplayErrorContext;
use aws_sdk_cognitoidentityprovider::operation::create_group::CreateGroupError;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, AttributeType, MessageActionType, SchemaAttributeType,
};
use futures::{StreamExt as _, TryStreamExt as _};
use uuid::Uuid;

/// How many users are created at once: moto is threaded, and more gains little.
pub const CREATE_CONCURRENCY: usize = 16;
/// The password of every test user (meets Cognito's default password policy).
pub const TEST_PASSWORD: &str = "Testbed-Passw0rd!";

/// The Cognito `UserStatus` a created user ends up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserState {
    /// `CONFIRMED`: created by an admin, permanent password set.
    #[default]
    Confirmed,
    /// `FORCE_CHANGE_PASSWORD`: created by an admin, never signed in.
    ForceChangePassword,
    /// `UNCONFIRMED`: signed up through the app client, never confirmed.
    Unconfirmed,
}

/// One user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// The Cognito username.
    pub username: String,
    /// Attributes (`email`, `custom:tenant`, ...) other than `sub`, which Cognito assigns.
    pub attributes: Vec<(String, String)>,
    /// Groups to add the user to; missing groups are created.
    pub groups: Vec<String>,
    /// `false` disables the user after creating it.
    pub enabled: bool,
    /// The status to leave the user in.
    pub state: UserState,
}

impl UserSpec {
    /// An enabled, confirmed user with no attributes and no groups.
    pub fn new(username: impl Into<String>) -> UserSpec {
        UserSpec {
            username: username.into(),
            attributes: Vec::new(),
            groups: Vec::new(),
            enabled: true,
            state: UserState::Confirmed,
        }
    }

    /// User number `i` of a generated population: `user-000042` with a verified email,
    /// given and family names and `custom:tenant` (one of four tenants).
    pub fn numbered(i: usize) -> UserSpec {
        let username = format!("user-{i:06}");
        UserSpec::new(&username)
            .attr("email", format!("{username}@example.test"))
            .attr("email_verified", "true")
            .attr("given_name", format!("Given{i}"))
            .attr("family_name", format!("Family{i}"))
            .attr("custom:tenant", format!("tenant-{}", i % 4))
    }

    /// Sets an attribute, replacing an earlier value of the same name.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<String>) -> UserSpec {
        let name = name.into();
        self.attributes.retain(|(n, _)| *n != name);
        self.attributes.push((name, value.into()));
        self
    }

    /// Adds the user to a group.
    pub fn group(mut self, name: impl Into<String>) -> UserSpec {
        self.groups.push(name.into());
        self
    }

    /// Leaves the user disabled.
    pub fn disabled(mut self) -> UserSpec {
        self.enabled = false;
        self
    }

    /// Leaves the user in `state`.
    pub fn state(mut self, state: UserState) -> UserSpec {
        self.state = state;
        self
    }

    /// The value of an attribute, if set.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Optional precedence.
    pub precedence: Option<i32>,
    /// Optional IAM role ARN.
    pub role_arn: Option<String>,
}

impl GroupSpec {
    /// A group with only a name.
    pub fn new(name: impl Into<String>) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            description: None,
            precedence: None,
            role_arn: None,
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> GroupSpec {
        self.description = Some(description.into());
        self
    }

    /// Sets the precedence.
    pub fn precedence(mut self, precedence: i32) -> GroupSpec {
        self.precedence = Some(precedence);
        self
    }

    /// Sets the role ARN.
    pub fn role_arn(mut self, role_arn: impl Into<String>) -> GroupSpec {
        self.role_arn = Some(role_arn.into());
        self
    }
}

/// A user that now exists in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    /// The Cognito username.
    pub username: String,
    /// The `sub` Cognito assigned (the mirror's primary key).
    pub sub: Uuid,
    /// What was asked for.
    pub spec: UserSpec,
}

/// A user pool and its app client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPool {
    /// The pool id (`us-east-1_...`).
    pub user_pool_id: String,
    /// An app client without secret, used for sign-up.
    pub app_client_id: String,
}

impl CreatedPool {
    /// Where to create users of this pool.
    pub fn target<'a>(&'a self, cognito: &'a Client) -> PoolTarget<'a> {
        PoolTarget {
            cognito,
            user_pool_id: &self.user_pool_id,
            app_client_id: &self.app_client_id,
        }
    }
}

/// Creates a uniquely named pool with these custom attributes (names without `custom:`)
/// and an app client.
pub async fn create_pool(
    cognito: &Client,
    custom_attributes: &[String],
) -> anyhow::Result<CreatedPool> {
    let suffix = crate::unique_suffix();
    let schema = custom_attributes
        .iter()
        .map(|name| {
            SchemaAttributeType::builder()
                .name(name)
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .build()
        })
        .collect();
    let pool = cognito
        .create_user_pool()
        .pool_name(format!("testbed-{suffix}"))
        .set_schema(Some(schema))
        .send()
        .await
        .map_err(|e| anyhow!("CreateUserPool: {}", DisplayErrorContext(e)))?;
    let user_pool_id = pool
        .user_pool
        .and_then(|p| p.id)
        .context("CreateUserPool returned no pool id")?;
    let client = cognito
        .create_user_pool_client()
        .user_pool_id(&user_pool_id)
        .client_name(format!("testbed-{suffix}"))
        .send()
        .await
        .map_err(|e| anyhow!("CreateUserPoolClient: {}", DisplayErrorContext(e)))?;
    let app_client_id = client
        .user_pool_client
        .and_then(|c| c.client_id)
        .context("CreateUserPoolClient returned no client id")?;
    Ok(CreatedPool {
        user_pool_id,
        app_client_id,
    })
}

/// Where users are created: a pool and the app client used for self sign-up.
#[derive(Debug, Clone)]
pub struct PoolTarget<'a> {
    /// The Cognito client (normally straight to moto, so proxies do not count set-up calls).
    pub cognito: &'a Client,
    /// The user pool.
    pub user_pool_id: &'a str,
    /// The app client used for `SignUp` (unconfirmed users).
    pub app_client_id: &'a str,
}

impl PoolTarget<'_> {
    /// Creates a group; an existing group of that name is an error.
    pub async fn create_group(&self, group: &GroupSpec) -> anyhow::Result<()> {
        self.cognito
            .create_group()
            .user_pool_id(self.user_pool_id)
            .group_name(&group.name)
            .set_description(group.description.clone())
            .set_precedence(group.precedence)
            .set_role_arn(group.role_arn.clone())
            .send()
            .await
            .map_err(|e| anyhow!("CreateGroup {}: {}", group.name, DisplayErrorContext(e)))?;
        Ok(())
    }

    /// Creates users concurrently (missing groups first) and returns them in input order.
    pub async fn create_users(
        &self,
        specs: impl IntoIterator<Item = UserSpec>,
    ) -> anyhow::Result<Vec<CreatedUser>> {
        let specs: Vec<UserSpec> = specs.into_iter().collect();
        let groups: BTreeSet<&str> = specs
            .iter()
            .flat_map(|s| s.groups.iter().map(String::as_str))
            .collect();
        for group in groups {
            self.ensure_group(group).await?;
        }
        futures::stream::iter(
            specs
                .into_iter()
                .map(|spec| self.create_user_in_existing_groups(spec)),
        )
        .buffered(CREATE_CONCURRENCY)
        .try_collect()
        .await
    }

    /// Creates one user (and its missing groups).
    pub async fn create_user(&self, spec: UserSpec) -> anyhow::Result<CreatedUser> {
        let mut created = self.create_users([spec]).await?;
        created.pop().context("no user was created")
    }

    async fn ensure_group(&self, name: &str) -> anyhow::Result<()> {
        let result = self
            .cognito
            .create_group()
            .user_pool_id(self.user_pool_id)
            .group_name(name)
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Ok(_) | Err(CreateGroupError::GroupExistsException(_)) => Ok(()),
            Err(e) => Err(anyhow!("CreateGroup {name}: {}", DisplayErrorContext(e))),
        }
    }

    async fn create_user_in_existing_groups(&self, spec: UserSpec) -> anyhow::Result<CreatedUser> {
        let username = spec.username.as_str();
        let attributes: Vec<AttributeType> = spec
            .attributes
            .iter()
            .map(|(name, value)| AttributeType::builder().name(name).value(value).build())
            .collect::<Result<_, _>>()
            .with_context(|| format!("attributes of {username}"))?;
        let sub = match spec.state {
            UserState::Unconfirmed => {
                let output = self
                    .cognito
                    .sign_up()
                    .client_id(self.app_client_id)
                    .username(username)
                    .password(TEST_PASSWORD)
                    .set_user_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|e| anyhow!("SignUp {username}: {}", DisplayErrorContext(e)))?;
                output.user_sub
            }
            UserState::Confirmed | UserState::ForceChangePassword => {
                let output = self
                    .cognito
                    .admin_create_user()
                    .user_pool_id(self.user_pool_id)
                    .username(username)
                    .temporary_password(TEST_PASSWORD)
                    .message_action(MessageActionType::Suppress)
                    .set_user_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow!("AdminCreateUser {username}: {}", DisplayErrorContext(e))
                    })?;
                output
                    .user
                    .and_then(|u| u.attributes)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|a| a.name == "sub")
                    .and_then(|a| a.value)
                    .with_context(|| format!("AdminCreateUser {username} returned no sub"))?
            }
        };
        let sub = Uuid::parse_str(&sub)
            .with_context(|| format!("sub of {username} is not a UUID: {sub}"))?;
        if spec.state == UserState::Confirmed {
            self.cognito
                .admin_set_user_password()
                .user_pool_id(self.user_pool_id)
                .username(username)
                .password(TEST_PASSWORD)
                .permanent(true)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "AdminSetUserPassword {username}: {}",
                        DisplayErrorContext(e)
                    )
                })?;
        }
        for group in &spec.groups {
            self.cognito
                .admin_add_user_to_group()
                .user_pool_id(self.user_pool_id)
                .username(username)
                .group_name(group)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "AdminAddUserToGroup {username} {group}: {}",
                        DisplayErrorContext(e)
                    )
                })?;
        }
        if !spec.enabled {
            self.cognito
                .admin_disable_user()
                .user_pool_id(self.user_pool_id)
                .username(username)
                .send()
                .await
                .map_err(|e| anyhow!("AdminDisableUser {username}: {}", DisplayErrorContext(e)))?;
        }
        Ok(CreatedUser {
            username: spec.username.clone(),
            sub,
            spec,
        })
    }
}
