//! Two-factor sign-in over HTTP: set up from the page (QR code, otpauth URI, code,
//! recovery codes), sign-in asks for a code after the password, each code and recovery
//! code works once, codes share the password budget, turning it off needs password and
//! code, and `console_requires_2fa` keeps the console to accounts with it. Codes are
//! computed here from the secret the page shows, at the test server's clock.

use std::time::{Duration, Instant};

use gatehouse_core::totp;
use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;

/// The text of the element with `id`, tags stripped.
pub fn element_text(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let open_end = html[start..].find('>').unwrap() + start + 1;
    let close = html[open_end..].find("</").unwrap() + open_end;
    html[open_end..close].to_string()
}

/// What the setup page gave: the secret (without the spaces it is shown with) and the
/// confirm form's hidden fields.
pub struct Setup {
    pub secret: String,
    pub fields: Vec<(String, String)>,
}

pub async fn open_setup(b: &Browser) -> Setup {
    let res = b.http.get(b.url("/settings/2fa")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(page.contains("<svg"), "a QR code drawn by the server: {page}");
    let secret = element_text(&page, "totp-secret").replace(' ', "");
    let uri = element_text(&page, "otpauth-uri").replace("&#x2f;", "/").replace("&amp;", "&");
    assert!(uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}&")), "{uri}");
    Setup { secret, fields: form_fields(&page, "/settings/2fa") }
}

pub async fn post_form(b: &Browser, path: &str, fields: &[(String, String)], extra: &[(&str, &str)]) -> reqwest::Response {
    let mut form: Vec<(String, String)> = fields.to_vec();
    form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    b.http.post(b.url(path)).form(&form).send().await.unwrap()
}

/// Turns two-factor on for the browser's user; returns the secret and the recovery codes.
pub async fn enable(server: &TestServer, b: &Browser) -> (String, Vec<String>) {
    let setup = open_setup(b).await;
    let code = totp::code_at(&setup.secret, server.auth.now()).unwrap();
    let res = post_form(b, "/settings/2fa", &setup.fields, &[("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    let list = element_text_block(&page, "recovery-codes");
    let codes: Vec<String> = list.split("<code>").skip(1).map(|c| c[..c.find("</code>").unwrap()].to_string()).collect();
    (setup.secret, codes)
}

/// The inner HTML of the element with `id`, up to its closing `</ul>`.
fn element_text_block(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let end = html[start..].find("</ul>").unwrap() + start;
    html[start..end].to_string()
}

/// Posts the password; returns the response (the code page when two-factor is on).
async fn password_step(b: &Browser, login: &str) -> reqwest::Response {
    b.sign_in(login, PASSWORD).await
}

/// Posts `code` on the code page `page`.
async fn code_step(b: &Browser, page: &str, code: &str) -> reqwest::Response {
    post_form(b, "/login", &form_fields(page, "/login"), &[("code", code)]).await
}

async fn is_signed_in(b: &Browser) -> bool {
    b.http.get(b.url("/settings/security")).send().await.unwrap().status() == StatusCode::OK
}

#[tokio::test]
async fn turning_two_factor_on_then_signing_in_asks_for_a_code_once() {
    // Many sign-ins from new browsers follow: more than the account's default budget.
    let mut config = ServerConfig::default();
    config.rate_limits.login_account.capacity = 100;
    let server = TestServer::start_with(Default::default(), config).await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let b = server.browser();
    assert_eq!(b.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // A wrong code does not turn it on.
    let setup = open_setup(&b).await;
    let res = post_form(&b, "/settings/2fa", &setup.fields, &[("code", "000000")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains("That code is not right"));
    let (secret, recovery) = enable(&server, &b).await;
    assert_eq!(recovery.len(), 10);
    assert!(recovery.iter().all(|c| c.len() == 14), "{recovery:?}");
    let page = b.http.get(b.url("/settings/2fa")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("is <strong>on</strong>") && page.contains("10 of your recovery codes"), "{page}");

    // Neither the secret nor a recovery code is in the database.
    let db = rusqlite::Connection::open(&server.db_path).unwrap();
    let sealed: String = db.query_row("SELECT secret_sealed FROM two_factor", [], |r| r.get(0)).unwrap();
    assert!(!sealed.contains(&secret) && !sealed.to_uppercase().contains(&secret[..8]));
    let digests: Vec<String> = db.prepare("SELECT code_hash FROM recovery_codes").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(digests.len(), 10);
    for code in &recovery {
        let raw = code.replace('-', "");
        assert!(digests.iter().all(|d| d.len() == 64 && !d.contains(&raw)));
    }

    // Sign-in: the password gives a page that asks for a code, and no session yet.
    let other = server.browser();
    let asked = password_step(&other, "alice").await;
    assert_eq!(asked.status(), StatusCode::OK);
    let page = asked.text().await.unwrap();
    assert!(page.contains("name=\"code\"") && page.contains("name=\"pending\""), "{page}");
    assert!(!is_signed_in(&other).await);

    // The code that turned it on was used: refused. A wrong one too.
    let used = totp::code_at(&secret, server.auth.now()).unwrap();
    assert_eq!(code_step(&other, &page, &used).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code_step(&other, &page, "12345x").await.status(), StatusCode::UNAUTHORIZED);
    // The next step's code signs in, once.
    server.clock.advance(30);
    let fresh = totp::code_at(&secret, server.auth.now()).unwrap();
    let res = code_step(&other, &page, &fresh).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    assert!(is_signed_in(&other).await);
    // The log holds what happened, and the security page shows it.
    let alice = server.auth.store.find_user_by_login("alice").await.unwrap().unwrap();
    let filter = gatehouse_core::events::EventFilter { user_id: Some(alice.id.clone()), limit: 50, ..Default::default() };
    let kinds: Vec<(String, Option<String>)> =
        server.auth.store.list_events(&filter).await.unwrap().into_iter().map(|e| (e.kind, e.detail)).collect();
    for wanted in [("two_factor.enabled", None), ("two_factor.failed", Some("sign-in")), ("sign_in.succeeded", Some("with two-factor"))] {
        assert!(kinds.iter().any(|(k, d)| k == wanted.0 && d.as_deref() == wanted.1), "{wanted:?} in {kinds:?}");
    }
    let activity = other.http.get(other.url("/settings/security")).send().await.unwrap().text().await.unwrap();
    assert!(activity.contains("Recent activity") && activity.contains("Two-factor authentication turned on"), "{activity}");
    assert!(activity.contains("Wrong two-factor code"));

    let third = server.browser();
    let page3 = password_step(&third, "alice").await.text().await.unwrap();
    assert_eq!(code_step(&third, &page3, &fresh).await.status(), StatusCode::UNAUTHORIZED, "a code works once");

    // A recovery code works once in place of a code, typed any way.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    assert_eq!(code_step(&third, &page3, &typed).await.status(), StatusCode::SEE_OTHER);
    let fourth = server.browser();
    let page4 = password_step(&fourth, "alice").await.text().await.unwrap();
    assert_eq!(code_step(&fourth, &page4, &recovery[0]).await.status(), StatusCode::UNAUTHORIZED);
    let page = fourth.http.get(fourth.url("/settings/2fa")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("recovery codes are unused"), "not signed in");

    // A half-done sign-in belongs to its browser: its note is worth nothing elsewhere.
    let thief = server.browser();
    let own = thief.http.get(thief.url("/login")).send().await.unwrap().text().await.unwrap();
    let mut stolen: Vec<(String, String)> = form_fields(&page4, "/login").into_iter().filter(|(k, _)| k != "csrf").collect();
    stolen.extend(form_fields(&own, "/login").into_iter().filter(|(k, _)| k == "csrf"));
    server.clock.advance(30);
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    let res = post_form(&thief, "/login", &stolen, &[("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains("Enter your password again"));
    // It expires, too.
    server.clock.advance(301);
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    assert_eq!(code_step(&fourth, &page4, &code).await.status(), StatusCode::UNAUTHORIZED);
}

/// The measure: two-factor sign-in adds one page (the code form) and no Argon2id.
#[tokio::test]
async fn sign_in_with_two_factor_adds_one_page_and_no_password_hash() {
    let server = TestServer::start().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let setup_browser = server.browser();
    setup_browser.sign_in("alice", PASSWORD).await;
    let (secret, _) = enable(&server, &setup_browser).await;
    server.clock.advance(30);

    // Without two-factor: one request, one Argon2id.
    let plain = server.browser();
    plain.http.get(plain.url("/login")).send().await.unwrap();
    let before = server.state.password_verifications();
    let t = Instant::now();
    let res = password_step(&plain, "bob").await;
    let plain_time = t.elapsed();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.state.password_verifications() - before, 1);

    // With it: two requests (password, then code), still one Argon2id.
    let b = server.browser();
    b.http.get(b.url("/login")).send().await.unwrap();
    let before = server.state.password_verifications();
    let t = Instant::now();
    let asked = password_step(&b, "alice").await;
    let password_time = t.elapsed();
    assert_eq!(asked.status(), StatusCode::OK);
    let page = asked.text().await.unwrap();
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    let t = Instant::now();
    let done = code_step(&b, &page, &code).await;
    let code_time = t.elapsed();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.state.password_verifications() - before, 1, "the code step verifies no password");
    eprintln!(
        "measured: sign-in without 2FA {plain_time:?} (1 POST, 1 Argon2id); with 2FA {password_time:?} + {code_time:?} (2 POSTs, 1 Argon2id)"
    );
}

#[tokio::test]
async fn codes_are_held_by_the_password_budget() {
    let mut config = ServerConfig::default();
    config.rate_limits.login_account.capacity = 4;
    let server = TestServer::start_with(Default::default(), config).await;
    server.add_user("alice").await;
    let b = server.browser();
    b.sign_in("alice", PASSWORD).await;
    // Alice signed in (one from the account's budget) and confirmed a code from the
    // browser she signed in with (its own budget).
    enable(&server, &b).await;

    // From elsewhere: the password (two), then the codes share what is left.
    let attacker = server.browser();
    let page = password_step(&attacker, "alice").await.text().await.unwrap();
    let mut statuses = Vec::new();
    for guess in ["111111", "222222", "333333"] {
        statuses.push(code_step(&attacker, &page, guess).await.status());
    }
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]);
    let res = code_step(&attacker, &page, "444444").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("ratelimit-reset"));
    assert!(res.text().await.unwrap().contains("Too many sign-in attempts"));
}

#[tokio::test]
async fn turning_two_factor_off_needs_the_password_and_a_code() {
    let server = TestServer::start().await;
    server.add_user("alice").await;
    let b = server.browser();
    b.sign_in("alice", PASSWORD).await;
    let (secret, _) = enable(&server, &b).await;
    let page = b.http.get(b.url("/settings/2fa")).send().await.unwrap().text().await.unwrap();
    let fields = form_fields(&page, "/settings/2fa/disable");

    server.clock.advance(30);
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    let res = post_form(&b, "/settings/2fa/disable", &fields, &[("password", "wrong-password-1"), ("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains("password is not right"));
    let res = post_form(&b, "/settings/2fa/disable", &fields, &[("password", PASSWORD), ("code", "000000")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(server.auth.store.find_two_factor(&server.auth.store.find_user_by_login("alice").await.unwrap().unwrap().id).await.unwrap().is_some());
    // No form without the page's CSRF token.
    let no_csrf: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let res = post_form(&b, "/settings/2fa/disable", &no_csrf, &[("password", PASSWORD), ("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = post_form(&b, "/settings/2fa/disable", &fields, &[("password", PASSWORD), ("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Two-factor sign-in is off"));
    // Signing in is the password alone again.
    let again = server.browser();
    assert_eq!(again.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_console_can_require_two_factor() {
    let config = ServerConfig { console_requires_2fa: true, ..Default::default() };
    let server = TestServer::start_with(Default::default(), config).await;
    server.add_user("alice").await;
    let b = server.browser();
    // Not signed in: asked to sign in, as before.
    let res = b.http.get(b.url("/console")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    b.sign_in("alice", PASSWORD).await;
    for path in ["/console", "/console/apps/new"] {
        let res = b.http.get(b.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(res.text().await.unwrap().contains("href=\"/settings/2fa\""));
    }
    enable(&server, &b).await;
    let res = b.http.get(b.url("/console")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Off by default.
    let open = TestServer::start().await;
    open.add_user("bob").await;
    let b = open.browser();
    b.sign_in("bob", PASSWORD).await;
    assert_eq!(b.http.get(b.url("/console")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stale_or_foreign_setup_is_refused() {
    let server = TestServer::start().await;
    server.add_user("alice").await;
    server.add_user("bob").await;
    let a = server.browser();
    a.sign_in("alice", PASSWORD).await;
    let setup = open_setup(&a).await;
    // Bob cannot confirm Alice's secret (the note names her).
    let b = server.browser();
    b.sign_in("bob", PASSWORD).await;
    let bobs = open_setup(&b).await;
    let mut fields: Vec<(String, String)> = setup.fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    fields.extend(bobs.fields.iter().filter(|(k, _)| k == "csrf").cloned());
    let code = totp::code_at(&setup.secret, server.auth.now()).unwrap();
    let res = post_form(&b, "/settings/2fa", &fields, &[("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("That setup expired"));
    // Fifteen minutes on, Alice's setup has expired too.
    server.clock.advance(15 * 60);
    let code = totp::code_at(&setup.secret, server.auth.now()).unwrap();
    let res = post_form(&a, "/settings/2fa", &setup.fields, &[("code", &code)]).await;
    assert!(res.text().await.unwrap().contains("That setup expired"));
    let users = [&"alice", &"bob"];
    for login in users {
        let u = server.auth.store.find_user_by_login(login).await.unwrap().unwrap();
        assert!(server.auth.store.find_two_factor(&u.id).await.unwrap().is_none(), "{login}");
    }
}

#[tokio::test]
async fn the_security_page_lists_sessions_and_signs_them_out() {
    let server = TestServer::start().await;
    server.add_user("alice").await;
    let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
    let with_agent = |ua: &str| Browser::with_agent(&server.base, ua);
    let laptop = with_agent(firefox);
    let phone = with_agent("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36");
    laptop.sign_in("alice", PASSWORD).await;
    phone.sign_in("alice", PASSWORD).await;

    let page = laptop.http.get(laptop.url("/settings/security")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<title>Security · Gatehouse</title>"), "the page's title is its name, nothing else");
    assert_eq!(page.matches("<h2>Recent activity</h2>").count(), 1);
    assert!(page.contains("Firefox on Windows") && page.contains("Chrome on Android"), "{page}");
    assert!(page.contains("127.0.0.1") && page.contains("this browser"));
    assert_eq!(page.matches("class=\"session\"").count(), 2);

    // Last seen moves at most once a minute.
    let alice = server.auth.store.find_user_by_login("alice").await.unwrap().unwrap();
    let seen = |list: Vec<gatehouse_core::model::Session>| list.iter().map(|s| s.last_seen).max().unwrap();
    let signed_in_at = server.auth.now();
    server.clock.advance(30);
    phone.http.get(phone.url("/settings/security")).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen(server.auth.store.list_sessions(&alice.id, server.auth.now()).await.unwrap()), signed_in_at);
    server.clock.advance(60);
    phone.http.get(phone.url("/settings/connections")).send().await.unwrap();
    let mut moved = false;
    for _ in 0..50 {
        if seen(server.auth.store.list_sessions(&alice.id, server.auth.now()).await.unwrap()) == server.auth.now() {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "a page view a minute on records the session's use");

    // Sign out the phone from the laptop.
    let page = laptop.http.get(laptop.url("/settings/security")).send().await.unwrap().text().await.unwrap();
    let action_start = page.find("action=\"/settings/security/sessions/").expect("a sign-out form for the other session");
    let action = &page[action_start + 8..];
    let action = action[..action.find('"').unwrap()].replace("&#x2f;", "/");
    let res = post_form(&laptop, &action, &form_fields(&page, &action), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Signed out"));
    assert!(!is_signed_in(&phone).await);
    assert!(is_signed_in(&laptop).await);
    // Its handle is no longer there.
    let res = post_form(&laptop, &action, &form_fields(&page, &action), &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let filter = gatehouse_core::events::EventFilter { user_id: Some(alice.id.clone()), limit: 50, ..Default::default() };
    let events = server.auth.store.list_events(&filter).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "session.ended" && e.detail.as_deref() == Some("Chrome on Android")), "{events:?}");

    // Sign out everywhere: this browser too.
    phone.sign_in("alice", PASSWORD).await;
    let page = laptop.http.get(laptop.url("/settings/security")).send().await.unwrap().text().await.unwrap();
    let res = post_form(&laptop, "/settings/security/sign-out-everywhere", &form_fields(&page, "/settings/security/sign-out-everywhere"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!is_signed_in(&phone).await && !is_signed_in(&laptop).await);
    assert!(server.auth.store.list_sessions(&alice.id, server.auth.now()).await.unwrap().is_empty());
    let events = server.auth.store.list_events(&filter).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "session.ended_everywhere"));
}

/// The same pages on PostgreSQL: setup, sign-in with a code (once) and a recovery code,
/// the sessions list, and deleting the account with password and code.
#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn two_factor_sessions_and_deletion_on_postgres() {
    let Some(db) = PgDatabase::create().await else { return };
    let server = TestServer::start_on(Some(&db.url), Default::default(), ServerConfig::default()).await;
    server.add_user("alice").await;
    let b = server.browser();
    b.sign_in("alice", PASSWORD).await;
    let (secret, recovery) = enable(&server, &b).await;
    let alice = server.auth.store.find_user_by_login("alice").await.unwrap().unwrap();
    let record = server.auth.store.find_two_factor(&alice.id).await.unwrap().unwrap();
    assert!(!record.secret_sealed.contains(&secret));
    assert_eq!(record.recovery_codes_left, 10);

    server.clock.advance(30);
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    let other = server.browser();
    let page = password_step(&other, "alice").await.text().await.unwrap();
    assert_eq!(code_step(&other, &page, &code).await.status(), StatusCode::SEE_OTHER);
    let third = server.browser();
    let page = password_step(&third, "alice").await.text().await.unwrap();
    assert_eq!(code_step(&third, &page, &code).await.status(), StatusCode::UNAUTHORIZED, "a code works once");
    assert_eq!(code_step(&third, &page, &recovery[3]).await.status(), StatusCode::SEE_OTHER);

    let html = b.http.get(b.url("/settings/security")).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("class=\"session\"").count(), 3, "{html}");
    server.clock.advance(30);
    let code = totp::code_at(&secret, server.auth.now()).unwrap();
    let fields = form_fields(&html, "/settings/security/delete");
    let res = post_form(&b, "/settings/security/delete", &fields, &[("password", PASSWORD), ("code", &code)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(server.auth.store.find_user_by_login("alice").await.unwrap().is_none());
    assert!(server.auth.store.find_two_factor(&alice.id).await.unwrap().is_none());
    assert!(!is_signed_in(&other).await && !is_signed_in(&third).await);
}

#[tokio::test]
async fn an_operator_turns_two_factor_off_for_a_user_who_lost_it() {
    let server = TestServer::start().await;
    server.add_user("alice").await;
    let b = server.browser();
    b.sign_in("alice", PASSWORD).await;
    enable(&server, &b).await;
    assert_ne!(server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER, "a code is asked for");

    let db = format!("sqlite://{}", server.db_path.display());
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = crate::binary::gatehouse(dir.path(), &["user", "disable-2fa", "alice", "--json", "--database-url", &db], None);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["two_factor"], false);
    // The server reads two-factor state from the store: the password alone signs in now.
    assert_eq!(server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let (ok, _, err) = crate::binary::gatehouse(dir.path(), &["user", "disable-2fa", "alice", "--database-url", &db], None);
    assert!(!ok && err.contains("does not have two-factor"), "{err}");
    let alice = server.auth.store.find_user_by_login("alice").await.unwrap().unwrap();
    let filter = gatehouse_core::events::EventFilter { user_id: Some(alice.id), limit: 10, ..Default::default() };
    let events = server.auth.store.list_events(&filter).await.unwrap();
    let off = events.iter().find(|e| e.kind == "two_factor.disabled").expect("the operator's change is recorded");
    assert_eq!(off.detail.as_deref(), Some("by the command line"));
}
