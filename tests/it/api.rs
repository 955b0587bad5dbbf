//! The demo platform API and gatehouse-guard: scopes, the ways of sending a token,
//! Client-Id, revoked and expired tokens, rate limits; and the guard in an app of its own.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use gatehouse_core::model::{ClientKind, RateBudget, Relation};
use gatehouse_core::policy::Policy;
use gatehouse_guard::{authenticate, require_scope, Guard, IntrospectionVerifier, Token};
use gatehouse_server::{RateLimits, ServerConfig};
use reqwest::{Method, StatusCode};

use crate::common::*;

const ALL_SCOPES: &str = "user_read user_blocks_edit user_blocks_read user_follows_edit channel_read channel_editor \
    channel_commercial channel_stream channel_subscriptions user_subscriptions channel_check_subscription chat_login";

/// (scope, method, path): one endpoint for each of the twelve default scopes.
const SCOPED: &[(&str, &str, &str)] = &[
    ("user_read", "GET", "/api/user/email"),
    ("user_blocks_edit", "PUT", "/api/user/blocks/bob"),
    ("user_blocks_read", "GET", "/api/user/blocks"),
    ("user_follows_edit", "PUT", "/api/user/follows/bob"),
    ("channel_read", "GET", "/api/channel/stream_key"),
    ("channel_editor", "PUT", "/api/channel"),
    ("channel_commercial", "POST", "/api/channel/commercial"),
    ("channel_stream", "DELETE", "/api/channel/stream_key"),
    ("channel_subscriptions", "GET", "/api/channel/subscriptions"),
    ("user_subscriptions", "GET", "/api/user/subscriptions"),
    ("channel_check_subscription", "GET", "/api/channel/subscriptions/bob"),
    ("chat_login", "GET", "/api/chat/login"),
];

async fn api(f: &Fixture, method: &str, path: &str, token: &str) -> reqwest::Response {
    f.server
        .http()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), f.server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn with_bob(f: &Fixture) {
    let bob = f.server.add_user("bob").await;
    // Bob subscribes to alice's channel (the demo has no payment flow).
    f.server.auth.store.relate(Relation::Subscription, &bob.id, &f.user.id, f.server.auth.now()).await.unwrap();
}

#[tokio::test]
async fn every_default_scope_guards_an_endpoint() {
    let f = Fixture::new().await;
    with_bob(&f).await;
    let all = s(&f.tokens(ALL_SCOPES).await, "access_token");
    let none = s(&f.tokens("").await, "access_token");
    // Every scope but openid, which is about identity, not the API.
    let catalog: Vec<String> =
        f.server.auth.catalog.all().iter().map(|s| s.name.clone()).filter(|n| n != "openid").collect();
    assert_eq!(catalog.len(), SCOPED.len());
    for name in &catalog {
        assert!(SCOPED.iter().any(|(s, _, _)| s == name), "{name} guards nothing");
    }
    for (scope, method, path) in SCOPED {
        let res = api(&f, method, path, &none).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path} without {scope}");
        assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!((body["error"].as_str(), body["scope"].as_str()), (Some("insufficient_scope"), Some(*scope)));
        let res = api(&f, method, path, &all).await;
        assert!(res.status().is_success(), "{method} {path} with {scope}: {}", res.status());
    }
}

#[tokio::test]
async fn api_data_is_real_and_fields_follow_scopes() {
    let f = Fixture::new().await;
    with_bob(&f).await;
    let basic = s(&f.tokens("").await, "access_token");
    let all = s(&f.tokens(ALL_SCOPES).await, "access_token");
    let me: serde_json::Value = api(&f, "GET", "/api/user", &basic).await.json().await.unwrap();
    assert_eq!(me["login"], "alice");
    assert!(me.get("email").is_none());
    let me: serde_json::Value = api(&f, "GET", "/api/user", &all).await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com");
    let ch: serde_json::Value = api(&f, "GET", "/api/channel", &basic).await.json().await.unwrap();
    assert!(ch.get("stream_key").is_none());
    let ch: serde_json::Value = api(&f, "GET", "/api/channel", &all).await.json().await.unwrap();
    let key = ch["stream_key"].as_str().unwrap().to_string();

    let res = f.server.http().put(f.server.url("/api/channel")).bearer_auth(&all).json(&serde_json::json!({"status": "Any% run", "game": "Celeste"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ch: serde_json::Value = api(&f, "GET", "/api/channel", &basic).await.json().await.unwrap();
    assert_eq!((ch["status"].as_str(), ch["game"].as_str()), (Some("Any% run"), Some("Celeste")));

    let new: serde_json::Value = api(&f, "DELETE", "/api/channel/stream_key", &all).await.json().await.unwrap();
    assert_ne!(new["stream_key"].as_str().unwrap(), key);

    api(&f, "PUT", "/api/user/follows/bob", &all).await;
    let follows: serde_json::Value = api(&f, "GET", "/api/user/follows", &basic).await.json().await.unwrap();
    assert_eq!(follows["follows"][0]["login"], "bob");
    assert_eq!(api(&f, "DELETE", "/api/user/follows/bob", &all).await.status(), StatusCode::NO_CONTENT);
    let follows: serde_json::Value = api(&f, "GET", "/api/user/follows", &basic).await.json().await.unwrap();
    assert_eq!(follows["_total"], 0);

    let subs: serde_json::Value = api(&f, "GET", "/api/channel/subscriptions", &all).await.json().await.unwrap();
    assert_eq!(subs["subscriptions"][0]["login"], "bob");
    assert_eq!(api(&f, "GET", "/api/channel/subscriptions/nobody", &all).await.status(), StatusCode::NOT_FOUND);

    // App tokens have no user.
    let (_, app) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(api(&f, "GET", "/api/user", &s(&app, "access_token")).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_way_of_sending_a_token_and_the_forbidden_combinations() {
    let f = Fixture::new().await;
    let t = s(&f.tokens("channel_editor").await, "access_token");
    let http = f.server.http();
    let url = |p: &str| f.server.url(p);
    let status = |r: reqwest::Response| r.status();

    assert_eq!(status(http.get(url("/api/user")).header("Authorization", format!("Bearer {t}")).send().await.unwrap()), StatusCode::OK);
    assert_eq!(status(http.get(url("/api/user")).header("Authorization", format!("OAuth {t}")).send().await.unwrap()), StatusCode::OK);
    assert_eq!(status(http.get(url(&format!("/api/user?oauth_token={t}"))).send().await.unwrap()), StatusCode::OK);
    assert_eq!(status(http.get(url(&format!("/api/user?access_token={t}"))).send().await.unwrap()), StatusCode::OK);
    let res = http.put(url("/api/channel")).form(&[("oauth_token", t.as_str()), ("status", "via form")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ch: serde_json::Value = res.json().await.unwrap();
    assert_eq!(ch["status"], "via form");

    // Not in the body of a DELETE or GET; no token at all is a bare 401 challenge.
    let res = http.delete(url("/api/user/follows/x")).form(&[("oauth_token", t.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"gatehouse\"");
    // Two ways at once: invalid_request.
    let res = http.get(url(&format!("/api/user?oauth_token={t}"))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let res = http.put(url(&format!("/api/channel?oauth_token={t}"))).form(&[("oauth_token", t.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = http.get(url(&format!("/api/user?oauth_token={t}&access_token={t}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_tokens_can_be_switched_off() {
    let config = ServerConfig { api_query_tokens: false, ..Default::default() };
    let f = Fixture::with(TestServer::start_with(Policy::default(), config).await).await;
    let t = s(&f.tokens("").await, "access_token");
    let res = f.server.http().get(f.server.url(&format!("/api/user?oauth_token={t}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api(&f, "GET", "/api/user", &t).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn client_id_header_must_match_the_token() {
    let f = Fixture::new().await;
    let t = s(&f.tokens("").await, "access_token");
    let http = f.server.http();
    let res = http.get(f.server.url("/api/user")).bearer_auth(&t).header("Client-Id", &f.client.id).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http.get(f.server.url("/api/user")).bearer_auth(&t).header("Client-Id", "someoneelse").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn revoked_expired_and_unknown_tokens_get_401() {
    let f = Fixture::new().await;
    let t1 = s(&f.tokens("").await, "access_token");
    let t2 = s(&f.tokens("").await, "access_token");
    f.server.http().post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", &t1)]).send().await.unwrap();
    for token in [t1.as_str(), "nonsense"] {
        let res = api(&f, "GET", "/api/user", token).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    }
    assert_eq!(api(&f, "GET", "/api/user", &t2).await.status(), StatusCode::OK);
    f.server.clock.advance(3600);
    assert_eq!(api(&f, "GET", "/api/user", &t2).await.status(), StatusCode::UNAUTHORIZED);
}

fn small_budgets() -> ServerConfig {
    let b = RateBudget { capacity: 5, window: 60 };
    ServerConfig { rate_limits: RateLimits { api: b, token: b, login: RateBudget { capacity: 3, window: 60 }, ..Default::default() }, ..Default::default() }
}

#[tokio::test]
async fn a_burst_over_the_budget_gets_429_then_recovers() {
    let f = Fixture::with(TestServer::start_with(Policy::default(), small_budgets()).await).await;
    let t = s(&f.tokens("").await, "access_token");
    for left in (0..5).rev() {
        let res = api(&f, "GET", "/api/user", &t).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["ratelimit-limit"], "5");
        assert_eq!(res.headers()["ratelimit-remaining"], left.to_string().as_str());
        assert!(res.headers().contains_key("ratelimit-reset"));
    }
    let res = api(&f, "GET", "/api/user", &t).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "12");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_eq!(res.headers()["ratelimit-reset"], "60");
    f.server.clock.advance(12);
    assert_eq!(api(&f, "GET", "/api/user", &t).await.status(), StatusCode::OK);
    f.server.clock.advance(60);
    let res = api(&f, "GET", "/api/user", &t).await;
    assert_eq!(res.headers()["ratelimit-remaining"], "4");
}

#[tokio::test]
async fn token_endpoint_and_sign_in_are_limited_too() {
    let f = Fixture::with(TestServer::start_with(Policy::default(), small_budgets()).await).await;
    for _ in 0..5 {
        assert_eq!(f.server.token(&f.client, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);
    }
    let (status, body) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")));

    let browser = f.server.browser();
    for _ in 0..3 {
        assert_eq!(browser.sign_in("alice", "wrong-password").await.status(), StatusCode::UNAUTHORIZED);
    }
    let res = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(res.headers().contains_key("retry-after"));
    f.server.clock.advance(20);
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

/// A resource server of its own, checking tokens by introspection against Gatehouse.
async fn resource_server(verifier: IntrospectionVerifier) -> String {
    async fn hello(Token(t): Token) -> String {
        format!("hello {} via {}", t.login.unwrap_or_default(), t.client_id)
    }
    let guard = Arc::new(Guard::new(Arc::new(verifier)));
    let app = axum::Router::new()
        .route("/chat", get(hello).route_layer(from_fn_with_state("chat_login", require_scope)))
        .route("/me", get(hello))
        .layer(from_fn_with_state(guard, authenticate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[tokio::test]
async fn the_guard_in_a_separate_app_checks_tokens_by_introspection() {
    let f = Fixture::new().await;
    let rs = f.server.add_client("Resource Server", &f.user, ClientKind::Confidential, false).await;
    let introspect = f.server.url("/oauth2/introspect");
    let verifier = IntrospectionVerifier::new(&introspect, &rs.id, rs.secret.as_deref().unwrap(), std::time::Duration::ZERO, 100);
    let base = resource_server(verifier).await;
    let http = reqwest::Client::new();

    let chat = s(&f.tokens("chat_login").await, "access_token");
    let plain = s(&f.tokens("").await, "access_token");
    let res = http.get(format!("{base}/chat")).bearer_auth(&chat).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), format!("hello alice via {}", f.client.id));
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth(&plain).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&plain).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(http.get(format!("{base}/me")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // A refresh token is active at introspection but is not an access token.
    let rt = s(&f.tokens("").await, "refresh_token");
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&rt).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // With no cache, a revocation is seen at once.
    f.server.http().post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", &chat)]).send().await.unwrap();
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth(&chat).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_introspection_cache_keeps_answers_for_its_ttl_only() {
    let f = Fixture::new().await;
    let rs = f.server.add_client("Resource Server", &f.user, ClientKind::Confidential, false).await;
    let verifier = IntrospectionVerifier::new(&f.server.url("/oauth2/introspect"), &rs.id, rs.secret.as_deref().unwrap(), std::time::Duration::from_secs(1), 100);
    let base = resource_server(verifier).await;
    let http = reqwest::Client::new();
    let t = s(&f.tokens("").await, "access_token");
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&t).send().await.unwrap().status(), StatusCode::OK);
    f.server.http().post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", &t)]).send().await.unwrap();
    // Cached: still accepted within the TTL …
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&t).send().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // … and refused once it has passed.
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&t).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unreachable_introspection_endpoint_is_503_not_401() {
    let verifier = IntrospectionVerifier::new("http://127.0.0.1:9/oauth2/introspect", "x", "y", std::time::Duration::ZERO, 10);
    let base = resource_server(verifier).await;
    let res = reqwest::Client::new().get(format!("{base}/me")).bearer_auth("sometoken").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}
