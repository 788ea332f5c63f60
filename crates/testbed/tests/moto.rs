//! What moto's cognito-idp does with the calls the sync engine relies on, pinned so a moto
//! upgrade that changes it is noticed: `sub` filters (the 16-shard scan), `Limit` and
//! pagination tokens, ListUsersInGroup paging, and AdminGetUser by username only.

use std::collections::BTreeSet;

use aws_sdk_cognitoidentityprovider::Client as Cognito;
use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata as _;
use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserError;
use aws_sdk_cognitoidentityprovider::types::UserType;
use testbed::{CreatedUser, UserSpec};
use uuid::Uuid;

async fn pool_with(users: usize) -> (Cognito, String, Vec<CreatedUser>) {
    let moto = testbed::moto_endpoint().await.unwrap();
    let cognito = Cognito::new(&testbed::sdk_config(&moto).await);
    let pool = testbed::pool::create_pool(&cognito, &[]).await.unwrap();
    let target = pool.target(&cognito);
    let created = target
        .create_users((0..users).map(|i| UserSpec::numbered(i).group("members")))
        .await
        .unwrap();
    (cognito, pool.user_pool_id.clone(), created)
}

fn sub_of(user: &UserType) -> Uuid {
    let sub = user
        .attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .unwrap();
    Uuid::parse_str(sub).unwrap()
}

#[tokio::test]
async fn sub_prefix_filters_split_the_pool_into_16_disjoint_shards() {
    let (cognito, pool_id, created) = pool_with(40).await;
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for digit in "0123456789abcdef".chars() {
        let users = cognito
            .list_users()
            .user_pool_id(&pool_id)
            .filter(format!("sub ^= \"{digit}\""))
            .limit(60)
            .send()
            .await
            .unwrap();
        for user in users.users() {
            let sub = sub_of(user);
            assert!(sub.to_string().starts_with(digit));
            seen.insert(sub);
            total += 1;
        }
    }
    assert_eq!(total, 40, "no user is in two shards");
    assert_eq!(seen, created.iter().map(|u| u.sub).collect());
}

#[tokio::test]
async fn sub_equality_filter_finds_one_user_and_admin_get_user_needs_the_username() {
    let (cognito, pool_id, created) = pool_with(3).await;
    let wanted = &created[1];
    let found = cognito
        .list_users()
        .user_pool_id(&pool_id)
        .filter(format!("sub = \"{}\"", wanted.sub))
        .send()
        .await
        .unwrap();
    assert_eq!(
        found
            .users()
            .iter()
            .filter_map(|u| u.username())
            .collect::<Vec<_>>(),
        [wanted.username.as_str()]
    );

    let by_name = cognito
        .admin_get_user()
        .user_pool_id(&pool_id)
        .username(&wanted.username)
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.username(), wanted.username);
    // Real Cognito also accepts the sub here; moto does not.
    let by_sub = cognito
        .admin_get_user()
        .user_pool_id(&pool_id)
        .username(wanted.sub.to_string())
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        by_sub.into_service_error(),
        AdminGetUserError::UserNotFoundException(_)
    ));
}

#[tokio::test]
async fn pages_follow_limit_and_tokens_outlive_a_limit_change() {
    let (cognito, pool_id, created) = pool_with(20).await;
    let mut sizes = Vec::new();
    let mut subs = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let page = cognito
            .list_users()
            .user_pool_id(&pool_id)
            .limit(7)
            .set_pagination_token(token.clone())
            .send()
            .await
            .unwrap();
        sizes.push(page.users().len());
        subs.extend(page.users().iter().map(sub_of));
        token = page.pagination_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(sizes, [7, 7, 6]);
    assert_eq!(subs, created.iter().map(|u| u.sub).collect());

    let first = cognito
        .list_users()
        .user_pool_id(&pool_id)
        .limit(7)
        .send()
        .await
        .unwrap();
    let token = first.pagination_token().unwrap();
    // The same token with another Limit is fine (Limit is not part of moto's checksum).
    let again = cognito
        .list_users()
        .user_pool_id(&pool_id)
        .limit(60)
        .pagination_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.users().len(), 13);
}

#[tokio::test]
async fn a_token_dies_when_the_user_it_points_at_is_deleted() {
    let (cognito, pool_id, _created) = pool_with(10).await;
    let first = cognito
        .list_users()
        .user_pool_id(&pool_id)
        .limit(5)
        .send()
        .await
        .unwrap();
    let token = first.pagination_token().unwrap();
    // moto's token names the first user of the next page; deleting that user breaks it.
    let next = cognito
        .list_users()
        .user_pool_id(&pool_id)
        .limit(1)
        .pagination_token(token)
        .send()
        .await
        .unwrap();
    let doomed = next.users()[0].username().unwrap();
    cognito
        .admin_delete_user()
        .user_pool_id(&pool_id)
        .username(doomed)
        .send()
        .await
        .unwrap();
    let err = cognito
        .list_users()
        .user_pool_id(&pool_id)
        .limit(5)
        .pagination_token(token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidToken"));
}

#[tokio::test]
async fn list_users_in_group_pages_with_next_token() {
    let (cognito, pool_id, created) = pool_with(12).await;
    let mut subs = BTreeSet::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let page = cognito
            .list_users_in_group()
            .user_pool_id(&pool_id)
            .group_name("members")
            .limit(5)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        subs.extend(page.users().iter().map(sub_of));
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(subs, created.iter().map(|u| u.sub).collect());
}
