//! The OpenAPI 3.1 document of every JSON endpoint, served at `/openapi.json`. The paths
//! come from the `#[utoipa::path]` attributes on the handlers, the shapes from the types
//! of `crate::wire` that those handlers write. CI runs schemathesis against the live
//! server with this document, so a handler that drifts from its shape fails the build.

use axum::response::IntoResponse;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme("client_basic", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()));
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The seeds' paths served by the same handlers as the canonical ones (routes/mod.rs).
/// Only JSON endpoints are in the document, so the authorize aliases are not.
pub const ALIASES: &[(&str, &str, &str)] = &[
    ("/kraken/oauth2/token", "/oauth2/token", "Twitch kraken"),
    ("/kraken/oauth2/revoke", "/oauth2/revoke", "Twitch kraken"),
    ("/oauth2/token/revoke", "/oauth2/revoke", "Nightbot"),
    ("/api/v1.0/token", "/oauth2/token", "Streamlabs"),
];

struct Aliases;

impl Modify for Aliases {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (alias, canonical, dialect) in ALIASES {
            let Some(mut item) = api.paths.paths.get(*canonical).cloned() else { continue };
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.operation_id = op.operation_id.as_ref().map(|id| format!("{id}_{}", alias.replace(['/', '.'], "_")));
                op.summary = Some(format!("Alias of {canonical} ({dialect})"));
                op.description = Some(format!("The same endpoint as `{canonical}`, at the path {dialect} documents."));
            }
            api.paths.paths.insert(alias.to_string(), item);
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "OAuth 2.0 authorization server: token endpoints, OpenID Connect and the demo platform API."),
    modifiers(&Security, &Aliases),
    paths(
        super::meta::healthz,
        super::meta::authorization_server_metadata,
        super::meta::openid_configuration,
        super::token::token,
        super::token_info::revoke,
        super::token_info::introspect,
        super::token_info::validate,
        super::device::start,
        super::oidc::keys,
        super::oidc::userinfo,
        super::api::user,
        super::api::email,
        super::api::follows,
        super::api::follow,
        super::api::unfollow,
        super::api::blocks,
        super::api::block,
        super::api::unblock,
        super::api::user_subscriptions,
        super::api::channel,
        super::api::edit_channel,
        super::api::stream_key,
        super::api::reset_stream_key,
        super::api::commercial,
        super::api::channel_subscribers,
        super::api::check_subscription,
        super::api::chat_login,
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`
pub async fn document() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
