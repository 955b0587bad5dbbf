//! Remembered consent, force_verify, prompt and incremental authorization.

use gatehouse_core::model::ClientKind;
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn consent_is_remembered_and_skipped_for_granted_scopes() {
    let f = Fixture::new().await;
    f.code("user_read channel_read").await;
    // Same or fewer scopes: straight back to the client, no consent page.
    let q = code_query(&f.client.id, "user_read", "");
    match f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await {
        Outcome::Redirected(url) => assert!(query_param(&url, "code").is_some()),
        other => panic!("expected a redirect, got {other:?}"),
    }
    // force_verify=true always asks.
    let q = code_query(&f.client.id, "user_read", "force_verify=true");
    assert!(matches!(f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await, Outcome::Consent(_)));
    // A new scope asks again.
    let q = code_query(&f.client.id, "user_read chat_login", "");
    assert!(matches!(f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await, Outcome::Consent(_)));
}

#[tokio::test]
async fn consent_page_marks_new_and_already_granted_scopes() {
    let f = Fixture::new().await;
    f.code("user_read").await;
    let q = code_query(&f.client.id, "user_read chat_login", "");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    let html = res.text().await.unwrap();
    let new_at = html.find("new</span> Log into chat").expect("chat_login marked new");
    let old_at = html.find("granted before</span> Read your non-public").expect("user_read marked granted");
    assert!(new_at < old_at);
}

#[tokio::test]
async fn include_granted_scopes_merges_earlier_grants() {
    let f = Fixture::new().await;
    f.code("user_read").await;
    let url = f
        .browser
        .authorize_and_allow(&code_query(&f.client.id, "chat_login", "include_granted_scopes=true"), "alice")
        .await;
    let code = query_param(&url, "code").unwrap();
    let (status, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scope"], "chat_login user_read");

    // Without the flag only what was asked for is in the token.
    let url = f.browser.authorize_and_allow(&code_query(&f.client.id, "chat_login", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (_, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(body["scope"], "chat_login");
}

#[tokio::test]
async fn prompt_none_reports_login_and_consent_required() {
    let f = Fixture::new().await;
    let q = code_query(&f.client.id, "user_read", "prompt=none");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    let loc = location(&res);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st4te"));

    f.browser.sign_in("alice", PASSWORD).await;
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    assert_eq!(query_param(&location(&res), "error").as_deref(), Some("consent_required"));
}

#[tokio::test]
async fn no_scope_gives_a_basic_token() {
    let f = Fixture::new().await;
    let body = f.tokens("").await;
    assert!(body.get("scope").is_none());
    let res = f.server.http().get(f.server.url("/oauth2/validate")).bearer_auth(s(&body, "access_token")).send().await.unwrap();
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["scopes"], serde_json::json!([]));
    assert_eq!(v["login"], "alice");
}

#[tokio::test]
async fn wrong_password_is_refused_without_saying_which_part() {
    let f = Fixture::new().await;
    let res = f.browser.sign_in("alice", "not-the-password").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = res.text().await.unwrap();
    assert!(body.contains("Incorrect username or password"));
    let res = f.browser.sign_in("nobody", "not-the-password").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains("Incorrect username or password"));
}

/// RFC 8252 §8.6 (issue 24, finding 7): with consent on record, a request for a public
/// client at a loopback redirect (any program on the machine can listen there and pose
/// as the app) is asked again; one at the client's own https redirect is not.
#[tokio::test]
async fn a_public_clients_consent_is_asked_again_unless_its_redirect_proves_it() {
    use gatehouse_core::registration::{self, NewClient};
    let f = Fixture::new().await;
    let native = f.server.add_client("Native", &f.user, ClientKind::Public, false).await;
    let challenge = "code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let q = code_query(&native.id, "user_read", challenge);
    f.browser.authorize_and_allow(&q, "alice").await;
    assert!(matches!(f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await, Outcome::Consent(_)), "asked again");
    let silent = code_query(&native.id, "user_read", &format!("{challenge}&prompt=none"));
    match f.browser.authorize(&format!("/oauth2/authorize?{silent}"), "alice").await {
        Outcome::Redirected(url) => assert_eq!(query_param(&url, "error").as_deref(), Some("consent_required")),
        other => panic!("{other:?}"),
    }

    let new = NewClient {
        name: "Web SPA".into(),
        owner_user_id: f.user.id.clone(),
        category: "chat_bot".into(),
        kind: ClientKind::Public,
        allow_implicit: false,
        redirect_uris: vec!["https://spa.example/cb".into()],
        jwt_access_tokens: false,
    };
    let (spa, _) = registration::register(&f.server.auth, new).await.unwrap();
    let q = code_query(&spa.id, "user_read", challenge).replace(&urlencode(REDIRECT), &urlencode("https://spa.example/cb"));
    f.browser.authorize_and_allow(&q, "alice").await;
    assert!(matches!(f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await, Outcome::Redirected(_)), "remembered");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
