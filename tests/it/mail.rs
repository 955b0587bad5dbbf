//! Mail over real SMTP (aiosmtpd on loopback): sign-up verification, email change,
//! password recovery, and delivery retried until the relay answers. Each test reads the
//! mail the server sent and follows its link over HTTP.

use gatehouse_core::model::ClientKind;
use gatehouse_core::policy::Policy;
use gatehouse_server::mail::MailSettings;
use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;
use crate::smtp::{free_port, link, Smtp};

const FROM: &str = "Gatehouse <no-reply@example.com>";

fn mail_config(smtp_url: String) -> ServerConfig {
    let mail = MailSettings { smtp_url, from: FROM.into(), username: None, password: None };
    ServerConfig { mail: Some(mail), ..Default::default() }
}

async fn server_with_mail(smtp: &Smtp) -> TestServer {
    TestServer::start_with(Policy::default(), mail_config(smtp.url())).await
}

fn field(html: &str, name: &str) -> String {
    hidden_inputs(html).into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name} in {html}")).1
}

/// GETs `path` in the browser and posts its form to `action` with `fields` and the CSRF token.
async fn submit(b: &Browser, path: &str, action: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let page = b.http.get(b.url(path)).send().await.unwrap().text().await.unwrap();
    let mut form: Vec<(String, String)> = form_fields(&page, action);
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let res = b.http.post(b.url(action)).form(&form).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Follows a verification link as a person does: opening it only shows a button, which
/// posts the token.
async fn verify(server: &TestServer, url: &str) -> (StatusCode, String) {
    submit(&server.browser(), url, "/verify-email", &[]).await
}

async fn sign_up(b: &Browser, login: &str, email: &str) {
    let (status, body) = submit(b, "/signup", "/signup", &[("login", login), ("email", email), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
}

/// An OpenID Connect access token of `login` for a new app, with user_read.
async fn userinfo_token(server: &TestServer, login: &str) -> String {
    let owner = server.auth.store.find_user_by_login(login).await.unwrap().unwrap();
    let client = server.add_client(&format!("App of {login}"), &owner, ClientKind::Confidential, false).await;
    let browser = server.browser();
    let url = browser.authorize_and_allow(&code_query(&client.id, "openid user_read", "nonce=n0nce"), login).await;
    let code = query_param(&url, "code").unwrap();
    let (status, body) = server.token(&client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s(&body, "access_token")
}

/// The kinds of the events done by or to the user, newest first.
async fn event_kinds(server: &TestServer, user_id: &str) -> Vec<String> {
    let filter = gatehouse_core::events::EventFilter { user_id: Some(user_id.into()), limit: 100, ..Default::default() };
    server.auth.store.list_events(&filter).await.unwrap().into_iter().map(|e| e.kind).collect()
}

async fn userinfo(server: &TestServer, token: &str) -> serde_json::Value {
    let res = server.http().get(server.url("/oauth2/userinfo")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs python3 aiosmtpd: pip install aiosmtpd, then run with --include-ignored"]
async fn sign_up_mails_a_link_that_verifies_the_email_once() {
    let Some(smtp) = Smtp::start() else { return };
    let server = server_with_mail(&smtp).await;
    sign_up(&server.browser(), "carol", "Carol@Example.com").await;
    let mail = smtp.mail_to("Carol@Example.com", 1).await;
    assert!(mail.from.contains("no-reply@example.com"), "{mail:?}");
    assert_eq!(mail.subject, "Verify your email address");
    let url = link(&mail.text, &format!("{}/verify-email?token=", server.base));
    assert!(mail.html.replace("&#x2f;", "/").contains(&url), "the HTML part has the same absolute link: {}", mail.html);

    let token = userinfo_token(&server, "carol").await;
    let info = userinfo(&server, &token).await;
    assert_eq!((info["email"].as_str(), info["email_verified"].as_bool()), (Some("Carol@Example.com"), Some(false)));

    // Opening the link (as a mail scanner does) verifies nothing.
    let res = server.http().get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Verify my email"));
    assert_eq!(userinfo(&server, &token).await["email_verified"].as_bool(), Some(false));
    let (status, body) = verify(&server, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Email verified"), "{body}");
    let info = userinfo(&server, &token).await;
    assert_eq!(info["email_verified"].as_bool(), Some(true), "apps see it verified only now: {info}");

    let carol = server.auth.store.find_user_by_login("carol").await.unwrap().unwrap();
    assert_eq!(event_kinds(&server, &carol.id).await.first().map(String::as_str), Some("email.verified"));

    let again = server.http().get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "the link works once");
    let b = server.browser();
    let page = b.http.get(b.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_inputs(&page).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let token_again = url.rsplit("token=").next().unwrap().to_string();
    let res = b.http.post(b.url("/verify-email")).form(&[("csrf", csrf), ("token", token_again)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "posted again, it is refused too");
    let bogus = server.http().get(server.url("/verify-email?token=%27%3Cscript%3E")).send().await.unwrap();
    assert_eq!(bogus.status(), StatusCode::BAD_REQUEST);
    let none = server.http().get(server.url("/verify-email")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs python3 aiosmtpd: pip install aiosmtpd, then run with --include-ignored"]
async fn forgot_password_mails_a_single_use_link_and_the_reset_revokes_every_token() {
    let Some(smtp) = Smtp::start() else { return };
    let f = Fixture::with(server_with_mail(&smtp).await).await;
    let server = &f.server;
    let tokens = f.tokens("user_read").await;
    let (access, refresh) = (s(&tokens, "access_token"), s(&tokens, "refresh_token"));
    let login_page = server.http().get(server.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login_page.contains("href=\"/forgot-password\""), "mail is on: the sign-in card offers recovery");

    // The same answer whether or not the address has an account.
    let asker = server.browser();
    let (status, unknown) = submit(&asker, "/forgot-password", "/forgot-password", &[("email", "nobody@example.com")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, known) = submit(&asker, "/forgot-password", "/forgot-password", &[("email", "ALICE@example.com")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unknown.replace("nobody@example.com", "X"), known.replace("ALICE@example.com", "X"));
    let first = smtp.mail_to("alice@example.com", 1).await;
    assert_eq!(first.subject, "Reset your password");
    let first_url = link(&first.text, &format!("{}/reset-password?token=", server.base));
    assert!(first.html.replace("&#x2f;", "/").contains(&first_url));
    // Only the newest link works.
    submit(&asker, "/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    let second = smtp.mail_to("alice@example.com", 2).await;
    let second_url = link(&second.text, &format!("{}/reset-password?token=", server.base));
    assert_ne!(first_url, second_url);
    assert!(smtp.received().iter().all(|m| !m.to.contains("nobody")), "no mail for an unknown address");
    let res = server.http().get(&first_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a superseded link");

    let b = server.browser();
    let page = b.http.get(&second_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let form = |password: &str| {
        vec![("csrf", field(&page, "csrf")), ("token", field(&page, "token")), ("password", password.to_string())]
    };
    let weak = b.http.post(b.url("/reset-password")).form(&form("password")).send().await.unwrap();
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST, "the new-password rules apply");
    let no_csrf = b.http.post(b.url("/reset-password")).form(&form("new-horse-battery")[1..]).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let done = b.http.post(b.url("/reset-password")).form(&form("new-horse-battery")).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Password changed"));
    let replay = b.http.post(b.url("/reset-password")).form(&form("other-horse-battery")).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "the link works once");

    // Every token and every session of alice stopped working.
    assert_eq!(server.validate(&access).await, StatusCode::UNAUTHORIZED);
    let (status, body) = server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let res = f.browser.http.get(f.browser.url("/settings/connections")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the old session ended");
    assert_eq!(server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.browser().sign_in("alice", "new-horse-battery").await.status(), StatusCode::SEE_OTHER);
    assert!(event_kinds(server, &f.user.id).await.iter().any(|k| k == "password.reset"));

    // A link expires after 30 minutes.
    submit(&asker, "/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    let third = smtp.mail_to("alice@example.com", 3).await;
    let third_url = link(&third.text, &format!("{}/reset-password?token=", server.base));
    // Three links an hour to one address, then 429 (whether or not it has an account).
    let (status, body) = submit(&asker, "/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    server.clock.advance(30 * 60);
    assert_eq!(server.http().get(&third_url).send().await.unwrap().status(), StatusCode::BAD_REQUEST, "expired");
    for _ in 0..3 {
        submit(&asker, "/forgot-password", "/forgot-password", &[("email", "nobody@example.com")]).await;
    }
    let (status, _) = submit(&asker, "/forgot-password", "/forgot-password", &[("email", "nobody@example.com")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
#[ignore = "needs python3 aiosmtpd: pip install aiosmtpd, then run with --include-ignored"]
async fn a_new_email_replaces_the_old_only_once_verified_and_a_verified_address_stays_unique() {
    let Some(smtp) = Smtp::start() else { return };
    let server = server_with_mail(&smtp).await;
    let alice = server.add_user("alice").await;
    let bob = server.add_user("bob").await;
    let b = server.browser();
    assert_eq!(b.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let (status, _) = submit(&b, "/settings/email", "/settings/email", &[("email", "New@Example.com"), ("password", "wrong-horse-battery")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the password is required");
    let (status, body) = submit(&b, "/settings/email", "/settings/email", &[("email", "not an address"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = submit(&b, "/settings/email", "/settings/email", &[("email", "New@Example.com"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = server.auth.store.find_user(&alice.id).await.unwrap().unwrap();
    assert_eq!((user.email.as_str(), user.email_verified), ("alice@example.com", false), "not replaced yet");

    let mail = smtp.mail_to("New@Example.com", 1).await;
    let url = link(&mail.text, &format!("{}/verify-email?token=", server.base));
    assert_eq!(verify(&server, &url).await.0, StatusCode::OK);
    let user = server.auth.store.find_user(&alice.id).await.unwrap().unwrap();
    assert_eq!((user.email.as_str(), user.email_verified), ("New@Example.com", true));
    assert_eq!(event_kinds(&server, &alice.id).await.first().map(String::as_str), Some("email.changed"));
    let page = b.http.get(b.url("/settings/email")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("New@Example.com") && page.contains(">verified<"), "{page}");

    // Bob asks for the same address in another case: his page says the same, and the
    // address's owner gets a notice instead of a link.
    let bb = server.browser();
    assert_eq!(bb.sign_in("bob", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let (status, body) = submit(&bb, "/settings/email", "/settings/email", &[("email", "new@example.COM"), ("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("We sent a link to new@example.COM"));
    let notice = smtp.mail_to("new@example.COM", 1).await;
    assert_eq!(notice.subject, "Your email address was used to sign up");
    assert!(!notice.text.contains("token="), "no link that could take the address: {}", notice.text);
    let bob_now = server.auth.store.find_user(&bob.id).await.unwrap().unwrap();
    assert_eq!((bob_now.email.as_str(), bob_now.email_verified), ("bob@example.com", false));
}

#[tokio::test]
#[ignore = "needs python3 aiosmtpd: pip install aiosmtpd, then run with --include-ignored"]
async fn mail_is_retried_until_the_relay_answers_and_never_holds_the_page() {
    let port = free_port();
    // Nothing listens yet: the first attempts fail to connect.
    let server = TestServer::start_with(Policy::default(), mail_config(format!("smtp://127.0.0.1:{port}"))).await;
    let started = std::time::Instant::now();
    sign_up(&server.browser(), "dave", "dave@example.com").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "sign-up did not wait for the mail");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let Some(smtp) = Smtp::start_on(port) else { return };
    let mail = smtp.mail_to("dave@example.com", 1).await;
    assert_eq!(mail.subject, "Verify your email address");
}

#[tokio::test]
async fn without_smtp_url_the_mail_features_are_off_and_say_so() {
    let server = TestServer::start().await;
    server.add_user("alice").await;
    let login = server.http().get(server.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(!login.contains("/forgot-password"), "no recovery link without mail");
    let page = server.http().get(server.url("/forgot-password")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("not available on this server"));
    let b = server.browser();
    assert_eq!(b.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let page = b.http.get(b.url("/settings/email")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("not available on this server") && page.contains("not verified"), "{page}");
}
