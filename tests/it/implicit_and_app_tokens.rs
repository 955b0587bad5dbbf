//! The implicit grant (token in the fragment) and app access tokens.

use gatehouse_core::model::ClientKind;
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn implicit_grant_puts_the_token_in_the_fragment_only() {
    let server = TestServer::start().await;
    let user = server.add_user("alice").await;
    let client = server.add_client("JS App", &user, ClientKind::Public, true).await;
    let q = code_query(&client.id, "user_read", "").replace("response_type=code", "response_type=token");
    let url = server.browser().authorize_and_allow(&q, "alice").await;
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(parsed.query(), None, "{url}");
    let token = fragment_param(&url, "access_token").expect("token in fragment");
    assert_eq!(fragment_param(&url, "state").as_deref(), Some("st4te"));
    assert_eq!(fragment_param(&url, "token_type").as_deref(), Some("bearer"));
    assert_eq!(fragment_param(&url, "scope").as_deref(), Some("user_read"));
    assert_eq!(fragment_param(&url, "refresh_token"), None);
    assert_eq!(server.validate(&token).await, StatusCode::OK);
}

#[tokio::test]
async fn implicit_grant_is_off_unless_enabled() {
    let f = Fixture::new().await;
    let q = code_query(&f.client.id, "user_read", "").replace("response_type=code", "response_type=token");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    let loc = location(&res);
    assert_eq!(fragment_param(&loc, "error").as_deref(), Some("unauthorized_client"), "{loc}");
    assert!(!loc.contains('?'), "error must be in the fragment: {loc}");
}

#[tokio::test]
async fn client_credentials_gives_an_app_token_without_refresh_or_user() {
    let f = Fixture::new().await;
    let (status, body) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["expires_in"], 3600);
    let res = f.server.http().get(f.server.url("/oauth2/validate")).header("Authorization", format!("OAuth {}", s(&body, "access_token"))).send().await.unwrap();
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["client_id"], f.client.id.as_str());
    assert!(v.get("login").is_none());
    assert!(v.get("user_id").is_none());
}

#[tokio::test]
async fn client_credentials_is_refused_to_public_clients() {
    let f = Fixture::new().await;
    let public = f.server.add_client("Native", &f.user, ClientKind::Public, false).await;
    let (status, body) = f.server.token(&public, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
}

#[tokio::test]
async fn unknown_scope_on_client_credentials_is_invalid_scope() {
    let f = Fixture::new().await;
    let (status, body) = f.server.token(&f.client, &[("grant_type", "client_credentials"), ("scope", "root")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
}
