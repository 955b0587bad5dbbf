//! `gatehouse backup` and `restore` with the real binary: a copy taken while the server
//! issues tokens, restored into a fresh directory, serves every token issued before it.

use reqwest::StatusCode;

use crate::binary::{gatehouse, serve};

async fn app_token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let form = [("client_id", id), ("client_secret", secret), ("grant_type", "client_credentials")];
    let res = http.post(format!("{base}/oauth2/token")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<serde_json::Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_token_issued_before_it() {
    let (old, new) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d = old.path();
    let (ok, out, err) = gatehouse(d, &["user", "add", "--login", "alice", "--email", "alice@example.com", "--password-stdin"], Some("s3cret-passw0rd\n"));
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        gatehouse(d, &["client", "create", "--name", "Bot", "--owner", "alice", "--redirect-uri", "http://localhost:3000/cb", "--json"], None);
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let (id, secret) = (created["client_id"].as_str().unwrap().to_string(), created["client_secret"].as_str().unwrap().to_string());

    let server = serve(d);
    let http = reqwest::Client::new();
    let jwks = |base: String| {
        let http = http.clone();
        async move {
            let res = http.get(format!("{base}/oauth2/keys")).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let keys_before = jwks(server.base.clone()).await;
    assert!(!keys_before["keys"].as_array().unwrap().is_empty());
    let mut before = Vec::new();
    for _ in 0..50 {
        before.push(app_token(&http, &server.base, &id, &secret).await);
    }
    // Tokens keep being issued while the copy is taken.
    let load = {
        let (http, base, id, secret) = (http.clone(), server.base.clone(), id.clone(), secret.clone());
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                app_token(&http, &base, &id, &secret).await;
                n += 1;
                tokio::task::yield_now().await;
                if n > 5000 {
                    return n;
                }
            }
        })
    };
    let copy = d.join("copy.db");
    let copy_arg = copy.to_str().unwrap().to_string();
    let (ok, out, err) = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        move || gatehouse(&d, &["backup", &copy_arg], None)
    })
    .await
    .unwrap();
    load.abort();
    assert!(ok, "{out}{err}");
    assert!(d.join("copy.db.key").exists(), "the key is kept beside the copy");
    let (ok, _, err) = gatehouse(d, &["backup", copy.to_str().unwrap()], None);
    assert!(!ok && err.contains("already exists"), "a backup never overwrites: {err}");
    drop(server);

    let (ok, out, err) = gatehouse(new.path(), &["restore", copy.to_str().unwrap()], None);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = gatehouse(new.path(), &["restore", copy.to_str().unwrap()], None);
    assert!(!ok && err.contains("already exists"), "a restore never overwrites a database: {err}");
    let restored = serve(new.path());
    for token in &before {
        let res = http.get(format!("{}/oauth2/validate", restored.base)).header("Authorization", format!("OAuth {token}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // And it works on: the client's secret, and the signing keys, sealed with the key
    // that came along with the copy.
    app_token(&http, &restored.base, &id, &secret).await;
    assert_eq!(jwks(restored.base.clone()).await, keys_before);
}
