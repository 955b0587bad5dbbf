//! Running it in production: start-up, shutdown, the key beside the data.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::binary::{gatehouse, serve, BIN};

#[test]
fn listening_on_every_address_without_an_issuer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env_remove("GATEHOUSE_ISSUER")
        .env("GATEHOUSE_MANAGEMENT_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served with an issuer of 0.0.0.0: {err}");
    assert!(err.contains("needs --issuer") && err.contains("never right"), "{err}");
}

#[test]
fn the_start_up_line_names_version_address_issuer_database_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let log = server.log.lock().unwrap().clone();
    let line = log.lines().find(|l| l.contains("gatehouse listening")).expect("a start-up line");
    let db = dir.path().join("gatehouse.db");
    let key = dir.path().join("gatehouse.key");
    for part in [
        format!("version={}", env!("CARGO_PKG_VERSION")),
        format!("local={}", server.base.trim_start_matches("http://")),
        format!("issuer={}", server.base),
        "database=sqlite gatehouse.db".to_string(),
        "key=file gatehouse.key".to_string(),
    ] {
        assert!(line.contains(&part), "{part:?} missing from {line}");
    }
    assert!(db.exists() && key.exists());
}

/// SIGTERM while a request is half sent: the server stops accepting, answers that
/// request, and exits 0.
#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let addr = server.base.trim_start_matches("http://").to_string();
    let body = "grant_type=client_credentials&client_id=nobody&client_secret=nothing";
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        conn,
        "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    conn.flush().unwrap();
    // The headers are read and the handler waits for the rest of the body.
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let sent = Instant::now();
    // Stopped accepting: a new connection is refused (or closed unanswered).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::net::TcpStream::connect(&addr) {
            Err(_) => break,
            Ok(mut late) => {
                late.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                let _ = write!(late, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                let mut buf = [0u8; 64];
                if matches!(late.read(&mut buf), Ok(0) | Err(_)) {
                    break;
                }
                assert!(Instant::now() < deadline, "still answering new connections after SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    conn.write_all(body[10..].as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "the request in flight was not answered: {answer:?}");
    assert!(answer.contains("invalid_client"), "{answer}");
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", server.log.lock().unwrap());
    assert!(server.log.lock().unwrap().contains("stopped"));
}

fn key_list(cwd: &Path, url: &str) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["--database-url", url, "keys", "list", "--json"])
        .current_dir(cwd)
        .env_remove("GATEHOUSE_KEY_ENCRYPTION_KEY")
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn the_key_lives_beside_the_database_wherever_gatehouse_is_started() {
    let (data, elsewhere, third) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = data.path().join("prod.db");
    let url = format!("sqlite://{}", db.display());
    let (ok, out, err) = gatehouse(elsewhere.path(), &["--database-url", &url, "keys", "rotate", "--json"], None);
    assert!(ok, "{out}{err}");
    let key = data.path().join("prod.key");
    assert!(key.exists(), "no key beside the database");
    assert!(std::fs::read_dir(elsewhere.path()).unwrap().next().is_none(), "a stray file where the command ran");
    // From a third directory: the same key opens the sealed signing key.
    let (ok, out, err) = key_list(third.path(), &url);
    assert!(ok, "{err}");
    assert!(out.contains("\"kid\""), "{out}");
    assert!(std::fs::read_dir(third.path()).unwrap().next().is_none(), "a stray file where the command ran");
    // The key gone: a clear error naming both files, and no new key.
    std::fs::rename(&key, data.path().join("moved-away")).unwrap();
    let (ok, _, err) = key_list(third.path(), &url);
    assert!(!ok, "a missing key was replaced");
    assert!(err.contains(&db.display().to_string()) && err.contains(&key.display().to_string()), "{err}");
    assert!(!key.exists(), "a fresh key was made for a database with sealed keys");
    // Where an older Gatehouse left it (the working directory), the error says so.
    std::fs::rename(data.path().join("moved-away"), third.path().join("gatehouse.key")).unwrap();
    let (ok, _, err) = key_list(third.path(), &url);
    assert!(!ok && err.contains("an older Gatehouse kept it in gatehouse.key"), "{err}");
}

#[test]
fn postgres_deployments_must_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the key is asked for before anything is connected.
    let (ok, _, err) = key_list(dir.path(), "postgres://gatehouse:secret@127.0.0.1:1/gatehouse");
    assert!(!ok);
    assert!(err.contains("key_file") && err.contains("GATEHOUSE_KEY_ENCRYPTION_KEY"), "{err}");
    assert!(!err.contains("secret"), "the password was printed: {err}");
}

/// Alice (password `common::PASSWORD`) and a confidential client made with the CLI in
/// `dir`: (client_id, client_secret).
fn alice_and_client(dir: &Path) -> (String, String) {
    let (ok, out, err) = gatehouse(
        dir,
        &["user", "add", "--login", "alice", "--email", "alice@example.com", "--password-stdin"],
        Some(&format!("{}\n", crate::common::PASSWORD)),
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        gatehouse(dir, &["client", "create", "--name", "Bot", "--owner", "alice", "--redirect-uri", crate::common::REDIRECT, "--json"], None);
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    (created["client_id"].as_str().unwrap().to_string(), created["client_secret"].as_str().unwrap().to_string())
}

async fn scrape(management: &str) -> String {
    let res = reqwest::get(format!("{management}/metrics")).await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    res.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as written), or 0.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tokens_errors_sign_ins_limits_and_reuse() {
    use crate::common::{code_query, query_param, Browser, PASSWORD, REDIRECT};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gatehouse.toml"), "[rate_limits]\ntoken = 6\n[policy]\nrefresh_reuse_grace = 0\n").unwrap();
    let (id, secret) = alice_and_client(d);
    let server = crate::binary::serve(d);
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let (http, url) = (http.clone(), format!("{}/oauth2/token", server.base));
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    let app = || vec![("grant_type", "client_credentials".to_string()), ("client_id", id.clone()), ("client_secret", secret.clone())];
    for _ in 0..2 {
        assert_eq!(token(app()).await.status(), 200);
    }
    // A code flow, then the refresh token used twice: the second is a reuse.
    let browser = Browser::at(&server.base);
    assert_eq!(browser.sign_in("alice", "wrong-password-here").await.status(), 401);
    let url = browser.authorize_and_allow(&code_query(&id, "user_read", ""), "alice").await;
    let code = query_param(&url, "code").unwrap_or_else(|| panic!("no code in {url}"));
    let mut exchange = app();
    exchange[0].1 = "authorization_code".into();
    exchange.extend([("code", code), ("redirect_uri", REDIRECT.to_string())]);
    let res = token(exchange).await;
    assert_eq!(res.status(), 200);
    let refresh = res.json::<serde_json::Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_string();
    let mut again = app();
    again[0].1 = "refresh_token".into();
    again.push(("refresh_token", refresh));
    assert_eq!(token(again.clone()).await.status(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(token(again).await.status(), 400, "a reused refresh token was accepted");
    let mut wrong = app();
    wrong[2].1 = "not-the-secret".into();
    assert_eq!(token(wrong).await.status(), 401);
    // The budget of 6 is spent (2 + code + 2 refreshes + this one): the next is refused.
    let _ = token(app()).await;
    assert_eq!(token(app()).await.status(), 429);
    assert_eq!(http.get(format!("{}/no/such/path/{id}", server.base)).send().await.unwrap().status(), 404);
    // Not on the public listener.
    assert_eq!(http.get(format!("{}/metrics", server.base)).send().await.unwrap().status(), 404);

    let text = scrape(&server.management).await;
    let expect = |series: &str, at_least: f64| {
        let v = sample(&text, series);
        assert!(v >= at_least, "{series} = {v}, expected at least {at_least}\n{text}");
    };
    expect(r#"gatehouse_http_requests_total{route="/oauth2/token",status="200"}"#, 5.0);
    expect(r#"gatehouse_http_requests_total{route="/oauth2/token",status="429"}"#, 1.0);
    expect(r#"gatehouse_http_requests_total{route="unmatched",status="404"}"#, 2.0);
    expect(r#"gatehouse_http_request_duration_seconds_count{route="/oauth2/token"}"#, 8.0);
    expect(r#"gatehouse_tokens_issued_total{grant_type="client_credentials"}"#, 3.0);
    expect(r#"gatehouse_tokens_issued_total{grant_type="authorization_code"}"#, 1.0);
    expect(r#"gatehouse_tokens_issued_total{grant_type="refresh_token"}"#, 1.0);
    expect(r#"gatehouse_token_errors_total{error="invalid_client"}"#, 1.0);
    expect(r#"gatehouse_token_errors_total{error="invalid_grant"}"#, 1.0);
    expect("gatehouse_refresh_token_reuse_total", 1.0);
    expect(r#"gatehouse_sign_ins_total{outcome="failure"}"#, 1.0);
    expect(r#"gatehouse_sign_ins_total{outcome="success"}"#, 1.0);
    expect(r#"gatehouse_rate_limited_total{bucket="token"}"#, 1.0);
    expect("gatehouse_store_batch_size_count", 1.0);
    expect("gatehouse_store_batch_commit_seconds_count", 1.0);
    expect(r#"gatehouse_db_connections{state="idle"}"#, 1.0);
    expect(&format!(r#"gatehouse_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION")), 1.0);
    // Bounded labels: no raw path, no client id, no secret.
    assert!(!text.contains("/no/such") && !text.contains(&id) && !text.contains(&secret) && !text.contains(PASSWORD), "{text}");
}

async fn status_of(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_when_the_sqlite_file_is_moved_away_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let db = dir.path().join("gatehouse.db");
    let ready = format!("{}/readyz", server.management);
    assert_eq!(status_of(&ready).await, (200, "ready\n".to_string()));
    assert_eq!(status_of(&format!("{}/healthz", server.management)).await.0, 200);

    // A database without this build's last migration (an old backup put back, say).
    let sql = rusqlite::Connection::open(&db).unwrap();
    let hide = "UPDATE _sqlx_migrations SET version = -version WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)";
    sql.execute(hide, []).unwrap();
    let (status, body) = status_of(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("migration"), "{body}");
    sql.execute("UPDATE _sqlx_migrations SET version = -version WHERE version < 0", []).unwrap();
    drop(sql);
    assert_eq!(status_of(&ready).await.0, 200);

    std::fs::rename(&db, dir.path().join("elsewhere.db")).unwrap();
    let (status, body) = status_of(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("gatehouse.db") && body.contains("gone"), "{body}");
    // Liveness does not depend on the database.
    assert_eq!(status_of(&format!("{}/healthz", server.base)).await.0, 200);
    assert_eq!(status_of(&format!("{}/healthz", server.management)).await.0, 200);

    std::fs::rename(dir.path().join("elsewhere.db"), &db).unwrap();
    assert_eq!(status_of(&ready).await.0, 200, "the same file back is ready again");

    // A copy put in its place is another file: writes would go to the one open.
    std::fs::copy(&db, dir.path().join("copy.db")).unwrap();
    std::fs::rename(dir.path().join("copy.db"), &db).unwrap();
    let (status, body) = status_of(&ready).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("replaced"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (GATEHOUSE_TEST_POSTGRES_URL)"]
async fn readiness_on_postgres_flips_when_the_database_goes_away() {
    use sqlx::Connection;
    let Some(pg) = crate::common::PgDatabase::create().await else { return };
    let server = crate::common::TestServer::start_on(Some(&pg.url), Default::default(), Default::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ready = format!("http://{}/readyz", listener.local_addr().unwrap());
    let state = gatehouse_server::AppState::new(server.auth.clone(), Default::default());
    tokio::spawn(gatehouse_server::serve_management(listener, state, std::future::pending()));
    assert_eq!(status_of(&ready).await, (200, "ready\n".to_string()));

    let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
    let run = |sql: String| sqlx::raw_sql(Box::leak(sql.into_boxed_str()));
    // Closed to connections, and those it had ended: the database is away.
    run(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", pg.name)).execute(&mut admin).await.unwrap();
    run(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'", pg.name))
        .execute(&mut admin)
        .await
        .unwrap();
    let (status, body) = status_of(&ready).await;
    assert_eq!(status, 503, "{body}");
    // Back: ready again once the pool reconnects.
    run(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", pg.name)).execute(&mut admin).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&ready).await.0 != 200 {
        assert!(Instant::now() < deadline, "not ready again after the database came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Dropped for good.
    run(format!("DROP DATABASE {} WITH (FORCE)", pg.name)).execute(&mut admin).await.unwrap();
    let (status, body) = status_of(&ready).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_the_response_returns_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = alice_and_client(dir.path());
    let server = crate::binary::serve_with(dir.path(), None, &[("GATEHOUSE_LOG_FORMAT", "json"), ("GATEHOUSE_TRUST_REQUEST_ID", "true")]);
    let http = reqwest::Client::new();
    let form = [("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)];
    let res = http.post(format!("{}/oauth2/token", server.base)).header("x-request-id", "edge-42.a").form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "edge-42.a", "a trusted id is kept");
    let access = res.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    // One that could forge a log line is replaced.
    let res = http.get(format!("{}/healthz", server.base)).header("x-request-id", "bad\"id").send().await.unwrap();
    let fresh = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(fresh.len() == 16 && fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");
    let res = http.get(format!("{}/oauth2/validate", server.base)).header("authorization", format!("OAuth {access}")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    std::thread::sleep(Duration::from_millis(300));

    let log = server.log.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let request = |rid: &str| lines.iter().find(|l| l["message"] == "request" && l["request_id"] == rid).cloned();
    let token_line = request("edge-42.a").unwrap_or_else(|| panic!("no request line with the id\n{log}"));
    assert_eq!(token_line["path"], "/oauth2/token");
    assert_eq!(token_line["status"], 200);
    assert!(request(&fresh).is_some(), "no request line with {fresh}\n{log}");
    assert!(lines.iter().any(|l| l["message"] == "gatehouse listening" && l["management"].is_string()));
    assert!(!log.contains(&secret) && !log.contains(&access), "a secret or token in the log");
}

#[test]
fn management_off_serves_no_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = crate::binary::serve_with(dir.path(), None, &[("GATEHOUSE_MANAGEMENT_LISTEN", "off")]);
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("management=off"), "{log}");
    assert_eq!(server.management, "http://off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_request_id_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let res = reqwest::Client::new().get(format!("{}/healthz", server.base)).header("x-request-id", "mine").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "mine");
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.log.lock().unwrap().contains(&format!("request_id={id}")), "text logs carry the id too");
}

#[test]
fn config_check_prints_the_settings_in_effect_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        format!("database_url = \"postgres://gh:hunter2@db.internal/gh\"\nkey_encryption_key = \"{key}\"\n[policy]\naccess_token_ttl = 900\n"),
    )
    .unwrap();
    let (ok, out, err) = gatehouse(dir.path(), &["config", "check"], None);
    assert!(ok, "{err}");
    for line in [
        "database_url = \"postgres://gh:***@db.internal/gh\"",
        "management_listen = \"127.0.0.1:9091\"",
        "log_format = \"text\"",
        "key_source = \"config key_encryption_key\"",
        "[policy]",
        "access_token_ttl = 900",
        "code_ttl = 60",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} missing from\n{out}");
    }
    assert!(!out.contains("hunter2") && !out.contains(key), "a secret printed:\n{out}");
    // Nothing was opened or created.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    for (bad, named) in [
        ("lissen = \"127.0.0.1:1\"\n", "lissen"),
        ("max_connections = 0\n", "max_connections"),
        ("log_format = \"xml\"\n", "log_format"),
        ("[policy]\ncode_ttl = 9000\n", "code_ttl"),
    ] {
        std::fs::write(dir.path().join("gatehouse.toml"), bad).unwrap();
        let (ok, out, err) = gatehouse(dir.path(), &["config", "check"], None);
        assert!(!ok, "{bad:?} passed: {out}");
        assert!(err.contains(named), "{bad:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_show_and_listings_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = alice_and_client(dir.path());
    let (ok, out, err) = gatehouse(dir.path(), &["client", "show", &id, "--json"], None);
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["owner"], "alice");
    assert_eq!(shown["type"], "confidential");
    assert_eq!(shown["redirect_uris"][0], crate::common::REDIRECT);
    assert!(!out.contains(&secret) && !out.contains("hash"), "{out}");
    let (ok, out, _) = gatehouse(dir.path(), &["client", "show", &id], None);
    assert!(ok && out.contains("owner:") && out.contains("alice"), "{out}");
    let (ok, _, err) = gatehouse(dir.path(), &["client", "show", "nope"], None);
    assert!(!ok && err.contains("no application"), "{err}");

    let (ok, out, err) = gatehouse(dir.path(), &["client", "list", "--json"], None);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(list["clients"][0]["client_id"], id.as_str());
    let (ok, out, err) = gatehouse(dir.path(), &["keys", "list", "--json"], None);
    assert!(ok, "{err}");
    let keys: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(keys["keys"].is_array(), "{out}");
}
