//! The ListUsers `Filter`: `AttributeName Filter-Type "AttributeValue"`, where the filter type
//! is `=` (exact match) or `^=` (starts with), quotation marks and backslashes in the value
//! are escaped with a backslash, and an empty filter lists every user.
//!
//! Only the attributes Cognito lets you search are accepted: `username` (case-sensitive),
//! `email`, `phone_number`, `name`, `given_name`, `family_name`, `preferred_username`,
//! `cognito:user_status` (the UserStatus, case-insensitive), `status` (`Enabled` or
//! `Disabled`, case-sensitive) and `sub`. Custom attributes are not searchable.

use super::error::ApiError;
use super::store::User;

/// Cognito's message for a filter it cannot parse.
const PARSE_ERROR: &str = "Error while parsing filter.";

/// The standard attributes that are searched in the user's attributes.
const SEARCHABLE_ATTRIBUTES: [&str; 7] = [
    "email",
    "phone_number",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "sub",
];

/// What a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The username, case-sensitive.
    Username,
    /// `cognito:user_status`: the UserStatus, case-insensitive.
    UserStatus,
    /// `status`: `Enabled` or `Disabled`, case-sensitive.
    Enabled,
    /// A standard attribute (`sub` included), by name.
    Attribute(&'static str),
}

/// How a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Equals,
    /// `^=`
    StartsWith,
}

/// One parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: Field,
    pub op: Op,
    pub value: String,
}

impl Filter {
    /// Parses a `Filter` parameter; `None` when it is absent or empty (every user).
    pub fn parse(text: Option<&str>) -> Result<Option<Filter>, ApiError> {
        let text = text.unwrap_or_default().trim();
        if text.is_empty() {
            return Ok(None);
        }
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .ok_or_else(|| ApiError::invalid_parameter(PARSE_ERROR))?;
        let (name, rest) = text.split_at(name_end);
        let rest = rest.trim_start();
        let (op, rest) = if let Some(rest) = rest.strip_prefix("^=") {
            (Op::StartsWith, rest)
        } else if let Some(rest) = rest.strip_prefix('=') {
            (Op::Equals, rest)
        } else {
            return Err(ApiError::invalid_parameter(PARSE_ERROR));
        };
        let value = quoted(rest.trim_start())?;
        if name.is_empty() {
            return Err(ApiError::invalid_parameter(PARSE_ERROR));
        }
        let field = match name {
            "username" => Field::Username,
            "cognito:user_status" => Field::UserStatus,
            "status" => Field::Enabled,
            other => SEARCHABLE_ATTRIBUTES
                .iter()
                .find(|a| **a == other)
                .map(|a| Field::Attribute(a))
                .ok_or_else(|| {
                    ApiError::invalid_parameter(format!("Invalid search attribute: {other}"))
                })?,
        };
        Ok(Some(Filter { field, op, value }))
    }

    /// The `sub` prefix (or whole `sub`) this filter selects, which the store answers from its
    /// index instead of scanning.
    pub fn sub(&self) -> Option<&str> {
        (self.field == Field::Attribute("sub")).then_some(self.value.as_str())
    }

    /// Whether `user` passes the filter.
    pub fn matches(&self, user: &User) -> bool {
        match self.field {
            Field::Username => self.compare(&user.username),
            Field::Enabled => self.compare(if user.enabled { "Enabled" } else { "Disabled" }),
            Field::UserStatus => {
                let status = user.status.to_ascii_lowercase();
                let wanted = self.value.to_ascii_lowercase();
                match self.op {
                    Op::Equals => status == wanted,
                    Op::StartsWith => status.starts_with(&wanted),
                }
            }
            Field::Attribute(name) => user.attribute(name).is_some_and(|v| self.compare(v)),
        }
    }

    fn compare(&self, actual: &str) -> bool {
        match self.op {
            Op::Equals => actual == self.value,
            Op::StartsWith => actual.starts_with(&self.value),
        }
    }
}

/// The value of `"..."` with its escapes resolved; nothing may follow the closing quote.
fn quoted(text: &str) -> Result<String, ApiError> {
    let error = || ApiError::invalid_parameter(PARSE_ERROR);
    let mut chars = text.strip_prefix('"').ok_or_else(error)?.chars();
    let mut value = String::new();
    loop {
        match chars.next().ok_or_else(error)? {
            '"' => break,
            '\\' => value.push(chars.next().ok_or_else(error)?),
            c => value.push(c),
        }
    }
    if chars.as_str().trim().is_empty() {
        Ok(value)
    } else {
        Err(error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Filter, ApiError> {
        Filter::parse(Some(text)).map(|f| f.expect("a filter"))
    }

    fn user() -> User {
        User::new(
            "Zoë",
            "6f1c2a44-3b7e-4c55-9d0e-0a1b2c3d4e5f",
            vec![
                ("email".into(), "zoe@example.test".into()),
                ("given_name".into(), "Zoë \"Z\"".into()),
            ],
            "FORCE_CHANGE_PASSWORD",
        )
    }

    #[test]
    fn empty_or_absent_filter_lists_everyone() {
        assert_eq!(Filter::parse(None).unwrap(), None);
        assert_eq!(Filter::parse(Some("")).unwrap(), None);
        assert_eq!(Filter::parse(Some("   ")).unwrap(), None);
    }

    #[test]
    fn parses_both_operators_with_or_without_spaces() {
        assert_eq!(
            parse("sub ^= \"a\"").unwrap(),
            Filter {
                field: Field::Attribute("sub"),
                op: Op::StartsWith,
                value: "a".into()
            }
        );
        assert_eq!(
            parse("email=\"x@y\"").unwrap(),
            Filter {
                field: Field::Attribute("email"),
                op: Op::Equals,
                value: "x@y".into()
            }
        );
        assert_eq!(
            parse("  username =  \"Zoë\" ").unwrap().field,
            Field::Username
        );
        assert_eq!(
            parse("cognito:user_status = \"confirmed\"").unwrap().field,
            Field::UserStatus
        );
        assert_eq!(parse("status = \"Enabled\"").unwrap().field, Field::Enabled);
        assert_eq!(parse("sub = \"6f\"").unwrap().sub(), Some("6f"));
        assert_eq!(parse("email = \"6f\"").unwrap().sub(), None);
    }

    #[test]
    fn escapes_are_resolved() {
        let filter = parse(r#"given_name = "Zoë \"Z\"""#).unwrap();
        assert_eq!(filter.value, "Zoë \"Z\"");
        assert!(filter.matches(&user()));
        assert_eq!(parse(r#"name = "a\\b""#).unwrap().value, "a\\b");
    }

    #[test]
    fn malformed_filters_are_parse_errors() {
        for bad in [
            "sub",
            "sub ^ \"a\"",
            "sub == \"a\"",
            "sub = a",
            "sub = \"a",
            "sub = \"a\" extra",
            "= \"a\"",
            "sub = \"a\\",
            "sub != \"a\"",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.code, "InvalidParameterException", "{bad}");
            assert_eq!(err.message, PARSE_ERROR, "{bad}");
        }
    }

    #[test]
    fn only_searchable_attributes_are_accepted() {
        for bad in ["custom:tenant", "email_verified", "nickname", "Username"] {
            let err = parse(&format!("{bad} = \"x\"")).expect_err(bad);
            assert_eq!(err.code, "InvalidParameterException");
            assert_eq!(err.message, format!("Invalid search attribute: {bad}"));
        }
    }

    #[test]
    fn matching_follows_cognito_case_rules() {
        let mut zoe = user();
        assert!(parse("username = \"Zoë\"").unwrap().matches(&zoe));
        assert!(!parse("username = \"zoë\"").unwrap().matches(&zoe));
        assert!(parse("username ^= \"Zo\"").unwrap().matches(&zoe));
        assert!(
            parse("cognito:user_status = \"force_change_password\"")
                .unwrap()
                .matches(&zoe)
        );
        assert!(
            parse("cognito:user_status ^= \"Force\"")
                .unwrap()
                .matches(&zoe)
        );
        assert!(parse("status = \"Enabled\"").unwrap().matches(&zoe));
        assert!(!parse("status = \"enabled\"").unwrap().matches(&zoe));
        zoe.enabled = false;
        assert!(parse("status = \"Disabled\"").unwrap().matches(&zoe));
        assert!(parse("sub ^= \"6f1c\"").unwrap().matches(&zoe));
        assert!(!parse("sub ^= \"6F1C\"").unwrap().matches(&zoe));
        assert!(parse("email ^= \"zoe@\"").unwrap().matches(&zoe));
        assert!(!parse("email = \"zoe@\"").unwrap().matches(&zoe));
        assert!(
            !parse("family_name ^= \"\"").unwrap().matches(&zoe),
            "an attribute the user does not have never matches"
        );
    }
}
