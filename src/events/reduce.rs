//! Folding a batch of decoded events into one set of targets: the users and groups to re-read, each
//! once, and whether the pool should be reconciled early.

use std::collections::BTreeSet;

use super::{DecodedEvent, EventAction, UserRef};

/// What a batch of events asks for in one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Users to re-read from Cognito, each once. A sub and a username can still name the same
    /// user: only Cognito can tell.
    pub users: BTreeSet<UserRef>,
    /// Groups whose definition to re-read, each once.
    pub groups: BTreeSet<String>,
    /// Some event changed users it does not identify: reconcile the pool early. The users and
    /// groups above are still listed, so they can be applied first.
    pub pool_wide: bool,
    /// Events that asked for something in this pool.
    pub applied: usize,
    /// Of `applied`, those whose record names no pool (CloudTrail records of unauthenticated
    /// calls such as `SignUp`). They are applied here: a sub is unique across pools, so
    /// re-reading another pool's user in this one finds nothing and changes nothing.
    pub applied_without_pool_id: usize,
    /// Events of another user pool: acknowledged, not applied.
    pub other_pool: usize,
    /// Events of this pool that change nothing mirrored: acknowledged.
    pub ignored: usize,
}

impl Targets {
    /// Whether the targets ask the daemon to do anything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty() && !self.pool_wide
    }
}

/// Collapses `events` into the targets of `our_pool`.
pub fn reduce<'a, I>(events: I, our_pool: &str) -> Targets
where
    I: IntoIterator<Item = &'a DecodedEvent>,
{
    let mut targets = Targets::default();
    for event in events {
        if event
            .user_pool_id
            .as_deref()
            .is_some_and(|pool| pool != our_pool)
        {
            targets.other_pool += 1;
            continue;
        }
        match &event.action {
            EventAction::Ignore(_) => {
                targets.ignored += 1;
                continue;
            }
            EventAction::User { user, group } => {
                targets.users.insert(user.clone());
                targets.groups.extend(group.iter().cloned());
            }
            EventAction::Group { name, deleted } => {
                targets.groups.insert(name.clone());
                // Nothing names the former members, whose group lists just changed.
                targets.pool_wide |= *deleted;
            }
            EventAction::PoolWide => targets.pool_wide = true,
        }
        targets.applied += 1;
        if event.user_pool_id.is_none() {
            targets.applied_without_pool_id += 1;
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::events::{EventFormat, IgnoreReason};

    const OUR_POOL: &str = "us-east-1_Ab12Cd34E";

    fn event(pool: Option<&str>, action: EventAction) -> DecodedEvent {
        DecodedEvent {
            format: EventFormat::Native,
            wrapped_in_sns: false,
            user_pool_id: pool.map(str::to_owned),
            action,
            reason: "test".to_owned(),
        }
    }

    fn user(user: UserRef) -> EventAction {
        EventAction::User { user, group: None }
    }

    fn sub(n: u128) -> UserRef {
        UserRef::Sub(Uuid::from_u128(n))
    }

    #[test]
    fn duplicates_collapse_to_one_user_and_one_group() {
        let events = [
            event(Some(OUR_POOL), user(sub(1))),
            event(Some(OUR_POOL), user(sub(1))),
            event(None, user(sub(1))),
            event(
                Some(OUR_POOL),
                EventAction::User {
                    user: sub(1),
                    group: Some("editors".to_owned()),
                },
            ),
            event(
                Some(OUR_POOL),
                EventAction::Group {
                    name: "editors".to_owned(),
                    deleted: false,
                },
            ),
            event(Some(OUR_POOL), user(UserRef::Username("alice".to_owned()))),
            event(Some(OUR_POOL), user(UserRef::Username("alice".to_owned()))),
        ];
        let targets = reduce(&events, OUR_POOL);
        assert_eq!(
            targets.users,
            BTreeSet::from([sub(1), UserRef::Username("alice".to_owned())])
        );
        assert_eq!(targets.groups, BTreeSet::from(["editors".to_owned()]));
        assert!(!targets.pool_wide);
        assert_eq!(
            (
                targets.applied,
                targets.applied_without_pool_id,
                targets.other_pool,
                targets.ignored
            ),
            (7, 1, 0, 0)
        );
    }

    #[test]
    fn other_pools_are_counted_not_applied_whatever_they_ask() {
        let events = [
            event(Some("eu-west-1_Other1234"), user(sub(2))),
            event(Some("eu-west-1_Other1234"), EventAction::PoolWide),
            event(
                Some("eu-west-1_Other1234"),
                EventAction::Ignore(IgnoreReason::ReadOnly),
            ),
            event(Some(OUR_POOL), user(sub(3))),
        ];
        let targets = reduce(&events, OUR_POOL);
        assert_eq!(targets.users, BTreeSet::from([sub(3)]));
        assert!(!targets.pool_wide);
        assert_eq!(
            (targets.applied, targets.other_pool, targets.ignored),
            (1, 3, 0)
        );
    }

    #[test]
    fn ignored_events_are_counted_and_ask_nothing() {
        let events = [
            event(Some(OUR_POOL), EventAction::Ignore(IgnoreReason::ReadOnly)),
            event(
                None,
                EventAction::Ignore(IgnoreReason::FailedCall {
                    error_code: "UserNotFoundException".to_owned(),
                }),
            ),
        ];
        let targets = reduce(&events, OUR_POOL);
        assert!(targets.is_empty());
        assert_eq!(
            (targets.applied, targets.other_pool, targets.ignored),
            (0, 0, 2)
        );
    }

    #[test]
    fn deleted_group_and_unidentified_users_ask_for_a_pool_wide_reconcile() {
        let deleted = [event(
            Some(OUR_POOL),
            EventAction::Group {
                name: "beta".to_owned(),
                deleted: true,
            },
        )];
        let targets = reduce(&deleted, OUR_POOL);
        assert!(targets.pool_wide);
        assert_eq!(targets.groups, BTreeSet::from(["beta".to_owned()]));

        let unidentified = [
            event(None, EventAction::PoolWide),
            event(Some(OUR_POOL), user(sub(4))),
        ];
        let targets = reduce(&unidentified, OUR_POOL);
        assert!(targets.pool_wide);
        assert_eq!(targets.users, BTreeSet::from([sub(4)]));
        assert!(!targets.is_empty());
    }

    #[test]
    fn an_empty_batch_plans_nothing() {
        let targets = reduce(&[], OUR_POOL);
        assert_eq!(targets, Targets::default());
        assert!(targets.is_empty());
    }
}
