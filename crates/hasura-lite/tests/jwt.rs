//! JWT mode end to end: a JWKS served over HTTP from a test key, tokens signed with it
//! carrying the claims the real `pre_token_generation` Lambda handler produces, and what
//! each role may then read through hasura-lite under the project's metadata permissions.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{SECRET, Server, TestDb, only_error, user, user_id};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value as Json, json};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test";
const AUDIENCE: &str = "test-app-client";
const KID: &str = "test-key-1";
const NAMESPACE: &str = "https://hasura.io/jwt/claims";
const GROUP_ROLE_MAP: &str = r#"{"support-staff": "support", "admins": "admin"}"#;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs the real Lambda handler on a V1 or V2 Pre Token Generation event for a user with
/// `groups`; returns the claims it adds to the ID token (V1) or access token (V2).
fn handler_claims(version: u8, sub: &str, groups: &[&str]) -> serde_json::Map<String, Json> {
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
version, sub, groups = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
event = {
    "version": version,
    "triggerSource": "TokenGeneration_Authentication",
    "region": "us-east-1",
    "userPoolId": "us-east-1_test",
    "userName": "someone",
    "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "test-app-client"},
    "request": {
        "userAttributes": {"sub": sub, "email": "someone@example.com", "cognito:user_status": "CONFIRMED"},
        "groupConfiguration": {"groupsToOverride": groups, "iamRolesToOverride": [], "preferredRole": None},
    },
    "response": {},
}
if version == "1":
    event["response"] = {"claimsOverrideDetails": None}
else:
    event["request"]["scopes"] = ["openid", "email"]
    event["response"] = {"claimsAndScopeOverrideDetails": None}
response = handler.handler(event, None)["response"]
if version == "1":
    claims = response["claimsOverrideDetails"]["claimsToAddOrOverride"]
else:
    claims = response["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
print(json.dumps(claims))
"#;
    let handler_dir = workspace_root().join("deploy/lambdas/pre_token_generation");
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&handler_dir)
        .arg(version.to_string())
        .arg(sub)
        .arg(serde_json::to_string(groups).unwrap())
        .env("GROUP_ROLE_MAP", GROUP_ROLE_MAP)
        // The map grants `admin`, which the handler refuses unless told otherwise.
        .env("ALLOW_ADMIN_ROLE", "true")
        .output()
        .expect("run the pre_token_generation handler");
    assert!(
        output.status.success(),
        "handler failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("handler claims JSON")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token as Cognito would issue it, with `extra` claims (the handler's) merged in.
fn token(
    extra: &serde_json::Map<String, Json>,
    key: &[u8],
    adjust: impl FnOnce(&mut Json),
) -> String {
    let mut claims = json!({
        "sub": "ignored-by-hasura",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "token_use": "id",
        "iat": now(),
        "exp": now() + 3600,
    });
    for (k, v) in extra {
        claims[k] = v.clone();
    }
    adjust(&mut claims);
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let key = EncodingKey::from_rsa_pem(key).expect("test key PEM");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign token")
}

const SIGNING_KEY: &[u8] = include_bytes!("fixtures/signing.pem");
const OTHER_KEY: &[u8] = include_bytes!("fixtures/other.pem");

/// Serves `fixtures/jwks.json` on 127.0.0.1; counts the fetches.
async fn jwks_server() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "public, max-age=3600"),
                    ],
                    include_str!("fixtures/jwks.json"),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetches)
}

async fn start(jwk_url: &str) -> Server {
    let db = TestDb::create().await;
    let mut config = db.config(Some(SECRET));
    config.jwt_secret = Some(
        json!({
            "type": "RS256",
            "jwk_url": jwk_url,
            "claims_format": "stringified_json",
            "issuer": ISSUER,
            "audience": [AUDIENCE, "another-client"],
        })
        .to_string(),
    );
    Server::start_with(db, config).await
}

/// Posts `query` with `headers`; returns the whole body.
async fn post(server: &Server, query: &str, headers: &[(&str, String)]) -> Json {
    let mut request = server
        .http
        .post(&server.endpoint)
        .json(&json!({ "query": query }));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("POST /v1/graphql");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON body")
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn seed(server: &Server) {
    let mut deleted = user(3, "h3", "2024-01-01T00:00:00Z");
    deleted["deleted_at"] = json!("2024-02-01T00:00:00Z");
    let data = server
        .data(
            r#"mutation ($users: [cognito_users_insert_input!]!) {
                insert_cognito_users(objects: $users) { affected_rows }
                insert_cognito_groups(objects: [
                    {user_pool_id: "us-east-1_test", name: "support-staff", observed_at: "2024-01-01T00:00:00Z", content_hash: "g1"},
                    {user_pool_id: "us-east-1_test", name: "gone", observed_at: "2024-01-01T00:00:00Z", content_hash: "g2", deleted_at: "2024-02-01T00:00:00Z"}
                ]) { affected_rows }
                insert_cognito_sync_runs_one(object: {kind: "backfill", user_pool_id: "us-east-1_test"}) { kind }
            }"#,
            json!({ "users": [
                user(1, "h1", "2024-01-01T00:00:00Z"),
                user(2, "h2", "2024-01-01T00:00:00Z"),
                deleted,
            ] }),
        )
        .await;
    assert_eq!(data["insert_cognito_users"]["affected_rows"], 3);
}

#[tokio::test]
async fn roles_see_what_their_permissions_allow() {
    let (jwk_url, fetches) = jwks_server().await;
    let server = start(&jwk_url).await;
    seed(&server).await;

    // V1 (ID token, stringified claims) for a user without mapped groups: role `user`.
    let v1 = handler_claims(1, &user_id(1), &["unmapped-group"]);
    let inner: Json = serde_json::from_str(v1[NAMESPACE].as_str().expect("stringified claims"))
        .expect("claims JSON");
    assert_eq!(inner["x-hasura-allowed-roles"], json!(["user"]));
    let user_token = token(&v1, SIGNING_KEY, |_| {});

    let own = post(
        &server,
        "{ cognito_users { id username email } }",
        &[bearer(&user_token)],
    )
    .await;
    assert_eq!(
        own,
        json!({ "data": { "cognito_users": [
            { "id": user_id(1), "username": "user1", "email": "user1@example.com" }
        ] } }),
        "user sees exactly its own row"
    );
    // A where clause cannot widen the permission filter.
    let widened = post(
        &server,
        &format!(
            r#"{{ cognito_users(where: {{id: {{_eq: "{}"}}}}) {{ id }} }}"#,
            user_id(2)
        ),
        &[bearer(&user_token)],
    )
    .await;
    assert_eq!(widened, json!({ "data": { "cognito_users": [] } }));
    let by_pk = post(
        &server,
        &format!(r#"{{ a: cognito_users_by_pk(id: "{}") {{ id }} b: cognito_users_by_pk(id: "{}") {{ id }} }}"#, user_id(1), user_id(2)),
        &[bearer(&user_token)],
    )
    .await;
    assert_eq!(
        by_pk,
        json!({ "data": { "a": { "id": user_id(1) }, "b": null } })
    );

    // Columns outside the permission do not exist for the role.
    let hidden = post(
        &server,
        "{ cognito_users { id attributes } }",
        &[bearer(&user_token)],
    )
    .await;
    assert_eq!(
        only_error(&hidden),
        (
            "validation-failed".to_owned(),
            "field 'attributes' not found in type: 'cognito_users'".to_owned()
        )
    );
    // No aggregations and no mutations for `user`; sync tables do not exist for it.
    for (query, message) in [
        (
            "{ cognito_users_aggregate { aggregate { count } } }",
            "field 'cognito_users_aggregate' not found in type: 'query_root'",
        ),
        (
            "{ cognito_sync_runs { id } }",
            "field 'cognito_sync_runs' not found in type: 'query_root'",
        ),
        (
            "{ cognito_sync_leases { name } }",
            "field 'cognito_sync_leases' not found in type: 'query_root'",
        ),
    ] {
        let body = post(&server, query, &[bearer(&user_token)]).await;
        assert_eq!(
            only_error(&body),
            ("validation-failed".to_owned(), message.to_owned()),
            "{query}"
        );
    }
    let mutation = post(
        &server,
        r#"mutation { delete_cognito_users(where: {}) { affected_rows } }"#,
        &[bearer(&user_token)],
    )
    .await;
    assert_eq!(
        only_error(&mutation),
        (
            "validation-failed".to_owned(),
            "no mutations exist".to_owned()
        )
    );
    // Filtering, ordering and column enums offer only the permitted columns.
    let permitted = [
        "email",
        "email_verified",
        "enabled",
        "family_name",
        "given_name",
        "groups",
        "id",
        "name",
        "phone_number",
        "status",
        "username",
    ];
    let introspection = post(
        &server,
        r#"{ __schema { mutationType { name } }
             bool_exp: __type(name: "cognito_users_bool_exp") { inputFields { name } }
             order_by: __type(name: "cognito_users_order_by") { inputFields { name } }
             columns: __type(name: "cognito_users_select_column") { enumValues { name } }
             insert: __type(name: "cognito_users_insert_input") { name } }"#,
        &[bearer(&user_token)],
    )
    .await;
    let names = |list: &Json| -> Vec<String> {
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .filter(|n| !n.starts_with('_'))
            .collect();
        names.sort();
        names
    };
    let data = &introspection["data"];
    assert_eq!(
        data["__schema"]["mutationType"],
        Json::Null,
        "{introspection}"
    );
    assert_eq!(names(&data["bool_exp"]["inputFields"]), permitted);
    assert_eq!(names(&data["order_by"]["inputFields"]), permitted);
    assert_eq!(names(&data["columns"]["enumValues"]), permitted);
    assert_eq!(data["insert"], Json::Null);

    // Groups: `user` sees only live ones, and only name and description.
    let groups = post(
        &server,
        "{ cognito_groups(order_by: {name: asc}) { name description } }",
        &[bearer(&user_token)],
    )
    .await;
    assert_eq!(
        groups,
        json!({ "data": { "cognito_groups": [{ "name": "support-staff", "description": null }] } })
    );

    // A deleted user's token sees nothing, not even its own tombstoned row.
    let deleted_token = token(&handler_claims(1, &user_id(3), &[]), SIGNING_KEY, |_| {});
    let none = post(
        &server,
        "{ cognito_users { id } }",
        &[bearer(&deleted_token)],
    )
    .await;
    assert_eq!(none, json!({ "data": { "cognito_users": [] } }));

    // V2 (access token) for a support-staff member: default role `support`, all rows.
    let v2 = handler_claims(2, &user_id(2), &["support-staff"]);
    let support_token = token(&v2, SIGNING_KEY, |_| {});
    let all = post(
        &server,
        "{ cognito_users(order_by: {id: asc}) { id deleted_at } cognito_users_aggregate { aggregate { count } } }",
        &[bearer(&support_token)],
    )
    .await;
    assert!(all.get("errors").is_none(), "{all}");
    let ids: Vec<&str> = all["data"]["cognito_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [user_id(1), user_id(2), user_id(3)]);
    assert_eq!(
        all["data"]["cognito_users_aggregate"]["aggregate"]["count"],
        3
    );
    // The same token may ask for its other allowed role, `user`, and then sees its own row.
    let as_user = post(
        &server,
        "{ cognito_users { id } }",
        &[bearer(&support_token), ("x-hasura-role", "user".to_owned())],
    )
    .await;
    assert_eq!(
        as_user,
        json!({ "data": { "cognito_users": [{ "id": user_id(2) }] } })
    );
    // But not a role outside its allowed roles.
    let denied = post(
        &server,
        "{ cognito_users { id } }",
        &[
            bearer(&support_token),
            ("x-hasura-role", "admin".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        only_error(&denied),
        (
            "access-denied".to_owned(),
            "Your requested role is not in allowed roles".to_owned()
        )
    );

    // `admin` through the admin secret sees the sync tables, as does an `admin` JWT role.
    let admin = post(
        &server,
        "{ cognito_sync_runs { kind } }",
        &[("x-hasura-admin-secret", SECRET.to_owned())],
    )
    .await;
    assert_eq!(
        admin,
        json!({ "data": { "cognito_sync_runs": [{ "kind": "backfill" }] } })
    );
    // In JWT mode too, the admin secret may act as another role, with header variables.
    let switched = post(
        &server,
        "{ cognito_users { id } }",
        &[
            ("x-hasura-admin-secret", SECRET.to_owned()),
            ("x-hasura-role", "user".to_owned()),
            ("x-hasura-user-id", user_id(1)),
        ],
    )
    .await;
    assert_eq!(
        switched,
        json!({ "data": { "cognito_users": [{ "id": user_id(1) }] } })
    );
    let admin_token = token(
        &handler_claims(2, &user_id(1), &["admins"]),
        SIGNING_KEY,
        |_| {},
    );
    let admin_jwt = post(
        &server,
        "{ cognito_sync_runs { kind } }",
        &[bearer(&admin_token)],
    )
    .await;
    assert_eq!(admin_jwt, admin);
    let wrong_secret = post(
        &server,
        "{ cognito_sync_runs { kind } }",
        &[
            ("x-hasura-admin-secret", "nope".to_owned()),
            bearer(&admin_token),
        ],
    )
    .await;
    assert_eq!(only_error(&wrong_secret).0, "access-denied");

    // The key set was fetched once and then served from the cache (max-age=3600).
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn bad_tokens_get_hasuras_errors() {
    let (jwk_url, _) = jwks_server().await;
    let server = start(&jwk_url).await;
    let claims = handler_claims(1, &user_id(1), &[]);
    let query = "{ cognito_users { id } }";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired",
            token(&claims, SIGNING_KEY, |c| {
                c["iat"] = json!(now() - 7200);
                c["exp"] = json!(now() - 3600);
            }),
            "invalid-jwt",
            "Could not verify JWT: JWTExpired",
        ),
        (
            "wrong signature",
            token(&claims, OTHER_KEY, |_| {}),
            "invalid-jwt",
            "Could not verify JWT: JWSError JWSInvalidSignature",
        ),
        (
            "wrong issuer",
            token(&claims, SIGNING_KEY, |c| {
                c["iss"] = json!("https://evil.example.com")
            }),
            "invalid-jwt",
            "Could not verify JWT: JWTNotInIssuer",
        ),
        (
            "wrong audience",
            token(&claims, SIGNING_KEY, |c| c["aud"] = json!("someone-else")),
            "invalid-jwt",
            "Could not verify JWT: JWTNotInAudience",
        ),
        (
            "not yet valid",
            token(&claims, SIGNING_KEY, |c| c["nbf"] = json!(now() + 3600)),
            "invalid-jwt",
            "Could not verify JWT: JWTNotYetValid",
        ),
        (
            "no Hasura claims",
            token(&serde_json::Map::new(), SIGNING_KEY, |_| {}),
            "jwt-missing-role-claims",
            "claims key: 'https://hasura.io/jwt/claims' not found",
        ),
    ];
    for (name, token, code, message) in cases {
        let body = post(&server, query, &[bearer(&token)]).await;
        assert_eq!(
            only_error(&body),
            (code.to_owned(), message.to_owned()),
            "{name}"
        );
    }
    // A key id the JWKS does not have (even after refetching it).
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rotated-away".to_owned());
    let mut payload = json!({ "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600 });
    payload[NAMESPACE] = claims[NAMESPACE].clone();
    let unknown_kid = jsonwebtoken::encode(
        &header,
        &payload,
        &EncodingKey::from_rsa_pem(SIGNING_KEY).unwrap(),
    )
    .unwrap();
    let body = post(&server, query, &[bearer(&unknown_kid)]).await;
    assert_eq!(
        only_error(&body),
        (
            "invalid-jwt".to_owned(),
            "Could not verify JWT: JWSError JWSInvalidSignature".to_owned()
        )
    );
    let missing = post(&server, query, &[]).await;
    assert_eq!(
        only_error(&missing),
        (
            "access-denied".to_owned(),
            "Missing 'Authorization' or 'Cookie' header in JWT authentication mode".to_owned()
        )
    );
    let malformed = post(&server, query, &[("authorization", "Basic abc".to_owned())]).await;
    assert_eq!(
        only_error(&malformed),
        (
            "invalid-jwt".to_owned(),
            "Malformed Authorization header".to_owned()
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn json_claims_under_a_namespace_path() {
    let (jwk_url, _) = jwks_server().await;
    let db = TestDb::create().await;
    let mut config = db.config(Some(SECRET));
    config.jwt_secret = Some(
        json!({
            "type": "RS256",
            "jwk_url": jwk_url,
            "claims_format": "json",
            "claims_namespace_path": "$.app.hasura",
        })
        .to_string(),
    );
    let server = Server::start_with(db, config).await;
    seed(&server).await;

    // The handler's claims as a JSON object, session variable names in another case.
    let stringified = handler_claims(2, &user_id(2), &[]);
    let object: serde_json::Map<String, Json> =
        serde_json::from_str(stringified[NAMESPACE].as_str().unwrap()).unwrap();
    let shouted: serde_json::Map<String, Json> = object
        .into_iter()
        .map(|(k, v)| (k.replace("x-hasura", "X-Hasura"), v))
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("app".to_owned(), json!({ "hasura": shouted }));
    let user_token = token(&extra, SIGNING_KEY, |_| {});
    let own = post(&server, "{ cognito_users { id } }", &[bearer(&user_token)]).await;
    assert_eq!(
        own,
        json!({ "data": { "cognito_users": [{ "id": user_id(2) }] } })
    );

    // Stringified claims do not pass as `json`.
    let wrong_format = token(&stringified, SIGNING_KEY, |c| {
        c["app"] = json!({ "hasura": stringified[NAMESPACE].clone() })
    });
    let body = post(
        &server,
        "{ cognito_users { id } }",
        &[bearer(&wrong_format)],
    )
    .await;
    assert_eq!(only_error(&body).0, "invalid-jwt");
    server.stop().await;
}

#[tokio::test]
async fn jwt_mode_needs_an_admin_secret() {
    let db = TestDb::create().await;
    let mut config = db.config(None);
    config.jwt_secret =
        Some(r#"{"type":"RS256","jwk_url":"http://127.0.0.1:9/jwks.json"}"#.to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = hasura_lite::serve(config, listener, tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("JWT mode without an admin secret");
    assert!(
        err.to_string().contains("HASURA_GRAPHQL_ADMIN_SECRET"),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_with_the_sync_role_writes_only_as_that_role() {
    let (jwk_url, _) = jwks_server().await;
    let server = start(&jwk_url).await;
    // Claims as the pre-token Lambda gives the worker's machine client.
    let mut claims = serde_json::Map::new();
    claims.insert(
        NAMESPACE.to_owned(),
        json!(
            json!({
                "x-hasura-allowed-roles": ["cognito_sync"],
                "x-hasura-default-role": "cognito_sync",
            })
            .to_string()
        ),
    );
    let sync_token = token(&claims, SIGNING_KEY, |_| {});
    let as_sync = [
        bearer(&sync_token),
        ("x-hasura-role", "cognito_sync".to_owned()),
    ];
    let upsert = post(
        &server,
        r#"mutation { insert_cognito_groups(objects: [{user_pool_id: "p", name: "g", observed_at: "2024-01-01T00:00:00Z", content_hash: "h"}],
             on_conflict: {constraint: cognito_groups_pkey, update_columns: [content_hash, observed_at]}) { affected_rows } }"#,
        &as_sync,
    )
    .await;
    assert_eq!(
        upsert,
        json!({ "data": { "insert_cognito_groups": { "affected_rows": 1 } } })
    );
    // The sync role has no column outside the mirror's writes: synced_at is the database's.
    let stamped = post(
        &server,
        r#"mutation { update_cognito_groups(where: {}, _set: {synced_at: "2024-01-01T00:00:00Z"}) { affected_rows } }"#,
        &as_sync,
    )
    .await;
    assert_eq!(
        only_error(&stamped),
        (
            "validation-failed".to_owned(),
            "field 'synced_at' not found in type: 'cognito_groups_set_input'".to_owned()
        )
    );
    let escalate = post(
        &server,
        "{ cognito_users { id } }",
        &[bearer(&sync_token), ("x-hasura-role", "admin".to_owned())],
    )
    .await;
    assert_eq!(only_error(&escalate).0, "access-denied");
    server.stop().await;
}
