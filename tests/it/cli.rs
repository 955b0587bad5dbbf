//! The real binary: admin commands and `serve`, as the README walk-through uses them.

use reqwest::StatusCode;

use crate::binary::{gatehouse, serve};

#[tokio::test]
async fn readme_walkthrough_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, out, err) = gatehouse(d, &["user", "add", "--login", "alice", "--email", "alice@example.com", "--password-stdin"], Some("s3cret-passw0rd\n"));
    assert!(ok, "{out}{err}");
    let (ok, out, err) = gatehouse(
        d,
        &["client", "create", "--name", "My Bot", "--owner", "alice", "--redirect-uri", "http://localhost:3000/callback", "--json"],
        None,
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let id = created["client_id"].as_str().unwrap().to_string();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert!(d.join("gatehouse.db").exists());

    // Duplicate names, unknown owners and bad URIs are refused with a message.
    let (ok, _, err) = gatehouse(d, &["client", "create", "--name", "my bot", "--owner", "alice", "--redirect-uri", "http://localhost/cb"], None);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = gatehouse(d, &["client", "create", "--name", "X", "--owner", "bob", "--redirect-uri", "http://localhost/cb"], None);
    assert!(!ok && err.contains("bob"), "{err}");
    let (ok, _, _) = gatehouse(d, &["client", "create", "--name", "Y", "--owner", "alice", "--redirect-uri", "http://example.com/cb"], None);
    assert!(!ok);

    let server = serve(d);
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/oauth2/token", server.base))
        .form(&[("client_id", id.as_str()), ("client_secret", secret.as_str()), ("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token: serde_json::Value = res.json().await.unwrap();
    let at = token["access_token"].as_str().unwrap().to_string();
    let res = http.get(format!("{}/oauth2/validate", server.base)).header("Authorization", format!("OAuth {at}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Query-string tokens must not reach the log either.
    let _ = http.get(format!("{}/oauth2/validate?oauth_token={at}", server.base)).send().await.unwrap();

    // Admin commands work on the same database while the server runs.
    let (ok, out, _) = gatehouse(d, &["client", "rotate-secret", &id, "--json"], None);
    assert!(ok);
    let rotated: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
    // Another process changed the client: the server's read cache (one second) may
    // serve the old record until then, and no longer.
    let started = std::time::Instant::now();
    let status = loop {
        let res = http
            .post(format!("{}/oauth2/token", server.base))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        if res.status() != StatusCode::OK || started.elapsed() > std::time::Duration::from_millis(1500) {
            break res.status();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old secret must stop working within a second");
    let res = http
        .post(format!("{}/oauth2/revoke", server.base))
        .form(&[("client_id", id.as_str()), ("token", at.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http.get(format!("{}/oauth2/validate", server.base)).header("Authorization", format!("OAuth {at}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let (ok, out, _) = gatehouse(d, &["client", "list", "--json"], None);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(listed["clients"][0]["client_id"], id.as_str());
    assert!(!out.contains(&new_secret));

    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("/oauth2/token"), "requests are logged: {log}");
    for secret in [&secret, &new_secret, &at] {
        assert!(!log.contains(secret.as_str()), "a credential reached the log");
    }

    let (ok, _, _) = gatehouse(d, &["client", "delete", &id], None);
    assert!(ok);
    let (ok, _, _) = gatehouse(d, &["client", "delete", &id], None);
    assert!(!ok);

    // The first start made a signing key, sealed with a key file only its owner reads.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("gatehouse.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (ok, out, _) = gatehouse(d, &["keys", "list", "--json"], None);
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let (ok, out, _) = gatehouse(d, &["keys", "rotate", "--json"], None);
    assert!(ok);
    let new_kid = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["kid"].as_str().unwrap().to_string();
    let jwks: serde_json::Value = http.get(format!("{}/oauth2/keys", server.base)).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2, "the old key stays published: {kids:?}");
    assert!(kids.contains(&new_kid.as_str()));
}

#[test]
fn weak_passwords_and_bad_logins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = gatehouse(dir.path(), &["user", "add", "--login", "bob", "--email", "bob@example.com", "--password-stdin"], Some("short\n"));
    assert!(!ok && err.contains("8 characters"), "{err}");
    let (ok, _, _) = gatehouse(dir.path(), &["user", "add", "--login", "b b", "--email", "bob@example.com", "--password-stdin"], Some("long-enough-pw\n"));
    assert!(!ok);
    let (ok, _, _) = gatehouse(dir.path(), &["user", "add", "--login", "bob", "--email", "bob@example.com", "--password-stdin"], Some("long-enough-pw\n"));
    assert!(ok);
    let (ok, _, err) = gatehouse(dir.path(), &["user", "add", "--login", "BOB", "--email", "bob@example.com", "--password-stdin"], Some("long-enough-pw\n"));
    assert!(!ok && err.contains("taken"), "{err}");
}
