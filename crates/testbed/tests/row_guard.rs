//! The row guard of the migration (`cognito_guard_newer_state`, a BEFORE UPDATE trigger on
//! `cognito_users` and `cognito_groups`) tested in SQL on a fresh database: writes are
//! monotonic in `observed_at`, quiet when nothing changed (a newer read of the same state
//! records only its time), tombstones and revivals apply, an `INSERT ... ON CONFLICT DO
//! UPDATE` the guard skips reports 0 rows, and any interleaving of writers ends with the
//! state of the latest read.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde_json::{Value, json};
use testbed::{HasuraLite, TestDatabase};
use tokio_postgres::Client;
use uuid::Uuid;

const POOL: &str = "us-east-1_guard";

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
}

/// The state of a user as the worker would write it.
#[derive(Debug, Clone)]
struct UserState {
    id: Uuid,
    username: &'static str,
    email: &'static str,
    observed_at: DateTime<Utc>,
    content_hash: &'static str,
    deleted_at: Option<DateTime<Utc>>,
}

impl UserState {
    fn new(id: Uuid) -> UserState {
        UserState {
            id,
            username: "alice",
            email: "alice@example.test",
            observed_at: at(100),
            content_hash: "h1",
            deleted_at: None,
        }
    }
}

/// What is stored for a user: the written fields plus `synced_at`.
#[derive(Debug, PartialEq)]
struct Stored {
    username: String,
    email: Option<String>,
    observed_at: DateTime<Utc>,
    content_hash: String,
    deleted_at: Option<DateTime<Utc>>,
    synced_at: DateTime<Utc>,
}

async fn migrated() -> (TestDatabase, Client) {
    let db = TestDatabase::with_migrations().await.unwrap();
    let client = db.client().await.unwrap();
    (db, client)
}

async fn insert(client: &Client, s: &UserState) -> u64 {
    client
        .execute(
            "INSERT INTO cognito_users (id, user_pool_id, username, email, status, observed_at, content_hash, deleted_at)
             VALUES ($1, $2, $3, $4, 'CONFIRMED', $5, $6, $7)",
            &[&s.id, &POOL, &s.username, &s.email, &s.observed_at, &s.content_hash, &s.deleted_at],
        )
        .await
        .unwrap()
}

/// A plain UPDATE of every written field; returns the rows PostgreSQL reports updated.
async fn update(client: &Client, s: &UserState) -> u64 {
    client
        .execute(
            "UPDATE cognito_users SET username = $2, email = $3, observed_at = $4, content_hash = $5, deleted_at = $6
             WHERE id = $1",
            &[&s.id, &s.username, &s.email, &s.observed_at, &s.content_hash, &s.deleted_at],
        )
        .await
        .unwrap()
}

/// The upsert shape Hasura generates for `insert(..., on_conflict: {update_columns})`.
async fn upsert(client: &Client, s: &UserState) -> u64 {
    client
        .execute(
            "INSERT INTO cognito_users (id, user_pool_id, username, email, status, observed_at, content_hash, deleted_at)
             VALUES ($1, $2, $3, $4, 'CONFIRMED', $5, $6, $7)
             ON CONFLICT ON CONSTRAINT cognito_users_pkey DO UPDATE SET
                 username = EXCLUDED.username, email = EXCLUDED.email, observed_at = EXCLUDED.observed_at,
                 content_hash = EXCLUDED.content_hash, deleted_at = EXCLUDED.deleted_at",
            &[&s.id, &POOL, &s.username, &s.email, &s.observed_at, &s.content_hash, &s.deleted_at],
        )
        .await
        .unwrap()
}

async fn stored(client: &Client, id: Uuid) -> Stored {
    let row = client
        .query_one(
            "SELECT username, email, observed_at, content_hash, deleted_at, synced_at FROM cognito_users WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    Stored {
        username: row.get(0),
        email: row.get(1),
        observed_at: row.get(2),
        content_hash: row.get(3),
        deleted_at: row.get(4),
        synced_at: row.get(5),
    }
}

/// `synced_at` is `now()`, the transaction start: a later write must be in a later
/// transaction for a changed `synced_at` to be visible, so tests wait a moment.
async fn next_instant() {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

#[tokio::test]
async fn reapplying_the_same_state_is_quiet() {
    let (_db, client) = migrated().await;
    let state = UserState::new(Uuid::new_v4());
    assert_eq!(insert(&client, &state).await, 1);
    let before = stored(&client, state.id).await;
    next_instant().await;

    assert_eq!(update(&client, &state).await, 0);
    assert_eq!(upsert(&client, &state).await, 0);
    assert_eq!(
        stored(&client, state.id).await,
        before,
        "row and synced_at unchanged"
    );

    // A newer read of the same content records only its time: content and synced_at stay,
    // and an older read in flight can no longer land after it.
    let newer_same = UserState {
        observed_at: at(200),
        ..state.clone()
    };
    assert_eq!(update(&client, &newer_same).await, 1);
    assert_eq!(
        stored(&client, state.id).await,
        Stored {
            observed_at: at(200),
            ..before
        }
    );
    let in_flight = UserState {
        observed_at: at(150),
        content_hash: "h2",
        email: "in-flight@example.test",
        ..state.clone()
    };
    assert_eq!(upsert(&client, &in_flight).await, 0);
    assert_eq!(stored(&client, state.id).await.content_hash, "h1");
}

/// A small deterministic generator (SplitMix64), so the model test needs no crate and
/// every run checks the same cases.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test]
async fn any_interleaving_of_writers_ends_with_the_latest_read() {
    // The model: writers each carry a state and the time it was read; they land in any
    // order, as upserts or plain updates. Whatever the order, the row ends with the state
    // (content and tombstone) of the latest read, and its observed_at is that read's.
    let (_db, client) = migrated().await;
    let contents = ["h1", "h2", "h3"];
    let mut rng = SplitMix(0x5EED);
    for case in 0..400 {
        let id = Uuid::new_v4();
        let writers = 2 + rng.below(4);
        let mut reads: Vec<UserState> = (0..writers)
            .map(|n| UserState {
                id,
                // Distinct read times; few contents, so that a later read often repeats an
                // earlier state (the case that used to be dropped as unchanged).
                observed_at: at(10 * n as i64 + 1),
                content_hash: contents[rng.below(contents.len())],
                deleted_at: (rng.below(4) == 0).then(|| at(10 * n as i64 + 1)),
                ..UserState::new(id)
            })
            .collect();
        let latest = reads.last().cloned().unwrap();
        // A random order of landing (Fisher-Yates).
        for i in (1..reads.len()).rev() {
            reads.swap(i, rng.below(i + 1));
        }
        for state in &reads {
            if rng.below(2) == 0 {
                upsert(&client, state).await;
            } else if update(&client, state).await == 0 {
                // Plain UPDATE of a row not inserted yet: the writer inserts it then.
                upsert(&client, state).await;
            }
        }
        let row = stored(&client, id).await;
        let order: Vec<_> = reads
            .iter()
            .map(|s| (s.observed_at.timestamp() % 100, s.content_hash))
            .collect();
        assert_eq!(
            (row.content_hash.as_str(), row.deleted_at, row.observed_at),
            (latest.content_hash, latest.deleted_at, latest.observed_at),
            "case {case}: writes landed as {order:?}"
        );
    }
}

#[tokio::test]
async fn an_older_state_never_overwrites_a_newer_one() {
    let (_db, client) = migrated().await;
    let state = UserState::new(Uuid::new_v4());
    insert(&client, &state).await;
    let before = stored(&client, state.id).await;

    let older = UserState {
        observed_at: at(50),
        content_hash: "h0",
        email: "old@example.test",
        ..state.clone()
    };
    assert_eq!(update(&client, &older).await, 0);
    assert_eq!(upsert(&client, &older).await, 0);
    assert_eq!(stored(&client, state.id).await, before);
}

#[tokio::test]
async fn a_newer_different_state_applies_and_stamps_synced_at() {
    let (_db, client) = migrated().await;
    let state = UserState::new(Uuid::new_v4());
    insert(&client, &state).await;
    let before = stored(&client, state.id).await;
    next_instant().await;

    let newer = UserState {
        observed_at: at(200),
        content_hash: "h2",
        email: "new@example.test",
        ..state.clone()
    };
    assert_eq!(update(&client, &newer).await, 1);
    let after = stored(&client, state.id).await;
    assert_eq!(
        (after.email.as_deref(), after.content_hash.as_str()),
        (Some("new@example.test"), "h2")
    );
    assert_eq!(after.observed_at, at(200));
    assert!(after.synced_at > before.synced_at);

    next_instant().await;
    let newest = UserState {
        observed_at: at(300),
        content_hash: "h3",
        email: "newest@example.test",
        ..state.clone()
    };
    assert_eq!(upsert(&client, &newest).await, 1);
    assert_eq!(stored(&client, state.id).await.content_hash, "h3");
}

#[tokio::test]
async fn tombstone_then_stale_update_then_revive() {
    let (_db, client) = migrated().await;
    let state = UserState::new(Uuid::new_v4());
    insert(&client, &state).await;

    // Deleted in Cognito: same content, newer observation, tombstone set.
    let tombstone = UserState {
        observed_at: at(200),
        deleted_at: Some(at(200)),
        ..state.clone()
    };
    assert_eq!(upsert(&client, &tombstone).await, 1);
    assert_eq!(stored(&client, state.id).await.deleted_at, Some(at(200)));

    // A late event carrying a state read before the delete is ignored.
    let stale = UserState {
        observed_at: at(150),
        content_hash: "h-stale",
        ..state.clone()
    };
    assert_eq!(upsert(&client, &stale).await, 0);
    assert_eq!(update(&client, &stale).await, 0);
    let after_stale = stored(&client, state.id).await;
    assert_eq!(
        (after_stale.deleted_at, after_stale.content_hash.as_str()),
        (Some(at(200)), "h1")
    );

    // Re-applying the tombstone is quiet.
    assert_eq!(update(&client, &tombstone).await, 0);

    // Seen again later (same sub): the tombstone is lifted.
    let revived = UserState {
        observed_at: at(300),
        deleted_at: None,
        ..state.clone()
    };
    assert_eq!(upsert(&client, &revived).await, 1);
    let after = stored(&client, state.id).await;
    assert_eq!((after.deleted_at, after.observed_at), (None, at(300)));
}

#[tokio::test]
async fn usernames_are_not_unique() {
    let (_db, client) = migrated().await;
    let first = UserState::new(Uuid::new_v4());
    let gone = UserState {
        deleted_at: Some(at(150)),
        observed_at: at(150),
        ..first.clone()
    };
    insert(&client, &first).await;
    update(&client, &gone).await;
    // The same username comes back with a new sub in the same pool.
    let second = UserState {
        id: Uuid::new_v4(),
        observed_at: at(200),
        content_hash: "h9",
        ..first.clone()
    };
    assert_eq!(insert(&client, &second).await, 1);
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM cognito_users WHERE user_pool_id = $1 AND username = 'alice'",
            &[&POOL],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

/// A group's state as the worker would write it.
async fn upsert_group(
    client: &Client,
    description: &str,
    observed_at: DateTime<Utc>,
    hash: &str,
    deleted_at: Option<DateTime<Utc>>,
) -> u64 {
    client
        .execute(
            "INSERT INTO cognito_groups (user_pool_id, name, description, precedence, observed_at, content_hash, deleted_at)
             VALUES ($1, 'admins', $2, 1, $3, $4, $5)
             ON CONFLICT ON CONSTRAINT cognito_groups_pkey DO UPDATE SET
                 description = EXCLUDED.description, observed_at = EXCLUDED.observed_at,
                 content_hash = EXCLUDED.content_hash, deleted_at = EXCLUDED.deleted_at",
            &[&POOL, &description, &observed_at, &hash, &deleted_at],
        )
        .await
        .unwrap()
}

async fn stored_group(
    client: &Client,
) -> (
    Option<String>,
    DateTime<Utc>,
    String,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
) {
    let row = client
        .query_one(
            "SELECT description, observed_at, content_hash, deleted_at, synced_at FROM cognito_groups
             WHERE user_pool_id = $1 AND name = 'admins'",
            &[&POOL],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[tokio::test]
async fn groups_are_guarded_the_same_way() {
    let (_db, client) = migrated().await;
    assert_eq!(
        upsert_group(&client, "Admins", at(100), "g1", None).await,
        1
    );
    let first = stored_group(&client).await;
    next_instant().await;

    assert_eq!(
        upsert_group(&client, "Admins", at(100), "g1", None).await,
        0,
        "same state is quiet"
    );
    assert_eq!(
        upsert_group(&client, "Admins", at(200), "g1", None).await,
        1,
        "a newer read of the same content records its time"
    );
    let first = (first.0, at(200), first.2, first.3, first.4);
    assert_eq!(stored_group(&client).await, first, "and only its time");
    assert_eq!(
        upsert_group(&client, "Old", at(50), "g0", None).await,
        0,
        "older is ignored"
    );
    assert_eq!(stored_group(&client).await, first);

    assert_eq!(
        upsert_group(&client, "Admins!", at(200), "g2", None).await,
        1,
        "newer content applies"
    );
    assert_eq!(stored_group(&client).await.0.as_deref(), Some("Admins!"));
    assert_eq!(
        upsert_group(&client, "Admins!", at(300), "g2", Some(at(300))).await,
        1,
        "tombstone applies"
    );
    assert_eq!(
        upsert_group(&client, "Stale", at(250), "g3", None).await,
        0,
        "stale after tombstone is ignored"
    );
    assert_eq!(stored_group(&client).await.3, Some(at(300)));
    assert_eq!(
        upsert_group(&client, "Admins!", at(400), "g2", None).await,
        1,
        "revive applies"
    );
    let revived = stored_group(&client).await;
    assert_eq!((revived.1, revived.3), (at(400), None));
}

#[tokio::test]
async fn hasura_upserts_report_zero_affected_rows_when_the_guard_skips() {
    let db = TestDatabase::create().await.unwrap();
    let hasura = HasuraLite::start(db.url()).await.unwrap();
    let id = Uuid::new_v4();
    let upsert = |observed_at: &str, hash: &str| {
        let variables = json!({ "o": [{
            "id": id, "user_pool_id": POOL, "username": "alice", "status": "CONFIRMED",
            "observed_at": observed_at, "content_hash": hash
        }] });
        let hasura = &hasura;
        async move {
            let data: Value = hasura
                .graphql_data(
                    "mutation($o: [cognito_users_insert_input!]!) {
                       insert_cognito_users(objects: $o, on_conflict: {
                         constraint: cognito_users_pkey,
                         update_columns: [username, status, observed_at, content_hash, deleted_at]
                       }) { affected_rows }
                     }",
                    variables,
                )
                .await
                .unwrap();
            data["insert_cognito_users"]["affected_rows"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(upsert("2026-01-01T00:01:40Z", "h1").await, 1);
    assert_eq!(upsert("2026-01-01T00:01:40Z", "h1").await, 0, "same state");
    assert_eq!(upsert("2026-01-01T00:00:50Z", "h0").await, 0, "older state");
    assert_eq!(upsert("2026-01-01T00:03:20Z", "h2").await, 1, "newer state");
}
