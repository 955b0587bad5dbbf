//! RFC 6749 §4.1.2.1: errors about the client or redirect URI are shown, never
//! redirected; other errors go back to the client with `error` and `state`.

use gatehouse_core::model::ClientKind;
use reqwest::StatusCode;

use crate::common::*;

async fn get(f: &Fixture, query: &str) -> reqwest::Response {
    f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{query}"))).send().await.unwrap()
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let f = Fixture::new().await;
    let res = get(&f, &code_query("nosuchclient", "user_read", "")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.unwrap().contains("unknown client_id"));
    let res = get(&f, "response_type=code").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page() {
    let f = Fixture::new().await;
    for bad in [
        "https://evil.example/callback",
        "http://localhost:3000/callback/extra",
        "http://localhost:3000/callback?x=1",
        "http://localhost:3000/CALLBACK",
        "not a url",
    ] {
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={}&state=s",
            f.client.id,
            url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
        );
        let res = get(&f, &q).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(res.headers().get("location").is_none(), "{bad}");
    }
}

#[tokio::test]
async fn loopback_redirect_port_may_vary() {
    let f = Fixture::new().await;
    let q = format!(
        "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A54321%2Fnative&state=s",
        f.client.id
    );
    let url = f.browser.authorize_and_allow(&q, "alice").await;
    assert!(url.starts_with("http://127.0.0.1:54321/native?"), "{url}");
    let code = query_param(&url, "code").unwrap();
    let (status, _) = f
        .server
        .token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "http://127.0.0.1:54321/native")])
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn other_errors_redirect_with_error_and_state() {
    let f = Fixture::new().await;
    let cases = [
        (code_query(&f.client.id, "user_read admin_everything", ""), "invalid_scope"),
        (code_query(&f.client.id, "user_read", "").replace("response_type=code", "response_type=magic"), "unsupported_response_type"),
        (code_query(&f.client.id, "user_read", "").replace("response_type=code", "response_type=token"), "unauthorized_client"),
        (code_query(&f.client.id, "user_read", "prompt=sometimes"), "invalid_request"),
    ];
    for (q, expected) in cases {
        let res = get(&f, &q).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{q}");
        let loc = location(&res);
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let param = |n| query_param(&loc, n).or_else(|| fragment_param(&loc, n));
        assert_eq!(param("error").as_deref(), Some(expected), "{loc}");
        assert_eq!(param("state").as_deref(), Some("st4te"), "{loc}");
    }
}

#[tokio::test]
async fn repeated_parameters_are_refused() {
    let f = Fixture::new().await;
    let q = format!("{}&client_id={}", code_query(&f.client.id, "", ""), f.client.id);
    let res = get(&f, &q).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn sole_registered_uri_is_used_when_none_is_given() {
    let server = TestServer::start().await;
    let user = server.add_user("alice").await;
    let new = gatehouse_core::registration::NewClient {
        name: "Single".into(),
        owner_user_id: user.id.clone(),
        category: "other".into(),
        kind: ClientKind::Confidential,
        allow_implicit: false,
        redirect_uris: vec!["https://app.example/cb".into()],
        jwt_access_tokens: false,
    };
    let (c, _) = gatehouse_core::registration::register(&server.auth, new).await.unwrap();
    let url = server
        .browser()
        .authorize_and_allow(&format!("response_type=code&client_id={}&state=x", c.id), "alice")
        .await;
    assert!(url.starts_with("https://app.example/cb?code="), "{url}");
}
