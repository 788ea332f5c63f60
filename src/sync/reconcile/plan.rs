//! The diff of a Cognito scan against the mirror's digests: which users and groups to
//! insert, update, revive and tombstone, the safety brake that refuses a mass delete, and
//! the per-user review a dry run prints ([`Plan::changes`]: kind and changed field names).
//!
//! Pure: no I/O, so every rule is unit-tested here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{GroupRecord, UserRecord};

/// The `content_hash` a scrubbed row carries: no Cognito state hashes to it (hashes are hex).
pub const SCRUB_MARKER: &str = "scrubbed";

/// What happens to a mirrored user (or group) that Cognito no longer has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// Set `deleted_at`; the row stays for the apps that join to it.
    #[default]
    Tombstone,
    /// Remove the row, and rows tombstoned by earlier runs.
    Delete,
    /// Tombstone, then blank its personal data (username, email, phone, names, attributes),
    /// and that of rows tombstoned by earlier runs.
    Scrub,
}

/// What the mirror holds for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDigest {
    pub id: uuid::Uuid,
    pub username: String,
    pub content_hash: String,
    pub deleted_at: Option<DateTime<Utc>>,
    pub observed_at: DateTime<Utc>,
}

/// What the mirror holds for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDigest {
    pub name: String,
    pub content_hash: String,
    pub deleted_at: Option<DateTime<Utc>>,
    pub observed_at: DateTime<Utc>,
}

/// A user named in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedUser {
    pub id: uuid::Uuid,
    pub username: String,
}

/// How a scanned user compares with the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Insert,
    Update,
    Revive,
    Unchanged,
}

/// Everything reconcile would write.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Users read from Cognito (each once).
    pub scanned: u64,
    /// Rows of the pool in the mirror, tombstones included.
    pub mirror_rows: u64,
    /// Rows of the pool in the mirror that are not tombstoned.
    pub mirror_live: u64,
    pub insert: Vec<PlannedUser>,
    pub update: Vec<PlannedUser>,
    pub revive: Vec<PlannedUser>,
    /// Live rows Cognito no longer has, read before the scan started.
    pub tombstone: Vec<PlannedUser>,
    /// Rows tombstoned earlier that `--on-delete delete|scrub` also removes or scrubs.
    pub purge: Vec<PlannedUser>,
    pub unchanged: u64,
    /// Live rows Cognito does not have but that were written after the scan started (by an
    /// event): left alone, the next run decides.
    pub kept_newer: u64,
    pub groups: GroupPlan,
    /// The users to upsert (insert, update and revive).
    #[serde(skip)]
    pub upserts: Vec<UserRecord>,
}

/// Everything reconcile would write to the groups.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupPlan {
    pub scanned: u64,
    pub upsert: Vec<String>,
    pub tombstone: Vec<String>,
    pub unchanged: u64,
    #[serde(skip)]
    pub records: Vec<GroupRecord>,
}

/// What a plan does to one user, as a dry run's review names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Insert,
    Update,
    Revive,
    Tombstone,
    Delete,
    Scrub,
}

/// One user's planned change: who, what kind, and the names (never the values) of the
/// fields it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    pub sub: uuid::Uuid,
    pub username: String,
    pub kind: ChangeKind,
    pub changed: Vec<String>,
}

/// The columns `--on-delete scrub` blanks (besides `content_hash`).
const SCRUBBED_FIELDS: [&str; 8] = [
    "username",
    "email",
    "email_verified",
    "phone_number",
    "given_name",
    "family_name",
    "name",
    "attributes",
];

/// Compares scanned users with the mirror's digests, one user at a time, keeping only the
/// users that differ. Reconcile runs one per shard; the records to write can be taken in
/// batches as they come ([`Differ::take_upserts`]).
#[derive(Debug)]
pub struct Differ {
    started_at: DateTime<Utc>,
    on_delete: OnDelete,
    mirror: HashMap<uuid::Uuid, UserDigest>,
    /// Every scanned user's verdict and read time, and its username when it is to be
    /// written. A shard that starts over brings users twice: the later read wins.
    seen: HashMap<uuid::Uuid, (Change, DateTime<Utc>, Option<String>)>,
    /// The records to write, in the order read, not yet taken.
    upserts: Vec<UserRecord>,
}

impl Differ {
    /// `started_at`: when the scan started; only rows observed before it can be tombstoned.
    pub fn new(mirror: Vec<UserDigest>, started_at: DateTime<Utc>, on_delete: OnDelete) -> Self {
        let mirror = mirror.into_iter().map(|d| (d.id, d)).collect();
        Differ {
            started_at,
            on_delete,
            mirror,
            seen: HashMap::new(),
            upserts: Vec::new(),
        }
    }

    /// One user read from Cognito, groups joined.
    pub fn observe(&mut self, user: UserRecord) {
        if let Some((_, observed_at, _)) = self.seen.get(&user.id) {
            if *observed_at > user.observed_at {
                return;
            }
        }
        let change = match self.mirror.get(&user.id) {
            None => Change::Insert,
            Some(row) if row.deleted_at.is_some() => Change::Revive,
            Some(row) if row.content_hash != user.content_hash => Change::Update,
            Some(_) => Change::Unchanged,
        };
        let username = (change != Change::Unchanged).then(|| user.username.clone());
        self.seen
            .insert(user.id, (change, user.observed_at, username));
        if change != Change::Unchanged {
            self.upserts.push(user);
        }
    }

    /// The first `batch_size` records to write, once that many are waiting.
    pub fn take_upserts(&mut self, batch_size: usize) -> Option<Vec<UserRecord>> {
        let batch_size = batch_size.max(1);
        (self.upserts.len() >= batch_size).then(|| self.upserts.drain(..batch_size).collect())
    }

    /// The plan for the users: what differs, and the rows Cognito no longer has.
    pub fn finish(self) -> Plan {
        let mut plan = Plan {
            scanned: self.seen.len() as u64,
            mirror_rows: self.mirror.len() as u64,
            ..Plan::default()
        };
        for row in self.mirror.into_values() {
            if row.deleted_at.is_none() {
                plan.mirror_live += 1;
            }
            if self.seen.contains_key(&row.id) {
                continue;
            }
            let planned = PlannedUser {
                id: row.id,
                username: row.username,
            };
            match row.deleted_at {
                None if row.observed_at < self.started_at => plan.tombstone.push(planned),
                None => plan.kept_newer += 1,
                Some(_) => match self.on_delete {
                    OnDelete::Tombstone => {}
                    OnDelete::Delete => plan.purge.push(planned),
                    OnDelete::Scrub if row.content_hash != SCRUB_MARKER => plan.purge.push(planned),
                    OnDelete::Scrub => {}
                },
            }
        }
        for (id, (change, _, username)) in self.seen {
            let planned = PlannedUser {
                id,
                username: username.unwrap_or_default(),
            };
            match change {
                Change::Insert => plan.insert.push(planned),
                Change::Update => plan.update.push(planned),
                Change::Revive => plan.revive.push(planned),
                Change::Unchanged => plan.unchanged += 1,
            }
        }
        plan.sort_lists();
        // A user read twice (its shard started over) is written once, as last read.
        plan.upserts = self.upserts;
        plan.upserts
            .sort_by(|a, b| a.id.cmp(&b.id).then(b.observed_at.cmp(&a.observed_at)));
        plan.upserts.dedup_by_key(|u| u.id);
        plan
    }
}

/// The groups to upsert (new, changed or tombstoned but back) and to tombstone (gone from
/// Cognito and read before the scan started).
pub fn diff_groups(
    groups: Vec<GroupRecord>,
    mirror: Vec<GroupDigest>,
    started_at: DateTime<Utc>,
) -> GroupPlan {
    let mut mirror: HashMap<String, GroupDigest> =
        mirror.into_iter().map(|g| (g.name.clone(), g)).collect();
    let mut plan = GroupPlan {
        scanned: groups.len() as u64,
        ..GroupPlan::default()
    };
    for group in groups {
        match mirror.remove(&group.name) {
            Some(row) if row.deleted_at.is_none() && row.content_hash == group.content_hash => {
                plan.unchanged += 1
            }
            _ => {
                plan.upsert.push(group.name.clone());
                plan.records.push(group);
            }
        }
    }
    plan.tombstone = mirror
        .into_values()
        .filter(|row| row.deleted_at.is_none() && row.observed_at < started_at)
        .map(|row| row.name)
        .collect();
    plan.upsert.sort();
    plan.tombstone.sort();
    plan
}

impl Plan {
    /// Adds a shard's plan to this one (its lists unsorted: see [`Plan::sort_lists`]).
    pub fn absorb(&mut self, shard: Plan) {
        self.scanned += shard.scanned;
        self.mirror_rows += shard.mirror_rows;
        self.mirror_live += shard.mirror_live;
        self.unchanged += shard.unchanged;
        self.kept_newer += shard.kept_newer;
        self.insert.extend(shard.insert);
        self.update.extend(shard.update);
        self.revive.extend(shard.revive);
        self.tombstone.extend(shard.tombstone);
        self.purge.extend(shard.purge);
        self.upserts.extend(shard.upserts);
    }

    /// Sorts the lists by username: stable output for people and for diffs of dry runs.
    pub fn sort_lists(&mut self) {
        for list in [
            &mut self.insert,
            &mut self.update,
            &mut self.revive,
            &mut self.tombstone,
            &mut self.purge,
        ] {
            list.sort_by(|a, b| a.username.cmp(&b.username).then(a.id.cmp(&b.id)));
        }
    }

    /// The users whose mirrored fields [`Plan::changes`] needs to name what changes: those
    /// updated or revived (an insert writes every field it has, a delete or scrub known ones).
    pub fn reviewed_ids(&self) -> Vec<uuid::Uuid> {
        self.update
            .iter()
            .chain(&self.revive)
            .map(|u| u.id)
            .collect()
    }

    /// One entry per planned user, in the plan's order: inserts name the fields they set,
    /// updates and revives the fields of their record in [`Plan::upserts`] that differ from
    /// `mirrored` (the rows of [`Plan::reviewed_ids`]), tombstones `deleted_at`, scrubs the
    /// blanked columns, deletes nothing (the row goes).
    pub fn changes(
        &self,
        on_delete: OnDelete,
        mirrored: &HashMap<uuid::Uuid, UserRecord>,
    ) -> Vec<PlannedChange> {
        // By id, in whatever order the upserts were gathered.
        let records: HashMap<uuid::Uuid, &UserRecord> =
            self.upserts.iter().map(|u| (u.id, u)).collect();
        let record = |id: uuid::Uuid| records.get(&id).copied();
        let differing = |user: &PlannedUser| match (record(user.id), mirrored.get(&user.id)) {
            (Some(now), Some(before)) => now.changed_fields(before),
            (Some(now), None) => now.set_fields(),
            (None, _) => Vec::new(),
        };
        let entry = |user: &PlannedUser, kind, changed: Vec<String>| PlannedChange {
            sub: user.id,
            username: user.username.clone(),
            kind,
            changed,
        };
        let names = |fields: &[&str]| fields.iter().map(|f| (*f).to_owned()).collect();
        let tombstoned: Vec<String> = std::iter::once("deleted_at")
            .chain(SCRUBBED_FIELDS)
            .map(str::to_owned)
            .collect();
        let mut changes = Vec::new();
        for user in &self.insert {
            let fields = record(user.id)
                .map(UserRecord::set_fields)
                .unwrap_or_default();
            changes.push(entry(user, ChangeKind::Insert, fields));
        }
        changes.extend(
            self.update
                .iter()
                .map(|u| entry(u, ChangeKind::Update, differing(u))),
        );
        for user in &self.revive {
            let mut fields = differing(user);
            fields.push("deleted_at".to_owned());
            fields.sort();
            changes.push(entry(user, ChangeKind::Revive, fields));
        }
        for user in &self.tombstone {
            changes.push(match on_delete {
                OnDelete::Tombstone => entry(user, ChangeKind::Tombstone, names(&["deleted_at"])),
                OnDelete::Delete => entry(user, ChangeKind::Delete, Vec::new()),
                OnDelete::Scrub => entry(user, ChangeKind::Scrub, tombstoned.clone()),
            });
        }
        for user in &self.purge {
            changes.push(match on_delete {
                OnDelete::Scrub => entry(user, ChangeKind::Scrub, names(&SCRUBBED_FIELDS)),
                OnDelete::Tombstone | OnDelete::Delete => {
                    entry(user, ChangeKind::Delete, Vec::new())
                }
            });
        }
        changes
    }
}

/// Why the safety brake refuses a run, if it does, from its counts over the whole pool:
/// Cognito returned no users (`scanned`) while the mirror has live ones (a wrong pool or
/// credential), or more than `max_fraction` of the mirror's live users are `gone`.
pub fn brake(
    pool: &str,
    scanned: u64,
    mirror_live: u64,
    gone: u64,
    max_fraction: f64,
) -> Option<String> {
    if scanned == 0 && mirror_live > 0 {
        return Some(format!(
            "Cognito returned no users for pool {pool} while the mirror has {mirror_live} live users: a wrong pool id, \
             region or credential? Nothing was tombstoned; pass --allow-mass-delete if the pool really is empty"
        ));
    }
    if gone as f64 > max_fraction * mirror_live as f64 {
        return Some(format!(
            "{gone} of the mirror's {mirror_live} live users of pool {pool} are gone from Cognito ({:.1}%, more than the \
             --max-delete-fraction of {:.1}%). Nothing was tombstoned; check the pool and credentials, or pass \
             --allow-mass-delete",
            100.0 * gone as f64 / (mirror_live.max(1) as f64),
            100.0 * max_fraction
        ));
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;

    pub(crate) fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, minute, 0).unwrap()
    }

    pub(crate) fn user(n: u128, name: &str, observed: u32) -> UserRecord {
        let mut record = UserRecord {
            id: uuid::Uuid::from_u128(n),
            user_pool_id: "us-east-1_P".into(),
            username: name.into(),
            email: None,
            email_verified: None,
            phone_number: None,
            given_name: None,
            family_name: None,
            name: None,
            enabled: true,
            status: "CONFIRMED".into(),
            attributes: BTreeMap::new(),
            groups: Vec::new(),
            cognito_created_at: None,
            cognito_updated_at: None,
            observed_at: at(observed),
            content_hash: String::new(),
        };
        record.content_hash = record.compute_hash();
        record
    }

    pub(crate) fn digest(u: &UserRecord, deleted: bool, observed: u32) -> UserDigest {
        UserDigest {
            id: u.id,
            username: u.username.clone(),
            content_hash: u.content_hash.clone(),
            deleted_at: deleted.then(|| at(observed)),
            observed_at: at(observed),
        }
    }

    fn brake_of(plan: &Plan, max_fraction: f64) -> Option<String> {
        brake(
            "p",
            plan.scanned,
            plan.mirror_live,
            plan.tombstone.len() as u64,
            max_fraction,
        )
    }

    fn names(users: &[PlannedUser]) -> Vec<&str> {
        users.iter().map(|u| u.username.as_str()).collect()
    }

    #[test]
    fn every_kind_of_drift_is_planned() {
        let same = user(1, "same", 1);
        let mut changed = user(2, "changed", 1);
        let back = user(3, "back", 1);
        let gone = user(4, "gone", 1);
        let fresh = user(5, "fresh", 1);
        let written_meanwhile = user(6, "meanwhile", 1);
        let mirror = vec![
            digest(&same, false, 1),
            digest(&changed, false, 1),
            digest(&back, true, 1),
            digest(&gone, false, 1),
            digest(&written_meanwhile, false, 30),
        ];
        changed.enabled = false;
        changed.content_hash = changed.compute_hash();
        let mut differ = Differ::new(mirror, at(10), OnDelete::Tombstone);
        for u in [same, changed, back, fresh] {
            differ.observe(u);
        }
        let plan = differ.finish();
        assert_eq!(plan.scanned, 4);
        assert_eq!((plan.mirror_rows, plan.mirror_live), (5, 4));
        assert_eq!(names(&plan.insert), ["fresh"]);
        assert_eq!(names(&plan.update), ["changed"]);
        assert_eq!(names(&plan.revive), ["back"]);
        assert_eq!(names(&plan.tombstone), ["gone"]);
        assert_eq!(plan.unchanged, 1);
        assert_eq!(
            plan.kept_newer, 1,
            "a row written after the scan started is never tombstoned"
        );
        assert!(plan.purge.is_empty());
        let upserted: Vec<&str> = plan.upserts.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(upserted, ["changed", "back", "fresh"]);
        assert_eq!(brake_of(&plan, 0.5), None);
        assert!(brake_of(&plan, 0.2).is_some(), "1 of 4 live is over 20%");
    }

    #[test]
    fn a_user_read_twice_keeps_the_later_read() {
        let old = user(1, "jane", 1);
        let mut newer = user(1, "jane", 5);
        newer.enabled = false;
        newer.content_hash = newer.compute_hash();
        let mut differ = Differ::new(vec![digest(&old, false, 0)], at(10), OnDelete::Tombstone);
        differ.observe(newer.clone());
        differ.observe(old.clone());
        let plan = differ.finish();
        assert_eq!(plan.scanned, 1);
        assert_eq!(names(&plan.update), ["jane"]);
        assert_eq!(plan.upserts, vec![newer]);
    }

    #[test]
    fn records_are_taken_in_batches_as_pages_come() {
        let (batch, page) = (100, 60);
        let mut differ = Differ::new(Vec::new(), at(10), OnDelete::Tombstone);
        let mut taken = 0;
        for p in 0..20u128 {
            for i in 0..page {
                differ.observe(user(p * 1000 + i, &format!("u{p}-{i}"), 1));
            }
            while let Some(records) = differ.take_upserts(batch as usize) {
                assert_eq!(records.len(), batch as usize);
                taken += records.len();
            }
            assert!(
                differ.upserts.len() < batch as usize,
                "{} records held after page {p}: more than a batch",
                differ.upserts.len()
            );
        }
        let plan = differ.finish();
        assert_eq!(taken + plan.upserts.len(), 1200);
        assert_eq!(plan.insert.len(), 1200, "every user is still planned");
    }

    #[test]
    fn delete_and_scrub_also_purge_earlier_tombstones() {
        let dead = user(1, "dead", 1);
        let mut scrubbed = digest(&user(2, "", 1), true, 1);
        scrubbed.content_hash = SCRUB_MARKER.into();
        let mirror = vec![digest(&dead, true, 1), scrubbed];
        let plan = |mode| Differ::new(mirror.clone(), at(10), mode).finish();
        assert!(plan(OnDelete::Tombstone).purge.is_empty());
        assert_eq!(plan(OnDelete::Delete).purge.len(), 2);
        assert_eq!(
            names(&plan(OnDelete::Scrub).purge),
            ["dead"],
            "scrubbed once"
        );
    }

    #[test]
    fn the_brake_fires_on_an_empty_pool_and_a_mass_delete() {
        let users: Vec<UserRecord> = (0..20).map(|i| user(i, &format!("u{i:02}"), 1)).collect();
        let mirror: Vec<UserDigest> = users.iter().map(|u| digest(u, false, 1)).collect();
        let empty = Differ::new(mirror.clone(), at(10), OnDelete::Tombstone).finish();
        assert!(
            brake_of(&empty, 1.0).unwrap().contains("no users"),
            "even with fraction 1"
        );

        let run = |kept: usize| {
            let mut differ = Differ::new(mirror.clone(), at(10), OnDelete::Tombstone);
            users
                .iter()
                .take(kept)
                .cloned()
                .for_each(|u| differ.observe(u));
            differ.finish()
        };
        assert_eq!(brake_of(&run(18), 0.1), None, "2 of 20 is 10%: allowed");
        let mass = run(17);
        assert_eq!(mass.tombstone.len(), 3);
        assert!(
            brake_of(&mass, 0.1)
                .unwrap()
                .contains("3 of the mirror's 20")
        );
        assert_eq!(
            brake_of(
                &Differ::new(Vec::new(), at(10), OnDelete::Tombstone).finish(),
                0.1
            ),
            None
        );
    }

    #[test]
    fn groups_diff_like_users() {
        let group = |name: &str| GroupRecord::new("p", name, None, None, None, None, None, at(1));
        let row = |g: &GroupRecord, deleted: bool, observed: u32| GroupDigest {
            name: g.name.clone(),
            content_hash: g.content_hash.clone(),
            deleted_at: deleted.then(|| at(observed)),
            observed_at: at(observed),
        };
        let (same, back, gone, meanwhile, fresh) = (
            group("same"),
            group("back"),
            group("gone"),
            group("meanwhile"),
            group("fresh"),
        );
        let mirror = vec![
            row(&same, false, 1),
            row(&back, true, 1),
            row(&gone, false, 1),
            row(&meanwhile, false, 30),
        ];
        let plan = diff_groups(vec![same, back, fresh], mirror, at(10));
        assert_eq!(plan.upsert, ["back", "fresh"]);
        assert_eq!(plan.tombstone, ["gone"]);
        assert_eq!((plan.scanned, plan.unchanged), (3, 1));
    }

    #[test]
    fn the_review_names_each_users_kind_and_changed_fields() {
        let same = user(1, "same", 1);
        let mut before = user(2, "changed", 1);
        before.email = Some("old@example.com".into());
        before.content_hash = before.compute_hash();
        let mut changed = before.clone();
        changed.email = None;
        changed.attributes.insert("locale".into(), "de".into());
        changed.content_hash = changed.compute_hash();
        let back = user(3, "back", 1);
        let gone = user(4, "gone", 1);
        let dead = user(5, "dead", 1);
        let fresh = user(6, "fresh", 1);
        let mirror = vec![
            digest(&same, false, 1),
            digest(&before, false, 1),
            digest(&back, true, 1),
            digest(&gone, false, 1),
            digest(&dead, true, 1),
        ];
        let review = |on_delete| {
            let mut differ = Differ::new(mirror.clone(), at(10), on_delete);
            for u in [&same, &changed, &back, &fresh] {
                differ.observe(u.clone());
            }
            let plan = differ.finish();
            assert_eq!(plan.reviewed_ids(), [changed.id, back.id]);
            let mirrored = HashMap::from([(before.id, before.clone()), (back.id, back.clone())]);
            plan.changes(on_delete, &mirrored)
                .into_iter()
                .map(|c| (c.username, c.kind, c.changed.join(",")))
                .collect::<Vec<_>>()
        };
        let all = "enabled,status,user_pool_id,username";
        assert_eq!(
            review(OnDelete::Tombstone),
            [
                ("fresh".to_owned(), ChangeKind::Insert, all.to_owned()),
                (
                    "changed".into(),
                    ChangeKind::Update,
                    "attributes.locale,email".into()
                ),
                ("back".into(), ChangeKind::Revive, "deleted_at".into()),
                ("gone".into(), ChangeKind::Tombstone, "deleted_at".into()),
            ]
        );
        let scrub = review(OnDelete::Scrub);
        assert_eq!(scrub[3].1, ChangeKind::Scrub);
        assert!(scrub[3].2.starts_with("deleted_at,username,email"));
        assert_eq!(
            (scrub[4].0.as_str(), scrub[4].1),
            ("dead", ChangeKind::Scrub)
        );
        let delete = review(OnDelete::Delete);
        assert_eq!(
            delete[3..]
                .iter()
                .map(|c| (c.1, c.2.as_str()))
                .collect::<Vec<_>>(),
            [(ChangeKind::Delete, ""), (ChangeKind::Delete, "")]
        );
    }
}
