//! `gatehouse token`, the real binary against a real server: app tokens, remembered
//! credentials, validate and revoke with exit codes, and the user and device flows
//! completed by a test that plays the browser.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use gatehouse_core::model::ClientKind;
use gatehouse_core::registration::{register, NewClient};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn token_cmd(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .env("GATEHOUSE_CLI_CONFIG", config)
        .env_remove("GATEHOUSE_SERVER")
        .env_remove("GATEHOUSE_CLIENT_SECRET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_token_validate_revoke_and_remembered_credentials() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.json");
    let secret = f.client.secret.clone().unwrap();
    let (code, out, err) = token_cmd(&cfg, &["--server", &f.server.base, "--client-id", &f.client.id, "--client-secret", &secret, "--json"]);
    assert_eq!(code, 0, "{err}");
    let t: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let at = s(&t, "access_token");
    assert!(t["refresh_token"].is_null());

    // Remembered: no flags needed now, and the file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let (code, out, _) = token_cmd(&cfg, &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("App Access Token: "), "{out}");
    assert!(!out.contains(&secret) && !token_cmd(&cfg, &["-v", &at]).1.contains(&secret), "the secret is never printed");

    let (code, out, _) = token_cmd(&cfg, &["-v", &at, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["client_id"], f.client.id.as_str());
    let (code, _, _) = token_cmd(&cfg, &["-r", &at]);
    assert_eq!(code, 0);
    let (code, _, err) = token_cmd(&cfg, &["-v", &at]);
    assert_eq!(code, 1, "a refused token is exit code 1: {err}");
    assert!(err.contains("invalid_token"));

    // Refresh a user token from the command line.
    let user = f.tokens("user_read").await;
    let (code, out, _) = token_cmd(&cfg, &["--refresh", &s(&user, "refresh_token"), "--json"]);
    assert_eq!(code, 0);
    assert!(serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["refresh_token"].is_string());

    // Usage and network failures have their own codes.
    let empty = dir.path().join("none.json");
    assert_eq!(token_cmd(&empty, &["--server", &f.server.base]).0, 2);
    assert_eq!(token_cmd(&empty, &["--server", "http://127.0.0.1:9", "--client-id", "x"]).0, 3);
}

async fn cli_client(f: &Fixture) -> TestClient {
    let new = NewClient {
        name: "Gatehouse CLI".into(),
        owner_user_id: f.user.id.clone(),
        category: "other".into(),
        kind: ClientKind::Public,
        allow_implicit: false,
        redirect_uris: vec!["http://localhost:3000".into()],
        jwt_access_tokens: false,
    };
    let (c, secret) = register(&f.server.auth, new).await.unwrap();
    TestClient { id: c.id, secret }
}

/// Runs `gatehouse token ARGS` and hands each stderr line to `on_line` until it says stop.
fn spawn_token(cfg: &std::path::Path, args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("token")
        .args(args)
        .env("GATEHOUSE_CLI_CONFIG", cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_token_flow_completed_by_a_test_playing_the_browser() {
    let f = Fixture::new().await;
    let cli = cli_client(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.json");
    // Port 0: a free port; loopback redirects may use any port (RFC 8252).
    let (child, lines) = spawn_token(&cfg, &["-u", "-s", "user_read chat_login", "--server", &f.server.base, "--client-id", &cli.id, "--port", "0", "--no-browser", "--json"]);
    let url = tokio::task::spawn_blocking(move || loop {
        let line = lines.recv_timeout(std::time::Duration::from_secs(30)).expect("the CLI prints the URL");
        if line.starts_with("http") {
            return line;
        }
    })
    .await
    .unwrap();
    let query = url.split_once('?').unwrap().1;
    assert!(query.contains("code_challenge_method=S256"), "PKCE: {url}");
    let callback = f.browser.authorize_and_allow(query, "alice").await;
    assert!(callback.starts_with("http://localhost:"), "{callback}");
    let callback = callback.replacen("localhost", "127.0.0.1", 1);
    let page = reqwest::get(&callback).await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    // The landing page wears the server's stylesheet, and says Done once tokens are in.
    let body = page.text().await.unwrap();
    assert!(body.contains(&format!("<link rel=\"stylesheet\" href=\"{}/static/style.css\">", f.server.base)), "{body}");
    assert!(body.contains("<h1>Done</h1>"), "{body}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["scopes"], serde_json::json!(["chat_login", "user_read"]));
    assert!(t["refresh_token"].is_string());
    assert_eq!(f.server.validate(&s(&t, "access_token")).await, reqwest::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_prints_the_code_polls_and_prints_tokens() {
    let f = Fixture::new().await;
    let cli = cli_client(&f).await;
    // The device polls in real time; let the server's clock keep pace.
    let clock = f.server.clock.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            clock.advance(1);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.json");
    let (child, lines) = spawn_token(&cfg, &["--device", "-s", "chat_login", "--server", &f.server.base, "--client-id", &cli.id, "--json"]);
    let code = tokio::task::spawn_blocking(move || loop {
        let line = lines.recv_timeout(std::time::Duration::from_secs(30)).expect("the CLI prints the code");
        if let Some(rest) = line.split("enter the code ").nth(1) {
            return rest.trim().to_string();
        }
    })
    .await
    .unwrap();
    assert_eq!(code.len(), 9, "{code}");
    // Approve at /activate like a person would.
    f.browser.sign_in("alice", PASSWORD).await;
    let page = f.browser.http.get(f.server.url("/activate")).send().await.unwrap().text().await.unwrap();
    let csrf = form_fields(&page, "/activate").into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let res = f.browser.http.post(f.server.url("/activate")).form(&[("csrf", csrf.as_str()), ("user_code", code.as_str())]).send().await.unwrap();
    let mut form = form_fields(&res.text().await.unwrap(), "/activate");
    form.push(("decision".into(), "allow".into()));
    f.browser.http.post(f.server.url("/activate")).form(&form).send().await.unwrap();

    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    ticker.abort();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["scopes"], serde_json::json!(["chat_login"]));
    assert_eq!(f.server.validate(&s(&t, "access_token")).await, reqwest::StatusCode::OK);
}

async fn loopback_client(f: &Fixture, kind: ClientKind) -> TestClient {
    let new = NewClient {
        name: format!("Local {}", kind.as_str()),
        owner_user_id: f.user.id.clone(),
        category: "other".into(),
        kind,
        allow_implicit: false,
        redirect_uris: vec!["http://localhost:3000".into()],
        jwt_access_tokens: false,
    };
    let (c, secret) = register(&f.server.auth, new).await.unwrap();
    TestClient { id: c.id, secret }
}

/// Waits for the command to end, at most `secs` seconds (then kills it and fails).
fn finish_within(mut child: std::process::Child, secs: u64) -> (i32, String, String) {
    use std::io::Read;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            child.stdout.take().map(|mut o| o.read_to_string(&mut out));
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            return (status.code().unwrap_or(-1), out, err);
        }
        if started.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn run_token(cfg: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .arg("token")
        .args(args)
        .env("GATEHOUSE_CLI_CONFIG", cfg)
        .env_remove("GATEHOUSE_SERVER")
        .env_remove("GATEHOUSE_CLIENT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_not_remembered() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.json");
    let (code, _, err) = token_cmd(&cfg, &["--server", &f.server.base, "--client-id", &f.client.id, "--client-secret", "wrong"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid_client"), "{err}");
    assert!(!cfg.exists(), "a refused secret was saved: {}", std::fs::read_to_string(&cfg).unwrap_or_default());
    let (code, _, err) = token_cmd(&cfg, &["--server", &f.server.base, "--client-id", "no-such-client"]);
    assert_eq!(code, 1, "{err}");
    assert!(!cfg.exists(), "an unknown client id was saved");

    // Accepted, they are remembered; a later refused secret does not replace them.
    let secret = f.client.secret.clone().unwrap();
    assert_eq!(token_cmd(&cfg, &["--server", &f.server.base, "--client-id", &f.client.id, "--client-secret", &secret]).0, 0);
    assert_eq!(token_cmd(&cfg, &["--client-secret", "wrong-again"]).0, 1);
    let saved = std::fs::read_to_string(&cfg).unwrap();
    assert!(saved.contains(&secret) && !saved.contains("wrong-again"), "{saved}");
    assert_eq!(token_cmd(&cfg, &[]).0, 0, "the accepted credentials still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_token_fails_fast_on_an_unregistered_redirect_or_a_wrong_secret() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.json");
    // My Bot registers http://localhost:3000/callback, not http://localhost:PORT.
    let secret = f.client.secret.clone().unwrap();
    let child = run_token(&cfg, &["-u", "--server", &f.server.base, "--client-id", &f.client.id, "--client-secret", &secret, "--port", "0", "--no-browser"]);
    let (code, _, err) = tokio::task::spawn_blocking(move || finish_within(child, 20)).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("register http://localhost:") && err.contains("in the console"), "says the fix: {err}");
    assert!(!err.contains("Open this URL"), "nobody is sent to the browser: {err}");

    // A wrong secret: said at once, before the browser.
    let local = loopback_client(&f, ClientKind::Confidential).await;
    let child = run_token(&cfg, &["-u", "--server", &f.server.base, "--client-id", &local.id, "--client-secret", "wrong", "--port", "0", "--no-browser"]);
    let (code, _, err) = tokio::task::spawn_blocking(move || finish_within(child, 20)).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid_client") && !err.contains("Open this URL"), "{err}");

    // Nobody comes back: a clear time-out.
    let child = run_token(&cfg, &["-u", "--server", &f.server.base, "--client-id", &local.id, "--client-secret", local.secret.as_deref().unwrap(), "--port", "0", "--no-browser", "--timeout", "2"]);
    let (code, _, err) = tokio::task::spawn_blocking(move || finish_within(child, 20)).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out after 2 s"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_hears_done_only_once_the_tokens_are_in_hand() {
    let f = Fixture::new().await;
    let local = loopback_client(&f, ClientKind::Confidential).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.json");
    let secret = local.secret.clone().unwrap();
    let (child, lines) = spawn_token(&cfg, &["-u", "-s", "user_read", "--server", &f.server.base, "--client-id", &local.id, "--client-secret", &secret, "--port", "0", "--no-browser"]);
    let url = tokio::task::spawn_blocking(move || loop {
        let line = lines.recv_timeout(std::time::Duration::from_secs(30)).expect("the CLI prints the URL");
        if line.starts_with("http") {
            return line;
        }
    })
    .await
    .unwrap();
    let callback = f.browser.authorize_and_allow(url.split_once('?').unwrap().1, "alice").await;
    // The secret changes while the person is in the browser: the exchange will fail.
    gatehouse_core::registration::rotate_secret(&f.server.auth, &local.id, None).await.unwrap();
    let page = reqwest::get(callback.replacen("localhost", "127.0.0.1", 1)).await.unwrap().text().await.unwrap();
    assert!(!page.contains("<h1>Done</h1>") && page.contains("Not authorized"), "{page}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_needs_no_client_revoke_says_what_happened_and_a_busy_port_suggests_another() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none.json");
    let t = f.tokens("user_read").await;
    let (code, out, err) = token_cmd(&empty, &["--server", &f.server.base, "-v", &s(&t, "access_token")]);
    assert_eq!(code, 0, "validate needs no client id: {err}");
    assert!(out.contains("User: alice"), "{out}");

    let secret = f.client.secret.clone().unwrap();
    let me = ["--server", f.server.base.as_str(), "--client-id", f.client.id.as_str(), "--client-secret", secret.as_str()];
    let (code, out, _) = token_cmd(&empty, &[&me[..], &["-r", "notarealtoken"]].concat());
    assert_eq!(code, 0);
    assert!(!out.contains("Token revoked.") && out.contains("not a live access token"), "{out}");
    let (code, out, _) = token_cmd(&empty, &[&me[..], &["-r", &s(&t, "access_token")]].concat());
    assert_eq!((code, out.trim()), (0, "Access token revoked."));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let cli = cli_client(&f).await;
    let (code, _, err) = token_cmd(&empty, &["-u", "--server", &f.server.base, "--client-id", &cli.id, "--port", &port, "--no-browser"]);
    assert_eq!(code, 4, "a local problem: {err}");
    assert!(err.contains(&format!("port {port} is already in use")) && err.contains("--port"), "{err}");
}

/// Runs `gatehouse ARGS --help`.
fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of a help section ("Options:", "Commands:", "Arguments:").
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().skip_while(|l| *l != name).skip(1).take_while(|l| !l.is_empty()).collect()
}

#[test]
fn every_option_of_every_command_has_a_description() {
    let mut missing = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        for line in section(&text, "Commands:") {
            let name = line.split_whitespace().next().unwrap();
            if name != "help" {
                todo.push(path.iter().cloned().chain([name.to_string()]).collect());
            }
        }
        for name in ["Options:", "Arguments:"] {
            let lines = section(&text, name);
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                if !(t.starts_with('-') || t.starts_with('<') || t.starts_with('[')) {
                    continue;
                }
                // "--flag <VALUE>  Description", or the description on the next line.
                let described = t.split("  ").filter(|p| !p.trim().is_empty()).count() >= 2
                    || lines.get(i + 1).is_some_and(|next| {
                        let n = next.trim_start();
                        next.len() - n.len() > line.len() - t.len() && !n.starts_with('-')
                    });
                if !described {
                    missing.push(format!("gatehouse {}: {t}", args.join(" ")));
                }
            }
        }
    }
    assert!(missing.is_empty(), "options without a description:\n{}", missing.join("\n"));
    let token = help(&["token"]);
    assert!(!token.contains("--database-url") && !token.contains("--config"), "token is a client command: {token}");
    assert!(help(&["user", "add"]).contains("--database-url"), "the admin commands keep it");
}
