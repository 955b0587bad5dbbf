//! The ID token that travels with an access token when `openid` was granted (OpenID
//! Connect Core §3.1.3.3). It needs the authority (store, clock, issuer, keyring), so it
//! sits here beside the grants rather than in `oidc`, which the authority holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::oidc::{ID_TOKEN_TTL, OPENID};
use crate::scope::ScopeSet;

/// OpenID Connect Core §3.1.3.6: base64url of the left half of SHA-256 of the token.
pub fn left_half_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    azp: &'a str,
    at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
}

/// What an ID token says, beside the access token it travels with.
pub struct IdTokenFacts<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub scopes: &'a ScopeSet,
    pub nonce: Option<&'a str>,
    pub auth_time: Option<i64>,
    pub access_token: &'a str,
}

/// An ID token when `openid` was granted, else None.
pub async fn id_token(auth: &Authority, facts: IdTokenFacts<'_>) -> Result<Option<String>, OAuthError> {
    if !facts.scopes.contains(OPENID) {
        return Ok(None);
    }
    let Some(keyring) = &auth.keyring else {
        return Err(OAuthError::invalid_scope("OpenID Connect is not configured on this server"));
    };
    let now = auth.now();
    let login = auth.store.find_user(facts.user_id).await?.map(|u| u.login);
    let claims = IdTokenClaims {
        iss: &auth.issuer,
        sub: facts.user_id,
        aud: facts.client_id,
        exp: now + ID_TOKEN_TTL,
        iat: now,
        auth_time: facts.auth_time,
        nonce: facts.nonce,
        azp: facts.client_id,
        at_hash: left_half_hash(facts.access_token),
        preferred_username: login.as_deref(),
    };
    keyring.sign(auth.store.as_ref(), now, &claims, "JWT").await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OpenID Connect Core, Appendix A.3/A.4 example access token.
        assert_eq!(left_half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
