//! Bursts read by scanning: when a backlog names more distinct users than a scan of their
//! `sub`-prefix shards would cost, the consumer reads those shards instead of each user.
//!
//! Costs are in quota-seconds: a call in quota category C costs `1 / rate(C)` seconds of this
//! process's share of C (the limiter's current rate, so a throttled category costs more), and
//! a plan's cost is the sum over the categories it uses.
//!
//! - Per user: AdminGetUser (`UserRead`) + AdminListGroupsForUser (`UserResourceRead`); in a
//!   pool without groups AdminGetUser only (a ListGroups per read, shared, says so).
//! - A scan of some shards: `ceil(shard_users / 60)` ListUsers pages per shard, plus the
//!   pool's group memberships (ListUsersInGroup, the same `UserList` category; a scan joins
//!   every user to its groups), plus ListGroups (`UserPoolResourceRead`). A shard's size is
//!   the pool's `EstimatedNumberOfUsers` (DescribeUserPool) over the number of shards of its
//!   prefix length: Cognito's subs are random UUIDs, so prefixes split a pool evenly. The
//!   memberships are counted as one page per group plus one page per 60 users of the pool
//!   (about one membership per user): their real size is only known once read.
//!
//! The shards are the two-hex-digit prefixes the burst's subs fall in, merged into their
//! one-digit parent when all sixteen are touched (fewer partial pages); a plan that touches
//! all sixteen parents is pool-wide and takes the pool's scan lease
//! ([`crate::state::lease::scan_lease`]) like any other whole-pool scan. A burst scan is not
//! a reconcile: it tombstones nothing and writes only the users the burst names, with the
//! guarded write every read uses; a named user the scan did not find is read on its own, as
//! the per-user path reads it (found: written; gone: tombstoned by sub).
//!
//! Below [`MIN_USERS`] distinct users the per-user path is kept whatever the arithmetic says:
//! it saves at most that many calls, and a scan holds its messages for longer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cognito::{CognitoError, CognitoReader, PAGE_LIMIT, QuotaCategory, QuotaLimiter, Shard};

/// Fewest distinct users for which a scan is considered.
pub const MIN_USERS: usize = 100;
/// Most messages one poller gathers for a burst (SQS bodies are at most 256 KiB; the
/// events this daemon reads are about 1–3 KiB).
pub const GATHER_MAX_MESSAGES: usize = 20_000;
/// Longest a poller gathers a burst before it reads what it has.
pub const GATHER_FOR: Duration = Duration::from_secs(5);
/// Receives in flight while a burst is gathered.
pub const GATHER_RECEIVES: usize = 8;

const HEX_DIGITS: u64 = 16;

/// The rates a plan is priced at, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub user_list: f64,
    pub user_read: f64,
    pub user_resource_read: f64,
    pub user_pool_resource_read: f64,
}

impl Rates {
    /// The limiter's current rates (lowered while Cognito throttles a category).
    pub fn current(limiter: &QuotaLimiter) -> Self {
        Rates {
            user_list: limiter.rate(QuotaCategory::UserList),
            user_read: limiter.rate(QuotaCategory::UserRead),
            user_resource_read: limiter.rate(QuotaCategory::UserResourceRead),
            user_pool_resource_read: limiter.rate(QuotaCategory::UserPoolResourceRead),
        }
    }
}

/// What a plan needs to know about the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// DescribeUserPool's `EstimatedNumberOfUsers`.
    pub estimated_users: u64,
    pub groups: u64,
}

/// How a set of named users is best read, with the figures the choice was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    /// Distinct subs named.
    pub users: usize,
    /// The shards a scan would read.
    pub shards: Vec<Shard>,
    /// ListUsers + ListUsersInGroup pages a scan would send.
    pub scan_pages: u64,
    pub per_user_seconds: f64,
    pub scan_seconds: f64,
    /// The shards cover the pool: the scan takes the pool's scan lease.
    pub pool_wide: bool,
}

impl ReadPlan {
    /// Whether the users are read by scanning their shards.
    pub fn scan(&self) -> bool {
        self.users >= MIN_USERS && self.scan_seconds < self.per_user_seconds
    }

    pub fn name(&self) -> &'static str {
        if self.scan() { "scan" } else { "per_user" }
    }
}

/// The cheaper way to read `subs`, priced at `rates`.
pub fn plan<'a>(
    subs: impl IntoIterator<Item = &'a uuid::Uuid>,
    shape: PoolShape,
    rates: Rates,
) -> ReadPlan {
    let mut users = 0;
    let mut prefixes = BTreeSet::new();
    for sub in subs {
        users += 1;
        prefixes.insert(sub.simple().to_string()[..2].to_owned());
    }
    price(users, &prefixes, shape, rates)
}

/// What a scan of the whole pool costs, in quota-seconds (the early-scan budget's input,
/// [`super::requests::early_scan_interval`]).
pub fn pool_scan_seconds(shape: PoolShape, rates: Rates) -> f64 {
    let all: BTreeSet<String> = (0..256).map(|n| format!("{n:02x}")).collect();
    price(0, &all, shape, rates).scan_seconds
}

/// How long a pool's shape is reused: Cognito's estimate itself lags by minutes.
pub const SHAPE_TTL: Duration = Duration::from_secs(300);

/// The pool's shape, read (DescribeUserPool, ListGroups) at most once per [`SHAPE_TTL`].
#[derive(Debug, Default)]
pub struct ShapeCache {
    cached: tokio::sync::Mutex<Option<(Instant, PoolShape)>>,
}

impl ShapeCache {
    pub async fn get(&self, reader: &CognitoReader) -> Result<PoolShape, CognitoError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, shape)) = *cached
            && at.elapsed() < SHAPE_TTL
        {
            return Ok(shape);
        }
        let summary = reader.describe_pool().await?;
        let groups = reader.list_groups().await?.len();
        let shape = PoolShape {
            estimated_users: u64::try_from(summary.estimated_users).unwrap_or(0),
            groups: u64::try_from(groups).unwrap_or(u64::MAX),
        };
        *cached = Some((Instant::now(), shape));
        Ok(shape)
    }
}

/// The plan for a backlog of `count` distinct users not read yet, spread as evenly over the
/// two-digit shards as they can be (random subs spread about so): whether gathering the
/// backlog could pay off.
pub fn plan_for_backlog(count: usize, shape: PoolShape, rates: Rates) -> ReadPlan {
    let touched = count.min(256);
    let prefixes: BTreeSet<String> = (0..touched)
        .map(|n| format!("{:02x}", n * 256 / touched.max(1)))
        .collect();
    price(count, &prefixes, shape, rates)
}

fn price(users: usize, prefixes: &BTreeSet<String>, shape: PoolShape, rates: Rates) -> ReadPlan {
    let shards = merge(prefixes);
    let pool_wide =
        shards.len() == HEX_DIGITS as usize && shards.iter().all(|s| s.prefix.len() == 1);
    let page = PAGE_LIMIT as u64;
    let shard_pages: u64 = shards
        .iter()
        .map(|shard| {
            let split = HEX_DIGITS.pow(shard.prefix.len() as u32);
            shape.estimated_users.div_ceil(split).div_ceil(page).max(1)
        })
        .sum();
    let membership_pages = if shape.groups == 0 {
        0
    } else {
        shape.groups + shape.estimated_users.div_ceil(page)
    };
    let scan_pages = if shards.is_empty() {
        0
    } else {
        shard_pages + membership_pages
    };
    let list_groups_pages = shape.groups.div_ceil(page).max(1);
    let scan_seconds = if shards.is_empty() {
        0.0
    } else {
        scan_pages as f64 / rates.user_list
            + list_groups_pages as f64 / rates.user_pool_resource_read
    };
    // Users of a pool without groups are read without AdminListGroupsForUser.
    let group_read = if shape.groups == 0 {
        0.0
    } else {
        1.0 / rates.user_resource_read
    };
    let per_user_seconds = users as f64 * (1.0 / rates.user_read + group_read);
    ReadPlan {
        users,
        shards,
        scan_pages,
        per_user_seconds,
        scan_seconds,
        pool_wide,
    }
}

/// Two-digit prefixes as shards, sixteen siblings merged into their parent.
fn merge(prefixes: &BTreeSet<String>) -> Vec<Shard> {
    let mut by_parent: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for prefix in prefixes {
        by_parent.entry(&prefix[..1]).or_default().push(prefix);
    }
    let mut shards = Vec::new();
    for (parent, children) in by_parent {
        if children.len() == HEX_DIGITS as usize {
            shards.push(Shard {
                prefix: parent.to_owned(),
            });
        } else {
            shards.extend(children.into_iter().map(|prefix| Shard {
                prefix: prefix.clone(),
            }));
        }
    }
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default share (0.8) of Cognito's default quotas.
    const DEFAULT_RATES: Rates = Rates {
        user_list: 24.0,
        user_read: 96.0,
        user_resource_read: 40.0,
        user_pool_resource_read: 16.0,
    };

    fn subs(count: usize) -> Vec<uuid::Uuid> {
        (0..count).map(|_| uuid::Uuid::new_v4()).collect()
    }

    fn pool(users: u64, groups: u64) -> PoolShape {
        PoolShape {
            estimated_users: users,
            groups,
        }
    }

    #[test]
    fn a_burst_of_a_tenth_of_the_pool_is_scanned_pool_wide() {
        let burst = subs(10_000);
        let plan = plan(&burst, pool(100_000, 0), DEFAULT_RATES);
        assert!(plan.scan(), "{plan:?}");
        assert!(plan.pool_wide);
        assert_eq!(plan.shards, Shard::split(16).unwrap());
        // 16 shards of 6,250 users: 105 pages each.
        assert_eq!(plan.scan_pages, 16 * 105);
        assert!((plan.per_user_seconds - 10_000.0 / 96.0).abs() < 1e-6);
        // With groups, each user's are read too, and their memberships scanned.
        let plan = super::plan(&burst, pool(100_000, 20), DEFAULT_RATES);
        assert!(plan.scan(), "{plan:?}");
        assert!((plan.per_user_seconds - 10_000.0 * (1.0 / 96.0 + 1.0 / 40.0)).abs() < 1e-6);
    }

    #[test]
    fn a_few_hundred_users_of_a_large_pool_are_read_one_by_one() {
        let burst = subs(300);
        let plan = plan(&burst, pool(1_000_000, 0), DEFAULT_RATES);
        assert!(!plan.scan(), "{plan:?}");
        assert!(plan.scan_seconds > plan.per_user_seconds);
    }

    #[test]
    fn the_threshold_moves_with_the_pool_and_its_groups() {
        // 400 users of a 2,000-user pool without groups touch about 200 two-digit shards (a
        // page each): 8 s of UserList against 400 / 96 = 4.2 s of AdminGetUser: per user.
        let burst = subs(400);
        let plain = plan(&burst, pool(2_000, 0), DEFAULT_RATES);
        assert!(!plain.scan(), "{plain:?}");
        // With groups each user costs an AdminListGroupsForUser too (14 s in all), while the
        // scan adds the memberships (5 groups + 34 pages, 10 s in all): the scan wins.
        let with_groups = plan(&burst, pool(2_000, 5), DEFAULT_RATES);
        assert_eq!(with_groups.scan_pages, plain.scan_pages + 5 + 34);
        assert!(with_groups.scan(), "{with_groups:?}");
        // 2,000 users of a 5,000-user pool without groups: 16 shards of 6 pages, 4 s, against
        // 21 s of reads.
        let burst = subs(2_000);
        assert!(plan(&burst, pool(5_000, 0), DEFAULT_RATES).scan());
        // 150 users of a 20,000-user pool with groups: about 113 shards of 2 pages plus the
        // memberships, 23 s, against 5.3 s of reads.
        let burst = subs(150);
        assert!(!plan(&burst, pool(20_000, 5), DEFAULT_RATES).scan());
    }

    #[test]
    fn below_the_minimum_the_per_user_path_is_kept() {
        // All in shard "00" of a tiny pool: one page would do, yet each is read.
        let burst: Vec<uuid::Uuid> = (0..MIN_USERS as u128 - 1)
            .map(uuid::Uuid::from_u128)
            .collect();
        let plan = plan(&burst, pool(10, 0), DEFAULT_RATES);
        assert_eq!(plan.scan_pages, 1);
        assert!(plan.scan_seconds < plan.per_user_seconds);
        assert!(!plan.scan());
    }

    #[test]
    fn a_throttled_user_list_makes_scans_dearer() {
        let burst = subs(8_000);
        let healthy = plan(&burst, pool(100_000, 0), DEFAULT_RATES);
        assert!(healthy.scan(), "{healthy:?}");
        let throttled = Rates {
            user_list: 3.0,
            ..DEFAULT_RATES
        };
        assert!(!plan(&burst, pool(100_000, 0), throttled).scan());
    }

    #[test]
    fn shards_merge_only_when_every_sibling_is_touched() {
        let prefixes: BTreeSet<String> = (0..16)
            .map(|d| format!("a{d:x}"))
            .chain(["03".to_owned(), "f1".to_owned()])
            .collect();
        let shards: Vec<String> = merge(&prefixes).into_iter().map(|s| s.prefix).collect();
        assert_eq!(shards, ["03", "a", "f1"]);
        let plan = price(18, &prefixes, pool(256 * 60, 0), DEFAULT_RATES);
        assert!(!plan.pool_wide);
        // "a" holds 960 users (16 pages), the two-digit shards 60 each (one page).
        assert_eq!(plan.scan_pages, 16 + 1 + 1);
    }

    #[test]
    fn a_pool_scan_costs_its_pages_and_memberships() {
        let seconds = pool_scan_seconds(pool(100_000, 0), DEFAULT_RATES);
        // 16 shards of 105 pages at 24/s, and one ListGroups page at 16/s.
        assert!(
            (seconds - (1_680.0 / 24.0 + 1.0 / 16.0)).abs() < 1e-9,
            "{seconds}"
        );
    }

    #[test]
    fn a_backlog_is_priced_as_evenly_spread() {
        let plan = plan_for_backlog(10_000, pool(100_000, 0), DEFAULT_RATES);
        assert!(plan.pool_wide && plan.scan());
        let plan = plan_for_backlog(5_000, pool(100_000, 0), DEFAULT_RATES);
        assert!(
            plan.pool_wide && !plan.scan(),
            "52 s of reads against 70 s of scan"
        );
        let plan = plan_for_backlog(40, pool(100_000, 0), DEFAULT_RATES);
        assert_eq!(plan.shards.len(), 40);
        assert!(!plan.scan());
    }
}
