//! Disabling, enabling and deleting accounts, through the store operations the pages
//! and the CLI share: every effect is seen by the next request.

use gatehouse_core::model::ClientKind;
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_and_every_token_stops_at_once() {
    let f = Fixture::new().await;
    let server = &f.server;
    let tokens = f.tokens("user_read").await;
    let (access, refresh) = (s(&tokens, "access_token"), s(&tokens, "refresh_token"));
    // Validated once, so the read cache holds the token as live.
    assert_eq!(server.validate(&access).await, StatusCode::OK);
    let code = f.code("user_read").await;

    assert!(server.auth.store.set_user_disabled(&f.user.id, true).await.unwrap());
    assert_eq!(server.validate(&access).await, StatusCode::UNAUTHORIZED, "a cached access token stops at once");
    let (status, body) = server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, body) = server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "an unredeemed code");
    let res = f.browser.http.get(f.browser.url("/settings/connections")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the session ended");
    let res = server.browser().sign_in("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("disabled"));
    let failed = gatehouse_core::events::EventFilter { user_id: Some(f.user.id.clone()), limit: 1, ..Default::default() };
    let last = server.auth.store.list_events(&failed).await.unwrap().remove(0);
    assert_eq!((last.kind.as_str(), last.detail.as_deref()), ("sign_in.failed", Some("account disabled")));
    let res = server.browser().sign_in("alice", "wrong-horse-battery").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a wrong password learns nothing of the account");

    assert!(server.auth.store.set_user_disabled(&f.user.id, false).await.unwrap());
    assert_eq!(server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.validate(&access).await, StatusCode::UNAUTHORIZED, "enabling gives no token back");
}

#[tokio::test]
async fn deleting_a_user_deletes_their_applications_and_every_token_at_once() {
    let f = Fixture::new().await;
    let server = &f.server;
    let bob = server.add_user("bob").await;
    let bobs_app = server.add_client("Bob's App", &bob, ClientKind::Confidential, false).await;
    // Bob uses alice's app; alice uses bob's.
    let bob_browser = server.browser();
    let url = bob_browser.authorize_and_allow(&code_query(&f.client.id, "user_read", ""), "bob").await;
    let code = query_param(&url, "code").unwrap();
    let (_, bob_tokens) = server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    let bob_access = s(&bob_tokens, "access_token");
    let url = f.browser.authorize_and_allow(&code_query(&bobs_app.id, "user_read", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (_, alice_tokens) = server.token(&bobs_app, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    let alice_access = s(&alice_tokens, "access_token");
    for t in [&bob_access, &alice_access] {
        assert_eq!(server.validate(t).await, StatusCode::OK);
    }

    let deleted = server.auth.store.delete_user(&f.user.id).await.unwrap().unwrap();
    assert_eq!(deleted, vec![f.client.id.clone()]);
    assert_eq!(server.validate(&alice_access).await, StatusCode::UNAUTHORIZED, "alice's own tokens");
    assert_eq!(server.validate(&bob_access).await, StatusCode::UNAUTHORIZED, "tokens issued to alice's app");
    let (status, _) = server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "alice's app is gone");
    assert_eq!(server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let res = f.browser.http.get(f.browser.url("/settings/connections")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "alice's session ended");
    assert_eq!(bob_browser.http.get(bob_browser.url("/settings/connections")).send().await.unwrap().status(), StatusCode::OK);
}

/// On PostgreSQL, instances cache access tokens for a minute here: disabling a user
/// through one instance must reach the others' caches by announcement, not expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn disabling_through_one_instance_stops_tokens_cached_by_another() {
    use std::time::{Duration, Instant};
    let Some(db) = PgDatabase::create().await else { return };
    let options = gatehouse_store::StoreOptions { staleness: Duration::from_secs(60), ..Default::default() };
    let start = || TestServer::start_on_with(Some(&db.url), Default::default(), Default::default(), options);
    let f = Fixture::with(start().await).await;
    let other = start().await;
    let access = s(&f.tokens("user_read").await, "access_token");
    for _ in 0..2 {
        assert_eq!(f.server.validate(&access).await, StatusCode::OK, "cached by the first instance");
    }
    assert!(other.auth.store.set_user_disabled(&f.user.id, true).await.unwrap());
    let disabled = Instant::now();
    while f.server.validate(&access).await != StatusCode::UNAUTHORIZED {
        assert!(disabled.elapsed() < Duration::from_secs(5), "the other instance's cache was not told");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!("disabled through one instance, refused by the other after {:?}", disabled.elapsed());
    let res = f.browser.http.get(f.browser.url("/settings/connections")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the session ended on every instance");
}
