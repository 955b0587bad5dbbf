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

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse", description = "OAuth 2.0 authorization server: token endpoints, OpenID Connect and the demo platform API."),
    modifiers(&Security),
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
