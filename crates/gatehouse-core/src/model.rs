//! The records Gatehouse keeps. Every secret field holds a SHA-256 digest, never the secret.

use crate::pkce;
use crate::scope::ScopeSet;

#[derive(Debug, Clone, Default)]
pub struct User {
    pub id: String,
    pub login: String,
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
    /// The user followed a link mailed to `email`: only then do applications see it as
    /// verified, and only one account may hold an address verified.
    pub email_verified: bool,
    /// An operator disabled the account: it cannot sign in and holds no working token.
    pub disabled: bool,
    /// May use the operator pages (`/admin`).
    pub is_admin: bool,
}

/// What a link mailed to a user (or printed by `gatehouse user reset-link`) lets them do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Prove the address in the link's `email`, making it the account's verified email.
    VerifyEmail,
    /// Choose a new password.
    ResetPassword,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ResetPassword => "reset_password",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "verify_email" => Some(LinkPurpose::VerifyEmail),
            "reset_password" => Some(LinkPurpose::ResetPassword),
            _ => None,
        }
    }
}

/// A single-use link token. The link carries the random token; the store holds its digest.
#[derive(Debug, Clone)]
pub struct LinkToken {
    pub token_hash: String,
    pub user_id: String,
    pub purpose: LinkPurpose,
    /// The address the link was sent to (for a verification: the address it proves).
    pub email: String,
    pub created_at: i64,
    pub expires_at: i64,
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
    /// Access tokens for this client are RFC 9068 JWTs rather than opaque strings.
    pub jwt_access_tokens: bool,
}

/// A signed-in browser. The cookie holds the random id; the store holds its digest.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// The browser's User-Agent at sign-in (cut short), shown on the security page.
    pub user_agent: String,
    /// The client address last seen using the session.
    pub address: String,
    /// When the session was last used, to within `SESSION_SEEN_EVERY` seconds.
    pub last_seen: i64,
}

/// How often a session's last use is written: page views must not each be a write.
pub const SESSION_SEEN_EVERY: i64 = 60;

/// A user's two-factor sign-in (TOTP). The secret is sealed by the keyring, never in
/// the clear.
#[derive(Debug, Clone)]
pub struct TwoFactor {
    pub user_id: String,
    pub secret_sealed: String,
    /// The newest time step whose code was accepted: no code of it or before is again.
    pub last_step: i64,
    pub enabled_at: i64,
    /// Recovery codes not yet used.
    pub recovery_codes_left: i64,
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

impl AuthorizationCode {
    /// The tokens issued from this code: their family id is the code's key.
    pub fn family(&self) -> Family<'_> {
        Family { id: &self.code_hash, client_id: &self.client_id, user_id: &self.user_id }
    }
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

impl RefreshToken {
    pub fn family(&self) -> Family<'_> {
        Family { id: &self.family_id, client_id: &self.client_id, user_id: &self.user_id }
    }
}

/// The tokens of one grant: a code's, or one family of rotated refresh tokens with the
/// access tokens issued beside them. They share one client and one user, and that is
/// how a store finds the access tokens (an index by family would cost every rotation
/// one more page written).
#[derive(Clone, Copy, Debug)]
pub struct Family<'a> {
    /// The family id; for a code's tokens, the code's key.
    pub id: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
}

#[derive(Debug, Clone)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: ScopeSet,
    pub granted_at: i64,
    pub updated_at: i64,
}

/// A user's channel on the demo platform API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Channel {
    pub user_id: String,
    pub status: String,
    pub game: String,
    pub stream_key: String,
    pub last_commercial_at: Option<i64>,
    pub updated_at: i64,
}

/// Edges between users on the demo platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Follow,
    Block,
    Subscription,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Follow => "follow",
            Relation::Block => "block",
            Relation::Subscription => "subscription",
        }
    }
}

/// A user on the other end of a relation, with when it began.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelatedUser {
    pub user_id: String,
    pub login: String,
    pub created_at: i64,
}

/// A token-bucket rate limit: `capacity` requests, refilled evenly over `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    pub capacity: i64,
    pub window: i64,
}

/// What a bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Whole requests left in the bucket after this one.
    pub remaining: i64,
    /// Seconds until the bucket is full again.
    pub reset_after: i64,
    /// Seconds until one request is allowed again (0 when allowed).
    pub retry_after: i64,
}

/// What a shared bucket said about `count` requests taken together: the first `allowed`
/// of them were let through, and `level` is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateTake {
    pub level: i64,
    pub allowed: i64,
}

impl RateTake {
    /// The decision for the `i`-th of the requests (from 0), as if each had been taken
    /// alone in turn: a request let through saw the level the later ones then took from.
    pub fn decision(&self, budget: &RateBudget, i: i64) -> RateDecision {
        if i < self.allowed {
            budget.decision(self.level + (self.allowed - 1 - i) * 1000, true)
        } else {
            budget.decision(self.level, false)
        }
    }
}

impl RateBudget {
    /// A full bucket, in thousandths of a request.
    pub fn full_level(&self) -> i64 {
        self.capacity.max(1) * 1000
    }

    /// The token-bucket arithmetic, in thousandths of a request so that integer storage
    /// is exact on every backend. `level` is what the bucket held `elapsed` seconds ago
    /// (None: a new bucket, full). Returns the decision and the level to store.
    pub fn take(&self, level: Option<i64>, elapsed: i64) -> (RateDecision, i64) {
        let full = self.full_level();
        let window = self.window.max(1);
        let refill = elapsed.max(0).saturating_mul(full) / window;
        let mut level = level.map_or(full, |l| l.saturating_add(refill).min(full));
        let allowed = level >= 1000;
        if allowed {
            level -= 1000;
        }
        (self.decision(level, allowed), level)
    }

    /// What to tell the caller, given the level left after its request and whether the
    /// request was let through.
    pub fn decision(&self, level: i64, allowed: bool) -> RateDecision {
        let full = self.full_level();
        let window = self.window.max(1);
        // Seconds for the bucket to regain `milli`, rounded up.
        let seconds_for = |milli: i64| (milli.saturating_mul(window) + full - 1) / full;
        RateDecision {
            allowed,
            remaining: level / 1000,
            reset_after: seconds_for(full - level),
            retry_after: if allowed { 0 } else { seconds_for(1000 - level).max(1) },
        }
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn a_bucket_empties_then_refills_over_its_window() {
        let b = RateBudget { capacity: 3, window: 60 };
        let (d, l) = b.take(None, 0);
        assert_eq!((d.allowed, d.remaining), (true, 2));
        let (d, l) = b.take(Some(l), 0);
        assert_eq!((d.allowed, d.remaining), (true, 1));
        let (d, l) = b.take(Some(l), 0);
        assert_eq!((d.allowed, d.remaining, d.reset_after), (true, 0, 60));
        let (d, l) = b.take(Some(l), 0);
        assert_eq!((d.allowed, d.retry_after), (false, 20));
        // One request comes back every 20 seconds.
        let (d, l) = b.take(Some(l), 20);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        let (d, _) = b.take(Some(l), 600);
        assert_eq!((d.allowed, d.remaining), (true, 2), "refills no further than full");
    }
}

/// Where a device authorization (RFC 8628) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Exchanged for tokens: nothing more to give.
    Used,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Used => "used",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeviceStatus::Pending),
            "approved" => Some(DeviceStatus::Approved),
            "denied" => Some(DeviceStatus::Denied),
            "used" => Some(DeviceStatus::Used),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub device_code_hash: String,
    /// SHA-256 of the normalised user code (letters only, upper case).
    pub user_code_hash: String,
    pub client_id: String,
    pub scopes: ScopeSet,
    pub status: DeviceStatus,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Seconds the device must wait between polls; grows by 5 at each `slow_down`.
    pub interval: i64,
    pub last_poll_at: Option<i64>,
}

/// An OpenID Connect signing key. `private_key` is the PKCS#1 DER key sealed with
/// AES-256-GCM under the server's key encryption key; the store never sees it in clear.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    pub public_jwk: String,
    pub created_at: i64,
    /// When a newer key took over signing; None while this one signs.
    pub retired_at: Option<i64>,
}
