//! The state of cognito-lite: user pools with their users, groups and app clients, indexed
//! for the reads the sync engine makes.
//!
//! Users are keyed by `sub` in a `BTreeMap`, so a `sub ^= "x"` page is a range scan that costs
//! O(log n + page) and a lookup by `sub` or username (a second index) O(log n) or O(1).
//! Listings resume after the last key returned, so users added or removed between two pages
//! never shift the others. Filters on other attributes scan the users in `sub` order.
//! Each pool sits behind its own `RwLock`: reads run in parallel, writes are short.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rand::Rng as _;
use rand::distr::Alphanumeric;

use super::error::ApiError;
use super::filter::{Field, Filter, Op};
use super::token::Tokens;

/// The account id in ARNs.
pub const ACCOUNT_ID: &str = "123456789012";

/// Every Cognito `UserStatus`.
pub const USER_STATUSES: [&str; 8] = [
    "UNCONFIRMED",
    "CONFIRMED",
    "ARCHIVED",
    "COMPROMISED",
    "UNKNOWN",
    "RESET_REQUIRED",
    "FORCE_CHANGE_PASSWORD",
    "EXTERNAL_PROVIDER",
];

/// A standard attribute of every pool: name, `AttributeDataType`, mutable.
pub struct StandardAttribute {
    pub name: &'static str,
    pub data_type: &'static str,
    pub mutable: bool,
}

const fn standard(name: &'static str, data_type: &'static str) -> StandardAttribute {
    StandardAttribute {
        name,
        data_type,
        mutable: true,
    }
}

/// Cognito's standard attributes (`sub` is assigned by Cognito and never writable;
/// `identities` describes the linked identity providers of federated users).
pub const STANDARD_ATTRIBUTES: [StandardAttribute; 21] = [
    StandardAttribute {
        name: "sub",
        data_type: "String",
        mutable: false,
    },
    standard("name", "String"),
    standard("given_name", "String"),
    standard("family_name", "String"),
    standard("middle_name", "String"),
    standard("nickname", "String"),
    standard("preferred_username", "String"),
    standard("profile", "String"),
    standard("picture", "String"),
    standard("website", "String"),
    standard("email", "String"),
    standard("email_verified", "Boolean"),
    standard("gender", "String"),
    standard("birthdate", "String"),
    standard("zoneinfo", "String"),
    standard("locale", "String"),
    standard("phone_number", "String"),
    standard("phone_number_verified", "Boolean"),
    standard("address", "String"),
    standard("updated_at", "Number"),
    standard("identities", "String"),
];

/// The status a user is left in, validated against [`USER_STATUSES`].
pub fn user_status(status: &str) -> Result<&'static str, ApiError> {
    USER_STATUSES
        .iter()
        .copied()
        .find(|s| *s == status)
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{status}' at 'userStatus' failed to satisfy constraint: Member must satisfy enum value set: {USER_STATUSES:?}"
            ))
        })
}

/// Every pool of one server, and the app clients that lead to them.
#[derive(Debug)]
pub struct Store {
    registry: RwLock<Registry>,
    /// Issues and checks this server's pagination tokens.
    pub tokens: Tokens,
}

#[derive(Debug, Default)]
struct Registry {
    pools: HashMap<String, SharedPool>,
    /// App client id → pool id.
    clients: HashMap<String, String>,
}

/// One pool behind its lock.
#[derive(Debug, Clone)]
pub struct SharedPool(Arc<RwLock<Pool>>);

impl SharedPool {
    // A panic while holding a lock cannot leave a pool half-changed: every change validates
    // first and then mutates without failing. Keep serving.
    pub fn read(&self) -> RwLockReadGuard<'_, Pool> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Pool> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            registry: RwLock::new(Registry::default()),
            tokens: Tokens::new(),
        }
    }

    fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn registry_mut(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a pool (and its app clients) and returns its id.
    pub fn insert(&self, pool: Pool) -> String {
        let id = pool.id.clone();
        let mut registry = self.registry_mut();
        for client in pool.clients.keys() {
            registry.clients.insert(client.clone(), id.clone());
        }
        registry
            .pools
            .insert(id.clone(), SharedPool(Arc::new(RwLock::new(pool))));
        id
    }

    /// The pool with this id: `InvalidParameterException` for an id Cognito would reject,
    /// `ResourceNotFoundException` for one that does not exist.
    pub fn pool(&self, id: &str) -> Result<SharedPool, ApiError> {
        check_pool_id(id)?;
        self.registry()
            .pools
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::pool_not_found(id))
    }

    /// Adds an app client to a pool and returns its id.
    pub fn add_client(&self, pool_id: &str, name: &str) -> Result<AppClient, ApiError> {
        let pool = self.pool(pool_id)?;
        let client = AppClient {
            id: random_string(26, "abcdefghijklmnopqrstuvwxyz0123456789"),
            name: name.to_owned(),
            created: Utc::now(),
        };
        // Registry first, then the pool: the same lock order as `insert` and `client_pool`.
        let mut registry = self.registry_mut();
        registry
            .clients
            .insert(client.id.clone(), pool_id.to_owned());
        pool.write()
            .clients
            .insert(client.id.clone(), client.clone());
        Ok(client)
    }

    #[cfg(test)]
    pub fn pool_count(&self) -> usize {
        self.registry().pools.len()
    }

    /// The pool an app client belongs to.
    pub fn client_pool(&self, client_id: &str) -> Result<SharedPool, ApiError> {
        let registry = self.registry();
        registry
            .clients
            .get(client_id)
            .and_then(|pool_id| registry.pools.get(pool_id))
            .cloned()
            .ok_or_else(|| ApiError::client_not_found(client_id))
    }
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

/// Cognito's pattern for pool ids, `[\w-]+_[0-9a-zA-Z]+`, checked before looking one up.
fn check_pool_id(id: &str) -> Result<(), ApiError> {
    let valid = id.rsplit_once('_').is_some_and(|(region, suffix)| {
        !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && !suffix.is_empty()
            && suffix.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if valid && id.len() <= 55 {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{id}' at 'userPoolId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w-]+_[0-9a-zA-Z]+"
        )))
    }
}

fn random_string(len: usize, alphabet: &str) -> String {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

/// A custom attribute declared in the pool's schema (name without `custom:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomAttribute {
    pub name: String,
    pub data_type: String,
    pub mutable: bool,
}

/// An app client (no secret: only its id matters here, for SignUp).
#[derive(Debug, Clone)]
pub struct AppClient {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub sub: String,
    /// Sorted by name, `sub` included.
    attributes: Vec<(String, String)>,
    pub enabled: bool,
    pub status: &'static str,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Group names.
    pub groups: BTreeSet<String>,
}

impl User {
    /// An enabled user in no group, created now.
    pub fn new(
        username: impl Into<String>,
        sub: impl Into<String>,
        attributes: Vec<(String, String)>,
        status: &'static str,
    ) -> User {
        let now = Utc::now();
        let sub = sub.into();
        let mut user = User {
            username: username.into(),
            attributes: vec![("sub".to_owned(), sub.clone())],
            sub,
            enabled: true,
            status,
            created: now,
            modified: now,
            groups: BTreeSet::new(),
        };
        for (name, value) in attributes {
            user.set_attribute(name, value);
        }
        user
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.attributes[i].1.as_str())
    }

    /// Name/value pairs sorted by name.
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    fn set_attribute(&mut self, name: String, value: String) {
        match self
            .attributes
            .binary_search_by(|(n, _)| n.as_str().cmp(&name))
        {
            Ok(i) => self.attributes[i].1 = value,
            Err(i) => self.attributes.insert(i, (name, value)),
        }
    }
}

/// One group.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub precedence: Option<i32>,
    pub role_arn: Option<String>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// Members by `sub`.
    members: BTreeSet<String>,
}

impl Group {
    pub fn new(
        name: impl Into<String>,
        description: Option<String>,
        precedence: Option<i32>,
        role_arn: Option<String>,
    ) -> Group {
        let now = Utc::now();
        Group {
            name: name.into(),
            description,
            precedence,
            role_arn,
            created: now,
            modified: now,
            members: BTreeSet::new(),
        }
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    /// Assigned (a random UUID v4) when `None`.
    pub sub: Option<uuid::Uuid>,
    pub attributes: Vec<(String, String)>,
    pub enabled: bool,
    pub status: &'static str,
    pub groups: Vec<String>,
}

/// One user pool.
#[derive(Debug)]
pub struct Pool {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub custom_attributes: Vec<CustomAttribute>,
    pub clients: BTreeMap<String, AppClient>,
    /// By `sub`.
    users: BTreeMap<String, User>,
    /// Username → `sub`.
    usernames: HashMap<String, String>,
    /// By name.
    groups: BTreeMap<String, Group>,
}

impl Pool {
    /// An empty pool with a new id (`us-east-1_` and nine letters or digits).
    pub fn new(name: &str, custom_attributes: Vec<CustomAttribute>) -> Result<Pool, ApiError> {
        if name.is_empty() || name.chars().count() > 128 {
            return Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{name}' at 'poolName' failed to satisfy constraint: Member must have length between 1 and 128"
            )));
        }
        let now = Utc::now();
        let suffix: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(9)
            .map(char::from)
            .collect();
        Ok(Pool {
            id: format!("{}_{suffix}", crate::AWS_REGION),
            name: name.to_owned(),
            created: now,
            modified: now,
            custom_attributes,
            clients: BTreeMap::new(),
            users: BTreeMap::new(),
            usernames: HashMap::new(),
            groups: BTreeMap::new(),
        })
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:cognito-idp:{}:{ACCOUNT_ID}:userpool/{}",
            crate::AWS_REGION,
            self.id
        )
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Creates a user; `exists_message` is what the calling operation says about a taken
    /// username (AdminCreateUser and SignUp word it differently).
    pub fn create_user(&mut self, new: NewUser, exists_message: &str) -> Result<&User, ApiError> {
        check_username(&new.username)?;
        if self.usernames.contains_key(&new.username) {
            return Err(ApiError::username_exists(exists_message));
        }
        self.check_attributes(&new.attributes, false)?;
        if let Some(missing) = new.groups.iter().find(|g| !self.groups.contains_key(*g)) {
            return Err(ApiError::invalid_parameter(format!(
                "group {missing:?} of user {:?} does not exist",
                new.username
            )));
        }
        let sub = new.sub.unwrap_or_else(uuid::Uuid::new_v4).to_string();
        if self.users.contains_key(&sub) {
            return Err(ApiError::invalid_parameter(format!(
                "sub {sub} is already taken"
            )));
        }
        let mut user = User::new(&new.username, &sub, new.attributes, new.status);
        user.enabled = new.enabled;
        for group in new.groups {
            if let Some(group) = self.groups.get_mut(&group) {
                group.members.insert(sub.clone());
                user.groups.insert(group.name.clone());
            }
        }
        self.usernames.insert(new.username, sub.clone());
        Ok(self.users.entry(sub).or_insert(user))
    }

    /// Checks attributes against the schema: standard or declared custom attributes only,
    /// never `sub`, immutable custom attributes only at creation, Cognito's email and phone
    /// number formats.
    pub fn check_attributes(
        &self,
        attributes: &[(String, String)],
        updating: bool,
    ) -> Result<(), ApiError> {
        for (name, value) in attributes {
            let schema_error = |why: &str| {
                ApiError::invalid_parameter(format!(
                    "Attributes did not conform to the schema: {name}: {why}"
                ))
            };
            let mutable =
                if let Some(standard) = STANDARD_ATTRIBUTES.iter().find(|a| a.name == *name) {
                    standard.mutable
                } else if let Some(custom) = name
                    .strip_prefix("custom:")
                    .and_then(|n| self.custom_attributes.iter().find(|a| a.name == n))
                {
                    custom.mutable || !updating
                } else {
                    return Err(schema_error("Attribute does not exist in the schema."));
                };
            if !mutable {
                return Err(schema_error("Attribute cannot be updated."));
            }
            if value.chars().count() > 2048 {
                return Err(schema_error(
                    "String must be no longer than 2048 characters",
                ));
            }
            if name == "email" && !valid_email(value) {
                return Err(ApiError::invalid_parameter("Invalid email address format."));
            }
            if name == "phone_number" && !valid_phone_number(value) {
                return Err(ApiError::invalid_parameter("Invalid phone number format."));
            }
        }
        Ok(())
    }

    /// The user with this username, or else with this `sub` (Cognito accepts either).
    pub fn user(&self, username: &str) -> Result<&User, ApiError> {
        let sub = self.resolve(username)?;
        self.users.get(&sub).ok_or_else(ApiError::user_not_found)
    }

    fn user_mut(&mut self, username: &str) -> Result<&mut User, ApiError> {
        let sub = self.resolve(username)?;
        self.users
            .get_mut(&sub)
            .ok_or_else(ApiError::user_not_found)
    }

    /// The `sub` a username parameter names. As in Cognito, a `sub` stands for a local user
    /// only: a federated (`EXTERNAL_PROVIDER`) user is named by its username.
    fn resolve(&self, username: &str) -> Result<String, ApiError> {
        if let Some(sub) = self.usernames.get(username) {
            return Ok(sub.clone());
        }
        match self.users.get(username) {
            Some(user) if user.status != "EXTERNAL_PROVIDER" => Ok(user.sub.clone()),
            _ => Err(ApiError::user_not_found()),
        }
    }

    pub fn delete_user(&mut self, username: &str) -> Result<(), ApiError> {
        let sub = self.user(username)?.sub.clone();
        let user = self
            .users
            .remove(&sub)
            .ok_or_else(ApiError::user_not_found)?;
        self.usernames.remove(&user.username);
        for group in &user.groups {
            if let Some(group) = self.groups.get_mut(group) {
                group.members.remove(&sub);
            }
        }
        Ok(())
    }

    pub fn set_enabled(&mut self, username: &str, enabled: bool) -> Result<(), ApiError> {
        let user = self.user_mut(username)?;
        user.enabled = enabled;
        user.modified = Utc::now();
        Ok(())
    }

    pub fn set_status(&mut self, username: &str, status: &'static str) -> Result<(), ApiError> {
        let user = self.user_mut(username)?;
        user.status = status;
        user.modified = Utc::now();
        Ok(())
    }

    pub fn update_attributes(
        &mut self,
        username: &str,
        attributes: Vec<(String, String)>,
    ) -> Result<(), ApiError> {
        self.user(username)?;
        self.check_attributes(&attributes, true)?;
        let user = self.user_mut(username)?;
        for (name, value) in attributes {
            user.set_attribute(name, value);
        }
        user.modified = Utc::now();
        Ok(())
    }

    pub fn create_group(&mut self, group: Group) -> Result<&Group, ApiError> {
        if group.name.is_empty() || group.name.chars().count() > 128 {
            return Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{}' at 'groupName' failed to satisfy constraint: Member must have length between 1 and 128",
                group.name
            )));
        }
        if self.groups.contains_key(&group.name) {
            return Err(ApiError::group_exists(&group.name));
        }
        Ok(self.groups.entry(group.name.clone()).or_insert(group))
    }

    /// Adds a user to a group; adding a member again changes nothing.
    pub fn add_to_group(&mut self, username: &str, group: &str) -> Result<(), ApiError> {
        let sub = self.user(username)?.sub.clone();
        let group = self
            .groups
            .get_mut(group)
            .ok_or_else(ApiError::group_not_found)?;
        group.members.insert(sub.clone());
        let name = group.name.clone();
        self.user_mut(&sub)?.groups.insert(name);
        Ok(())
    }

    /// Removes a user from a group; removing a non-member changes nothing.
    pub fn remove_from_group(&mut self, username: &str, group: &str) -> Result<(), ApiError> {
        let sub = self.user(username)?.sub.clone();
        let group = self
            .groups
            .get_mut(group)
            .ok_or_else(ApiError::group_not_found)?;
        group.members.remove(&sub);
        let name = group.name.clone();
        self.user_mut(&sub)?.groups.remove(&name);
        Ok(())
    }

    /// Up to `limit` users passing `filter`, in `sub` order, after the `sub` `after`.
    pub fn list_users(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<&User> {
        let is_after = |sub: &str| after.is_none_or(|after| sub > after);
        let Some(filter) = filter else {
            return self.users_from(after).take(limit).collect();
        };
        match (filter.sub(), filter.op, filter.field) {
            (Some(prefix), Op::StartsWith, _) => {
                let lower = match after {
                    Some(after) if after >= prefix => Bound::Excluded(after),
                    _ => Bound::Included(prefix),
                };
                self.users
                    .range::<str, _>((lower, Bound::Unbounded))
                    .take_while(|(sub, _)| sub.starts_with(prefix))
                    .map(|(_, user)| user)
                    .take(limit)
                    .collect()
            }
            (Some(sub), Op::Equals, _) => self
                .users
                .get(sub)
                .filter(|user| is_after(&user.sub))
                .into_iter()
                .collect(),
            (None, Op::Equals, Field::Username) => self
                .usernames
                .get(&filter.value)
                .and_then(|sub| self.users.get(sub))
                .filter(|user| is_after(&user.sub))
                .into_iter()
                .collect(),
            _ => self
                .users_from(after)
                .filter(|user| filter.matches(user))
                .take(limit)
                .collect(),
        }
    }

    fn users_from(&self, after: Option<&str>) -> impl Iterator<Item = &User> {
        self.users
            .range::<str, _>((exclusive(after), Bound::Unbounded))
            .map(|(_, user)| user)
    }

    /// Up to `limit` groups in name order after the name `after`.
    pub fn list_groups(&self, after: Option<&str>, limit: usize) -> Vec<&Group> {
        self.groups
            .range::<str, _>((exclusive(after), Bound::Unbounded))
            .map(|(_, group)| group)
            .take(limit)
            .collect()
    }

    /// Up to `limit` members of a group in `sub` order after the `sub` `after`.
    pub fn users_in_group(
        &self,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<&User>, ApiError> {
        let group = self
            .groups
            .get(group)
            .ok_or_else(ApiError::group_not_found)?;
        Ok(group
            .members
            .range::<str, _>((exclusive(after), Bound::Unbounded))
            .filter_map(|sub| self.users.get(sub))
            .take(limit)
            .collect())
    }

    /// Up to `limit` groups of a user in name order after the name `after`.
    pub fn groups_of(
        &self,
        username: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<&Group>, ApiError> {
        let user = self.user(username)?;
        Ok(user
            .groups
            .range::<str, _>((exclusive(after), Bound::Unbounded))
            .filter_map(|name| self.groups.get(name))
            .take(limit)
            .collect())
    }
}

fn exclusive(after: Option<&str>) -> Bound<&str> {
    after.map_or(Bound::Unbounded, Bound::Excluded)
}

/// Cognito's username pattern `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`, 1 to 128 characters: no
/// spaces or control characters.
fn check_username(username: &str) -> Result<(), ApiError> {
    let length = username.chars().count();
    if (1..=128).contains(&length)
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{username}' at 'username' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{M}}\\p{{S}}\\p{{N}}\\p{{P}}]+"
        )))
    }
}

fn valid_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !email.chars().any(char::is_whitespace)
    })
}

/// E.164: `+` and up to 15 digits.
fn valid_phone_number(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn pool_with(count: usize) -> Pool {
        let mut pool = Pool::new(
            "test",
            vec![CustomAttribute {
                name: "tenant".into(),
                data_type: "String".into(),
                mutable: false,
            }],
        )
        .unwrap();
        pool.create_group(Group::new("staff", None, None, None))
            .unwrap();
        for i in 0..count {
            create(&mut pool, &format!("user-{i:05}"), i % 3 == 0);
        }
        pool
    }

    fn create(pool: &mut Pool, username: &str, staff: bool) -> String {
        let groups = if staff { vec!["staff".into()] } else { vec![] };
        pool.create_user(
            NewUser {
                username: username.into(),
                sub: None,
                attributes: vec![("email".into(), format!("{username}@example.test"))],
                enabled: true,
                status: "CONFIRMED",
                groups,
            },
            "User account already exists",
        )
        .unwrap()
        .sub
        .clone()
    }

    /// Every page of a listing, following the last key as a token would.
    fn all_pages(pool: &Pool, filter: Option<&Filter>, limit: usize) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page: Vec<String> = pool
                .list_users(filter, after.as_deref(), limit)
                .iter()
                .map(|u| u.sub.clone())
                .collect();
            let full = page.len() == limit;
            after = page.last().cloned();
            pages.push(page);
            if !full {
                return pages;
            }
        }
    }

    fn filter(text: &str) -> Filter {
        Filter::parse(Some(text)).unwrap().unwrap()
    }

    #[test]
    fn sub_prefix_pages_cover_each_shard_exactly() {
        let pool = pool_with(500);
        let mut seen = BTreeSet::new();
        for digit in "0123456789abcdef".chars() {
            let f = filter(&format!("sub ^= \"{digit}\""));
            let pages = all_pages(&pool, Some(&f), 7);
            for sub in pages.iter().flatten() {
                assert!(sub.starts_with(digit), "{sub} in shard {digit}");
                assert!(seen.insert(sub.clone()), "{sub} listed twice");
            }
            assert!(pages.iter().all(|p| p.len() <= 7));
            let subs: Vec<&String> = pages.iter().flatten().collect();
            assert!(subs.windows(2).all(|w| w[0] < w[1]), "in sub order");
        }
        assert_eq!(seen.len(), 500);
    }

    #[test]
    fn a_full_last_page_still_gets_a_token_and_the_next_page_is_empty() {
        let pool = pool_with(10);
        let pages = all_pages(&pool, None, 5);
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![5, 5, 0]
        );
    }

    #[test]
    fn pagination_is_stable_while_users_come_and_go() {
        let mut pool = pool_with(100);
        let first = pool.list_users(None, None, 30);
        let last_seen = first.last().unwrap().sub.clone();
        let first: Vec<String> = first.iter().map(|u| u.sub.clone()).collect();
        let survivors: BTreeSet<String> = pool.users.keys().cloned().collect();

        // Between two pages: the last user returned is deleted, others are added.
        let last_name = pool.users[&last_seen].username.clone();
        pool.delete_user(&last_name).unwrap();
        for i in 0..50 {
            create(&mut pool, &format!("late-{i}"), false);
        }
        let mut rest = Vec::new();
        let mut after = Some(last_seen.clone());
        loop {
            let page: Vec<String> = pool
                .list_users(None, after.as_deref(), 30)
                .iter()
                .map(|u| u.sub.clone())
                .collect();
            let full = page.len() == 30;
            after = page.last().cloned();
            rest.extend(page);
            if !full {
                break;
            }
        }
        let listed: Vec<&String> = first.iter().chain(&rest).collect();
        let unique: BTreeSet<&String> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "nobody listed twice");
        for sub in survivors.iter().filter(|s| **s != last_seen) {
            assert!(
                unique.contains(sub),
                "{sub} was there all along and is listed"
            );
        }
    }

    #[test]
    fn a_sub_names_a_local_user_but_not_a_federated_one() {
        let mut pool = pool_with(2);
        let local = create(&mut pool, "local-user", true);
        let federated = pool
            .create_user(
                NewUser {
                    username: "Google_1234567890".into(),
                    sub: None,
                    attributes: vec![],
                    enabled: true,
                    status: "EXTERNAL_PROVIDER",
                    groups: vec!["staff".into()],
                },
                "User account already exists",
            )
            .unwrap()
            .sub
            .clone();
        assert_eq!(pool.user(&local).unwrap().username, "local-user");
        assert_eq!(pool.groups_of(&local, None, 60).unwrap().len(), 1);
        assert_eq!(
            pool.user("Google_1234567890").unwrap().sub,
            federated,
            "a federated user is found by its username"
        );
        for err in [
            pool.user(&federated).map(|_| ()).unwrap_err(),
            pool.groups_of(&federated, None, 60)
                .map(|_| ())
                .unwrap_err(),
            pool.set_enabled(&federated, false).unwrap_err(),
        ] {
            assert_eq!(err, ApiError::user_not_found());
        }
    }

    #[test]
    fn exact_sub_and_username_filters_use_the_indexes() {
        let mut pool = pool_with(20);
        let sub = create(&mut pool, "Zoë", false);
        let by_sub = pool.list_users(Some(&filter(&format!("sub = \"{sub}\""))), None, 60);
        assert_eq!(by_sub.len(), 1);
        assert_eq!(by_sub[0].username, "Zoë");
        let by_name = pool.list_users(Some(&filter("username = \"Zoë\"")), None, 60);
        assert_eq!(by_name[0].sub, sub);
        assert!(
            pool.list_users(Some(&filter("username = \"zoë\"")), None, 60)
                .is_empty()
        );
        assert!(
            pool.list_users(Some(&filter("username = \"Zoë\"")), Some(&sub), 60)
                .is_empty(),
            "nothing after the only match"
        );
        let scanned = pool.list_users(Some(&filter("email ^= \"user-0001\"")), None, 60);
        assert_eq!(scanned.len(), 10);
    }

    #[test]
    fn group_listings_page_and_follow_membership_changes() {
        let mut pool = pool_with(30);
        let members = pool.users_in_group("staff", None, 4).unwrap();
        assert_eq!(members.len(), 4);
        let after = members[3].sub.clone();
        let rest = pool.users_in_group("staff", Some(&after), 60).unwrap();
        assert_eq!(rest.len(), 6);
        let name = rest[0].username.clone();
        pool.remove_from_group(&name, "staff").unwrap();
        assert_eq!(pool.users_in_group("staff", None, 60).unwrap().len(), 9);
        assert!(pool.groups_of(&name, None, 60).unwrap().is_empty());
        pool.add_to_group(&name, "staff").unwrap();
        pool.add_to_group(&name, "staff").unwrap();
        assert_eq!(pool.users_in_group("staff", None, 60).unwrap().len(), 10);
        pool.delete_user(&name).unwrap();
        assert_eq!(pool.users_in_group("staff", None, 60).unwrap().len(), 9);
        assert_eq!(
            pool.users_in_group("nope", None, 60).unwrap_err(),
            ApiError::group_not_found()
        );
        assert_eq!(
            pool.add_to_group("nobody", "staff").unwrap_err(),
            ApiError::user_not_found()
        );
    }

    #[test]
    fn users_are_found_by_username_or_sub() {
        let mut pool = pool_with(0);
        let sub = create(&mut pool, "ana", false);
        assert_eq!(pool.user("ana").unwrap().sub, sub);
        assert_eq!(pool.user(&sub).unwrap().username, "ana");
        assert_eq!(pool.user("ANA").unwrap_err(), ApiError::user_not_found());
    }

    #[test]
    fn attributes_must_fit_the_schema() {
        let mut pool = pool_with(0);
        let ok = |attrs: &[(&str, &str)]| -> Vec<(String, String)> {
            attrs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert!(
            pool.check_attributes(&ok(&[("custom:tenant", "a"), ("email", "a@b")]), false)
                .is_ok()
        );
        for (bad, updating) in [
            (ok(&[("custom:nope", "x")]), false),
            (ok(&[("favourite", "x")]), false),
            (ok(&[("sub", "x")]), false),
            (ok(&[("custom:tenant", "x")]), true),
            (ok(&[("email", "not-an-email")]), false),
            (ok(&[("phone_number", "555-0100")]), false),
        ] {
            let err = pool.check_attributes(&bad, updating).unwrap_err();
            assert_eq!(err.code, "InvalidParameterException", "{bad:?}");
        }
        create(&mut pool, "ana", false);
        let err = pool
            .create_user(
                NewUser {
                    username: "ana".into(),
                    sub: None,
                    attributes: vec![],
                    enabled: true,
                    status: "CONFIRMED",
                    groups: vec![],
                },
                "User account already exists",
            )
            .unwrap_err();
        assert_eq!(err.code, "UsernameExistsException");
        assert_eq!(err.message, "User account already exists");
        for bad in ["", "has space", "tab\t", &"x".repeat(129)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        assert!(check_username("zoë.ødegård+山田@example").is_ok());
    }

    #[test]
    fn pool_ids_are_validated_then_looked_up() {
        let store = Store::new();
        let id = store.insert(Pool::new("p", vec![]).unwrap());
        assert!(id.starts_with("us-east-1_") && id.len() == 19, "{id}");
        assert!(store.pool(&id).is_ok());
        assert_eq!(
            store.pool("us-east-1_missing").unwrap_err(),
            ApiError::pool_not_found("us-east-1_missing")
        );
        for bad in [
            "",
            "nounderscore",
            "us-east-1_",
            "us east_1",
            "us-east-1_a.b",
        ] {
            let err = store.pool(bad).unwrap_err();
            assert_eq!(err.code, "InvalidParameterException", "{bad:?}");
        }
        let client = store.add_client(&id, "app").unwrap();
        assert_eq!(store.client_pool(&client.id).unwrap().read().id, id);
        assert_eq!(
            store.client_pool("nope").unwrap_err(),
            ApiError::client_not_found("nope")
        );
    }
}
