//! Shards of a ListUsers scan: disjoint `sub` prefixes that together cover the pool, so
//! several pagination chains can run in parallel under the shared rate limit.

use std::fmt;

use serde::{Deserialize, Serialize};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A slice of the pool: the users whose `sub` starts with `prefix`; `""` is the whole pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub prefix: String,
}

/// A shard count that does not split the pool into equal `sub` prefixes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard count {count}: must be 1, 16 or 256")]
pub struct InvalidShardCount {
    pub count: usize,
}

/// A prefix that is not zero to two lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard prefix {prefix:?}: must be zero to two lowercase hex digits")]
pub struct InvalidShardPrefix {
    pub prefix: String,
}

impl Shard {
    /// The whole pool, unfiltered.
    pub fn whole() -> Self {
        Shard {
            prefix: String::new(),
        }
    }

    /// Splits the pool into `count` shards: 1 (whole pool), 16 (first hex digit of `sub`)
    /// or 256 (first two hex digits).
    pub fn split(count: usize) -> Result<Vec<Shard>, InvalidShardCount> {
        let digits = match count {
            1 => 0,
            16 => 1,
            256 => 2,
            _ => return Err(InvalidShardCount { count }),
        };
        let mut prefixes = vec![String::new()];
        for _ in 0..digits {
            prefixes = prefixes
                .iter()
                .flat_map(|p| HEX.iter().map(move |d| format!("{p}{}", *d as char)))
                .collect();
        }
        Ok(prefixes
            .into_iter()
            .map(|prefix| Shard { prefix })
            .collect())
    }

    /// A shard from a stored prefix (e.g. a checkpoint), validated.
    pub fn parse(prefix: &str) -> Result<Self, InvalidShardPrefix> {
        if prefix.len() <= 2 && prefix.bytes().all(|b| HEX.contains(&b)) {
            Ok(Shard {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(InvalidShardPrefix {
                prefix: prefix.to_owned(),
            })
        }
    }

    pub fn is_whole(&self) -> bool {
        self.prefix.is_empty()
    }

    /// The ListUsers filter selecting this shard; `None` for the whole pool.
    pub fn filter(&self) -> Option<String> {
        (!self.is_whole()).then(|| format!("sub ^= \"{}\"", self.prefix))
    }

    /// Whether a user with this `sub` belongs to the shard.
    pub fn contains(&self, sub: &uuid::Uuid) -> bool {
        sub.to_string().starts_with(&self.prefix)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole() {
            f.write_str("*")
        } else {
            write!(f, "{}*", self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_and_filters() {
        assert_eq!(Shard::split(1).unwrap(), vec![Shard::whole()]);
        assert_eq!(Shard::whole().filter(), None);

        let sixteen = Shard::split(16).unwrap();
        assert_eq!(sixteen.len(), 16);
        assert_eq!(sixteen[0].prefix, "0");
        assert_eq!(sixteen[15].prefix, "f");
        assert_eq!(sixteen[10].filter().as_deref(), Some("sub ^= \"a\""));

        let all = Shard::split(256).unwrap();
        assert_eq!(all.len(), 256);
        assert_eq!(all[0].prefix, "00");
        assert_eq!(all[255].prefix, "ff");
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(unique.len(), 256);

        for bad in [0, 2, 15, 17, 4096] {
            assert_eq!(Shard::split(bad), Err(InvalidShardCount { count: bad }));
        }
    }

    #[test]
    fn every_sub_falls_in_exactly_one_shard() {
        for count in [1, 16, 256] {
            let shards = Shard::split(count).unwrap();
            for _ in 0..200 {
                let sub = uuid::Uuid::new_v4();
                assert_eq!(
                    shards.iter().filter(|s| s.contains(&sub)).count(),
                    1,
                    "{sub} with {count} shards"
                );
            }
        }
    }

    #[test]
    fn parse_accepts_only_hex_prefixes() {
        assert_eq!(Shard::parse("").unwrap(), Shard::whole());
        assert_eq!(Shard::parse("a").unwrap().prefix, "a");
        assert_eq!(Shard::parse("0f").unwrap().prefix, "0f");
        for bad in ["A", "g", "abc", "\"", "a\" or"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_the_prefix() {
        assert_eq!(Shard::whole().to_string(), "*");
        assert_eq!(Shard::parse("3c").unwrap().to_string(), "3c*");
    }
}
