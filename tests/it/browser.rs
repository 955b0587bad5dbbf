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
    // Wait: a click that submits a form returns before the next page has loaded.
    match c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => {
            let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let page = c.source().await.unwrap_or_default();
            panic!("{css}: {e}\nat {url}:\n{page}")
        }
    }
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
    click(&c, "button[type=submit]").await;
    c.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css("a[href='/console/apps/new']")).await.expect("the console after sign-up");
    assert!(c.current_url().await.unwrap().as_str().ends_with("/console"));

    // Register an application.
    click(&c, "a[href='/console/apps/new']").await;
    fill(&c, "#name", "Chat Overlay").await;
    fill(&c, "#redirect_uris", &callback).await;
    c.find(Locator::Css("#category option[value=chat_bot]")).await.unwrap().click().await.unwrap();
    click(&c, "button[type=submit]").await;
    let client_id = text(&c, "#client-id").await;
    let secret = text(&c, "#client-secret").await;
    assert_eq!((client_id.len(), secret.len()), (30, 50));
    // The copy button is there (the script reveals it), and the page says the secret is shown once.
    assert!(c.find(Locator::Css("button[data-copy=client-secret]")).await.unwrap().is_displayed().await.unwrap());
    assert!(c.source().await.unwrap().contains("only time the secret is shown"));
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
    let done = c.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath("//*[contains(text(), 'Disconnected')]")).await;
    assert!(done.is_ok(), "{}", c.source().await.unwrap());
    assert_eq!(server.validate(&at).await, StatusCode::UNAUTHORIZED);

    // New Secret: the old one is refused.
    c.goto(&server.url(&format!("/console/apps/{client_id}"))).await.unwrap();
    click(&c, "form[action$='/secret'] button").await;
    let new_secret = text(&c, "#client-secret").await;
    assert_ne!(new_secret, secret);
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
