//! Revocation (RFC 7009, and Twitch's form), introspection (RFC 7662), validate,
//! metadata (RFC 8414) and health.

use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn revoke_with_twitch_form_client_id_and_token() {
    let f = Fixture::new().await;
    let at = s(&f.tokens("user_read").await, "access_token");
    let res = f.server.http().post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", &at)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(f.server.validate(&at).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_access_tokens_too() {
    let f = Fixture::new().await;
    let t = f.tokens("user_read").await;
    let res = f
        .server
        .http()
        .post(f.server.url("/oauth2/revoke"))
        .basic_auth(&f.client.id, f.client.secret.as_ref())
        .form(&[("token", s(&t, "refresh_token").as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(f.server.validate(&s(&t, "access_token")).await, StatusCode::UNAUTHORIZED);
    let (status, _) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &s(&t, "refresh_token"))]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn revoking_an_unknown_token_is_not_an_error_but_another_clients_token_is() {
    let f = Fixture::new().await;
    let http = f.server.http();
    let res = http.post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", "nonsense")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let other = f.server.add_client("Other", &f.user, gatehouse_core::model::ClientKind::Confidential, false).await;
    let at = s(&f.tokens("user_read").await, "access_token");
    let res = http.post(f.server.url("/oauth2/revoke")).form(&[("client_id", other.id.as_str()), ("token", &at)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(f.server.validate(&at).await, StatusCode::OK);

    // A wrong secret is still an authentication failure.
    let res = http.post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("client_secret", "bad"), ("token", &at)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http.post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn introspection_reports_active_and_inactive_tokens() {
    let f = Fixture::new().await;
    let t = f.tokens("user_read chat_login").await;
    let introspect = |token: String| {
        let http = f.server.http();
        let url = f.server.url("/oauth2/introspect");
        let (id, secret) = (f.client.id.clone(), f.client.secret.clone());
        async move {
            let res = http.post(url).basic_auth(id, secret).form(&[("token", token)]).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let v = introspect(s(&t, "access_token")).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["scope"], "chat_login user_read");
    assert_eq!(v["client_id"], f.client.id.as_str());
    assert_eq!(v["username"], "alice");
    assert_eq!(v["sub"], f.user.id.as_str());
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["token_use"], "access_token");
    assert!(v["exp"].as_i64().unwrap() > v["iat"].as_i64().unwrap());
    let v = introspect(s(&t, "refresh_token")).await;
    assert_eq!((v["active"].as_bool(), v["token_use"].as_str()), (Some(true), Some("refresh_token")));
    assert_eq!(introspect("garbage".into()).await, serde_json::json!({"active": false}));

    f.server.clock.advance(3601);
    assert_eq!(introspect(s(&t, "access_token")).await, serde_json::json!({"active": false}));

    // Without client authentication: refused.
    let res = f.server.http().post(f.server.url("/oauth2/introspect")).form(&[("token", "x")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validate_refuses_missing_expired_and_garbage_tokens() {
    let f = Fixture::new().await;
    let at = s(&f.tokens("").await, "access_token");
    let res = f.server.http().get(f.server.url("/oauth2/validate")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert_eq!(f.server.validate("garbage").await, StatusCode::UNAUTHORIZED);
    assert_eq!(f.server.validate(&at).await, StatusCode::OK);
    f.server.clock.advance(3600);
    assert_eq!(f.server.validate(&at).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metadata_and_health() {
    let f = Fixture::new().await;
    let http = f.server.http();
    assert_eq!(http.get(f.server.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let m: serde_json::Value = http.get(f.server.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["issuer"], f.server.base.as_str());
    assert_eq!(m["authorization_endpoint"], f.server.url("/oauth2/authorize").as_str());
    assert_eq!(m["token_endpoint"], f.server.url("/oauth2/token").as_str());
    assert_eq!(m["revocation_endpoint"], f.server.url("/oauth2/revoke").as_str());
    assert_eq!(m["introspection_endpoint"], f.server.url("/oauth2/introspect").as_str());
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(m["scopes_supported"].as_array().unwrap().len(), 13, "the twelve kraken scopes and openid");
    assert!(m["response_types_supported"].as_array().unwrap().contains(&"code".into()));
}

#[tokio::test]
async fn twitch_dialect_writes_scope_as_an_array() {
    let config = gatehouse_server::ServerConfig { scope_as_array: true, ..Default::default() };
    let f = Fixture::with(TestServer::start_with(Default::default(), config).await).await;
    let body = f.tokens("user_read channel_read").await;
    assert_eq!(body["scope"], serde_json::json!(["channel_read", "user_read"]));
}

#[tokio::test]
async fn openapi_document_lists_every_json_endpoint() {
    let server = TestServer::start().await;
    let doc: serde_json::Value = server.http().get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/oauth2/token", "post"),
        ("/oauth2/revoke", "post"),
        ("/oauth2/introspect", "post"),
        ("/oauth2/validate", "get"),
        ("/oauth2/device", "post"),
        ("/oauth2/keys", "get"),
        ("/oauth2/userinfo", "get"),
        ("/.well-known/openid-configuration", "get"),
        ("/api/user", "get"),
        ("/api/channel", "put"),
        ("/api/channel/stream_key", "delete"),
        ("/api/chat/login", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is not documented");
    }
    assert!(doc["components"]["schemas"]["TokenBody"]["properties"]["access_token"].is_object());
}
