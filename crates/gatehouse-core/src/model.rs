//! The records Gatehouse keeps. Every secret field holds a SHA-256 digest, never the secret.

use crate::pkce;
use crate::scope::ScopeSet;

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub login: String,
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Can keep a secret (a web server): authenticates at the token endpoint.
    Confidential,
    /// Cannot (a native or browser app): no secret, PKCE required.
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confidential" => Some(ClientKind::Confidential),
            "public" => Some(ClientKind::Public),
            _ => None,
        }
    }
}

/// The categories of the developer console, as Twitch's.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("chat_bot", "Chat Bot"),
    ("website_integration", "Website Integration"),
    ("game_integration", "Game Integration"),
    ("broadcaster_suite", "Broadcaster Suite"),
    ("analytics", "Analytics Tool"),
    ("other", "Other"),
];

pub fn category_label(key: &str) -> &'static str {
    CATEGORIES.iter().find(|(k, _)| *k == key).map(|(_, l)| *l).unwrap_or("Other")
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub owner_user_id: String,
    pub category: String,
    pub kind: ClientKind,
    pub allow_implicit: bool,
    pub redirect_uris: Vec<String>,
    pub secret_hash: Option<String>,
    /// The secret replaced by the last rotation, still accepted until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub created_at: i64,
}

/// A signed-in browser. The cookie holds the random id; the store holds its digest.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// The authorize request named `redirect_uri` (rather than relying on the sole
    /// registered one), so the token request must repeat it (RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub scopes: ScopeSet,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<pkce::Method>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token_hash: String,
    pub client_id: String,
    /// None for app access tokens (client credentials).
    pub user_id: Option<String>,
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub expires_at: i64,
    /// The refresh family this token belongs to, so reuse detection can revoke it.
    pub family_id: Option<String>,
    /// The code it was issued from, so a replayed code can revoke it (RFC 6749 §4.1.2).
    pub code_hash: Option<String>,
    pub revoked: bool,
}

/// An access token as the introspection and validate endpoints see it.
#[derive(Debug, Clone)]
pub struct AccessTokenInfo {
    pub token: AccessToken,
    pub user_login: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub token_hash: String,
    /// Every token rotated from one grant shares a family; reuse revokes the family.
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scopes: ScopeSet,
    pub created_at: i64,
    /// None: never expires (confidential clients). Public clients' slide with use.
    pub expires_at: Option<i64>,
    /// When this token was exchanged for a newer one; None while it is the live one.
    pub rotated_at: Option<i64>,
    pub revoked: bool,
    pub code_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: ScopeSet,
    pub granted_at: i64,
    pub updated_at: i64,
}
