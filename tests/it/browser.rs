//! End to end in headless Chromium (Debian's chromium + chromium-driver, over WebDriver):
//! sign up → register an app → read its id → authorize it in the browser → see it on
//! Connections → Disconnect → the token no longer validates; New Secret refuses the old
//! one; a cross-site form post is refused. Screenshots go to docs/ for the README.
//! Ignored unless asked for (`--include-ignored`), so a plain `cargo test` shows it as
//! not run; asked for without chromedriver, it says so and skips (CI requires it).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;

use crate::common::*;

pub(crate) struct Driver {
    process: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub(crate) async fn browser() -> Option<(Client, Driver)> {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&driver).exists() || !std::path::Path::new(&chromium).exists() {
        if std::env::var("GATEHOUSE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("GATEHOUSE_REQUIRE_BROWSER=1 but {driver} or {chromium} is missing");
        }
        eprintln!("skipped: no Chromium/ChromeDriver ({driver}, {chromium}); apt-get install chromium chromium-driver");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let process = Command::new(&driver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver");
    let profile = tempfile::tempdir().unwrap();
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1100,900", format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(caps).unwrap();
    let driver = Driver { process, _profile: profile };
    for _ in 0..100 {
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        if let Ok(c) = ClientBuilder::new(http).capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
            return Some((c, driver));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

/// A stand-in for the developer's app: receives the redirect, and (at /attack) serves a
/// page from another origin that posts a form to Gatehouse.
async fn third_party(gatehouse: String) -> (String, Arc<Mutex<Option<String>>>) {
    let code = Arc::new(Mutex::new(None));
    #[derive(Clone)]
    struct St(Arc<Mutex<Option<String>>>, String);
    async fn cb(State(st): State<St>, Query(q): Query<std::collections::HashMap<String, String>>) -> Html<&'static str> {
        *st.0.lock().unwrap() = q.get("code").cloned();
        Html("<!doctype html><title>callback</title><p id=done>got it</p>")
    }
    async fn attack(State(st): State<St>) -> Html<String> {
        Html(format!(
            "<!doctype html><title>evil</title><form method=post action=\"{}/console/apps/new\">\
             <input name=name value=evil><input name=redirect_uris value=https://evil.example/cb>\
             <button id=go type=submit>Win a prize</button></form>",
            st.1
        ))
    }
    let app = axum::Router::new().route("/cb", get(cb)).route("/attack", get(attack)).with_state(St(code.clone(), gatehouse));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, code)
}

pub(crate) async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

pub(crate) async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
}

pub(crate) async fn text(c: &Client, css: &str) -> String {
    // Wait: a click that submits a form returns before the next page has loaded. The
    // element found may still be the old page's, gone by the time it is read: read the
    // new page's then.
    for _ in 0..50 {
        match c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(text) => return text,
                Err(fantoccini::error::CmdError::Standard(w)) if w.error == fantoccini::error::ErrorStatus::StaleElementReference => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            },
            Err(e) => {
                let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                let page = c.source().await.unwrap_or_default();
                panic!("{css}: {e}\nat {url}:\n{page}")
            }
        }
    }
    panic!("{css}: still stale after five seconds")
}

/// Waits until the element's text contains `want` (the page a click leads to may not
/// have replaced the one that has the same element yet), and returns the text.
async fn text_with(c: &Client, css: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return t;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never said {want:?} (last {last:?}) at {:?}", c.current_url().await.map(|u| u.to_string()));
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(name);
    std::fs::write(path, png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver); run with --include-ignored"]
async fn sign_up_register_authorize_connections_disconnect_in_chromium() {
    let Some((c, _driver)) = browser().await else { return };
    let server = TestServer::start().await;
    let (app_base, received) = third_party(server.base.clone()).await;
    let callback = format!("{app_base}/cb");

    // Sign up.
    c.goto(&server.url("/signup")).await.unwrap();
    fill(&c, "#login", "streamer").await;
    fill(&c, "#email", "streamer@example.com").await;
    fill(&c, "#password", "correct-horse-battery").await;
    click(&c, "main button[type=submit]").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("a[href='/console/apps/new']")).await.expect("the console after sign-up");
    assert!(c.current_url().await.unwrap().as_str().ends_with("/console"));

    // Register an application.
    click(&c, "a[href='/console/apps/new']").await;
    fill(&c, "#name", "Chat Overlay").await;
    fill(&c, "#redirect_uris", &callback).await;
    c.find(Locator::Css("#category option[value=chat_bot]")).await.unwrap().click().await.unwrap();
    click(&c, "main button[type=submit]").await;
    let client_id = text(&c, "#client-id").await;
    let secret = text(&c, "#client-secret").await;
    assert_eq!((client_id.len(), secret.len()), (30, 50));
    // The copy button is there (the script reveals it), and the page says the secret is shown once.
    assert!(c.find(Locator::Css("button[data-copy=client-secret]")).await.unwrap().is_displayed().await.unwrap());
    assert!(c.source().await.unwrap().contains("only time the secret is shown"));
    shot(&c, "secret.png").await;
    // A reload neither registers again ("name taken") nor shows the secret again.
    assert!(c.current_url().await.unwrap().as_str().ends_with(&format!("/console/apps/{client_id}/secret")), "POST-redirect-GET");
    c.refresh().await.unwrap();
    text(&c, "#secret-gone").await;
    assert!(!c.source().await.unwrap().contains(&secret));
    assert_eq!(server.auth.store.list_clients(None).await.unwrap().len(), 1);
    c.goto(&server.url("/console")).await.unwrap();
    shot(&c, "console.png").await;

    // Authorize it, in the browser.
    let q = format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&scope=user_read+chat_login&state=xyz",
        url::form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
    );
    c.goto(&server.url(&format!("/oauth2/authorize?{q}"))).await.unwrap();
    let consent = c.source().await.unwrap();
    assert!(consent.contains("Chat Overlay") && consent.contains("Log into chat and send messages as you"));
    shot(&c, "consent.png").await;
    click(&c, "button[value=allow]").await;
    assert_eq!(text(&c, "#done").await, "got it");
    let code = received.lock().unwrap().clone().expect("the app got a code");
    let app = TestClient { id: client_id.clone(), secret: Some(secret.clone()) };
    let (status, tokens) = server.token(&app, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &callback)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let at = s(&tokens, "access_token");
    assert_eq!(server.validate(&at).await, StatusCode::OK);

    // Connections shows it; Disconnect revokes it.
    c.goto(&server.url("/settings/connections")).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("Chat Overlay") && page.contains("Read your non-public account information"));
    shot(&c, "connections.png").await;
    click(&c, "form[action$='/disconnect'] button").await;
    // Asked first, by name; nothing happened yet.
    text_with(&c, "h1", "Disconnect Chat Overlay?").await;
    assert_eq!(server.validate(&at).await, StatusCode::OK);
    click(&c, "#confirm").await;
    assert_eq!(text(&c, "#notice").await, "Disconnected Chat Overlay: its tokens were revoked.");
    assert_eq!(server.validate(&at).await, StatusCode::UNAUTHORIZED);

    // New Secret: the old one is refused.
    c.goto(&server.url(&format!("/console/apps/{client_id}"))).await.unwrap();
    click(&c, "form[action$='/secret'] button").await;
    // No grace: asked first, and the current secret still works meanwhile.
    text_with(&c, "h1", "Make a new secret for Chat Overlay now?").await;
    assert_eq!(server.token(&app, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);
    click(&c, "#confirm").await;
    let new_secret = text(&c, "#client-secret").await;
    assert_ne!(new_secret, secret);
    // Reloading does not rotate it again: the new secret keeps working.
    c.refresh().await.unwrap();
    text(&c, "#secret-gone").await;
    assert_eq!(server.token(&app, &[("grant_type", "client_credentials")]).await.0, StatusCode::UNAUTHORIZED);
    let rotated = TestClient { id: client_id.clone(), secret: Some(new_secret) };
    assert_eq!(server.token(&rotated, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);

    // A form on another site posting to Gatehouse carries no CSRF token: refused.
    c.goto(&format!("{app_base}/attack")).await.unwrap();
    click(&c, "#go").await;
    let refused = c.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath("//*[contains(text(), 'Form expired')]")).await;
    assert!(refused.is_ok(), "{}", c.source().await.unwrap());
    assert_eq!(server.auth.store.list_clients(None).await.unwrap().len(), 1, "no app was registered");

    // Readable on a phone: the consent page at 390 px wide has no sideways scrolling.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&server.url(&format!("/oauth2/authorize?{q}&force_verify=true"))).await.unwrap();
    let overflow = c.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await.unwrap();
    assert_eq!(overflow, serde_json::json!(true));
    shot(&c, "consent-phone.png").await;
    c.close().await.unwrap();
}

/// Where an element sits on the page: left, top, right, bottom.
async fn rect(c: &Client, css: &str) -> [f64; 4] {
    let script = "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];";
    let v = c.execute(script, vec![serde_json::json!(css)]).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    let n: Vec<f64> = serde_json::from_value(v).unwrap();
    [n[0], n[1], n[2], n[3]]
}

async fn computed(c: &Client, css: &str, property: &str) -> String {
    let script = "return getComputedStyle(document.querySelector(arguments[0])).getPropertyValue(arguments[1]);";
    c.execute(script, vec![serde_json::json!(css), serde_json::json!(property)]).await.unwrap().as_str().unwrap().to_string()
}

/// WCAG 2 contrast ratio of an `rgb(r, g, b)` colour against white.
fn contrast_with_white(rgb: &str) -> f64 {
    let n: Vec<f64> = rgb.trim_start_matches("rgba(").trim_start_matches("rgb(").trim_end_matches(')').split(',').take(3).map(|x| x.trim().parse().unwrap()).collect();
    let lin = |c: f64| {
        let c = c / 255.0;
        if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let l = 0.2126 * lin(n[0]) + 0.7152 * lin(n[1]) + 0.0722 * lin(n[2]);
    1.05 / (l + 0.05)
}

fn no_overlap(rects: &[(&str, [f64; 4])]) {
    for (i, (a, ra)) in rects.iter().enumerate() {
        for (b, rb) in &rects[i + 1..] {
            let apart = ra[2] <= rb[0] || rb[2] <= ra[0] || ra[3] <= rb[1] || rb[3] <= ra[1];
            assert!(apart, "{a} {ra:?} overlaps {b} {rb:?}");
        }
    }
}

/// The first hour of a new user and a new developer, in Chromium: sign-up from an app's
/// sign-in page reaches its consent page; Sign out on every signed-in page; a bad
/// redirect URI explained (to the owner, with the fix); a styled 404; links and focus in
/// the accent colour; a password "changed" to itself refused; a 360 px phone screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and ChromeDriver (apt-get install chromium chromium-driver); run with --include-ignored"]
async fn first_hour_sign_up_from_an_app_sign_out_errors_and_phone_in_chromium() {
    let Some((c, _driver)) = browser().await else { return };
    let server = TestServer::start().await;
    let (app_base, _) = third_party(server.base.clone()).await;
    let callback = format!("{app_base}/cb");
    let owner = server.add_user("botmaker").await;
    let new = gatehouse_core::registration::NewClient {
        name: "Quiz Bot".into(),
        owner_user_id: owner.id.clone(),
        category: "chat_bot".into(),
        kind: gatehouse_core::model::ClientKind::Confidential,
        allow_implicit: false,
        redirect_uris: vec![callback.clone()],
        jwt_access_tokens: false,
    };
    let (quiz, _) = gatehouse_core::registration::register(&server.auth, new).await.unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let authorize = format!("/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=user_read&state=s1", quiz.id, enc(&callback));

    // 1. From the app's sign-in page, "Create an account" keeps the app's request.
    c.goto(&server.url(&authorize)).await.unwrap();
    text(&c, "#create-account").await;
    let header_signup = c.find(Locator::Css("header a[href^='/signup']")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(header_signup.starts_with("/signup?next=%2Foauth2%2Fauthorize"), "the header's Sign up keeps it too: {header_signup}");
    click(&c, "#create-account").await;
    text(&c, "#email").await;
    assert!(c.source().await.unwrap().contains("to continue to <strong>Quiz Bot</strong>"));
    let sign_in_back = c.find(Locator::Css("main a[href^='/login']")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(sign_in_back.starts_with("/login?next=%2Foauth2%2Fauthorize"), "{sign_in_back}");
    fill(&c, "#login", "newviewer").await;
    fill(&c, "#email", "newviewer@example.com").await;
    fill(&c, "#password", "correct-horse-battery").await;
    click(&c, "main button[type=submit]").await;
    text_with(&c, "h1", "Quiz Bot wants to access your account").await;

    // 3. Sign out in the header of every signed-in page.
    for page in ["/console", "/console/apps/new", "/settings/connections", "/settings/password", "/", &authorize] {
        c.goto(&server.url(page)).await.unwrap();
        text(&c, "header #sign-out").await;
    }

    // 6. A redirect URI not registered: the page says which was tried, knows who is
    // signed in, and shows the registered ones only to the owner.
    let bad = format!("/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=user_read", quiz.id, enc("http://localhost:3000"));
    c.goto(&server.url(&bad)).await.unwrap();
    assert_eq!(text(&c, "#tried-uri").await, "http://localhost:3000");
    let page = c.source().await.unwrap();
    assert!(page.contains("Signed in as <strong>newviewer</strong>") && !page.contains("href=\"/signup"), "{page}");
    assert!(c.find(Locator::Css("#registered-uris")).await.is_err(), "not the owner: the registered URLs are not shown");
    click(&c, "header #sign-out").await;
    text(&c, "main a.button[href='/login']").await;
    c.goto(&server.url("/login")).await.unwrap();
    fill(&c, "#login", "botmaker").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "main button[type=submit]").await;
    text(&c, "header #sign-out").await;
    c.goto(&server.url(&bad)).await.unwrap();
    assert_eq!(text(&c, "#registered-uris").await, callback);
    let fix = c.find(Locator::Css(".hint-box a")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert_eq!(fix, format!("/console/apps/{}/edit", quiz.id));
    shot(&c, "redirect-error.png").await;

    // Unknown paths: a styled page for people, JSON for clients.
    c.goto(&server.url("/no/such/page")).await.unwrap();
    text_with(&c, "h1", "Page not found").await;
    text(&c, "header #sign-out").await;
    let res = reqwest::get(server.url("/oauth2/nope")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"], "not_found");
    let res = reqwest::get(server.url("/api/nope")).await.unwrap();
    assert_eq!((res.status(), res.headers()["content-type"].to_str().unwrap().starts_with("application/json")), (StatusCode::NOT_FOUND, true));

    // 7. Links in cards and the focus ring in the accent, 3:1 or more against white.
    c.goto(&server.url("/settings/password")).await.unwrap();
    text(&c, "h1").await;
    let link = computed(&c, "header nav a", "color").await;
    assert_ne!(link, "rgb(0, 0, 238)", "not the browser's default blue");
    c.goto(&server.url("/")).await.unwrap();
    let card_link = computed(&c, "main.card p.small a", "color").await;
    assert_ne!(card_link, "rgb(0, 0, 238)", "a link in a card is not the browser's default blue");
    assert!(contrast_with_white(&card_link) >= 4.5, "{card_link}");
    c.goto(&server.url("/settings/password")).await.unwrap();
    c.find(Locator::Css("#current_password")).await.unwrap().click().await.unwrap();
    let ring = computed(&c, "#current_password", "outline-color").await;
    assert!(contrast_with_white(&ring) >= 3.0, "the focus ring {ring} is {:.2}:1", contrast_with_white(&ring));
    // The same password again is not a change.
    fill(&c, "#current_password", PASSWORD).await;
    fill(&c, "#new_password", PASSWORD).await;
    click(&c, "form[action='/settings/password'] button[type=submit]").await;
    text_with(&c, "p.error", "same as the current one").await;

    // 5. A 360 px phone: long redirect URLs wrap (two that differ only at the end both
    // show in full), and the header lays out without overlapping or sideways scrolling.
    let long = "https://quiz-bot.example.com/oauth/callback/with/a/rather/long/path/that/goes/on/and/on";
    c.goto(&server.url(&format!("/console/apps/{}/edit", quiz.id))).await.unwrap();
    let uris = c.find(Locator::Css("#redirect_uris")).await.unwrap();
    uris.clear().await.unwrap();
    uris.send_keys(&format!("{callback}\n{long}/first\n{long}/second")).await.unwrap();
    click(&c, "main form button[type=submit]").await;
    text(&c, "#client-id").await;
    c.set_window_size(360, 800).await.unwrap();
    c.refresh().await.unwrap();
    text(&c, "#client-id").await;
    let fits = c.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await.unwrap();
    assert_eq!(fits, serde_json::json!(true), "no sideways scrolling at 360 px");
    let width: f64 = serde_json::from_value(c.execute("return window.innerWidth;", vec![]).await.unwrap()).unwrap();
    for css in ["main ul li:nth-child(2) code", "main ul li:nth-child(3) code"] {
        assert!(rect(&c, css).await[2] <= width, "{css} is cut off");
    }
    let mut parts = vec![("brand", rect(&c, "header .brand").await), ("who", rect(&c, "header .who").await), ("sign out", rect(&c, "header #sign-out").await)];
    for i in 1..=3 {
        parts.push(("nav link", rect(&c, &format!("header nav li:nth-child({i}) a")).await));
    }
    for (name, r) in &parts {
        assert!(r[0] >= 0.0 && r[2] <= width, "{name} {r:?} is off the screen");
    }
    no_overlap(&parts);
    shot(&c, "app-phone.png").await;

    // 4. Delete asks first, then says what happened by name.
    c.set_window_size(1100, 900).await.unwrap();
    c.goto(&server.url(&format!("/console/apps/{}", quiz.id))).await.unwrap();
    click(&c, "form[action$='/delete'] button").await;
    text_with(&c, "h1", "Delete Quiz Bot?").await;
    shot(&c, "confirm-delete.png").await;
    assert!(server.auth.store.find_client(&quiz.id).await.unwrap().is_some(), "not deleted before confirming");
    click(&c, "#confirm").await;
    assert_eq!(text(&c, "#notice").await, "Deleted Quiz Bot: its tokens were revoked.");
    assert!(server.auth.store.find_client(&quiz.id).await.unwrap().is_none());
    c.close().await.unwrap();
}
