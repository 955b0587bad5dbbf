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
