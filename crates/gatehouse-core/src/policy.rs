//! Token policy: lifetimes and limits, with the defaults DESIGN.md names.

#[derive(Debug, Clone)]
pub struct Policy {
    pub access_token_ttl: i64,
    pub code_ttl: i64,
    /// Public clients' refresh tokens expire after this long unused; confidential never.
    pub public_refresh_idle_ttl: i64,
    /// A rotated refresh token presented again within this many seconds is refused
    /// without revoking its family (a client retrying a lost response); later, it is
    /// treated as stolen and the family is revoked.
    pub refresh_reuse_grace: i64,
    pub max_refresh_per_client_user: i64,
    pub max_refresh_per_user: i64,
    pub allow_plain_pkce: bool,
    pub session_ttl: i64,
    /// Issue RFC 9068 JWT access tokens to every client (else only to clients that ask).
    pub jwt_access_tokens: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            access_token_ttl: 3600,
            code_ttl: 60,
            public_refresh_idle_ttl: 30 * 24 * 3600,
            refresh_reuse_grace: 10,
            max_refresh_per_client_user: 20,
            max_refresh_per_user: 200,
            allow_plain_pkce: false,
            session_ttl: 7 * 24 * 3600,
            jwt_access_tokens: false,
        }
    }
}

/// The refresh-token caps of seed 000, handed to the store with each new grant.
#[derive(Debug, Clone, Copy)]
pub struct RefreshCaps {
    pub per_client_user: i64,
    pub per_user: i64,
}

impl Policy {
    pub fn refresh_caps(&self) -> RefreshCaps {
        RefreshCaps {
            per_client_user: self.max_refresh_per_client_user,
            per_user: self.max_refresh_per_user,
        }
    }
}
