//! OpenID Connect, checked by the `openidconnect` crate: discovery, an ID token's
//! signature, nonce and at_hash, userinfo, key rotation, prompt and max_age.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySetUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn openidconnect_crate_completes_a_flow_and_verifies_the_id_token() {
    let f = Fixture::new().await;
    let http = f.server.http();
    let issuer = IssuerUrl::new(f.server.base.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http).await.expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(f.client.id.clone()),
        Some(ClientSecret::new(f.client.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("user_read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = f.browser.authorize_and_allow(url.query().unwrap(), "alice").await;
    assert_eq!(query_param(&back, "state").as_deref(), Some(csrf.secret().as_str()));
    let code = query_param(&back, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("id_token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token.claims(&id_verifier, &nonce).expect("signature, issuer, audience, nonce and expiry verify");
    assert_eq!(claims.subject().as_str(), f.user.id);
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert!(claims.auth_time().is_some());
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(tokens.access_token(), id_token.signing_alg().unwrap(), id_token.signing_key(&id_verifier).unwrap()).unwrap();
    assert_eq!(&actual, expected);
    // A wrong nonce is caught.
    assert!(id_token.claims(&id_verifier, &Nonce::new("other".into())).is_err());

    // userinfo with the same access token.
    let res = http.get(f.server.url("/oauth2/userinfo")).bearer_auth(tokens.access_token().secret()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let info: serde_json::Value = res.json().await.unwrap();
    assert_eq!((info["sub"].as_str(), info["preferred_username"].as_str()), (Some(f.user.id.as_str()), Some("alice")));
    assert_eq!(info["email"], "alice@example.com");

    // A refresh brings a new ID token for the same subject.
    let refreshed: serde_json::Value = f
        .server
        .token(&f.client, &[("grant_type", "refresh_token"), ("refresh_token", tokens.refresh_token().unwrap().secret())])
        .await
        .1;
    assert!(refreshed["id_token"].is_string());
}

#[tokio::test]
async fn discovery_has_every_field_oidc_discovery_requires() {
    let f = Fixture::new().await;
    let m: serde_json::Value = f.server.http().get(f.server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(!m[field].is_null(), "missing {field}");
    }
    assert_eq!(m["issuer"], f.server.base.as_str());
    assert_eq!(m["userinfo_endpoint"], f.server.url("/oauth2/userinfo").as_str());
    assert_eq!(m["jwks_uri"], f.server.url("/oauth2/keys").as_str());
    assert_eq!(m["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    assert!(m["scopes_supported"].as_array().unwrap().contains(&"openid".into()));
    assert!(m["response_types_supported"].as_array().unwrap().contains(&"code".into()));
}

async fn id_token_now(f: &Fixture, nonce: &str) -> (String, String) {
    let url = f.browser.authorize_and_allow(&code_query(&f.client.id, "openid", &format!("nonce={nonce}")), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (status, body) = f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (s(&body, "id_token"), s(&body, "access_token"))
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn after_key_rotation_old_tokens_still_verify_until_their_key_retires() {
    let f = Fixture::new().await;
    let http = f.server.http();
    let (old_token, _) = id_token_now(&f, "n1").await;
    let old_kid = kid_of(&old_token);

    let keyring = f.server.auth.keyring.clone().unwrap();
    let new_kid = keyring.rotate(f.server.auth.store.as_ref(), f.server.auth.now()).await.unwrap();
    assert_ne!(new_kid, old_kid);
    let (new_token, _) = id_token_now(&f, "n2").await;
    assert_eq!(kid_of(&new_token), new_kid, "new tokens are signed with the new key");

    // A verifier built from the published JWKS accepts both.
    let jwks = CoreJsonWebKeySet::fetch_async(&JsonWebKeySetUrl::new(f.server.url("/oauth2/keys")).unwrap(), &http).await.unwrap();
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(f.client.id.clone()),
        ClientSecret::new(f.client.secret.clone().unwrap()),
        IssuerUrl::new(f.server.base.clone()).unwrap(),
        jwks,
    );
    for (token, nonce) in [(&old_token, "n1"), (&new_token, "n2")] {
        let parsed: CoreIdToken = token.parse().unwrap();
        parsed.claims(&verifier, &Nonce::new(nonce.into())).expect("verifies");
    }

    // Once nothing it signed can still be valid, the old key leaves the JWKS.
    f.server.clock.advance(gatehouse_core::oidc::RETIRED_KEY_GRACE + 1);
    let jwks: serde_json::Value = http.get(f.server.url("/oauth2/keys")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![new_kid.as_str()]);
}

#[tokio::test]
async fn userinfo_needs_the_openid_scope() {
    let f = Fixture::new().await;
    let plain = s(&f.tokens("user_read").await, "access_token");
    let res = f.server.http().get(f.server.url("/oauth2/userinfo")).bearer_auth(&plain).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = f.server.http().get(f.server.url("/oauth2/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (_, at) = id_token_now(&f, "x").await;
    let info: serde_json::Value = f.server.http().get(f.server.url("/oauth2/userinfo")).bearer_auth(&at).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["preferred_username"], "alice");
    assert!(info.get("email").is_none(), "no email without user_read");
}

#[tokio::test]
async fn max_age_and_prompt_login_ask_for_the_password_again() {
    let f = Fixture::new().await;
    f.code("openid").await;
    let q = code_query(&f.client.id, "openid", "max_age=3600");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    assert!(location(&res).starts_with(REDIRECT), "a fresh sign-in satisfies max_age");
    f.server.clock.advance(3601);
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    assert!(location(&res).starts_with("/login?"), "{}", location(&res));
    let q_none = code_query(&f.client.id, "openid", "max_age=3600&prompt=none");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q_none}"))).send().await.unwrap();
    assert_eq!(query_param(&location(&res), "error").as_deref(), Some("login_required"));
    // Signing in again meets max_age, and auth_time in the ID token moves with it.
    let url = f.browser.authorize_and_allow(&q, "alice").await;
    assert!(query_param(&url, "code").is_some());

    let q = code_query(&f.client.id, "openid", "prompt=login");
    let res = f.browser.http.get(f.server.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    let loc = location(&res);
    assert!(loc.starts_with("/login?"), "{loc}");
    assert!(!loc.contains("prompt"), "the request goes on without prompt=login after sign-in: {loc}");
}
