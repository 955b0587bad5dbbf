//! Refresh tokens: rotation, reuse detection, concurrency, expiry and the caps of seed 000.

use gatehouse_core::model::ClientKind;
use gatehouse_core::pkce::s256;
use gatehouse_core::policy::Policy;
use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;

pub(crate) async fn refresh(f: &Fixture, client: &TestClient, rt: &str) -> (StatusCode, serde_json::Value) {
    f.server.token(client, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await
}

#[tokio::test]
async fn refresh_rotates_and_reuse_within_grace_keeps_the_family() {
    let f = Fixture::new().await;
    let first = f.tokens("user_read").await;
    let rt1 = s(&first, "refresh_token");
    let (status, second) = refresh(&f, &f.client, &rt1).await;
    assert_eq!(status, StatusCode::OK);
    let rt2 = s(&second, "refresh_token");
    assert_ne!(rt1, rt2);
    assert_eq!(second["scope"], "user_read");

    // A retry within the grace period is refused, but does no harm.
    f.server.clock.advance(5);
    let (status, body) = refresh(&f, &f.client, &rt1).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, _) = refresh(&f, &f.client, &rt2).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_yield_exactly_one_success() {
    concurrent_refreshes(Fixture::new().await).await;
}

pub async fn concurrent_refreshes(f: Fixture) {
    let rt = s(&f.tokens("user_read").await, "refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let http = f.server.http();
        let url = f.server.url("/oauth2/token");
        let form = vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), rt.clone()),
            ("client_id".to_string(), f.client.id.clone()),
            ("client_secret".to_string(), f.client.secret.clone().unwrap()),
        ];
        tasks.push(tokio::spawn(async move {
            let res = http.post(url).form(&form).send().await.unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body)
        }));
    }
    let (mut ok, mut invalid) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status.as_u16() < 500, "server error: {status} {body}");
        match status {
            StatusCode::OK => ok += 1,
            _ => {
                assert_eq!(body["error"], "invalid_grant");
                invalid += 1;
            }
        }
    }
    assert_eq!((ok, invalid), (1, 99));
}

#[tokio::test]
async fn refresh_is_bound_to_its_client() {
    let f = Fixture::new().await;
    let other = f.server.add_client("Other", &f.user, ClientKind::Confidential, false).await;
    let rt = s(&f.tokens("user_read").await, "refresh_token");
    let (status, body) = refresh(&f, &other, &rt).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, _) = refresh(&f, &f.client, &rt).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_may_narrow_but_not_widen_scope() {
    let f = Fixture::new().await;
    let rt = s(&f.tokens("user_read channel_read").await, "refresh_token");
    let (status, body) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "chat_login")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (status, body) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "user_read")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "user_read");
    // The rotated refresh token keeps the full original scope.
    let (_, body) = refresh(&f, &f.client, &s(&body, "refresh_token")).await;
    assert_eq!(body["scope"], "channel_read user_read");
}

#[tokio::test]
async fn confidential_refresh_tokens_do_not_expire_public_ones_do_after_disuse() {
    let f = Fixture::new().await;
    let public = f.server.add_client("Phone App", &f.user, ClientKind::Public, false).await;
    let verifier = "a".repeat(43);
    let extra = format!("code_challenge={}&code_challenge_method=S256", s256(&verifier));
    let url = f.browser.authorize_and_allow(&code_query(&public.id, "user_read", &extra), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (_, pub_tokens) = f.server.token(&public, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", &verifier)]).await;
    let conf_tokens = f.tokens("user_read").await;

    // 29 days in, a public refresh still works and starts the 30 days again.
    f.server.clock.advance(29 * 86400);
    let (status, pub_tokens) = refresh(&f, &public, &s(&pub_tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
    f.server.clock.advance(30 * 86400 + 1);
    let (status, body) = refresh(&f, &public, &s(&pub_tokens, "refresh_token")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, _) = refresh(&f, &f.client, &s(&conf_tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn over_the_per_client_user_cap_the_oldest_refresh_token_stops_working() {
    let policy = Policy { max_refresh_per_client_user: 2, ..Policy::default() };
    let f = Fixture::with(TestServer::start_with(policy, ServerConfig::default()).await).await;
    let t1 = f.tokens("user_read").await;
    f.server.clock.advance(1);
    let t2 = f.tokens("user_read").await;
    f.server.clock.advance(1);
    let t3 = f.tokens("user_read").await;
    let (status, _) = refresh(&f, &f.client, &s(&t1, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for t in [&t2, &t3] {
        let (status, _) = refresh(&f, &f.client, &s(t, "refresh_token")).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn within_one_second_the_cap_still_evicts_the_oldest() {
    let policy = Policy { max_refresh_per_client_user: 2, ..Policy::default() };
    let f = Fixture::with(TestServer::start_with(policy, ServerConfig::default()).await).await;
    // The test clock stands still: all three are issued in the same second.
    let t1 = f.tokens("user_read").await;
    let t2 = f.tokens("user_read").await;
    let t3 = f.tokens("user_read").await;
    assert_eq!(refresh(&f, &f.client, &s(&t1, "refresh_token")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&f, &f.client, &s(&t2, "refresh_token")).await.0, StatusCode::OK);
    assert_eq!(refresh(&f, &f.client, &s(&t3, "refresh_token")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn over_the_per_user_cap_the_oldest_across_clients_stops_working() {
    let policy = Policy { max_refresh_per_user: 2, ..Policy::default() };
    let f = Fixture::with(TestServer::start_with(policy, ServerConfig::default()).await).await;
    let other = f.server.add_client("Second App", &f.user, ClientKind::Confidential, false).await;
    let t1 = f.tokens("user_read").await;
    f.server.clock.advance(1);
    let t2 = f.tokens("user_read").await;
    f.server.clock.advance(1);
    let url = f.browser.authorize_and_allow(&code_query(&other.id, "user_read", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (status, t3) = f.server.token(&other, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refresh(&f, &f.client, &s(&t1, "refresh_token")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&f, &f.client, &s(&t2, "refresh_token")).await.0, StatusCode::OK);
    assert_eq!(refresh(&f, &other, &s(&t3, "refresh_token")).await.0, StatusCode::OK);
}
