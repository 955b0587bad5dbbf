//! The OpenAPI 3.1 document of every JSON endpoint, served at `/openapi.json`. The paths
//! come from the `#[utoipa::path]` attributes on the handlers; the shapes below are the
//! JSON those handlers write. CI runs schemathesis against the live server with this
//! document, so a handler that drifts from its shape fails the build.

use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: RFC 6749 §5.2 fields plus Twitch's `status` and `message`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub error_description: String,
    pub status: u16,
    pub message: String,
    /// With `insufficient_scope`: the scope the request needs.
    pub scope: Option<String>,
}

/// `scope` is a space-separated string (RFC 6749), or an array with `scope_as_array`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // a shape for the document; token_json writes the JSON
pub enum ScopeValue {
    Text(String),
    List(Vec<String>),
}

#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub scope: Option<ScopeValue>,
    /// OpenID Connect: with the `openid` scope.
    pub id_token: Option<String>,
}

/// A token request (RFC 6749 §4.1.3, §4.4.2, §6; RFC 8628 §3.4). Client credentials go
/// in HTTP Basic or in `client_id` / `client_secret`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    pub grant_type: GrantType,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub device_code: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A revocation or introspection request (RFC 7009, RFC 7662).
#[derive(Serialize, ToSchema)]
pub struct TokenQuery {
    pub token: Option<String>,
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// A device authorization request (RFC 8628 §3.1).
#[derive(Serialize, ToSchema)]
pub struct DeviceRequest {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceBody {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Twitch's validate answer.
#[derive(Serialize, ToSchema)]
pub struct ValidationBody {
    pub client_id: String,
    pub login: Option<String>,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in: i64,
}

/// RFC 7662 §2.2: an inactive token says only `active: false`.
#[derive(Serialize, ToSchema)]
pub struct IntrospectionBody {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub sub: Option<String>,
    pub token_type: Option<String>,
    /// `access_token` or `refresh_token`.
    pub token_use: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: Option<String>,
    pub alg: Option<String>,
    pub n: String,
    pub e: String,
}

#[derive(Serialize, ToSchema)]
pub struct JwksBody {
    pub keys: Vec<Jwk>,
}

/// OpenID Connect Core §5.3.2.
#[derive(Serialize, ToSchema)]
pub struct UserInfoBody {
    pub sub: String,
    pub preferred_username: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
}

/// RFC 8414 metadata (OpenID Connect Discovery adds its fields to the same object).
#[derive(Serialize, ToSchema)]
pub struct MetadataBody {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiUser {
    pub id: String,
    pub login: String,
    pub created_at: i64,
    /// With `user_read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EmailBody {
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelBody {
    pub user_id: String,
    pub login: String,
    pub status: Option<String>,
    pub game: Option<String>,
    pub updated_at: i64,
    /// With `channel_read`.
    pub stream_key: Option<String>,
    pub email: Option<String>,
}

/// A channel edit, as a form or JSON; each field at most 140 printable characters.
#[derive(Serialize, ToSchema)]
pub struct ChannelEditBody {
    pub status: Option<String>,
    pub game: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StreamKeyBody {
    pub stream_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct CommercialRequest {
    /// 30, 60, 90, 120, 150 or 180 (seconds); 30 when absent.
    pub length: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CommercialBody {
    pub length: i64,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct Person {
    pub login: String,
    pub user_id: String,
    pub created_at: Option<i64>,
}

/// A list of people: `_total` and one of `follows`, `blocks` or `subscriptions`.
#[derive(Serialize, ToSchema)]
pub struct PeopleBody {
    pub _total: i64,
    pub follows: Option<Vec<Person>>,
    pub blocks: Option<Vec<Person>>,
    pub subscriptions: Option<Vec<Person>>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatLoginBody {
    pub login: String,
    pub chat_server: String,
    pub allowed: bool,
}

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
