//! The test server and a scripted browser.

use std::sync::Arc;

use gatehouse_core::clock::ManualClock;
use gatehouse_core::model::ClientKind;
use gatehouse_core::policy::Policy;
use gatehouse_core::registration::{self, NewClient};
use gatehouse_core::{accounts, Authority};
use gatehouse_server::{AppState, ServerConfig};
use reqwest::redirect::Policy as RedirectPolicy;
use reqwest::StatusCode;
use url::Url;

pub const PASSWORD: &str = "correct-horse-battery";
pub const REDIRECT: &str = "http://localhost:3000/callback";

pub struct TestServer {
    pub base: String,
    pub auth: Authority,
    pub clock: Arc<ManualClock>,
    pub db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Policy::default(), ServerConfig::default()).await
    }

    pub async fn start_with(policy: Policy, config: ServerConfig) -> TestServer {
        Self::start_on(None, policy, config).await
    }

    /// Starts a server on `database_url`, or on a fresh SQLite file when None.
    pub async fn start_on(database_url: Option<&str>, policy: Policy, config: ServerConfig) -> TestServer {
        Self::start_on_with(database_url, policy, config, Default::default()).await
    }

    /// `start_on`, with the store's own options.
    pub async fn start_on_with(
        database_url: Option<&str>,
        policy: Policy,
        mut config: ServerConfig,
        options: gatehouse_store::StoreOptions,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_path = dir.path().join("gatehouse.db");
        let url = database_url.map(str::to_string).unwrap_or_else(|| format!("sqlite://{}", db_path.display()));
        let store = gatehouse_store::open_with(&url, options).await.expect("open store");
        let clock = Arc::new(ManualClock::new());
        let mut auth = Authority::new(store);
        auth.policy = policy;
        auth.clock = clock.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        if config.issuer == ServerConfig::default().issuer {
            config.issuer = base.clone();
        }
        auth.issuer = config.issuer.as_str().into();
        auth.keyring = Some(Arc::new(gatehouse_core::oidc::Keyring::new(gatehouse_core::oidc::KeyEncryptionKey::generate().0)));
        let state = AppState::new(auth.clone(), config);
        let task = tokio::spawn(async move {
            gatehouse_server::serve(listener, state, std::future::pending()).await.expect("serve");
        });
        TestServer { base, auth, clock, db_path, _dir: dir, _task: task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn add_user(&self, login: &str) -> gatehouse_core::model::User {
        accounts::create_user(&self.auth, login, &format!("{login}@example.com"), PASSWORD).await.expect("user")
    }

    pub async fn add_client(&self, name: &str, owner: &gatehouse_core::model::User, kind: ClientKind, implicit: bool) -> TestClient {
        let new = NewClient {
            name: name.into(),
            owner_user_id: owner.id.clone(),
            category: "chat_bot".into(),
            kind,
            allow_implicit: implicit,
            redirect_uris: vec![REDIRECT.into(), "http://127.0.0.1/native".into()],
            jwt_access_tokens: false,
        };
        let (c, secret) = registration::register(&self.auth, new).await.expect("client");
        TestClient { id: c.id, secret }
    }

    /// An HTTP client that does not follow redirects, as a client library must not.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().redirect(RedirectPolicy::none()).build().expect("client")
    }

    /// A browser: keeps cookies, does not follow redirects so each step can be seen.
    pub fn browser(&self) -> Browser {
        Browser::at(&self.base)
    }

    /// Posts a form to the token endpoint with client_secret_post credentials.
    pub async fn token(&self, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
        let mut all: Vec<(&str, &str)> = form.to_vec();
        all.push(("client_id", &client.id));
        if let Some(s) = &client.secret {
            all.push(("client_secret", s));
        }
        let res = self.http().post(self.url("/oauth2/token")).form(&all).send().await.expect("token request");
        let status = res.status();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn validate(&self, access_token: &str) -> StatusCode {
        self.http()
            .get(self.url("/oauth2/validate"))
            .header("Authorization", format!("OAuth {access_token}"))
            .send()
            .await
            .expect("validate")
            .status()
    }
}

pub struct Browser {
    pub http: reqwest::Client,
    base: String,
}

/// Reads the `value` of each `<input type="hidden">` in a page, undoing HTML escapes.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in html.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| -> Option<String> {
            let start = chunk.find(&format!("{name}=\""))? + name.len() + 2;
            let end = chunk[start..].find('"')? + start;
            Some(unescape(&chunk[start..end]))
        };
        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
            out.push((n, v));
        }
    }
    out
}

/// The hidden fields of the consent form alone (the page has a sign-out form too).
pub fn consent_form_fields(html: &str) -> Vec<(String, String)> {
    form_fields(html, "/oauth2/authorize")
}

/// The hidden fields of the form that posts to `action`.
pub fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    // A templated action is HTML-escaped: "/" may arrive as "&#x2f;".
    let start = html
        .find(&format!("action=\"{action}\""))
        .or_else(|| html.find(&format!("action=\"{}\"", action.replace('/', "&#x2f;"))))
        .unwrap_or_else(|| panic!("no form for {action}: {html}"));
    let end = html[start..].find("</form>").expect("form end") + start;
    hidden_inputs(&html[start..end])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub fn fragment_param(url: &str, name: &str) -> Option<String> {
    let frag = Url::parse(url).ok()?.fragment()?.to_string();
    url::form_urlencoded::parse(frag.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// What the browser ended on after an authorize request.
#[derive(Debug)]
pub enum Outcome {
    /// Sent back to the client: the full redirect URL.
    Redirected(String),
    /// Shown the consent page: its hidden fields.
    Consent(Vec<(String, String)>),
    /// An error page.
    Page(StatusCode, String),
}

impl Browser {
    /// A fresh browser (its own cookie jar) for the server at `base`.
    pub fn at(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder().cookie_store(true).redirect(RedirectPolicy::none()).build().expect("client"),
            base: base.to_string(),
        }
    }

    /// A fresh browser that sends `agent` as its User-Agent.
    pub fn with_agent(base: &str, agent: &str) -> Browser {
        let http = reqwest::Client::builder().cookie_store(true).redirect(RedirectPolicy::none()).user_agent(agent);
        Browser { http: http.build().expect("client"), base: base.to_string() }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    pub async fn sign_in(&self, login: &str, password: &str) -> reqwest::Response {
        let page = self.http.get(self.url("/login")).send().await.expect("login page").text().await.expect("body");
        let csrf = hidden_inputs(&page).into_iter().find(|(n, _)| n == "csrf").expect("csrf field").1;
        self.http
            .post(self.url("/login"))
            .form(&[("login", login), ("password", password), ("csrf", &csrf), ("next", "/")])
            .send()
            .await
            .expect("login post")
    }

    /// Follows an authorize URL (absolute or a path) through redirects within the server,
    /// signing in on the way if asked, until it leaves the server or shows a page.
    pub async fn authorize(&self, url: &str, login: &str) -> Outcome {
        let mut next = self.url(url);
        for _ in 0..6 {
            let res = self.http.get(&next).send().await.expect("get");
            let status = res.status();
            if status.is_redirection() {
                let loc = location(&res);
                if loc.starts_with("/login") {
                    let page = self.http.get(self.url(&loc)).send().await.expect("login").text().await.expect("body");
                    let fields = hidden_inputs(&page);
                    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
                    let res = self
                        .http
                        .post(self.url("/login"))
                        .form(&[("login", login), ("password", PASSWORD), ("csrf", &get("csrf")), ("next", &get("next"))])
                        .send()
                        .await
                        .expect("login post");
                    assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in failed");
                    next = self.url(&location(&res));
                    continue;
                }
                if loc.starts_with('/') {
                    next = self.url(&loc);
                    continue;
                }
                return Outcome::Redirected(loc);
            }
            let body = res.text().await.expect("body");
            if status == StatusCode::OK && body.contains("action=\"/oauth2/authorize\"") {
                return Outcome::Consent(consent_form_fields(&body));
            }
            return Outcome::Page(status, body);
        }
        panic!("too many redirects");
    }

    /// Answers a consent page with `decision` (allow or deny); returns the redirect URL.
    pub async fn decide(&self, fields: &[(String, String)], decision: &str) -> reqwest::Response {
        let mut form: Vec<(String, String)> = fields.to_vec();
        form.push(("decision".into(), decision.into()));
        self.http.post(self.url("/oauth2/authorize")).form(&form).send().await.expect("decide")
    }

    /// Runs the whole code flow for `query` and returns the redirect URL the client gets.
    pub async fn authorize_and_allow(&self, query: &str, login: &str) -> String {
        match self.authorize(&format!("/oauth2/authorize?{query}"), login).await {
            Outcome::Redirected(url) => url,
            Outcome::Consent(fields) => {
                let res = self.decide(&fields, "allow").await;
                let status = res.status();
                let loc = location(&res);
                assert_eq!(status, StatusCode::SEE_OTHER, "{}", res.text().await.unwrap_or_default());
                loc
            }
            Outcome::Page(s, body) => panic!("unexpected page {s}: {body}"),
        }
    }
}

pub fn code_query(client_id: &str, scope: &str, extra: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st4te");
    let mut s = q.finish();
    if !extra.is_empty() {
        s.push('&');
        s.push_str(extra);
    }
    s
}

/// A server with alice, a confidential client, and a helper to get a code for it.
pub struct Fixture {
    pub server: TestServer,
    pub user: gatehouse_core::model::User,
    pub client: TestClient,
    pub browser: Browser,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::with(TestServer::start().await).await
    }

    pub async fn with(server: TestServer) -> Fixture {
        let user = server.add_user("alice").await;
        let client = server.add_client("My Bot", &user, ClientKind::Confidential, false).await;
        let browser = server.browser();
        Fixture { server, user, client, browser }
    }

    pub async fn code(&self, scope: &str) -> String {
        let url = self.browser.authorize_and_allow(&code_query(&self.client.id, scope, ""), "alice").await;
        query_param(&url, "code").unwrap_or_else(|| panic!("no code in {url}"))
    }

    /// Exchanges a fresh code for tokens; returns the token response.
    pub async fn tokens(&self, scope: &str) -> serde_json::Value {
        let code = self.code(scope).await;
        let (status, body) = self
            .server
            .token(&self.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

pub fn s(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}")).to_string()
}

/// A PostgreSQL database of the test's own, dropped when this is dropped.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database, or None (with the reason printed) when no server is configured.
    pub async fn create() -> Option<PgDatabase> {
        use sqlx::Connection;
        let admin_url = match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is unset");
                }
                eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is unset, so there is no PostgreSQL to test against");
                return None;
            }
        };
        let name = format!("gatehouse_it_{}", gatehouse_core::secret::random_token(12));
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
        let mut url = Url::parse(&admin_url).expect("postgres URL");
        url.set_path(&format!("/{name}"));
        Some(PgDatabase { url: url.to_string(), admin_url, name })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}
