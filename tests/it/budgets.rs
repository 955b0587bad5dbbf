//! Budgets that hold against callers who are not who they say (issue 24): public
//! clients' token and device budgets, `X-Forwarded-For`, every password check.

use gatehouse_core::model::{ClientKind, RateBudget};
use gatehouse_core::policy::Policy;
use gatehouse_server::{RateLimits, ServerConfig};
use reqwest::StatusCode;

use crate::common::*;

fn budgets(token: i64, per_address: i64) -> ServerConfig {
    let rate_limits = RateLimits {
        token: RateBudget { capacity: token, window: 60 },
        token_per_address: RateBudget { capacity: per_address, window: 60 },
        trust_forwarded_for: true,
        ..Default::default()
    };
    ServerConfig { rate_limits, ..Default::default() }
}

async fn post_from(f: &Fixture, path: &str, address: &str, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let res = f.server.http().post(f.server.url(path)).header("x-forwarded-for", address).form(form).send().await.unwrap();
    (res.status(), res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn grants_a_public_client_cannot_use_do_not_spend_its_token_budget() {
    let f = Fixture::with(TestServer::start_with(Policy::default(), budgets(5, 100)).await).await;
    let public = f.server.add_client("Native", &f.user, ClientKind::Public, false).await;
    let form = [("grant_type", "client_credentials"), ("client_id", public.id.as_str())];
    for _ in 0..20 {
        let (status, body) = post_from(&f, "/oauth2/token", "198.51.100.7", &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    }
    // The client's real users still have its whole budget.
    let form = [("grant_type", "refresh_token"), ("refresh_token", "nope"), ("client_id", public.id.as_str())];
    let (status, body) = post_from(&f, "/oauth2/token", "203.0.113.9", &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn one_address_cannot_spend_a_public_clients_whole_token_budget() {
    let f = Fixture::with(TestServer::start_with(Policy::default(), budgets(5, 2)).await).await;
    let public = f.server.add_client("Native", &f.user, ClientKind::Public, false).await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "nope"), ("client_id", public.id.as_str())];
    for _ in 0..2 {
        assert_eq!(post_from(&f, "/oauth2/token", "198.51.100.7", &form).await.0, StatusCode::BAD_REQUEST);
    }
    for _ in 0..10 {
        let (status, body) = post_from(&f, "/oauth2/token", "198.51.100.7", &form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")));
    }
    // Others still get through, until the client's own budget (5) is spent.
    for address in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(post_from(&f, "/oauth2/token", address, &form).await.0, StatusCode::BAD_REQUEST, "{address}");
    }
    assert_eq!(post_from(&f, "/oauth2/token", "203.0.113.4", &form).await.0, StatusCode::TOO_MANY_REQUESTS);
}

/// Posts the sign-in form from a fresh browser, as if relayed by a proxy that set `forwarded`.
async fn sign_in_via_proxy(f: &Fixture, forwarded: &str, password: &str) -> StatusCode {
    let browser = f.server.browser();
    let page = browser.http.get(f.server.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_inputs(&page).into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let form = [("login", "alice"), ("password", password), ("csrf", csrf.as_str()), ("next", "/")];
    let res = browser.http.post(f.server.url("/login")).header("x-forwarded-for", forwarded).form(&form).send().await.unwrap();
    res.status()
}

#[tokio::test]
async fn the_address_is_the_one_the_trusted_proxy_appended() {
    let mut config = budgets(100, 100);
    config.rate_limits.login = RateBudget { capacity: 3, window: 60 };
    let f = Fixture::with(TestServer::start_with(Policy::default(), config).await).await;
    // What the caller sends is on the left; the proxy appends the address it saw.
    for i in 0..3 {
        let status = sign_in_via_proxy(&f, &format!("10.9.8.{i}, 198.51.100.7"), "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_eq!(sign_in_via_proxy(&f, "10.9.8.200, 198.51.100.7", "wrong").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sign_in_via_proxy(&f, "198.51.100.7", "wrong").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sign_in_via_proxy(&f, "198.51.100.8", PASSWORD).await, StatusCode::SEE_OTHER);

    // Behind two proxies, the second from the right is the caller's.
    let mut config = budgets(100, 100);
    config.rate_limits.login = RateBudget { capacity: 3, window: 60 };
    config.rate_limits.trusted_proxies = 2;
    let f = Fixture::with(TestServer::start_with(Policy::default(), config).await).await;
    for i in 0..3 {
        let status = sign_in_via_proxy(&f, &format!("10.9.8.{i}, 198.51.100.7, 10.0.0.{i}"), "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_eq!(sign_in_via_proxy(&f, "10.9.8.9, 198.51.100.7, 10.0.0.9", "wrong").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sign_in_via_proxy(&f, "198.51.100.7, 10.0.0.1", "wrong").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sign_in_via_proxy(&f, "198.51.100.8, 10.0.0.1", PASSWORD).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn device_authorizations_are_budgeted_like_token_requests() {
    let f = Fixture::with(TestServer::start_with(Policy::default(), budgets(4, 2)).await).await;
    let public = f.server.add_client("TV", &f.user, ClientKind::Public, false).await;
    let form = [("client_id", public.id.as_str()), ("scope", "user_read")];
    for _ in 0..2 {
        assert_eq!(post_from(&f, "/oauth2/device", "198.51.100.7", &form).await.0, StatusCode::OK);
    }
    let (status, body) = post_from(&f, "/oauth2/device", "198.51.100.7", &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")));
    for address in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(post_from(&f, "/oauth2/device", address, &form).await.0, StatusCode::OK, "{address}");
    }
    assert_eq!(post_from(&f, "/oauth2/device", "203.0.113.3", &form).await.0, StatusCode::TOO_MANY_REQUESTS);
}

/// Posts the change-password form from `browser`, as if from `address`.
async fn change_password(f: &Fixture, browser: &Browser, address: &str, current: &str) -> reqwest::Response {
    let page = browser.http.get(f.server.url("/settings/password")).send().await.unwrap().text().await.unwrap();
    let csrf = form_fields(&page, "/settings/password").into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let form = [("csrf", csrf.as_str()), ("current_password", current), ("new_password", "a-new-long-passphrase")];
    browser.http.post(f.server.url("/settings/password")).header("x-forwarded-for", address).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn the_current_password_is_checked_within_the_sign_in_budget() {
    // Per address: the sign-in took one of five attempts.
    let mut config = budgets(100, 100);
    config.rate_limits.login = RateBudget { capacity: 5, window: 60 };
    let f = Fixture::with(TestServer::start_with(Policy::default(), config).await).await;
    assert_eq!(sign_in_via_proxy(&f, "198.51.100.7", PASSWORD).await, StatusCode::SEE_OTHER);
    let browser = f.server.browser();
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    for i in 0..4 {
        assert_eq!(change_password(&f, &browser, "198.51.100.7", &format!("guess-{i}")).await.status(), StatusCode::UNAUTHORIZED);
    }
    let res = change_password(&f, &browser, "198.51.100.7", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(res.headers().contains_key("retry-after"));
    f.server.clock.advance(60);
    assert_eq!(change_password(&f, &browser, "198.51.100.7", PASSWORD).await.status(), StatusCode::OK);

    // Per account (here the signed-in browser's own budget), whatever the address.
    let mut config = budgets(100, 100);
    config.rate_limits.login_account = RateBudget { capacity: 3, window: 900 };
    let f = Fixture::with(TestServer::start_with(Policy::default(), config).await).await;
    let browser = f.server.browser();
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    for i in 0..3 {
        let res = change_password(&f, &browser, &format!("203.0.113.{i}"), "wrong").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(change_password(&f, &browser, "203.0.113.99", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
}
