//! Client authentication at the token endpoint, and secret rotation.

use gatehouse_core::registration::rotate_secret;
use reqwest::StatusCode;

use crate::common::*;

async fn cc_basic(f: &Fixture, id: &str, secret: &str) -> reqwest::Response {
    f.server
        .http()
        .post(f.server.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn basic_and_post_authentication_both_work() {
    let f = Fixture::new().await;
    let res = cc_basic(&f, &f.client.id, f.client.secret.as_deref().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_or_missing_secret_is_401_invalid_client_with_www_authenticate() {
    let f = Fixture::new().await;
    let res = cc_basic(&f, &f.client.id, "wrong").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("www-authenticate").unwrap().to_str().unwrap().starts_with("Basic"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["status"], 401);
    assert!(body["message"].is_string());
    assert!(!body.to_string().contains(f.client.secret.as_deref().unwrap()));

    let res = f.server.http().post(f.server.url("/oauth2/token")).form(&[("grant_type", "client_credentials"), ("client_id", &f.client.id)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = f.server.http().post(f.server.url("/oauth2/token")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = cc_basic(&f, "nosuchclient", "x").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn two_authentication_methods_at_once_are_refused() {
    let f = Fixture::new().await;
    let secret = f.client.secret.clone().unwrap();
    let res = f
        .server
        .http()
        .post(f.server.url("/oauth2/token"))
        .basic_auth(&f.client.id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("client_secret", secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn a_new_secret_invalidates_the_old_one_at_once() {
    let f = Fixture::new().await;
    let old = f.client.secret.clone().unwrap();
    let new = rotate_secret(&f.server.auth, &f.client.id, None).await.unwrap();
    assert_eq!(cc_basic(&f, &f.client.id, &old).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cc_basic(&f, &f.client.id, &new).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_grace_period_keeps_the_old_secret_for_a_while() {
    let f = Fixture::new().await;
    let old = f.client.secret.clone().unwrap();
    let new = rotate_secret(&f.server.auth, &f.client.id, Some(300)).await.unwrap();
    assert_eq!(cc_basic(&f, &f.client.id, &old).await.status(), StatusCode::OK);
    assert_eq!(cc_basic(&f, &f.client.id, &new).await.status(), StatusCode::OK);
    f.server.clock.advance(301);
    assert_eq!(cc_basic(&f, &f.client.id, &old).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cc_basic(&f, &f.client.id, &new).await.status(), StatusCode::OK);
    // A second rotation without grace drops the old one at once.
    let newer = rotate_secret(&f.server.auth, &f.client.id, None).await.unwrap();
    assert_eq!(cc_basic(&f, &f.client.id, &new).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cc_basic(&f, &f.client.id, &newer).await.status(), StatusCode::OK);
}
