//! Bad input gets a 4xx with an OAuth error, never a 5xx; CSRF; cookies and headers;
//! no credential in the database in the clear.

use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn malformed_requests_get_4xx_never_5xx() {
    malformed_requests(Fixture::new().await).await;
}

pub async fn malformed_requests(f: Fixture) {
    let http = f.server.http();
    let long = "x".repeat(100_000);
    let bodies: Vec<(&str, &str, Vec<u8>)> = vec![
        ("/oauth2/token", "application/x-www-form-urlencoded", b"".to_vec()),
        ("/oauth2/token", "application/x-www-form-urlencoded", b"grant_type=password&username=a&password=b".to_vec()),
        ("/oauth2/token", "application/x-www-form-urlencoded", b"grant_type=authorization_code&grant_type=refresh_token".to_vec()),
        ("/oauth2/token", "application/json", br#"{"grant_type":"client_credentials"}"#.to_vec()),
        ("/oauth2/token", "application/x-www-form-urlencoded", b"grant_type=client_credentials&client_id=%ff%fe&client_secret=%00".to_vec()),
        ("/oauth2/token", "application/x-www-form-urlencoded", format!("grant_type=authorization_code&code={long}").into_bytes()),
        ("/oauth2/token", "application/x-www-form-urlencoded", vec![0xff, 0xfe, b'=', 0x80]),
        ("/oauth2/token", "text/plain", b"hello".to_vec()),
        ("/oauth2/revoke", "application/x-www-form-urlencoded", b"token=".to_vec()),
        ("/oauth2/revoke", "application/x-www-form-urlencoded", b"client_id=%00&token=x".to_vec()),
        ("/oauth2/introspect", "application/x-www-form-urlencoded", b"client_id=a%00b&client_secret=x&token=x".to_vec()),
        ("/oauth2/token", "application/x-www-form-urlencoded", b"grant_type=client_credentials&client_id=%00&client_secret=x".to_vec()),
        ("/oauth2/revoke", "application/json", b"{}".to_vec()),
        ("/oauth2/introspect", "application/x-www-form-urlencoded", b"token=abc".to_vec()),
        ("/oauth2/authorize", "application/x-www-form-urlencoded", b"decision=allow".to_vec()),
        ("/login", "application/x-www-form-urlencoded", b"login=a&password=b".to_vec()),
        ("/login", "application/x-www-form-urlencoded", b"login=%00&password=b&next=%2F%0A".to_vec()),
        ("/logout", "application/x-www-form-urlencoded", b"".to_vec()),
    ];
    for (path, ct, body) in bodies {
        let res = http.post(f.server.url(path)).header("content-type", ct).body(body.clone()).send().await.unwrap();
        let status = res.status();
        assert!(status.is_client_error(), "{path} {ct} {:?} gave {status}", String::from_utf8_lossy(&body[..body.len().min(80)]));
        if path.starts_with("/oauth2/") && path != "/oauth2/authorize" {
            let v: serde_json::Value = res.json().await.unwrap();
            assert!(v["error"].is_string() && v["error_description"].is_string() && v["status"].is_number(), "{v}");
        }
    }
    for header in ["Basic", "Basic !!!notbase64", "Basic Og==", "Bearer", "OAuth ", "Digest x"] {
        let res = http
            .post(f.server.url("/oauth2/token"))
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{header}: {}", res.status());
        let res = http.get(f.server.url("/oauth2/validate")).header("authorization", header).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
    let nul_nonce = format!("{}&nonce=%00", code_query(&f.client.id, "", ""));
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{nul_nonce}"))).send().await.unwrap();
    assert_eq!(query_param(&location(&res), "error").as_deref(), Some("invalid_request"));
    for q in ["", "client_id=", "client_id=%00", "%ff%ff=%00", "response_type=code&client_id=x&redirect_uri=%zz", &format!("client_id={}", &long[..8000])] {
        let res = http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
        assert!(res.status().is_client_error(), "authorize?{q}: {}", res.status());
    }
}

#[tokio::test]
async fn unsupported_grant_type_is_named() {
    let f = Fixture::new().await;
    let (status, body) = f.server.token(&f.client, &[("grant_type", "password")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
}

#[tokio::test]
async fn consent_and_login_forms_refuse_posts_without_their_csrf_token() {
    let f = Fixture::new().await;
    let q = code_query(&f.client.id, "user_read", "");
    let Outcome::Consent(fields) = f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await else { panic!() };

    let without: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let res = f.browser.decide(&without, "allow").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Another browser's token does not work either.
    let other = f.server.browser();
    let page = other.http.get(f.server.url("/login")).send().await.unwrap().text().await.unwrap();
    let foreign = hidden_inputs(&page).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let forged: Vec<(String, String)> =
        fields.iter().map(|(k, v)| if k == "csrf" { (k.clone(), foreign.clone()) } else { (k.clone(), v.clone()) }).collect();
    assert_eq!(f.browser.decide(&forged, "allow").await.status(), StatusCode::FORBIDDEN);

    // The genuine form still works.
    let res = f.browser.decide(&fields, "allow").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let fresh = f.server.browser();
    let res = fresh.http.post(f.server.url("/login")).form(&[("login", "alice"), ("password", PASSWORD)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_changes_at_sign_in() {
    let f = Fixture::new().await;
    let http = f.server.http();
    let res = http.get(f.server.url("/login")).send().await.unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"), "{cookie}");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");

    let before = cookie.split(';').next().unwrap().to_string();
    let res = f.browser.sign_in("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let after = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_ne!(before, after);
}

#[tokio::test]
async fn cookies_are_secure_when_the_issuer_is_https() {
    let config = ServerConfig { issuer: "https://id.example.com".into(), ..Default::default() };
    let server = TestServer::start_with(Default::default(), config).await;
    let res = server.http().get(server.url("/login")).send().await.unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-gh_sid=") && cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn login_next_cannot_leave_the_site() {
    let f = Fixture::new().await;
    let page = f.browser.http.get(f.server.url("/login?next=//evil.example/x")).send().await.unwrap().text().await.unwrap();
    let fields = hidden_inputs(&page);
    let next = fields.iter().find(|(k, _)| k == "next").unwrap().1.clone();
    assert_eq!(next, "/");
    let csrf = fields.iter().find(|(k, _)| k == "csrf").unwrap().1.clone();
    let res = f
        .browser
        .http
        .post(f.server.url("/login"))
        .form(&[("login", "alice"), ("password", PASSWORD), ("csrf", &csrf), ("next", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/");

    // Browsers drop tabs and newlines from URLs: "/<tab>/evil" would be "//evil".
    for sneaky in ["/\t/evil.example", "/\n/evil.example", "/\\evil.example"] {
        let page = f.browser.http.get(f.server.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = hidden_inputs(&page).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
        let res = f
            .browser
            .http
            .post(f.server.url("/login"))
            .form(&[("login", "alice"), ("password", PASSWORD), ("csrf", &csrf), ("next", sneaky)])
            .send()
            .await
            .unwrap();
        assert_eq!((res.status(), location(&res).as_str()), (StatusCode::SEE_OTHER, "/"), "{sneaky:?}");
    }
}

#[tokio::test]
async fn the_database_holds_no_credential_in_the_clear() {
    let f = Fixture::new().await;
    let t = f.tokens("user_read").await;
    let code = f.code("user_read").await;
    let (_, app) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    // Make sure everything is in the main file or the WAL, then read both.
    let mut bytes = std::fs::read(&f.server.db_path).unwrap();
    bytes.extend(std::fs::read(f.server.db_path.with_extension("db-wal")).unwrap_or_default());
    let haystack = String::from_utf8_lossy(&bytes);
    let secrets = [
        s(&t, "access_token"),
        s(&t, "refresh_token"),
        s(&app, "access_token"),
        code,
        f.client.secret.clone().unwrap(),
        PASSWORD.to_string(),
    ];
    for secret in &secrets {
        assert!(!haystack.contains(secret.as_str()), "a credential is stored in the clear");
        // Tokens and codes begin with their issue order, which is stored; what follows
        // (all of their entropy) must not be.
        assert!(!haystack.contains(&secret[secret.len().saturating_sub(40)..]), "the random part of a credential is stored in the clear");
    }
    // The digests are there: the scan would have seen the values had they been stored.
    let digest = gatehouse_core::secret::token_key(&s(&t, "access_token"));
    assert!(haystack.contains(&digest));
}

#[tokio::test]
async fn expired_records_are_purged() {
    let f = Fixture::new().await;
    let t = f.tokens("user_read").await;
    let _unused_code = f.code("user_read").await;
    let store = &f.server.auth.store;
    assert_eq!(store.purge_expired(f.server.auth.now()).await.unwrap(), 0);
    f.server.clock.advance(2 * 3600);
    assert!(store.purge_expired(f.server.auth.now()).await.unwrap() >= 2);
    let hash = gatehouse_core::secret::token_key(&s(&t, "access_token"));
    assert!(store.find_access_token(&hash).await.unwrap().is_none());
    // The refresh token of a confidential client does not expire and survives.
    let rhash = gatehouse_core::secret::token_key(&s(&t, "refresh_token"));
    assert!(store.find_refresh_token(&rhash).await.unwrap().is_some());
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account_but_the_owner_is_never_locked_out() {
    let f = Fixture::new().await;
    // The owner signs in once from their browser, which then remembers the account.
    let owner = f.server.browser();
    assert_eq!(owner.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // An attacker, from new browsers: ten attempts in all (the owner's first sign-in
    // was one), then refused before the password is even checked (the right password
    // too), with Retry-After.
    for i in 0..9 {
        let res = f.server.browser().sign_in("alice", &format!("guess-{i}")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let res = f.server.browser().sign_in("alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    // Other accounts are not held.
    f.server.add_user("bob").await;
    assert_eq!(f.server.browser().sign_in("bob", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // The owner's browser still signs in: the lock does not apply to it.
    assert_eq!(owner.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    // A forged known-browser cookie is worth nothing.
    let http = f.server.http();
    let res = http.get(f.server.url("/login")).send().await.unwrap();
    let sid = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = hidden_inputs(&res.text().await.unwrap()).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let forged = format!("{sid}; gh_known={}", "A".repeat(60));
    let res = http
        .post(f.server.url("/login"))
        .header("cookie", forged)
        .form(&[("login", "alice"), ("password", PASSWORD), ("csrf", csrf.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // And the lock lifts by itself: one more attempt every 90 seconds.
    f.server.clock.advance(91);
    assert_eq!(f.server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(f.server.browser().sign_in("alice", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
}
