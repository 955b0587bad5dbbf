//! The OAuth 2.0 Security Best Current Practice (RFC 9700), one test per item, each
//! named after its section. Where an item is a rule about HTTP, the test checks the
//! HTTP; where it is a rule about state, it checks what the store then allows.

use gatehouse_core::model::ClientKind;
use reqwest::StatusCode;

use crate::binary::{gatehouse, serve};
use crate::common::*;
use crate::pkce::{public_fixture, VERIFIER};
use crate::refresh::refresh;

async fn authorize(f: &Fixture, query: &str) -> reqwest::Response {
    f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{query}"))).send().await.unwrap()
}

#[tokio::test]
async fn s4_1_redirect_uris_match_exactly() {
    let f = Fixture::new().await;
    f.browser.sign_in("alice", PASSWORD).await;
    for bad in [
        "http://localhost:3000/callback/more",
        "http://localhost:3000/callback?x=1",
        "http://localhost:3000/Callback",
        "http://localhost:3000/callback#frag",
        "https://localhost:3000/callback",
        "http://localhost.evil.example:3000/callback",
        "http://evil.example/callback",
        "http://localhost:3000/callback/../callback",
    ] {
        let q = code_query(&f.client.id, "", "").replace(&url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(), &url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>());
        let res = authorize(&f, &q).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad} was accepted");
        assert!(res.headers().get("location").is_none(), "{bad}: redirected");
    }
}

#[tokio::test]
async fn s4_11_2_the_authorization_server_is_not_an_open_redirector() {
    let f = Fixture::new().await;
    let evil = "https%3A%2F%2Fevil.example%2Fcb";
    // Unknown client, unknown redirect: an error page, never a redirect.
    for q in [
        format!("response_type=code&client_id=nosuchclient0000000000000000000&redirect_uri={evil}"),
        format!("response_type=code&client_id={}&redirect_uri={evil}&scope=nonsense", f.client.id),
    ] {
        let res = authorize(&f, &q).await;
        assert!(res.status().is_client_error(), "{q}: {}", res.status());
        assert!(res.headers().get("location").is_none());
    }
    // A bad scope with a registered redirect goes back there, and nowhere else.
    let res = authorize(&f, &code_query(&f.client.id, "nonsense", "")).await;
    assert!(location(&res).starts_with(REDIRECT));
    // After sign-in, only same-site paths.
    let page = f.browser.http.get(f.server.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_inputs(&page).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let res = f.browser.http.post(f.server.url("/login")).form(&[("login", "alice"), ("password", PASSWORD), ("csrf", &csrf), ("next", "//evil.example/")]).send().await.unwrap();
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn s2_1_1_public_clients_must_use_pkce() {
    let (f, public) = public_fixture().await;
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{}", code_query(&public.id, "", "")))).send().await.unwrap();
    let loc = location(&res);
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{loc}");
}

#[tokio::test]
async fn s4_8_pkce_downgrade_is_refused() {
    let f = Fixture::new().await;
    let code = f.code("").await;
    let (status, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn s4_5_codes_are_single_use_and_replay_revokes_their_tokens() {
    let f = Fixture::new().await;
    let code = f.code("user_read").await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, first) = f.server.token(&f.client, &form).await;
    assert_eq!(status, StatusCode::OK);
    let access = s(&first, "access_token");
    assert_eq!(f.server.validate(&access).await, StatusCode::OK);
    // Tokens the code's tokens were rotated into descend from it too.
    let (_, rotated) = refresh(&f, &f.client, &s(&first, "refresh_token")).await;
    let (later_access, refresh_token) = (s(&rotated, "access_token"), s(&rotated, "refresh_token"));
    // Another grant of the same user and client owes the code nothing.
    let other = f.tokens("user_read").await;

    let (status, again) = f.server.token(&f.client, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
    // RFC 6749 §4.1.2: what the code gave is revoked.
    assert_eq!(f.server.validate(&access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(f.server.validate(&later_access).await, StatusCode::UNAUTHORIZED);
    let (status, body) = refresh(&f, &f.client, &refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(f.server.validate(&s(&other, "access_token")).await, StatusCode::OK);
    assert_eq!(refresh(&f, &f.client, &s(&other, "refresh_token")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn s4_14_2_refresh_rotation_with_reuse_detection() {
    let f = Fixture::new().await;
    let first = f.tokens("user_read").await;
    let rt1 = s(&first, "refresh_token");
    let (_, second) = refresh(&f, &f.client, &rt1).await;
    let rt2 = s(&second, "refresh_token");
    let at2 = s(&second, "access_token");
    assert_ne!(rt1, rt2, "refresh tokens rotate");
    assert_eq!(f.server.validate(&at2).await, StatusCode::OK);

    f.server.clock.advance(11);
    // Even with a scope the catalog does not know: the token's own checks come first.
    let reuse = [("grant_type", "refresh_token"), ("refresh_token", rt1.as_str()), ("scope", "no_such_scope")];
    let (status, body) = f.server.token(&f.client, &reuse).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // The thief's or the owner's newer token: both are gone now.
    let (status, _) = refresh(&f, &f.client, &rt2).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(f.server.validate(&at2).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s4_7_state_comes_back_and_every_form_needs_its_csrf_token() {
    let f = Fixture::new().await;
    let url = f.browser.authorize_and_allow(&code_query(&f.client.id, "", ""), "alice").await;
    assert_eq!(query_param(&url, "state").as_deref(), Some("st4te"));
    let before = s(&f.tokens("user_read").await, "access_token");
    // A signed-in browser posting each form without its token, as another site would.
    for path in [
        "/login",
        "/logout",
        "/signup",
        "/oauth2/authorize",
        "/activate",
        "/console/apps/new",
        &format!("/console/apps/{}", f.client.id),
        &format!("/console/apps/{}/secret", f.client.id),
        &format!("/console/apps/{}/delete", f.client.id),
        "/settings/password",
        &format!("/settings/connections/{}/disconnect", f.client.id),
    ] {
        let res = f.browser.http.post(f.server.url(path)).form(&[("name", "x"), ("decision", "allow")]).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "POST {path} without a CSRF token");
    }
    assert_eq!(f.server.validate(&before).await, StatusCode::OK, "nothing was disconnected or revoked");
}

#[tokio::test]
async fn s4_16_the_consent_page_cannot_be_framed() {
    let f = Fixture::new().await;
    f.browser.sign_in("alice", PASSWORD).await;
    let res = authorize(&f, &code_query(&f.client.id, "user_read", "")).await;
    assert_eq!(res.status(), StatusCode::OK, "the consent page");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn s4_3_no_tokens_in_urls_gatehouse_generates() {
    let f = Fixture::new().await;
    // Code flow: the redirect carries the code, state and iss, nothing else.
    let url = f.browser.authorize_and_allow(&code_query(&f.client.id, "user_read", ""), "alice").await;
    let mut names: Vec<String> = url::Url::parse(&url).unwrap().query_pairs().map(|(k, _)| k.into_owned()).collect();
    names.sort();
    assert_eq!(names, ["code", "iss", "state"]);
    // Implicit (Twitch's kraken): the token travels in the fragment, never the query.
    let implicit = f.server.add_client("Overlay", &f.user, ClientKind::Public, true).await;
    let q = code_query(&implicit.id, "user_read", "").replace("response_type=code", "response_type=token");
    let url = f.browser.authorize_and_allow(&q, "alice").await;
    assert!(fragment_param(&url, "access_token").is_some(), "{url}");
    assert!(url::Url::parse(&url).unwrap().query().is_none_or(|q| !q.contains("token")), "{url}");
    // Device flow: the complete verification URI carries the user code only.
    let res = f.server.http().post(f.server.url("/oauth2/device")).form(&[("client_id", f.client.id.as_str()), ("client_secret", f.client.secret.as_deref().unwrap()), ("scope", "user_read")]).send().await.unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let complete = url::Url::parse(&s(&body, "verification_uri_complete")).unwrap();
    assert_eq!(complete.query_pairs().map(|(k, _)| k.into_owned()).collect::<Vec<_>>(), ["user_code"]);
    assert!(!complete.as_str().contains(&s(&body, "device_code")));
}

#[tokio::test]
async fn s4_2_pages_that_carry_codes_send_no_referrer() {
    let f = Fixture::new().await;
    f.browser.sign_in("alice", PASSWORD).await;
    // The consent page (its URL holds the request) and the redirect that carries the code.
    let res = authorize(&f, &code_query(&f.client.id, "user_read", "")).await;
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let fields = consent_form_fields(&res.text().await.unwrap());
    let res = f.browser.decide(&fields, "allow").await;
    assert!(query_param(&location(&res), "code").is_some());
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    for path in ["/login", "/activate", "/console", "/settings/connections"] {
        let res = f.browser.http.get(f.server.url(path)).send().await.unwrap();
        assert_eq!(res.headers()["referrer-policy"], "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn s4_4_mix_up_defense_iss_in_every_authorization_response() {
    let f = Fixture::new().await;
    let meta: serde_json::Value =
        f.server.http().get(f.server.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let issuer = s(&meta, "issuer");
    let ok = f.browser.authorize_and_allow(&code_query(&f.client.id, "", ""), "alice").await;
    assert_eq!(query_param(&ok, "iss").as_deref(), Some(issuer.as_str()));
    let err = location(&authorize(&f, &code_query(&f.client.id, "nonsense", "")).await);
    assert_eq!(query_param(&err, "error").as_deref(), Some("invalid_scope"));
    assert_eq!(query_param(&err, "iss").as_deref(), Some(issuer.as_str()));
    // A denial, and the implicit grant's fragment, carry it too.
    let q = code_query(&f.client.id, "user_read channel_read", "");
    let Outcome::Consent(fields) = f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await else { panic!("no consent page") };
    let denied = location(&f.browser.decide(&fields, "deny").await);
    assert_eq!(query_param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&denied, "iss").as_deref(), Some(issuer.as_str()));
    let implicit = f.server.add_client("Overlay", &f.user, ClientKind::Public, true).await;
    let q = code_query(&implicit.id, "user_read", "").replace("response_type=code", "response_type=token");
    let url = f.browser.authorize_and_allow(&q, "alice").await;
    assert_eq!(fragment_param(&url, "iss").as_deref(), Some(issuer.as_str()));
}

#[tokio::test]
async fn s4_12_the_consent_answer_is_a_303_not_a_307() {
    let f = Fixture::new().await;
    let q = code_query(&f.client.id, "user_read", "");
    let Outcome::Consent(fields) = f.browser.authorize(&format!("/oauth2/authorize?{q}"), "alice").await else { panic!("no consent page") };
    // A 307 would make the browser re-post the form, password and all, to the client.
    assert_eq!(f.browser.decide(&fields, "allow").await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn s2_4_the_password_grant_is_not_offered() {
    let f = Fixture::new().await;
    let (status, body) = f.server.token(&f.client, &[("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let meta: serde_json::Value =
        f.server.http().get(f.server.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert!(!meta["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "password"));
}

/// Every secret the test makes or receives, then a grep of everything the server logged
/// (at debug level) for each of them.
#[tokio::test]
async fn s4_9_and_s4_13_no_secret_or_token_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let password = "hunter2-correct-horse";
    let (ok, _, err) = gatehouse(d, &["user", "add", "--login", "alice", "--email", "alice@example.com", "--password-stdin"], Some(&format!("{password}\n")));
    assert!(ok, "{err}");
    let (ok, out, err) = gatehouse(d, &["client", "create", "--name", "logged", "--owner", "alice", "--redirect-uri", REDIRECT, "--json"], None);
    assert!(ok, "{err}");
    let creds: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (id, secret) = (s(&creds, "client_id"), s(&creds, "client_secret"));
    let server = serve(d);
    let http = reqwest::Client::new();
    let base = server.base.clone();

    let browser = Browser::at(&base);
    let page = browser.http.get(browser.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_inputs(&page).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let res = browser.http.post(browser.url("/login")).form(&[("login", "alice"), ("password", password), ("csrf", &csrf), ("next", "/")]).send().await.unwrap();
    let cookies: Vec<String> = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().split(';').next().unwrap().split_once('=').unwrap().1.to_string()).collect();
    let url = browser.authorize_and_allow(&code_query(&id, "user_read", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let tokens: serde_json::Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (access, refresh_token) = (s(&tokens, "access_token"), s(&tokens, "refresh_token"));
    // The same code again (a replay, logged as a warning), the API with the token in the
    // query string, validation, introspection, refresh and revocation.
    http.post(format!("{base}/oauth2/token")).basic_auth(&id, Some(&secret)).form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)]).send().await.unwrap();
    let tokens: serde_json::Value = http.post(format!("{base}/oauth2/token")).form(&[("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())]).send().await.unwrap().json().await.unwrap();
    let app_token = s(&tokens, "access_token");
    let res = http.get(format!("{base}/api/user?oauth_token={app_token}")).send().await.unwrap();
    assert!(res.status().is_client_error(), "an app token has no user");
    http.get(format!("{base}/oauth2/validate")).bearer_auth(&app_token).send().await.unwrap();
    http.post(format!("{base}/oauth2/introspect")).basic_auth(&id, Some(&secret)).form(&[("token", app_token.as_str())]).send().await.unwrap();
    http.post(format!("{base}/oauth2/token")).basic_auth(&id, Some("wrong-secret-value-123")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    http.post(format!("{base}/oauth2/revoke")).form(&[("client_id", id.as_str()), ("token", app_token.as_str())]).send().await.unwrap();
    // Each request's line is written before its answer: once a last request's line is
    // in, every line before it is too.
    let marker = format!("/log-marker-{}", gatehouse_core::secret::random_token(8));
    http.get(format!("{base}{marker}")).send().await.unwrap();
    let waited = std::time::Instant::now();
    while !server.log.lock().unwrap().contains(&marker) {
        assert!(waited.elapsed() < std::time::Duration::from_secs(10), "the last request was never logged");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("/oauth2/token"), "the requests were logged: {log}");
    let mut secrets = vec![password.to_string(), secret, code, access, refresh_token, app_token, "wrong-secret-value-123".into()];
    secrets.extend(cookies);
    for (i, secret) in secrets.iter().enumerate() {
        assert!(secret.len() >= 10, "secret {i} is too short to grep for");
        assert!(!log.contains(secret.as_str()), "secret {i} appears in the log");
    }
}

/// Secrets are compared in constant time: a source audit, since timing cannot be
/// measured reliably in a test. Each place that compares a presented secret with a
/// stored one must use `subtle`'s `ct_eq`, and no secret-looking value may be compared
/// with `==` anywhere in the server's code.
#[test]
fn s2_5_secrets_are_compared_in_constant_time() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    for (file, needle) in [
        ("gatehouse-core/src/secret.rs", "ct_eq"),
        ("gatehouse-core/src/pkce.rs", "ct_eq"),
        ("gatehouse-server/src/session.rs", "ct_eq"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(text.contains(needle), "{file} no longer compares with {needle}");
    }
    let suspicious = [
        "secret ==", "== secret", "secret !=", "!= secret", "secret.eq(", "_hash ==", "== stored_hash", "!= stored_hash",
        "_hash !=", "verifier ==", "verifier !=", "== challenge", "!= challenge", "csrf ==", "== csrf", "csrf !=",
        "!= csrf", "password ==", "password !=", "== expected", "!= expected",
    ];
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for pattern in suspicious {
                    assert!(!text.contains(pattern), "{}: `{pattern}` looks like a secret compared in variable time", path.display());
                }
            }
        }
    }
}
