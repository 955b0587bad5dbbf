//! Deleting one's own account from /settings/security, and the operators' /admin pages:
//! the role is required, every action needs a fresh confirmation, and each action takes
//! effect at once on sessions and tokens.

use gatehouse_core::model::ClientKind;
use gatehouse_core::totp;
use reqwest::StatusCode;

use crate::common::*;
use crate::two_factor::{enable, post_form};

async fn is_signed_in(b: &Browser) -> bool {
    b.http.get(b.url("/settings/security")).send().await.unwrap().status() == StatusCode::OK
}

async fn page(b: &Browser, path: &str) -> (StatusCode, String) {
    let res = b.http.get(b.url(path)).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn deleting_the_account_needs_password_and_code_and_removes_it_with_its_apps() {
    let f = Fixture::new().await; // alice, owner of "My Bot", signed in through its browser
    let tokens = f.tokens("user_read").await;
    let bob = f.server.add_user("bob").await;
    let bobs_app = f.server.add_client("Bob App", &bob, ClientKind::Confidential, false).await;
    // Alice authorizes Bob's app too: those tokens must stop working.
    let url = f.browser.authorize_and_allow(&code_query(&bobs_app.id, "user_read", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (status, bob_tokens) = f.server.token(&bobs_app, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK);
    let (secret, _) = enable(&f.server, &f.browser).await;

    let (_, html) = page(&f.browser, "/settings/security").await;
    assert!(html.contains("<strong>My Bot</strong>"), "the page says which applications go: {html}");
    let fields = form_fields(&html, "/settings/security/delete");
    server_advance(&f.server);
    let code = totp::code_at(&secret, f.server.auth.now()).unwrap();

    let res = post_form(&f.browser, "/settings/security/delete", &fields, &[("password", "not-the-password"), ("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = post_form(&f.browser, "/settings/security/delete", &fields, &[("password", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "two-factor is on: a code is needed too");
    assert!(f.server.auth.store.find_user_by_login("alice").await.unwrap().is_some());

    let res = post_form(&f.browser, "/settings/security/delete", &fields, &[("password", PASSWORD), ("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let done = res.text().await.unwrap();
    assert!(done.contains("Account deleted") && done.contains("<li>My Bot</li>"), "{done}");

    assert!(f.server.auth.store.find_user_by_login("alice").await.unwrap().is_none());
    assert!(f.server.auth.store.find_client(&f.client.id).await.unwrap().is_none(), "her app is gone");
    assert_eq!(f.server.validate(&s(&tokens, "access_token")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(f.server.validate(&s(&bob_tokens, "access_token")).await, StatusCode::UNAUTHORIZED);
    let (status, _) = f.server.token(&bobs_app, &[("grant_type", "refresh_token"), ("refresh_token", &s(&bob_tokens, "refresh_token"))]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(f.server.token(&f.client, &[("grant_type", "client_credentials")]).await.0, StatusCode::UNAUTHORIZED);
    assert!(!is_signed_in(&f.browser).await);
    assert_ne!(f.server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    // The log keeps the deletion, found by login now that the account is gone.
    let filter = gatehouse_core::events::EventFilter { login: Some("alice".into()), limit: 50, ..Default::default() };
    let events = f.server.auth.store.list_events(&filter).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "account.deleted"), "{events:?}");
    assert!(events.iter().any(|e| e.kind == "client.deleted" && e.client_id.as_deref() == Some(f.client.id.as_str())));
    // Bob and his app are untouched.
    assert_eq!(f.server.token(&bobs_app, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);
}

fn server_advance(server: &TestServer) {
    // The code that turned two-factor on was used: the next step's is fresh.
    server.clock.advance(30);
}

#[tokio::test]
async fn admin_pages_need_the_role_and_a_fresh_confirmation_for_each_action() {
    let server = TestServer::start().await;
    let alice = server.add_user("alice").await;
    server.auth.store.set_user_admin(&alice.id, true).await.unwrap();
    let bob = server.add_user("bob").await;
    let bobs_app = server.add_client("Bob App", &bob, ClientKind::Confidential, false).await;
    let (_, app_token) = server.token(&bobs_app, &[("grant_type", "client_credentials")]).await;

    // Not signed in: asked to; signed in without the role: refused.
    let stranger = server.browser();
    assert_eq!(stranger.http.get(stranger.url("/admin")).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let bobs_browser = server.browser();
    bobs_browser.sign_in("bob", PASSWORD).await;
    for path in ["/admin".to_string(), format!("/admin/users/{}", bob.id), format!("/admin/apps/{}", bobs_app.id)] {
        assert_eq!(page(&bobs_browser, &path).await.0, StatusCode::FORBIDDEN, "{path}");
    }

    // Find users and applications.
    let admin = server.browser();
    admin.sign_in("alice", PASSWORD).await;
    let (status, html) = page(&admin, "/admin?q=BOB").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/admin/users/{}", bob.id)) && html.contains(&format!("/admin/apps/{}", bobs_app.id)), "{html}");
    assert!(!html.contains(&format!("/admin/users/{}", alice.id)), "the search narrows");

    // Disable: refused without a fresh password, done with it, at once.
    let user_path = format!("/admin/users/{}", bob.id);
    let (_, html) = page(&admin, &user_path).await;
    let disable = format!("{user_path}/disable");
    let fields = form_fields(&html, &disable);
    let res = post_form(&admin, &disable, &fields, &[("password", "")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!server.auth.store.find_user(&bob.id).await.unwrap().unwrap().disabled);
    let no_csrf: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    assert_eq!(post_form(&admin, &disable, &no_csrf, &[("password", PASSWORD)]).await.status(), StatusCode::FORBIDDEN);
    let res = post_form(&admin, &disable, &fields, &[("password", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Disabled"));
    assert!(server.auth.store.find_user(&bob.id).await.unwrap().unwrap().disabled);
    assert!(!is_signed_in(&bobs_browser).await, "his session ended");
    assert_ne!(server.browser().sign_in("bob", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    let filter = gatehouse_core::events::EventFilter { user_id: Some(bob.id.clone()), limit: 50, ..Default::default() };
    let events = server.auth.store.list_events(&filter).await.unwrap();
    let disabled = events.iter().find(|e| e.kind == "account.disabled").expect("recorded");
    assert_eq!((disabled.actor_login.as_deref(), disabled.subject_login.as_deref()), (Some("alice"), Some("bob")));

    let (_, html) = page(&admin, &user_path).await;
    assert!(html.contains("<code>account.disabled</code>"), "the admin page shows his events: {html}");

    // Enable: he can sign in again.
    let (_, html) = page(&admin, &user_path).await;
    let enable_path = format!("{user_path}/enable");
    let res = post_form(&admin, &enable_path, &form_fields(&html, &enable_path), &[("password", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(bobs_browser.sign_in("bob", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // Sign him out everywhere.
    let (_, html) = page(&admin, &user_path).await;
    assert!(html.contains("id=\"user-sessions\">1<"), "{html}");
    let sign_out = format!("{user_path}/sign-out");
    let res = post_form(&admin, &sign_out, &form_fields(&html, &sign_out), &[("password", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!is_signed_in(&bobs_browser).await);
    assert!(is_signed_in(&admin).await, "the admin's own session stays");

    // Revoke every token of his application.
    assert_eq!(server.validate(&s(&app_token, "access_token")).await, StatusCode::OK);
    let app_path = format!("/admin/apps/{}", bobs_app.id);
    let (_, html) = page(&admin, &app_path).await;
    let revoke = format!("{app_path}/revoke-tokens");
    let fields = form_fields(&html, &revoke);
    assert_eq!(post_form(&admin, &revoke, &fields, &[("password", "wrong-password")]).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.validate(&s(&app_token, "access_token")).await, StatusCode::OK);
    let res = post_form(&admin, &revoke, &fields, &[("password", PASSWORD)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Revoked 1 tokens"));
    assert_eq!(server.validate(&s(&app_token, "access_token")).await, StatusCode::UNAUTHORIZED);
    let filter = gatehouse_core::events::EventFilter { client_id: Some(bobs_app.id.clone()), limit: 50, ..Default::default() };
    let events = server.auth.store.list_events(&filter).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "client.tokens_revoked" && e.actor_login.as_deref() == Some("alice")), "{events:?}");

    // An admin with two-factor may confirm with a code instead of the password.
    let (secret, _) = enable(&server, &admin).await;
    server.clock.advance(30);
    let (_, html) = page(&admin, &user_path).await;
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    let res = post_form(&admin, &disable, &form_fields(&html, &disable), &[("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(server.auth.store.find_user(&bob.id).await.unwrap().unwrap().disabled);
}
