//! RFC 9068 JWT access tokens: chosen per client (or server-wide), still stored as
//! digests so validate, introspect and revoke work, and verifiable by a resource server
//! with nothing but the JWKS.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use gatehouse_core::model::ClientKind;
use gatehouse_core::registration::{register, NewClient};
use gatehouse_guard::{authenticate, require_scope, Guard, JwtVerifier, Token};
use reqwest::StatusCode;

use crate::common::*;

async fn jwt_fixture() -> Fixture {
    let f = Fixture::new().await;
    let new = NewClient {
        name: "JWT App".into(),
        owner_user_id: f.user.id.clone(),
        category: "other".into(),
        kind: ClientKind::Confidential,
        allow_implicit: false,
        redirect_uris: vec![REDIRECT.into()],
        jwt_access_tokens: true,
    };
    let (c, secret) = register(&f.server.auth, new).await.unwrap();
    Fixture { client: TestClient { id: c.id, secret }, ..f }
}

fn claims(jwt: &str) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {jwt}");
    let decode = |p: &str| serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

#[tokio::test]
async fn a_jwt_client_gets_rfc9068_access_tokens() {
    let f = jwt_fixture().await;
    let tokens = f.tokens("chat_login").await;
    let at = s(&tokens, "access_token");
    let (header, c) = claims(&at);
    assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("at+jwt"), Some("RS256")));
    assert_eq!(c["iss"], f.server.base.as_str());
    assert_eq!(c["aud"], f.server.base.as_str());
    assert_eq!(c["sub"], f.user.id.as_str());
    assert_eq!(c["client_id"], f.client.id.as_str());
    assert_eq!(c["scope"], "chat_login");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    assert!(c["jti"].is_string());
    // Refreshed, it is a JWT again (that grant reads the stored token, then signs), and
    // the old refresh token is spent.
    let rt = s(&tokens, "refresh_token");
    let (status, refreshed) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (_, again) = claims(&s(&refreshed, "access_token"));
    assert_eq!((again["sub"].as_str(), again["scope"].as_str()), (Some(f.user.id.as_str()), Some("chat_login")));
    let (status, _) = f.server.token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Gatehouse itself treats it as any token: validate, then revoke.
    assert_eq!(f.server.validate(&at).await, StatusCode::OK);
    f.server.http().post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", &at)]).send().await.unwrap();
    assert_eq!(f.server.validate(&at).await, StatusCode::UNAUTHORIZED);
    // App tokens name the client as subject.
    let (_, app) = f.server.token(&f.client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(claims(&s(&app, "access_token")).1["sub"], f.client.id.as_str());
}

#[tokio::test]
async fn a_resource_server_verifies_jwt_access_tokens_from_the_jwks_alone() {
    let f = jwt_fixture().await;
    let guard = Arc::new(Guard::new(Arc::new(JwtVerifier::new(&f.server.base))));
    async fn hello(Token(t): Token) -> String {
        format!("{} {}", t.user_id.unwrap_or_default(), t.scopes.join(","))
    }
    let app = axum::Router::new()
        .route("/chat", get(hello).route_layer(from_fn_with_state("chat_login", require_scope)))
        .layer(from_fn_with_state(guard, authenticate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();

    let at = s(&f.tokens("chat_login").await, "access_token");
    let res = http.get(format!("{base}/chat")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), format!("{} chat_login", f.user.id));
    let no_scope = s(&f.tokens("").await, "access_token");
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth(&no_scope).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // A tampered payload, an ID token, and an opaque token are all refused.
    let mut parts: Vec<String> = at.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth(parts.join(".")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let url = f.browser.authorize_and_allow(&code_query(&f.client.id, "openid chat_login", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (_, t) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth(s(&t, "id_token")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth("opaque-token").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Documented: a revoked JWT is still accepted offline until it expires.
    f.server.http().post(f.server.url("/oauth2/revoke")).form(&[("client_id", f.client.id.as_str()), ("token", &at)]).send().await.unwrap();
    assert_eq!(http.get(format!("{base}/chat")).bearer_auth(&at).send().await.unwrap().status(), StatusCode::OK);
}
