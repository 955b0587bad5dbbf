//! The Twitch, Nightbot and Streamlabs dialects (issue 19), each driven with the exact
//! requests those clients send: parameters in a POST's query string, multipart and JSON
//! bodies, `scopes` on the device endpoint, and each seed's own paths.

use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// A POST with every parameter in the query string and no body, as Twitch's libraries
/// send them; the answer's status, Content-Type and JSON.
async fn post_query(f: &Fixture, path: &str, pairs: &[(&str, &str)]) -> (StatusCode, String, serde_json::Value) {
    let res = f.server.http().post(f.server.url(&format!("{path}?{}", query(pairs)))).send().await.unwrap();
    let status = res.status();
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, res.json().await.unwrap_or(serde_json::Value::Null))
}

async fn post_body(f: &Fixture, path: &str, content_type: &str, body: String) -> (StatusCode, serde_json::Value) {
    let res = f.server.http().post(f.server.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

fn secret(f: &Fixture) -> &str {
    f.client.secret.as_deref().unwrap()
}

#[tokio::test]
async fn query_string_posts_get_revoke_introspect_and_start_devices() {
    let f = Fixture::new().await;
    let id = f.client.id.as_str();
    let app = [("client_id", id), ("client_secret", secret(&f)), ("grant_type", "client_credentials"), ("scope", "")];
    let (status, _, tokens) = post_query(&f, "/oauth2/token", &app).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = s(&tokens, "access_token");

    let (status, _, info) = post_query(&f, "/oauth2/introspect", &[("client_id", id), ("client_secret", secret(&f)), ("token", &access)]).await;
    assert_eq!((status, info["active"].as_bool()), (StatusCode::OK, Some(true)), "{info}");

    let (status, _, device) = post_query(&f, "/oauth2/device", &[("client_id", id), ("client_secret", secret(&f)), ("scopes", "chat_login")]).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert!(device["device_code"].is_string());

    // Twitch's revoke: client_id and token only, in the query. The answer is `{}` as JSON.
    let (status, ct, body) = post_query(&f, "/oauth2/revoke", &[("client_id", id), ("token", &access)]).await;
    assert_eq!((status, ct.as_str(), body), (StatusCode::OK, "application/json", serde_json::json!({})));
    assert_eq!(f.server.validate(&access).await, StatusCode::UNAUTHORIZED, "the revoke took effect");
}

#[tokio::test]
async fn a_name_twice_in_query_and_body_or_in_one_place_is_invalid_request() {
    let f = Fixture::new().await;
    let id = f.client.id.as_str();
    let url = f.server.url(&format!("/oauth2/token?{}", query(&[("client_id", id), ("grant_type", "client_credentials")])));
    let res = f.server.http().post(&url).form(&[("client_id", id), ("client_secret", secret(&f))]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    let (status, _, body) = post_query(&f, "/oauth2/revoke", &[("client_id", id), ("token", "a"), ("token", "b")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
}

#[tokio::test]
async fn query_parameters_can_be_switched_off() {
    let f = Fixture::with(TestServer::start_with(Default::default(), ServerConfig { query_params: false, ..Default::default() }).await).await;
    let app = [("client_id", f.client.id.as_str()), ("client_secret", secret(&f)), ("grant_type", "client_credentials")];
    let (status, _, body) = post_query(&f, "/oauth2/token", &app).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    let (status, body) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "the body still works: {body}");
}

#[tokio::test]
async fn multipart_and_json_bodies_are_one_parameter_map() {
    let f = Fixture::new().await;
    // As Go's mime/multipart writes it (twitch-cli's device flow).
    let boundary = "0b5c3a1f9e7d";
    let mut multipart = String::new();
    for (k, v) in [("client_id", f.client.id.as_str()), ("client_secret", secret(&f)), ("scopes", "chat_login")] {
        multipart.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
    }
    multipart.push_str(&format!("--{boundary}--\r\n"));
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (status, device) = post_body(&f, "/oauth2/device", &ct, multipart).await;
    assert_eq!(status, StatusCode::OK, "{device}");

    let json = serde_json::json!({"client_id": f.client.id, "client_secret": secret(&f), "grant_type": "client_credentials"});
    let (status, tokens) = post_body(&f, "/oauth2/token", "application/json", json.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    let bad_bodies = [
        ("application/json", r#"{"grant_type":"client_credentials","client_id":null}"#.to_string()),
        ("application/json", r#"{"grant_type":"client_credentials","grant_type":"client_credentials"}"#.to_string()),
        ("application/json", "[1,2]".to_string()),
        ("multipart/form-data; boundary=nope", "garbage".to_string()),
        ("text/plain", "grant_type=client_credentials".to_string()),
        ("application/xml", "<grant_type/>".to_string()),
    ];
    for (ct, body) in bad_bodies {
        for path in ["/oauth2/token", "/oauth2/revoke", "/oauth2/device", "/oauth2/introspect"] {
            let (status, answer) = post_body(&f, path, ct, body.clone()).await;
            assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{path} {ct} {body}");
        }
    }
}

/// The scopes a started device authorization holds, read from the store by its user code.
async fn device_scopes(f: &Fixture, started: &serde_json::Value) -> Vec<String> {
    let (device, _) = gatehouse_core::device::find_pending(&f.server.auth, &s(started, "user_code")).await.unwrap();
    device.scopes.iter().map(String::from).collect()
}

#[tokio::test]
async fn device_takes_twitchs_scopes_but_not_both_names() {
    let f = Fixture::new().await;
    let id = f.client.id.as_str();
    let post = |extra: &'static [(&'static str, &'static str)]| {
        let mut form = vec![("client_id", id), ("client_secret", secret(&f))];
        form.extend_from_slice(extra);
        let req = f.server.http().post(f.server.url("/oauth2/device")).form(&form);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, started) = post(&[("scopes", "chat_login user_read")]).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(device_scopes(&f, &started).await, vec!["chat_login", "user_read"]);
    let (status, body) = post(&[("scopes", "chat_login"), ("scope", "user_read")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
}

#[tokio::test]
async fn a_client_polling_every_second_gets_its_tokens_within_one_interval() {
    let f = Fixture::new().await;
    let started = start_device(&f).await;
    let device_code = s(&started, "device_code");
    let approve_at = 12;
    let mut slow_downs = 0;
    for t in 0..200 {
        if t == approve_at {
            let (device, _) = gatehouse_core::device::find_pending(&f.server.auth, &s(&started, "user_code")).await.unwrap();
            let now = f.server.auth.now();
            gatehouse_core::device::decide(&f.server.auth, &device, &f.user.id, now, true).await.unwrap();
        }
        let (status, body) = f.server.token(&f.client, &[("grant_type", DEVICE_GRANT), ("device_code", &device_code)]).await;
        if status == StatusCode::OK {
            assert!(t >= approve_at, "tokens before approval at {t}");
            assert!(t - approve_at < gatehouse_core::device::POLL_INTERVAL, "tokens only {}s after approval", t - approve_at);
            assert!(slow_downs > 0, "a 1-second poller is told to slow down");
            return;
        }
        match body["error"].as_str() {
            Some("slow_down") => slow_downs += 1,
            Some("authorization_pending") => {}
            other => panic!("at {t}: {other:?} {body}"),
        }
        f.server.clock.advance(1);
    }
    panic!("no tokens after 200 polls a second apart");
}

async fn start_device(f: &Fixture) -> serde_json::Value {
    let form = [("client_id", f.client.id.as_str()), ("client_secret", secret(f)), ("scope", "chat_login")];
    let res = f.server.http().post(f.server.url("/oauth2/device")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
async fn validate_omits_the_user_of_app_tokens_and_counts_down() {
    let f = Fixture::new().await;
    let (_, tokens) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    let check = || async {
        let res = f.server.http().get(f.server.url("/oauth2/validate")).header("Authorization", format!("OAuth {}", s(&tokens, "access_token"))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<serde_json::Value>().await.unwrap()
    };
    let first = check().await;
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert!(!keys.iter().any(|k| *k == "login" || *k == "user_id"), "{first}");
    assert_eq!(first["client_id"], f.client.id.as_str());
    assert_eq!(first["expires_in"], 3600);
    f.server.clock.advance(100);
    assert_eq!(check().await["expires_in"], 3500);
}

#[tokio::test]
async fn each_seeds_paths_answer_as_the_canonical_ones() {
    let f = Fixture::new().await;
    // Twitch kraken (seeds 001, 004): authorize, token, revoke.
    let q = code_query(&f.client.id, "user_read", "");
    let Outcome::Consent(fields) = f.browser.authorize(&format!("/kraken/oauth2/authorize?{q}"), "alice").await else {
        panic!("kraken authorize shows consent")
    };
    let code = query_param(&location(&f.browser.decide(&fields, "allow").await), "code").unwrap();
    let exchange = [("client_id", f.client.id.as_str()), ("client_secret", secret(&f)), ("grant_type", "authorization_code"), ("redirect_uri", REDIRECT), ("code", &code)];
    let (status, _, tokens) = post_query(&f, "/kraken/oauth2/token", &exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, _, _) = post_query(&f, "/kraken/oauth2/revoke", &[("client_id", &f.client.id), ("token", &s(&tokens, "access_token"))]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(f.server.validate(&s(&tokens, "access_token")).await, StatusCode::UNAUTHORIZED);

    // Streamlabs (seed 003): authorize, then a JSON refresh at /api/v1.0/token.
    let Outcome::Redirected(back) = f.browser.authorize(&format!("/api/v1.0/authorize?{q}"), "alice").await else {
        panic!("consent was remembered")
    };
    assert!(query_param(&back, "code").is_some(), "{back}");
    let refresh = serde_json::json!({"grant_type": "refresh_token", "client_id": f.client.id, "client_secret": secret(&f), "redirect_uri": REDIRECT, "refresh_token": s(&tokens, "refresh_token")});
    let (status, fresh) = post_body(&f, "/api/v1.0/token", "application/json", refresh.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");

    // Nightbot (seed 000): revoke at /oauth2/token/revoke.
    let form = [("client_id", f.client.id.as_str()), ("client_secret", secret(&f)), ("token", &s(&fresh, "access_token"))];
    let res = f.server.http().post(f.server.url("/oauth2/token/revoke")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(f.server.validate(&s(&fresh, "access_token")).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metadata_names_canonical_paths_and_openapi_the_aliases() {
    let f = Fixture::new().await;
    let get = |path: &'static str| {
        let req = f.server.http().get(f.server.url(path));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let metadata = get("/.well-known/oauth-authorization-server").await;
    assert!(metadata.contains("/oauth2/token\"") && !metadata.contains("kraken") && !metadata.contains("v1.0"), "{metadata}");
    let doc: serde_json::Value = serde_json::from_str(&get("/openapi.json").await).unwrap();
    for alias in ["/kraken/oauth2/token", "/kraken/oauth2/revoke", "/oauth2/token/revoke", "/api/v1.0/token"] {
        let summary = doc["paths"][alias]["post"]["summary"].as_str().unwrap_or_default();
        assert!(summary.starts_with("Alias of /oauth2/"), "{alias}: {summary}");
    }
}
