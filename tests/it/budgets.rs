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
