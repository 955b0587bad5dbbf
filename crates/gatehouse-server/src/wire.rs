//! The JSON bodies of the HTTP API, defined once: handlers write and read these types,
//! and the OpenAPI document (routes/openapi.rs) describes them from the same
//! definitions, so the document cannot drift from what is sent. Response fields that
//! were always written in alphabetical order stay in that order.

use gatehouse_core::device::DeviceAuthorizationResponse;
use gatehouse_core::inspect::{Introspection, Validation};
use gatehouse_core::model::RelatedUser;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error: owned by gatehouse-guard, whose guarded APIs answer in it too.
pub use gatehouse_guard::ErrorBody;

/// A token response (RFC 6749 §5.1).
// Borrowed from the core's answer, so writing one copies no field.
#[derive(Serialize, ToSchema)]
pub struct TokenBody<'a> {
    pub access_token: &'a str,
    pub expires_in: i64,
    /// OpenID Connect: with the `openid` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeValue<'a>>,
    /// Always `bearer`.
    pub token_type: &'a str,
}

/// `scope` is a space-separated string (RFC 6749), or an array with `scope_as_array`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ScopeValue<'a> {
    Text(String),
    List(Vec<&'a str>),
}

/// A token request (RFC 6749 §4.1.3, §4.4.2, §6; RFC 8628 §3.4). Client credentials go
/// in HTTP Basic or in `client_id` / `client_secret`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // the document's word for grant_type; the handler reads the text
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

// Read field by field from Params (a name sent twice is refused), so only described.
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

/// An answer with nothing to say, still JSON: revocation's.
#[derive(Serialize, ToSchema)]
pub struct EmptyBody {}

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
    /// Twitch's name for `scope`; send one of the two.
    pub scopes: Option<String>,
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

impl From<DeviceAuthorizationResponse> for DeviceBody {
    fn from(d: DeviceAuthorizationResponse) -> Self {
        DeviceBody {
            device_code: d.device_code,
            user_code: d.user_code,
            verification_uri: d.verification_uri,
            verification_uri_complete: d.verification_uri_complete,
            expires_in: d.expires_in,
            interval: d.interval,
        }
    }
}

/// Twitch's validate answer.
#[derive(Serialize, ToSchema)]
pub struct ValidationBody {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in: i64,
}

impl From<Validation> for ValidationBody {
    fn from(v: Validation) -> Self {
        ValidationBody { client_id: v.client_id, login: v.login, user_id: v.user_id, scopes: v.scopes, expires_in: v.expires_in }
    }
}

/// RFC 7662 §2.2: an inactive token says only `active: false`.
#[derive(Serialize, ToSchema)]
pub struct IntrospectionBody {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `bearer` for access tokens (RFC 6749 §7.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_use: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

impl From<Introspection> for IntrospectionBody {
    fn from(i: Introspection) -> Self {
        IntrospectionBody {
            active: i.active,
            scope: i.scope,
            client_id: i.client_id,
            username: i.username,
            sub: i.sub,
            token_type: i.token_type,
            token_use: i.token_use,
            exp: i.exp,
            iat: i.iat,
        }
    }
}

// The keyring publishes the JWK text it stored, so this only describes it.
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    pub preferred_username: String,
    pub sub: String,
}

/// RFC 8414 metadata (OpenID Connect Discovery adds its fields to the same object).
// Fields in alphabetical order, as the document was always written; the OpenID
// Connect ones only in /.well-known/openid-configuration.
#[derive(Serialize, ToSchema)]
pub struct MetadataBody {
    pub authorization_endpoint: String,
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims_parameter_supported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims_supported: Option<Vec<&'static str>>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub device_authorization_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg_values_supported: Option<Vec<&'static str>>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_parameter_supported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_uri_parameter_supported: Option<bool>,
    pub response_modes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub scopes_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_types_supported: Option<Vec<&'static str>>,
    pub token_endpoint: String,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
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
    /// With `channel_read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub game: String,
    pub login: String,
    pub status: String,
    /// With `channel_read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_key: Option<String>,
    pub updated_at: i64,
    pub user_id: String,
}

/// A channel edit, as a form or JSON; each field at most 140 printable characters.
#[derive(Serialize, Deserialize, Default, ToSchema)]
pub struct ChannelEditBody {
    pub status: Option<String>,
    pub game: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StreamKeyBody {
    pub stream_key: String,
}

#[derive(Serialize, Deserialize, Default, ToSchema)]
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
    /// When the relation began; not in the answer to making one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    pub login: String,
    pub user_id: String,
}

impl From<RelatedUser> for Person {
    fn from(r: RelatedUser) -> Self {
        Person { created_at: Some(r.created_at), login: r.login, user_id: r.user_id }
    }
}

/// A list of people: `_total` and one of `follows`, `blocks` or `subscriptions`.
#[derive(Serialize, ToSchema)]
pub struct PeopleBody {
    pub _total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<Person>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follows: Option<Vec<Person>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<Person>>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatLoginBody {
    pub allowed: bool,
    pub chat_server: String,
    pub login: String,
}
