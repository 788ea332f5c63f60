//! The Cognito operations cognito-lite serves: request and response shapes of the AWS JSON
//! 1.1 protocol (PascalCase members, timestamps as epoch seconds) and what each operation
//! does to the [`Store`].
//!
//! Responses are serialised while the pool's lock is held, straight from the stored users:
//! no copy of a page is made.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::filter::Filter;
use super::store::{CustomAttribute, Group, NewUser, Pool, STANDARD_ATTRIBUTES, Store, User};
use super::token::Scope;
use crate::proxy::{COGNITO_MAX_LIMIT, limit_message};

/// The `X-Amz-Target` prefix of Cognito user pool operations.
pub const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";

/// Answers one operation: the response body, or the error Cognito would send.
pub fn call(store: &Store, operation: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    match operation {
        "CreateUserPool" => create_user_pool(store, parse(body)?),
        "DescribeUserPool" => describe_user_pool(store, parse(body)?),
        "CreateUserPoolClient" => create_user_pool_client(store, parse(body)?),
        "CreateGroup" => create_group(store, parse(body)?),
        "ListGroups" => list_groups(store, parse(body)?),
        "AdminCreateUser" => admin_create_user(store, parse(body)?),
        "SignUp" => sign_up(store, parse(body)?),
        "AdminSetUserPassword" => admin_set_user_password(store, parse(body)?),
        "AdminAddUserToGroup" => {
            let req: GroupMemberIn = parse(body)?;
            change(store, &req.user_pool_id, |pool| {
                pool.add_to_group(&req.username, &req.group_name)
            })
        }
        "AdminRemoveUserFromGroup" => {
            let req: GroupMemberIn = parse(body)?;
            change(store, &req.user_pool_id, |pool| {
                pool.remove_from_group(&req.username, &req.group_name)
            })
        }
        "AdminDisableUser" => {
            let req: UserRef = parse(body)?;
            change(store, &req.user_pool_id, |pool| {
                pool.set_enabled(&req.username, false)
            })
        }
        "AdminEnableUser" => {
            let req: UserRef = parse(body)?;
            change(store, &req.user_pool_id, |pool| {
                pool.set_enabled(&req.username, true)
            })
        }
        "AdminDeleteUser" => {
            let req: UserRef = parse(body)?;
            change(store, &req.user_pool_id, |pool| {
                pool.delete_user(&req.username)
            })
        }
        "AdminUpdateUserAttributes" => admin_update_user_attributes(store, parse(body)?),
        "AdminGetUser" => admin_get_user(store, parse(body)?),
        "AdminListGroupsForUser" => admin_list_groups_for_user(store, parse(body)?),
        "ListUsers" => list_users(store, parse(body)?),
        "ListUsersInGroup" => list_users_in_group(store, parse(body)?),
        other => Err(ApiError::unknown_operation(other)),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_parameter(format!("1 validation error detected: {e}")))
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    // Serialising these shapes cannot fail (string keys, no floats that are not finite).
    Ok(serde_json::to_vec(value).unwrap_or_default())
}

fn empty() -> Result<Vec<u8>, ApiError> {
    Ok(b"{}".to_vec())
}

/// AWS JSON timestamps: epoch seconds, milliseconds as the fraction.
fn epoch(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

/// The page size of a list operation: 1..=60 as asked, 60 when absent or 0 (a page of
/// nothing would never advance); anything else is Cognito's validation error.
fn page_limit(limit: Option<i64>) -> Result<usize, ApiError> {
    match limit {
        None | Some(0) => Ok(COGNITO_MAX_LIMIT as usize),
        Some(limit @ 1..=COGNITO_MAX_LIMIT) => Ok(limit as usize),
        Some(limit) => Err(ApiError::invalid_parameter(limit_message(limit))),
    }
}

/// What identifies one listing: the operation, the pool, the request fields that shape
/// it (filter, group, user), and the page size and token as sent.
struct Listing<'r> {
    operation: &'static str,
    pool_id: &'r str,
    parts: &'r [&'r str],
    limit: Option<i64>,
    token: Option<&'r str>,
}

/// One page of a list operation under the pool's read lock: checks the limit and the token,
/// asks `read` for the items after the token's key, and lets `out` serialise them with the
/// next token. A full page gets a token even when nothing follows (the next page is then
/// empty), as a key-based listing does; a short page ends the listing. A token sent as `""`
/// counts as none.
fn list_page<T>(
    store: &Store,
    listing: Listing<'_>,
    read: impl for<'p> FnOnce(&'p Pool, Option<&str>, usize) -> Result<Vec<&'p T>, ApiError>,
    key: impl Fn(&T) -> &str,
    out: impl FnOnce(&Pool, &[&T], Option<String>) -> Result<Vec<u8>, ApiError>,
) -> Result<Vec<u8>, ApiError> {
    let limit = page_limit(listing.limit)?;
    let pool = store.pool(listing.pool_id)?;
    let scope = Scope {
        operation: listing.operation,
        pool: listing.pool_id,
        parts: listing.parts,
        limit,
    };
    let after = listing
        .token
        .filter(|token| !token.is_empty())
        .map(|token| store.tokens.check(&scope, token))
        .transpose()?;
    let pool = pool.read();
    let items = read(&pool, after.as_deref(), limit)?;
    let next = match items.last() {
        Some(last) if items.len() == limit => Some(store.tokens.issue(&scope, key(last))),
        _ => None,
    };
    out(&pool, &items, next)
}

// ---------------------------------------------------------------------------------------
// Wire shapes.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeIn {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

fn attribute_pairs(attributes: Vec<AttributeIn>) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .map(|a| (a.name, a.value.unwrap_or_default()))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeOut<'a> {
    name: &'a str,
    value: &'a str,
}

/// ListUsers and friends call the attributes `Attributes`, AdminGetUser `UserAttributes`.
#[derive(Serialize)]
enum Attributes<'a> {
    Attributes(Vec<AttributeOut<'a>>),
    UserAttributes(Vec<AttributeOut<'a>>),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserOut<'a> {
    username: &'a str,
    #[serde(flatten)]
    attributes: Attributes<'a>,
    user_create_date: f64,
    user_last_modified_date: f64,
    enabled: bool,
    user_status: &'a str,
}

impl<'a> UserOut<'a> {
    fn new(user: &'a User, admin_get: bool) -> UserOut<'a> {
        let attributes = user
            .attributes()
            .iter()
            .map(|(name, value)| AttributeOut { name, value })
            .collect();
        UserOut {
            username: &user.username,
            attributes: if admin_get {
                Attributes::UserAttributes(attributes)
            } else {
                Attributes::Attributes(attributes)
            },
            user_create_date: epoch(user.created),
            user_last_modified_date: epoch(user.modified),
            enabled: user.enabled,
            user_status: user.status,
        }
    }

    fn list(users: &[&'a User]) -> Vec<UserOut<'a>> {
        users.iter().map(|user| UserOut::new(user, false)).collect()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupOut<'a> {
    group_name: &'a str,
    user_pool_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precedence: Option<i32>,
    last_modified_date: f64,
    creation_date: f64,
}

impl<'a> GroupOut<'a> {
    fn new(pool_id: &'a str, group: &'a Group) -> GroupOut<'a> {
        GroupOut {
            group_name: &group.name,
            user_pool_id: pool_id,
            description: group.description.as_deref(),
            role_arn: group.role_arn.as_deref(),
            precedence: group.precedence,
            last_modified_date: epoch(group.modified),
            creation_date: epoch(group.created),
        }
    }
}

/// The `UserPool` member of CreateUserPool and DescribeUserPool.
fn pool_json(pool: &Pool) -> Value {
    let string_constraints = json!({ "MinLength": "0", "MaxLength": "2048" });
    let standard = STANDARD_ATTRIBUTES.iter().map(|a| {
        let mut attribute = json!({
            "Name": a.name,
            "AttributeDataType": a.data_type,
            "DeveloperOnlyAttribute": false,
            "Mutable": a.mutable,
            "Required": a.name == "sub",
        });
        if a.data_type == "String" {
            attribute["StringAttributeConstraints"] = if a.name == "sub" {
                json!({ "MinLength": "1", "MaxLength": "2048" })
            } else {
                string_constraints.clone()
            };
        }
        attribute
    });
    let custom = pool.custom_attributes.iter().map(|a| {
        json!({
            "Name": format!("custom:{}", a.name),
            "AttributeDataType": a.data_type,
            "DeveloperOnlyAttribute": false,
            "Mutable": a.mutable,
            "Required": false,
            "StringAttributeConstraints": string_constraints,
        })
    });
    json!({
        "Id": pool.id,
        "Name": pool.name,
        "Arn": pool.arn(),
        "CreationDate": epoch(pool.created),
        "LastModifiedDate": epoch(pool.modified),
        "EstimatedNumberOfUsers": pool.user_count(),
        "SchemaAttributes": standard.chain(custom).collect::<Vec<_>>(),
        "Policies": { "PasswordPolicy": {
            "MinimumLength": 8,
            "RequireUppercase": true,
            "RequireLowercase": true,
            "RequireNumbers": true,
            "RequireSymbols": true,
            "TemporaryPasswordValidityDays": 7,
        }},
        "MfaConfiguration": "OFF",
        "AdminCreateUserConfig": { "AllowAdminCreateUserOnly": false },
        "DeletionProtection": "INACTIVE",
    })
}

/// Cognito's default password policy: 8 characters with upper and lower case letters,
/// digits and symbols.
fn check_password(password: &str) -> Result<(), ApiError> {
    type Rule = (&'static str, fn(&str) -> bool);
    let rules: [Rule; 5] = [
        ("Password not long enough", |p| p.chars().count() >= 8),
        ("Password must have lowercase characters", |p| {
            p.chars().any(|c| c.is_lowercase())
        }),
        ("Password must have uppercase characters", |p| {
            p.chars().any(|c| c.is_uppercase())
        }),
        ("Password must have numeric characters", |p| {
            p.chars().any(|c| c.is_ascii_digit())
        }),
        ("Password must have symbol characters", |p| {
            p.chars().any(|c| c.is_ascii_punctuation() || c == ' ')
        }),
    ];
    match rules.iter().find(|(_, ok)| !ok(password)) {
        Some((why, _)) => Err(ApiError::invalid_password(format!(
            "Password did not conform with policy: {why}"
        ))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Pools, clients and groups.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PoolRef {
    user_pool_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SchemaAttributeIn {
    name: String,
    #[serde(default)]
    attribute_data_type: Option<String>,
    #[serde(default)]
    mutable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUserPoolIn {
    pool_name: String,
    #[serde(default)]
    schema: Vec<SchemaAttributeIn>,
}

fn create_user_pool(store: &Store, req: CreateUserPoolIn) -> Result<Vec<u8>, ApiError> {
    // Schema entries naming a standard attribute only tune it; the others are custom.
    let custom = req
        .schema
        .into_iter()
        .filter(|a| !STANDARD_ATTRIBUTES.iter().any(|s| s.name == a.name))
        .map(|a| CustomAttribute {
            name: a.name.trim_start_matches("custom:").to_owned(),
            data_type: a.attribute_data_type.unwrap_or_else(|| "String".into()),
            mutable: a.mutable.unwrap_or(true),
        })
        .collect();
    let pool = Pool::new(&req.pool_name, custom)?;
    let body = encode(&json!({ "UserPool": pool_json(&pool) }));
    store.insert(pool);
    body
}

fn describe_user_pool(store: &Store, req: PoolRef) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(&req.user_pool_id)?;
    let pool = pool.read();
    encode(&json!({ "UserPool": pool_json(&pool) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUserPoolClientIn {
    user_pool_id: String,
    client_name: String,
}

fn create_user_pool_client(
    store: &Store,
    req: CreateUserPoolClientIn,
) -> Result<Vec<u8>, ApiError> {
    let client = store.add_client(&req.user_pool_id, &req.client_name)?;
    encode(&json!({ "UserPoolClient": {
        "UserPoolId": req.user_pool_id,
        "ClientName": client.name,
        "ClientId": client.id,
        "CreationDate": epoch(client.created),
        "LastModifiedDate": epoch(client.created),
    }}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateGroupIn {
    user_pool_id: String,
    group_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    precedence: Option<i32>,
    #[serde(default)]
    role_arn: Option<String>,
}

fn create_group(store: &Store, req: CreateGroupIn) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(&req.user_pool_id)?;
    let mut pool = pool.write();
    let group = Group::new(
        req.group_name,
        req.description,
        req.precedence,
        req.role_arn,
    );
    let group = pool.create_group(group)?;
    encode(&json!({ "Group": GroupOut::new(&req.user_pool_id, group) }))
}

/// The members every `NextToken` listing has (ListGroups has only these).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PageIn {
    user_pool_id: String,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
}

impl PageIn {
    fn listing<'r>(&'r self, operation: &'static str, parts: &'r [&'r str]) -> Listing<'r> {
        Listing {
            operation,
            pool_id: &self.user_pool_id,
            parts,
            limit: self.limit,
            token: self.next_token.as_deref(),
        }
    }
}

fn list_groups(store: &Store, req: PageIn) -> Result<Vec<u8>, ApiError> {
    list_page(
        store,
        req.listing("ListGroups", &[]),
        |pool, after, limit| Ok(pool.list_groups(after, limit)),
        |group| &group.name,
        GroupsPage::encode,
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupsPage<'a> {
    groups: Vec<GroupOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

impl GroupsPage<'_> {
    fn encode(
        pool: &Pool,
        groups: &[&Group],
        next_token: Option<String>,
    ) -> Result<Vec<u8>, ApiError> {
        encode(&GroupsPage {
            groups: groups.iter().map(|g| GroupOut::new(&pool.id, g)).collect(),
            next_token,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Users.

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdminCreateUserIn {
    user_pool_id: String,
    username: String,
    #[serde(default)]
    user_attributes: Vec<AttributeIn>,
    #[serde(default)]
    temporary_password: Option<String>,
    #[serde(default)]
    message_action: Option<String>,
}

fn admin_create_user(store: &Store, req: AdminCreateUserIn) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(&req.user_pool_id)?;
    let mut pool = pool.write();
    match req.message_action.as_deref() {
        // RESEND re-sends the invitation of an existing user and changes nothing here.
        Some("RESEND") => {
            let user = pool.user(&req.username)?;
            return encode(&json!({ "User": UserOut::new(user, false) }));
        }
        None | Some("SUPPRESS") => {}
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{other}' at 'messageAction' failed to satisfy constraint: Member must satisfy enum value set: [RESEND, SUPPRESS]"
            )));
        }
    }
    if let Some(password) = &req.temporary_password {
        check_password(password)?;
    }
    let user = pool.create_user(
        NewUser {
            username: req.username,
            sub: None,
            attributes: attribute_pairs(req.user_attributes),
            enabled: true,
            status: "FORCE_CHANGE_PASSWORD",
            groups: Vec::new(),
        },
        "User account already exists",
    )?;
    encode(&json!({ "User": UserOut::new(user, false) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignUpIn {
    client_id: String,
    username: String,
    password: String,
    #[serde(default)]
    user_attributes: Vec<AttributeIn>,
}

fn sign_up(store: &Store, req: SignUpIn) -> Result<Vec<u8>, ApiError> {
    let pool = store.client_pool(&req.client_id)?;
    let mut pool = pool.write();
    check_password(&req.password)?;
    let user = pool.create_user(
        NewUser {
            username: req.username,
            sub: None,
            attributes: attribute_pairs(req.user_attributes),
            enabled: true,
            status: "UNCONFIRMED",
            groups: Vec::new(),
        },
        "User already exists",
    )?;
    encode(&json!({ "UserConfirmed": false, "UserSub": user.sub }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdminSetUserPasswordIn {
    user_pool_id: String,
    username: String,
    password: String,
    #[serde(default)]
    permanent: bool,
}

fn admin_set_user_password(
    store: &Store,
    req: AdminSetUserPasswordIn,
) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(&req.user_pool_id)?;
    let mut pool = pool.write();
    pool.user(&req.username)?;
    check_password(&req.password)?;
    let status = if req.permanent {
        "CONFIRMED"
    } else {
        "FORCE_CHANGE_PASSWORD"
    };
    pool.set_status(&req.username, status)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupMemberIn {
    user_pool_id: String,
    username: String,
    group_name: String,
}

/// Applies one change to a pool under its write lock; the answer is empty.
fn change(
    store: &Store,
    pool_id: &str,
    change: impl FnOnce(&mut Pool) -> Result<(), ApiError>,
) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(pool_id)?;
    let mut pool = pool.write();
    change(&mut pool)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdminUpdateUserAttributesIn {
    user_pool_id: String,
    username: String,
    user_attributes: Vec<AttributeIn>,
}

fn admin_update_user_attributes(
    store: &Store,
    req: AdminUpdateUserAttributesIn,
) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(&req.user_pool_id)?;
    let mut pool = pool.write();
    pool.update_attributes(&req.username, attribute_pairs(req.user_attributes))?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserRef {
    user_pool_id: String,
    username: String,
}

fn admin_get_user(store: &Store, req: UserRef) -> Result<Vec<u8>, ApiError> {
    let pool = store.pool(&req.user_pool_id)?;
    let pool = pool.read();
    encode(&UserOut::new(pool.user(&req.username)?, true))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdminListGroupsForUserIn {
    username: String,
    #[serde(flatten)]
    page: PageIn,
}

fn admin_list_groups_for_user(
    store: &Store,
    req: AdminListGroupsForUserIn,
) -> Result<Vec<u8>, ApiError> {
    list_page(
        store,
        req.page.listing("AdminListGroupsForUser", &[&req.username]),
        |pool, after, limit| pool.groups_of(&req.username, after, limit),
        |group| &group.name,
        GroupsPage::encode,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersIn {
    user_pool_id: String,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    pagination_token: Option<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    attributes_to_get: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersOut<'a> {
    users: Vec<UserOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination_token: Option<String>,
}

fn list_users(store: &Store, req: ListUsersIn) -> Result<Vec<u8>, ApiError> {
    if req.attributes_to_get.is_some() {
        // Not needed by the sync engine; refusing beats silently returning every attribute.
        return Err(ApiError::invalid_parameter(
            "cognito-lite does not implement AttributesToGet",
        ));
    }
    let filter = Filter::parse(req.filter.as_deref())?;
    let listing = Listing {
        operation: "ListUsers",
        pool_id: &req.user_pool_id,
        parts: &[req.filter.as_deref().unwrap_or_default()],
        limit: req.limit,
        token: req.pagination_token.as_deref(),
    };
    list_page(
        store,
        listing,
        |pool, after, limit| Ok(pool.list_users(filter.as_ref(), after, limit)),
        |user| &user.sub,
        |_, users, pagination_token| {
            encode(&ListUsersOut {
                users: UserOut::list(users),
                pagination_token,
            })
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersInGroupIn {
    group_name: String,
    #[serde(flatten)]
    page: PageIn,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UsersInGroupOut<'a> {
    users: Vec<UserOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn list_users_in_group(store: &Store, req: ListUsersInGroupIn) -> Result<Vec<u8>, ApiError> {
    list_page(
        store,
        req.page.listing("ListUsersInGroup", &[&req.group_name]),
        |pool, after, limit| pool.users_in_group(&req.group_name, after, limit),
        |user| &user.sub,
        |_, users, next_token| {
            encode(&UsersInGroupOut {
                users: UserOut::list(users),
                next_token,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_json(store: &Store, operation: &str, body: Value) -> Result<Value, ApiError> {
        let out = call(store, operation, body.to_string().as_bytes())?;
        Ok(serde_json::from_slice(&out).expect("JSON out"))
    }

    fn pool(store: &Store) -> String {
        let out = call_json(
            store,
            "CreateUserPool",
            json!({ "PoolName": "p", "Schema": [
                { "Name": "tenant", "AttributeDataType": "String", "Mutable": true },
                { "Name": "email", "Required": true },
            ]}),
        )
        .unwrap();
        out["UserPool"]["Id"].as_str().unwrap().to_owned()
    }

    #[test]
    fn describe_user_pool_lists_standard_and_custom_schema() {
        let store = Store::new();
        let id = pool(&store);
        let out = call_json(&store, "DescribeUserPool", json!({ "UserPoolId": id })).unwrap();
        let names: Vec<&str> = out["UserPool"]["SchemaAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"sub") && names.contains(&"custom:tenant"));
        assert_eq!(
            names.iter().filter(|n| **n == "email").count(),
            1,
            "a standard attribute in Schema is not a custom one"
        );
        assert_eq!(out["UserPool"]["EstimatedNumberOfUsers"], 0);
    }

    #[test]
    fn limits_outside_zero_to_sixty_are_rejected_with_cognitos_message() {
        assert_eq!(page_limit(None).unwrap(), 60);
        assert_eq!(page_limit(Some(0)).unwrap(), 60);
        assert_eq!(page_limit(Some(60)).unwrap(), 60);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        for bad in [61, -1, 1000] {
            let err = page_limit(Some(bad)).unwrap_err();
            assert_eq!(err.code, "InvalidParameterException");
            assert_eq!(err.message, limit_message(bad));
        }
    }

    #[test]
    fn list_users_pages_with_tokens_bound_to_the_filter() {
        let store = Store::new();
        let id = pool(&store);
        for i in 0..25 {
            call_json(
                &store,
                "AdminCreateUser",
                json!({ "UserPoolId": id, "Username": format!("u{i}"), "MessageAction": "SUPPRESS",
                        "UserAttributes": [{ "Name": "custom:tenant", "Value": "t" }] }),
            )
            .unwrap();
        }
        let mut seen = 0;
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut req = json!({ "UserPoolId": id, "Limit": 10 });
            if let Some(t) = &token {
                req["PaginationToken"] = json!(t);
            }
            let out = call_json(&store, "ListUsers", req).unwrap();
            seen += out["Users"].as_array().unwrap().len();
            pages += 1;
            token = out["PaginationToken"].as_str().map(str::to_owned);
            if let Some(t) = &token {
                let mismatched = call_json(
                    &store,
                    "ListUsers",
                    json!({ "UserPoolId": id, "Limit": 10, "Filter": "sub ^= \"a\"", "PaginationToken": t }),
                )
                .unwrap_err();
                assert!(mismatched.message.starts_with("Paging marker"));
            } else {
                break;
            }
        }
        assert_eq!((seen, pages), (25, 3));
    }

    #[test]
    fn user_shapes_match_the_operation() {
        let store = Store::new();
        let id = pool(&store);
        let created = call_json(
            &store,
            "AdminCreateUser",
            json!({ "UserPoolId": id, "Username": "zoë", "TemporaryPassword": "Aa1!aaaa",
                    "UserAttributes": [{ "Name": "email", "Value": "z@example.test" }] }),
        )
        .unwrap();
        assert_eq!(created["User"]["UserStatus"], "FORCE_CHANGE_PASSWORD");
        assert_eq!(created["User"]["Enabled"], true);
        assert!(created["User"]["UserCreateDate"].is_f64());
        let got = call_json(
            &store,
            "AdminGetUser",
            json!({ "UserPoolId": id, "Username": "zoë" }),
        )
        .unwrap();
        assert!(got.get("UserAttributes").is_some() && got.get("Attributes").is_none());
        let sub = got["UserAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Name"] == "sub")
            .unwrap()["Value"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(uuid::Uuid::parse_str(&sub).unwrap().get_version_num(), 4);
        call_json(
            &store,
            "AdminSetUserPassword",
            json!({ "UserPoolId": id, "Username": sub, "Password": "Bb2@bbbb", "Permanent": true }),
        )
        .unwrap();
        let listed = call_json(&store, "ListUsers", json!({ "UserPoolId": id })).unwrap();
        assert_eq!(listed["Users"][0]["UserStatus"], "CONFIRMED");
        assert!(listed["Users"][0].get("Attributes").is_some());
        assert!(listed.get("PaginationToken").is_none());
    }

    #[test]
    fn passwords_follow_the_default_policy() {
        assert!(check_password("Testbed-Passw0rd!").is_ok());
        for (bad, why) in [
            ("Aa1!", "not long enough"),
            ("AAAAAAA1!", "lowercase"),
            ("aaaaaaa1!", "uppercase"),
            ("Aaaaaaaa!", "numeric"),
            ("Aaaaaaaa1", "symbol"),
        ] {
            let err = check_password(bad).unwrap_err();
            assert_eq!(err.code, "InvalidPasswordException");
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn unknown_operations_and_bad_requests_are_errors() {
        let store = Store::new();
        assert_eq!(
            call(&store, "DeleteUserPool", b"{}").unwrap_err().code,
            "UnknownOperationException"
        );
        assert_eq!(
            call(&store, "ListUsers", b"{}").unwrap_err().code,
            "InvalidParameterException"
        );
        assert_eq!(
            call(&store, "ListUsers", br#"{"UserPoolId":"us-east-1_nope"}"#)
                .unwrap_err()
                .code,
            "ResourceNotFoundException"
        );
    }
}
