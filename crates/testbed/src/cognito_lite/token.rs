//! Pagination tokens: opaque to clients, they carry the last key a page returned (never an
//! offset, so a listing stays correct while users come and go) and a fingerprint of the
//! request, so that a token is accepted only with the parameters it was issued for and only
//! by the server that issued it.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::error::ApiError;

/// Issues and checks the tokens of one server.
#[derive(Debug)]
pub struct Tokens {
    /// Random per server: a token of another cognito-lite is rejected.
    secret: u64,
}

/// The parameters a token is bound to: the operation and every request field that shapes
/// the listing (pool, filter, limit, group or user).
#[derive(Debug, Hash)]
pub struct Scope<'a> {
    pub operation: &'static str,
    pub pool: &'a str,
    pub parts: &'a [&'a str],
    pub limit: usize,
}

impl Tokens {
    pub fn new() -> Tokens {
        Tokens {
            secret: rand::random(),
        }
    }

    fn fingerprint(&self, scope: &Scope<'_>) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.secret.hash(&mut hasher);
        scope.hash(&mut hasher);
        hasher.finish()
    }

    /// The token resuming after `last_key`.
    pub fn issue(&self, scope: &Scope<'_>, last_key: &str) -> String {
        format!(
            "{:016x}{}",
            self.fingerprint(scope),
            hex::encode(last_key.as_bytes())
        )
    }

    /// The last key of the previous page, if `token` was issued for exactly this request.
    pub fn check(&self, scope: &Scope<'_>, token: &str) -> Result<String, ApiError> {
        let bad = || ApiError::bad_token(token);
        let (fingerprint, key) = token.split_at_checked(16).ok_or_else(bad)?;
        let fingerprint = u64::from_str_radix(fingerprint, 16).map_err(|_| bad())?;
        if fingerprint != self.fingerprint(scope) {
            return Err(bad());
        }
        let key = hex::decode(key).map_err(|_| bad())?;
        String::from_utf8(key).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(pool: &'a str, parts: &'a [&'a str], limit: usize) -> Scope<'a> {
        Scope {
            operation: "ListUsers",
            pool,
            parts,
            limit,
        }
    }

    #[test]
    fn a_token_round_trips_with_the_same_parameters() {
        let tokens = Tokens::new();
        let token = tokens.issue(&scope("p", &["sub ^= \"a\""], 60), "a-ü-key");
        assert_eq!(
            tokens
                .check(&scope("p", &["sub ^= \"a\""], 60), &token)
                .unwrap(),
            "a-ü-key"
        );
    }

    #[test]
    fn a_token_is_bound_to_its_request_and_server() {
        let tokens = Tokens::new();
        let token = tokens.issue(&scope("p", &["sub ^= \"a\""], 60), "k");
        for other in [
            scope("q", &["sub ^= \"a\""], 60),
            scope("p", &["sub ^= \"b\""], 60),
            scope("p", &["sub ^= \"a\""], 59),
            scope("p", &[], 60),
        ] {
            let err = tokens.check(&other, &token).unwrap_err();
            assert_eq!(err.code, "InvalidParameterException");
            assert!(err.message.starts_with("Paging marker"), "{}", err.message);
        }
        let mut other_operation = scope("p", &["sub ^= \"a\""], 60);
        other_operation.operation = "ListUsersInGroup";
        assert!(tokens.check(&other_operation, &token).is_err());
        assert!(
            Tokens::new()
                .check(&scope("p", &["sub ^= \"a\""], 60), &token)
                .is_err(),
            "another server's token"
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let tokens = Tokens::new();
        let valid = tokens.issue(&scope("p", &[], 60), "k");
        for bad in ["", "abc", "zzzzzzzzzzzzzzzz6b", &format!("{valid}0"), "ü"] {
            assert!(tokens.check(&scope("p", &[], 60), bad).is_err(), "{bad:?}");
        }
    }
}
