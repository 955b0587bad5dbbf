//! PKCE (RFC 7636): S256 for everyone who wants it, required for public clients,
//! `plain` refused, downgrades refused.

use gatehouse_core::model::ClientKind;
use gatehouse_core::pkce::s256;
use reqwest::StatusCode;

use crate::common::*;

pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub(crate) async fn public_fixture() -> (Fixture, TestClient) {
    let f = Fixture::new().await;
    let public = f.server.add_client("Native App", &f.user, ClientKind::Public, false).await;
    (f, public)
}

#[tokio::test]
async fn public_client_with_s256_gets_tokens_without_a_secret() {
    let (f, public) = public_fixture().await;
    let extra = format!("code_challenge={}&code_challenge_method=S256", s256(VERIFIER));
    let url = f.browser.authorize_and_allow(&code_query(&public.id, "user_read", &extra), "alice").await;
    let code = query_param(&url, "code").unwrap();

    let (status, body) = f.server.token(&public, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", "x".repeat(43).as_str())]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    let url = f.browser.authorize_and_allow(&code_query(&public.id, "user_read", &extra), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (status, body) = f.server.token(&public, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn plain_and_missing_method_are_refused() {
    let f = Fixture::new().await;
    for extra in [format!("code_challenge={VERIFIER}&code_challenge_method=plain"), format!("code_challenge={VERIFIER}")] {
        let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{}", code_query(&f.client.id, "", &extra)))).send().await.unwrap();
        assert_eq!(query_param(&location(&res), "error").as_deref(), Some("invalid_request"));
    }
}

#[tokio::test]
async fn verifier_is_required_when_a_challenge_was_sent() {
    let f = Fixture::new().await;
    let extra = format!("code_challenge={}&code_challenge_method=S256", s256(VERIFIER));
    let url = f.browser.authorize_and_allow(&code_query(&f.client.id, "", &extra), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (status, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}
