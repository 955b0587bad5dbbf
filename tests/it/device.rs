//! The device authorization grant (RFC 8628) end to end: the device asks, the user types
//! the code at /activate and answers, the device polls.

use gatehouse_core::model::ClientKind;
use reqwest::StatusCode;

use crate::common::*;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn start(f: &Fixture, client: &TestClient, scope: &str) -> serde_json::Value {
    let mut form = vec![("client_id", client.id.as_str()), ("scope", scope)];
    if let Some(s) = &client.secret {
        form.push(("client_secret", s));
    }
    let res = f.server.http().post(f.server.url("/oauth2/device")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn poll(f: &Fixture, client: &TestClient, device_code: &str) -> (StatusCode, serde_json::Value) {
    f.server.token(client, &[("grant_type", GRANT), ("device_code", device_code)]).await
}

/// Signs in through the verification URI, types the code, and answers.
async fn answer(f: &Fixture, started: &serde_json::Value, decision: &str) -> String {
    let complete = s(started, "verification_uri_complete");
    let Outcome::Page(status, page) = f.browser.authorize(&complete, "alice").await else { panic!("expected the activate page") };
    assert_eq!(status, StatusCode::OK);
    let fields = form_fields(&page, "/activate");
    let csrf = fields.iter().find(|(k, _)| k == "csrf").unwrap().1.clone();
    // The code is filled in from the link.
    assert!(page.contains(&format!("value=\"{}\"", s(started, "user_code"))));
    // Typed the way people type: lower case, no dash.
    let typed = s(started, "user_code").replace('-', " ").to_lowercase();
    let res = f.browser.http.post(f.server.url("/activate")).form(&[("csrf", csrf.as_str()), ("user_code", &typed)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let consent = res.text().await.unwrap();
    assert!(consent.contains("My Bot") && consent.contains("Log into chat"), "{consent}");
    let mut form = form_fields(&consent, "/activate");
    form.push(("decision".into(), decision.into()));
    let res = f.browser.http.post(f.server.url("/activate")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

#[tokio::test]
async fn device_flow_end_to_end_with_pending_and_slow_down() {
    let f = Fixture::new().await;
    let started = start(&f, &f.client, "chat_login").await;
    let code = s(&started, "user_code");
    assert!(regex_like_user_code(&code), "{code}");
    assert_eq!(s(&started, "verification_uri"), f.server.url("/activate"));
    assert_eq!(started["expires_in"], 600);
    assert_eq!(started["interval"], 5);
    let device_code = s(&started, "device_code");

    let (status, body) = poll(&f, &f.client, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("authorization_pending")));
    // Again at once: too fast.
    let (_, body) = poll(&f, &f.client, &device_code).await;
    assert_eq!(body["error"], "slow_down");
    // The interval is now 10 seconds: 6 is still too soon, 10 is fine.
    f.server.clock.advance(6);
    assert_eq!(poll(&f, &f.client, &device_code).await.1["error"], "slow_down");
    f.server.clock.advance(15);
    assert_eq!(poll(&f, &f.client, &device_code).await.1["error"], "authorization_pending");

    let done = answer(&f, &started, "allow").await;
    assert!(done.contains("Device connected"), "{done}");
    f.server.clock.advance(15);
    let (status, tokens) = poll(&f, &f.client, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "chat_login");
    assert!(tokens["refresh_token"].is_string());
    assert_eq!(f.server.validate(&s(&tokens, "access_token")).await, StatusCode::OK);
    f.server.clock.advance(15);
    let (status, body) = poll(&f, &f.client, &device_code).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

fn regex_like_user_code(c: &str) -> bool {
    c.len() == 9 && c.as_bytes()[4] == b'-' && c.chars().filter(|x| *x != '-').all(|x| "BCDFGHJKLMNPQRSTVWXZ".contains(x))
}

#[tokio::test]
async fn denial_is_access_denied_for_the_device() {
    let f = Fixture::new().await;
    let public = f.server.add_client("TV App", &f.user, ClientKind::Public, false).await;
    let started = start(&f, &public, "user_read").await;
    answer_for(&f, &started, "deny").await;
    let (status, body) = poll(&f, &public, &s(&started, "device_code")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("access_denied")));
}

/// As `answer`, for an app that is not "My Bot".
async fn answer_for(f: &Fixture, started: &serde_json::Value, decision: &str) {
    let complete = s(started, "verification_uri_complete");
    let Outcome::Page(_, page) = f.browser.authorize(&complete, "alice").await else { panic!() };
    let csrf = form_fields(&page, "/activate").into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let res = f.browser.http.post(f.server.url("/activate")).form(&[("csrf", csrf.as_str()), ("user_code", &s(started, "user_code"))]).send().await.unwrap();
    let mut form = form_fields(&res.text().await.unwrap(), "/activate");
    form.push(("decision".into(), decision.into()));
    let res = f.browser.http.post(f.server.url("/activate")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn device_codes_expire() {
    let f = Fixture::new().await;
    let started = start(&f, &f.client, "").await;
    f.server.clock.advance(601);
    let (status, body) = poll(&f, &f.client, &s(&started, "device_code")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("expired_token")));
    // Nor can the user approve it any more.
    let page = f.browser.authorize(&s(&started, "verification_uri_complete"), "alice").await;
    let Outcome::Page(_, page) = page else { panic!() };
    let csrf = form_fields(&page, "/activate").into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let res = f.browser.http.post(f.server.url("/activate")).form(&[("csrf", csrf.as_str()), ("user_code", &s(&started, "user_code"))]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("not valid or has expired"));
}

#[tokio::test]
async fn device_code_is_bound_to_its_client() {
    let f = Fixture::new().await;
    let other = f.server.add_client("Other", &f.user, ClientKind::Confidential, false).await;
    let started = start(&f, &f.client, "").await;
    let (status, body) = poll(&f, &other, &s(&started, "device_code")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (_, body) = poll(&f, &f.client, "not-a-device-code").await;
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn guessing_user_codes_is_rate_limited() {
    let f = Fixture::new().await;
    f.browser.sign_in("alice", PASSWORD).await;
    let page = f.browser.http.get(f.server.url("/activate")).send().await.unwrap().text().await.unwrap();
    let csrf = form_fields(&page, "/activate").into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let mut statuses = Vec::new();
    for _ in 0..21 {
        let res = f.browser.http.post(f.server.url("/activate")).form(&[("csrf", csrf.as_str()), ("user_code", "BCDF-GHJK")]).send().await.unwrap();
        statuses.push(res.status());
    }
    assert!(statuses[..20].iter().all(|s| *s == StatusCode::BAD_REQUEST), "{statuses:?}");
    assert_eq!(statuses[20], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn activate_needs_a_signed_in_user_and_its_csrf_token() {
    let f = Fixture::new().await;
    let res = f.browser.http.get(f.server.url("/activate?user_code=BCDF-GHJK")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/login?next=%2Factivate"));
    f.browser.sign_in("alice", PASSWORD).await;
    let res = f.browser.http.post(f.server.url("/activate")).form(&[("user_code", "BCDF-GHJK")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
