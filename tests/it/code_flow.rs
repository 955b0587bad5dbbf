//! The authorization code flow end to end, driven by the `oauth2` crate as the client.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl, RefreshToken,
    Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn oauth2_crate_completes_code_flow_with_pkce_and_refresh() {
    let f = Fixture::new().await;
    let srv = &f.server;
    let client = BasicClient::new(ClientId::new(f.client.id.clone()))
        .set_client_secret(ClientSecret::new(f.client.secret.clone().unwrap()))
        .set_auth_uri(AuthUrl::new(srv.url("/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(srv.url("/oauth2/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_string()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("user_read".into()))
        .add_scope(Scope::new("channel_read".into()))
        .set_pkce_challenge(challenge)
        .url();

    let back = f.browser.authorize_and_allow(auth_url.query().unwrap(), "alice").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some(csrf.secret().as_str()));
    let code = query_param(&back, "code").expect("code");

    let http = srv.http();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    assert_eq!(tokens.expires_in().unwrap().as_secs(), 3600);
    let scopes: Vec<String> = tokens.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, vec!["channel_read", "user_read"]);
    let access = tokens.access_token().secret().clone();
    let refresh = tokens.refresh_token().expect("refresh token").clone();

    // The token validates, in Twitch's shape.
    let res = http.get(srv.url("/oauth2/validate")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["client_id"], f.client.id.as_str());
    assert_eq!(v["login"], "alice");
    assert_eq!(v["user_id"], f.user.id.as_str());
    assert_eq!(v["scopes"], serde_json::json!(["channel_read", "user_read"]));
    assert!(v["expires_in"].as_i64().unwrap() > 3500);

    // Refresh through the same client library.
    let refreshed = client.exchange_refresh_token(&RefreshToken::new(refresh.secret().clone())).request_async(&http).await.expect("refresh");
    assert_ne!(refreshed.access_token().secret(), &access);
    assert_ne!(refreshed.refresh_token().unwrap().secret(), refresh.secret());
    assert_eq!(srv.validate(refreshed.access_token().secret()).await, StatusCode::OK);
}

#[tokio::test]
async fn token_response_has_the_contract_fields() {
    let f = Fixture::new().await;
    let body = f.tokens("user_read").await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "user_read");
    assert_eq!(s(&body, "access_token").len(), gatehouse_core::secret::TOKEN_LEN);
    assert_eq!(s(&body, "refresh_token").len(), gatehouse_core::secret::TOKEN_LEN);
}

#[tokio::test]
async fn seed_style_client_sends_state_and_redirect_uri_on_refresh() {
    let f = Fixture::new().await;
    let body = f.tokens("user_read").await;
    let rt = s(&body, "refresh_token");
    let (status, body) = f
        .server
        .token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("redirect_uri", REDIRECT), ("state", "whatever")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn deny_sends_access_denied_with_state() {
    let f = Fixture::new().await;
    let q = code_query(&f.client.id, "user_read", "");
    let Outcome::Consent(fields) = f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await else {
        panic!("expected consent")
    };
    let res = f.browser.decide(&fields, "deny").await;
    let loc = location(&res);
    assert!(loc.starts_with(REDIRECT));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st4te"));
    assert_eq!(query_param(&loc, "code"), None);
}

#[tokio::test]
async fn consent_page_names_the_app_and_each_scope_in_plain_words() {
    let f = Fixture::new().await;
    f.browser.sign_in("alice", PASSWORD).await;
    let q = code_query(&f.client.id, "user_read channel_commercial", "");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.unwrap();
    assert!(html.contains("My Bot"));
    assert!(html.contains("Run commercials on your channel"));
    assert!(html.contains("Read your non-public account information"));
    assert!(html.contains("alice"));
}

#[tokio::test]
async fn redirect_uri_sent_at_authorize_must_be_repeated() {
    let f = Fixture::new().await;
    let code = f.code("user_read").await;
    let (status, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, _) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn codes_expire_after_sixty_seconds() {
    let f = Fixture::new().await;
    let code = f.code("").await;
    f.server.clock.advance(61);
    let (status, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn code_is_bound_to_its_client_and_redirect_uri() {
    let f = Fixture::new().await;
    let other = f.server.add_client("Other", &f.user, gatehouse_core::model::ClientKind::Confidential, false).await;
    let code = f.code("").await;
    let (status, body) = f.server.token(&other, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, body) = f
        .server
        .token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1/native")])
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // The right client with the right URI still can (the failures did not burn it).
    let (status, _) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_yield_exactly_one_success() {
    concurrent_redemptions(Fixture::new().await).await;
}

pub async fn concurrent_redemptions(f: Fixture) {
    let code = f.code("user_read").await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let http = f.server.http();
        let url = f.server.url("/oauth2/token");
        let form = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.clone()),
            ("redirect_uri".to_string(), REDIRECT.to_string()),
            ("client_id".to_string(), f.client.id.clone()),
            ("client_secret".to_string(), f.client.secret.clone().unwrap()),
        ];
        tasks.push(tokio::spawn(async move { http.post(url).form(&form).send().await.unwrap().status() }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status.as_u16() < 500, "server error {status}");
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(ok, 1);
}
