//! `gatehouse user …`, the real binary on a real SQLite file while a server runs on it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::binary::{gatehouse, serve};
use crate::common::{form_fields, hidden_inputs};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("one JSON object, not {out:?}: {e}"))
}

async fn sign_in(base: &str, login: &str, password: &str) -> StatusCode {
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_inputs(&page).into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let form = [("login", login), ("password", password), ("csrf", csrf.as_str()), ("next", "/")];
    http.post(format!("{base}/login")).form(&form).send().await.unwrap().status()
}

/// Polls until `check` holds: another process's write reaches the server's read cache
/// within its staleness (one second) on SQLite.
async fn within_a_second(mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_millis(1500), "not seen within the cache staleness");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn operators_list_show_disable_enable_reset_and_delete_users() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for login in ["alice", "bob"] {
        let (ok, out, err) = gatehouse(d, &["user", "add", "--login", login, "--email", &format!("{login}@example.com"), "--password-stdin"], Some("s3cret-passw0rd\n"));
        assert!(ok, "{out}{err}");
    }
    let (ok, out, err) = gatehouse(d, &["client", "create", "--name", "Alice Bot", "--owner", "alice", "--redirect-uri", "http://localhost:3000/cb", "--json"], None);
    assert!(ok, "{err}");
    let app = json(&out);
    let (app_id, app_secret) = (app["client_id"].as_str().unwrap().to_string(), app["client_secret"].as_str().unwrap().to_string());

    let (ok, out, _) = gatehouse(d, &["user", "list", "--json"], None);
    assert!(ok);
    let list = json(&out);
    let logins: Vec<_> = list["users"].as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap()).collect();
    assert_eq!(logins, ["alice", "bob"]);
    assert_eq!(list["users"][0]["email_verified"], false);
    let (ok, out, _) = gatehouse(d, &["user", "list"], None);
    assert!(ok && out.contains("alice") && out.contains("unverified"), "{out}");

    let (ok, out, _) = gatehouse(d, &["user", "admin", "alice", "--grant", "--json"], None);
    assert!(ok && json(&out)["is_admin"] == true, "{out}");
    let (ok, out, _) = gatehouse(d, &["user", "show", "ALICE", "--json"], None);
    assert!(ok);
    let shown = json(&out);
    assert_eq!((shown["login"].as_str(), shown["is_admin"].as_bool(), shown["disabled"].as_bool()), (Some("alice"), Some(true), Some(false)));
    assert_eq!(shown["applications"][0]["client_id"].as_str(), Some(app_id.as_str()));
    let (ok, _, _) = gatehouse(d, &["user", "admin", "alice", "--revoke"], None);
    assert!(ok);
    let (ok, out, _) = gatehouse(d, &["user", "show", "alice"], None);
    assert!(ok && out.contains("admin:       no"), "{out}");
    let (ok, _, err) = gatehouse(d, &["user", "admin", "alice"], None);
    assert!(!ok && err.contains("--grant"), "one of --grant or --revoke: {err}");
    let (ok, _, err) = gatehouse(d, &["user", "show", "nobody"], None);
    assert!(!ok && err.contains("no user with login \"nobody\""), "{err}");

    let server = serve(d);
    let http = reqwest::Client::new();
    let base = server.base.clone();
    assert_eq!(sign_in(&base, "bob", "s3cret-passw0rd").await, StatusCode::SEE_OTHER);
    // A user token would need a browser flow; an app token of alice's app shows that
    // deleting alice stops her applications' tokens.
    let res = http
        .post(format!("{base}/oauth2/token"))
        .form(&[("client_id", app_id.as_str()), ("client_secret", app_secret.as_str()), ("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let app_token = res.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let validate = |t: String| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}/oauth2/validate")).header("Authorization", format!("OAuth {t}")).send().await.unwrap().status() }
    };
    assert_eq!(validate(app_token.clone()).await, StatusCode::OK);

    // Disable: sign-in is refused (after the password, so only its holder learns why).
    let (ok, out, _) = gatehouse(d, &["user", "disable", "bob"], None);
    assert!(ok && out.contains("disabled bob"), "{out}");
    within_a_second(async || sign_in(&base, "bob", "s3cret-passw0rd").await == StatusCode::FORBIDDEN).await;
    let (ok, out, _) = gatehouse(d, &["user", "enable", "bob", "--json"], None);
    assert!(ok && json(&out)["disabled"] == false);
    within_a_second(async || sign_in(&base, "bob", "s3cret-passw0rd").await == StatusCode::SEE_OTHER).await;

    // set-password: the old one stops, the new one works; weak ones are refused.
    let (ok, _, err) = gatehouse(d, &["user", "set-password", "bob", "--password-stdin"], Some("password\n"));
    assert!(!ok && err.contains("too common"), "{err}");
    let (ok, out, err) = gatehouse(d, &["user", "set-password", "bob", "--password-stdin"], Some("another-s3cret-phrase\n"));
    assert!(ok, "{out}{err}");
    within_a_second(async || sign_in(&base, "bob", "s3cret-passw0rd").await == StatusCode::UNAUTHORIZED).await;
    assert_eq!(sign_in(&base, "bob", "another-s3cret-phrase").await, StatusCode::SEE_OTHER);

    // reset-link: a one-time URL built from the issuer, followed over HTTP.
    let (ok, out, err) = gatehouse(d, &["user", "reset-link", "bob", "--issuer", &base, "--json"], None);
    assert!(ok, "{err}");
    let url = json(&out)["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{base}/reset-password?token=")), "{url}");
    let browser = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(&url).send().await.unwrap().text().await.unwrap();
    let mut form = form_fields(&page, "/reset-password");
    form.push(("password".into(), "reset-by-the-operator".into()));
    let res = browser.post(format!("{base}/reset-password")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sign_in(&base, "bob", "reset-by-the-operator").await, StatusCode::SEE_OTHER);
    let res = browser.post(format!("{base}/reset-password")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "the link works once");
    assert!(!server.log.lock().unwrap().contains(url.split("token=").nth(1).unwrap()), "no link in the log");

    // Delete: the account, its applications and their tokens go.
    let (ok, out, err) = gatehouse(d, &["user", "delete", "alice"], None);
    assert!(ok, "{err}");
    assert!(out.contains("deleted the 1 applications") && out.contains(&app_id), "says what became of the apps: {out}");
    within_a_second(async || validate(app_token.clone()).await == StatusCode::UNAUTHORIZED).await;
    let (ok, out, _) = gatehouse(d, &["user", "list", "--json"], None);
    assert!(ok);
    assert_eq!(json(&out)["users"].as_array().unwrap().len(), 1);
    let (ok, out, _) = gatehouse(d, &["client", "list", "--json"], None);
    assert!(ok && json(&out)["clients"].as_array().unwrap().is_empty(), "{out}");
    let (ok, _, err) = gatehouse(d, &["user", "delete", "alice"], None);
    assert!(!ok && err.contains("no user"), "{err}");

    // Each operator action is in the event log, also after the account is gone.
    let kinds = |login: &str| {
        let (ok, out, err) = gatehouse(d, &["events", "--user", login, "--json"], None);
        assert!(ok, "{err}");
        out.lines().map(|l| json(l)["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let bobs = kinds("bob");
    for kind in ["account.disabled", "account.enabled", "password.reset"] {
        assert!(bobs.iter().any(|k| k == kind), "{kind} in {bobs:?}");
    }
    let alices = kinds("alice");
    for kind in ["admin.granted", "admin.revoked", "account.deleted", "client.deleted"] {
        assert!(alices.iter().any(|k| k == kind), "{kind} in {alices:?}");
    }
}
