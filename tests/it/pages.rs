//! The pages over plain HTTP (the browser suite in `browser.rs` drives them in Chromium):
//! sign-up, the console's register / edit / new secret / delete, connections, password.

use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;

async fn get(b: &Browser, path: &str) -> (StatusCode, String) {
    let res = b.http.get(b.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Posts a form from the page at `page` (its CSRF token), to `action`.
async fn post(b: &Browser, page: &str, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (_, html) = get(b, page).await;
    let csrf = hidden_inputs(&html).into_iter().find(|(k, _)| k == "csrf").expect("csrf").1;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf", &csrf));
    b.http.post(b.url(action)).form(&form).send().await.unwrap()
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html.find(start).unwrap_or_else(|| panic!("{start} not in {html}")) + start.len();
    let j = html[i..].find(end).unwrap() + i;
    &html[i..j]
}

#[tokio::test]
async fn sign_up_register_manage_rotate_edit_and_delete() {
    let server = TestServer::start().await;
    let b = server.browser();
    let res = post(&b, "/signup", "/signup", &[("login", "dana"), ("email", "dana@example.com"), ("password", "long-enough-pw")]).await;
    assert_eq!((res.status(), location(&res).as_str()), (StatusCode::SEE_OTHER, "/console"));
    let (_, html) = get(&b, "/console").await;
    assert!(html.contains("You have not registered an application yet"));

    let app = [("name", "Stream Deck Plugin"), ("redirect_uris", "https://deck.example/cb\r\nhttp://localhost:3000/cb"), ("category", "broadcaster_suite"), ("client_type", "confidential")];
    // POST-redirect-GET: the secret is shown by the page the POST redirects to, once.
    let res = post(&b, "/console/apps/new", "/console/apps/new", &app).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let shown_at = location(&res);
    // A link from another site cannot spend the one look.
    let res = b.http.get(b.url(&shown_at)).header("Sec-Fetch-Site", "cross-site").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.text().await.unwrap().contains("client-secret"));
    let (status, html) = get(&b, &shown_at).await;
    assert_eq!(status, StatusCode::OK);
    let id = between(&html, "<code id=\"client-id\">", "</code>").to_string();
    assert_eq!(shown_at, format!("/console/apps/{id}/secret"));
    let secret = between(&html, "<code class=\"secret\" id=\"client-secret\">", "</code>").to_string();
    assert_eq!(secret.len(), 50);
    let (status, again) = get(&b, &shown_at).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!again.contains(&secret) && again.contains("shown once"), "a reload shows it no more: {again}");
    // Never in the database in the clear (the note's pages are still in the file or its WAL).
    for file in [server.db_path.clone(), server.db_path.with_extension("db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds the secret", file.display());
    }
    let client = TestClient { id: id.clone(), secret: Some(secret.clone()) };
    assert_eq!(server.token(&client, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);

    // The secret is never shown again; names are unique ignoring case.
    let (_, manage) = get(&b, &format!("/console/apps/{id}")).await;
    assert!(manage.contains(&id) && !manage.contains(&secret));
    assert!(manage.contains("Broadcaster Suite") && manage.contains("deck.example"));
    let res = post(&b, "/console/apps/new", "/console/apps/new", &[("name", "STREAM deck plugin"), ("redirect_uris", "https://x.example/cb"), ("category", "other")]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // New Secret with no grace asks first; confirmed, the old one stops at once.
    let res = post(&b, &format!("/console/apps/{id}"), &format!("/console/apps/{id}/secret"), &[("grace", "0")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("stops working at once"));
    assert_eq!(server.token(&client, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK, "not rotated yet");
    let res = post(&b, &format!("/console/apps/{id}"), &format!("/console/apps/{id}/secret"), &[("grace", "0"), ("confirm", "yes")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, html) = get(&b, &location(&res)).await;
    let new_secret = between(&html, "<code class=\"secret\" id=\"client-secret\">", "</code>").to_string();
    assert!(html.contains("no longer works"));
    assert_eq!(server.token(&client, &[("grant_type", "client_credentials")]).await.0, StatusCode::UNAUTHORIZED);
    let rotated = TestClient { id: id.clone(), secret: Some(new_secret) };
    assert_eq!(server.token(&rotated, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);

    // Edit: remove a redirect URL, add another.
    let res = post(&b, &format!("/console/apps/{id}/edit"), &format!("/console/apps/{id}"), &[("name", "Deck Plugin"), ("redirect_uris", "https://deck.example/new"), ("category", "other")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let stored = server.auth.store.find_client(&id).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.redirect_uris.clone()), ("Deck Plugin", vec!["https://deck.example/new".to_string()]));

    // Someone else cannot see or touch it.
    let other = server.browser();
    post(&other, "/signup", "/signup", &[("login", "eve"), ("email", "eve@example.com"), ("password", "long-enough-pw")]).await;
    assert_eq!(get(&other, &format!("/console/apps/{id}")).await.0, StatusCode::NOT_FOUND);
    let res = post(&other, "/console/apps/new", &format!("/console/apps/{id}/delete"), &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Delete revokes what was issued.
    let (_, t) = server.token(&rotated, &[("grant_type", "client_credentials")]).await;
    let res = post(&b, &format!("/console/apps/{id}"), &format!("/console/apps/{id}/delete"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Delete Deck Plugin?"), "asks first");
    assert_eq!(server.validate(&s(&t, "access_token")).await, StatusCode::OK, "nothing deleted yet");
    let res = post(&b, &format!("/console/apps/{id}"), &format!("/console/apps/{id}/delete"), &[("confirm", "yes")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Deleted Deck Plugin: its tokens were revoked."));
    assert_eq!(server.validate(&s(&t, "access_token")).await, StatusCode::UNAUTHORIZED);
    assert!(server.auth.store.find_client(&id).await.unwrap().is_none());

    // Each change is in the event log, by its owner, without the secrets.
    let filter = gatehouse_core::events::EventFilter { client_id: Some(id.clone()), limit: 10, ..Default::default() };
    let events = server.auth.store.list_events(&filter).await.unwrap();
    let kinds: Vec<_> = events.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["client.created", "client.secret_rotated", "client.edited", "client.deleted"]);
    assert!(events.iter().all(|e| e.actor_login.as_deref() == Some("dana")));
    assert!(!serde_json::to_string(&events).unwrap().contains(&secret[..20]));
}

#[tokio::test]
async fn connections_list_and_disconnect() {
    let f = Fixture::new().await;
    let t = f.tokens("user_read chat_login").await;
    // A code issued but not yet exchanged when the user disconnects.
    let pending_code = f.code("user_read").await;
    let (status, html) = get(&f.browser, "/settings/connections").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("My Bot") && html.contains("Log into chat and send messages as you"), "{html}");
    let disconnect = format!("/settings/connections/{}/disconnect", f.client.id);
    let res = post(&f.browser, "/settings/connections", &disconnect, &[]).await;
    assert!(res.text().await.unwrap().contains("Disconnect My Bot?"), "asks first");
    assert_eq!(f.server.validate(&s(&t, "access_token")).await, StatusCode::OK, "not yet");
    let res = post(&f.browser, "/settings/connections", &disconnect, &[("confirm", "yes")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<h2>My Bot</h2>") && html.contains("Disconnected My Bot: its tokens were revoked."), "{html}");
    assert_eq!(f.server.validate(&s(&t, "access_token")).await, StatusCode::UNAUTHORIZED);
    let filter = gatehouse_core::events::EventFilter { client_id: Some(f.client.id.clone()), limit: 1, ..Default::default() };
    let last = f.server.auth.store.list_events(&filter).await.unwrap().remove(0);
    assert_eq!((last.kind.as_str(), last.actor_login.as_deref()), ("consent.revoked", Some("alice")));
    let (status, _) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &s(&t, "refresh_token"))]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let form = [("grant_type", "authorization_code"), ("code", pending_code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, body) = f.server.token(&f.client, &form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "the pending code died with the connection");
    // The consent is forgotten: the next authorization asks again.
    let q = code_query(&f.client.id, "user_read", "");
    assert!(matches!(f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await, Outcome::Consent(_)));
}

#[tokio::test]
async fn a_password_change_revokes_refresh_tokens_and_other_sessions() {
    let f = Fixture::new().await;
    let t = f.tokens("user_read").await;
    let elsewhere = f.server.browser();
    elsewhere.sign_in("alice", PASSWORD).await;
    let res = post(&f.browser, "/settings/password", "/settings/password", &[("current_password", "wrong-password"), ("new_password", "another-long-pw")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = post(&f.browser, "/settings/password", "/settings/password", &[("current_password", PASSWORD), ("new_password", "another-long-pw")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &s(&t, "refresh_token"))]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "refresh tokens stop working");
    assert_eq!(f.server.validate(&s(&t, "access_token")).await, StatusCode::UNAUTHORIZED, "access tokens too");
    assert_eq!(get(&f.browser, "/console").await.0, StatusCode::OK, "this session stays");
    assert_eq!(get(&elsewhere, "/console").await.0, StatusCode::SEE_OTHER, "other sessions end");
    assert_eq!(f.server.browser().sign_in("alice", "another-long-pw").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sign_up_can_be_switched_off_and_pages_need_sign_in() {
    let config = ServerConfig { signup_enabled: false, ..Default::default() };
    let server = TestServer::start_with(Default::default(), config).await;
    let b = server.browser();
    assert_eq!(get(&b, "/signup").await.0, StatusCode::NOT_FOUND);
    for page in ["/console", "/console/apps/new", "/settings/connections", "/settings/password"] {
        let res = b.http.get(b.url(page)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{page}");
        assert!(location(&res).starts_with("/login?next="), "{page}");
    }
    // Forms refuse posts without their CSRF token.
    let res = b.http.post(b.url("/console/apps/new")).form(&[("name", "x")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
