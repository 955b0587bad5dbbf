//! The Rust crate `twitch_oauth2`, unchanged, pointed at Gatehouse by its base-URL
//! setting (`TWITCH_OAUTH2_URL`, feature `mock_api`): app tokens, the code and device
//! flows, validate, refresh and revoke, with the exact requests it sends (most of them
//! parameters in a POST's query string).

use gatehouse_core::model::ClientKind;
use twitch_oauth2::tokens::errors::ValidationError;
use twitch_oauth2::{AppAccessToken, ClientId, ClientSecret, DeviceUserTokenBuilder, Scope, TwitchToken, UserTokenBuilder};

use crate::common::*;

// The crate reads TWITCH_OAUTH2_URL once per process, so every flow is in this one test.
#[tokio::test]
async fn twitch_oauth2_works_unchanged() {
    // Twitch's dialect: `scope` as a JSON array, which the crate requires.
    let config = gatehouse_server::ServerConfig { scope_as_array: true, ..Default::default() };
    let f = Fixture::with(TestServer::start_with(Default::default(), config).await).await;
    std::env::set_var("TWITCH_OAUTH2_URL", f.server.url("/oauth2/"));
    let http = reqwest013::Client::new();
    let id = ClientId::new(f.client.id.clone());
    let secret = ClientSecret::new(f.client.secret.clone().unwrap());

    // App access token, validated: no user, and `login`/`user_id` absent.
    let app = AppAccessToken::get_app_access_token(&http, id.clone(), secret.clone(), vec![]).await.expect("app token");
    let seen = app.access_token.validate_token(&http).await.expect("validate");
    assert_eq!((seen.client_id.as_str(), seen.login, seen.user_id), (f.client.id.as_str(), None, None));
    app.access_token.revoke_token(&http, &id).await.expect("revoke");
    assert!(matches!(app.access_token.validate_token(&http).await, Err(ValidationError::NotAuthorized)));

    // User token by the code flow, then refresh and revoke.
    let mut builder = UserTokenBuilder::new(id.clone(), secret.clone(), url::Url::parse(REDIRECT).unwrap())
        .set_scopes(vec![Scope::parse("user_read")]);
    let (url, _) = builder.generate_url();
    let back = match f.browser.authorize(url.as_str(), "alice").await {
        Outcome::Consent(fields) => location(&f.browser.decide(&fields, "allow").await),
        other => panic!("{other:?}"),
    };
    let (state, code) = (query_param(&back, "state").unwrap(), query_param(&back, "code").unwrap());
    let mut user = builder.get_user_token(&http, &state, &code).await.expect("user token");
    assert_eq!(user.login.as_str(), "alice");
    let before = user.access_token.clone();
    user.refresh_token(&http).await.expect("refresh");
    assert_ne!(user.access_token, before);
    assert!(user.validate_token(&http).await.is_ok());
    let after = user.access_token.clone();
    user.revoke_token(&http).await.expect("revoke user token");
    assert!(matches!(after.validate_token(&http).await, Err(ValidationError::NotAuthorized)));

    // Device flow for a public client: pending until the user answers, then tokens.
    let tv = f.server.add_client("TV", &f.user, ClientKind::Public, false).await;
    let mut device = DeviceUserTokenBuilder::new(ClientId::new(tv.id.clone()), vec![Scope::parse("chat_login")]);
    let user_code = device.start(&http).await.expect("device start").user_code.clone();
    let pending = device.try_finish(&http).await.expect_err("not answered yet");
    assert!(pending.is_pending(), "{pending:?}");
    let (found, _) = gatehouse_core::device::find_pending(&f.server.auth, &user_code).await.unwrap();
    gatehouse_core::device::decide(&f.server.auth, &found, &f.user.id, f.server.auth.now(), true).await.unwrap();
    let clock = f.server.clock.clone();
    let token = device
        .wait_for_code(&http, |wait| {
            clock.advance(wait.as_secs() as i64);
            std::future::ready(())
        })
        .await
        .expect("device token");
    assert_eq!(token.login.as_str(), "alice");
    assert!(token.scopes().iter().any(|s| s.as_str() == "chat_login"));
}
