//! Looking at a token: Twitch's validate endpoint and RFC 7662 introspection.


use crate::authority::Authority;
use crate::error::{ErrorCode, OAuthError};
use crate::model::AccessTokenInfo;
use crate::secret::token_key;

/// Finds a live access token: known, not revoked, not expired.
pub async fn live_access_token(auth: &Authority, token: &str) -> Result<AccessTokenInfo, OAuthError> {
    let invalid = || OAuthError::new(ErrorCode::InvalidToken, "invalid access token");
    let info = auth.store.find_access_token(&token_key(token)).await?.ok_or_else(invalid)?;
    if info.token.revoked || auth.now() >= info.token.expires_at {
        return Err(invalid());
    }
    Ok(info)
}

/// What `GET /oauth2/validate` answers; the server writes it in Twitch's shape.
#[derive(Debug)]
pub struct Validation {
    pub client_id: String,
    pub login: Option<String>,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in: i64,
}

pub async fn validate(auth: &Authority, token: &str) -> Result<Validation, OAuthError> {
    let info = live_access_token(auth, token).await?;
    Ok(Validation {
        client_id: info.token.client_id,
        login: info.user_login,
        user_id: info.token.user_id,
        scopes: info.token.scopes.into_vec(),
        expires_in: info.token.expires_at - auth.now(),
    })
}

/// RFC 7662 §2.2. An inactive token says only `active: false`.
#[derive(Debug, Default)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub sub: Option<String>,
    /// RFC 7662 §2.2: the RFC 6749 §7.1 token type, `bearer`, for access tokens.
    pub token_type: Option<&'static str>,
    /// Which kind of token this is: `access_token` or `refresh_token` (an extension, as
    /// Ory Hydra's `token_use`).
    pub token_use: Option<&'static str>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
}

pub async fn introspect(auth: &Authority, token: Option<&str>) -> Result<Introspection, OAuthError> {
    let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = auth.now();
    let hash = token_key(token);
    if let Some(info) = auth.store.find_access_token(&hash).await? {
        let t = info.token;
        if t.revoked || now >= t.expires_at {
            return Ok(Introspection::default());
        }
        return Ok(Introspection {
            active: true,
            scope: Some(t.scopes.to_space_separated()),
            client_id: Some(t.client_id),
            username: info.user_login,
            sub: t.user_id,
            token_type: Some("bearer"),
            token_use: Some("access_token"),
            exp: Some(t.expires_at),
            iat: Some(t.created_at),
        });
    }
    if let Some(r) = auth.store.find_refresh_token(&hash).await? {
        let live = !r.revoked && r.rotated_at.is_none() && r.expires_at.is_none_or(|e| now < e);
        if !live {
            return Ok(Introspection::default());
        }
        let username = auth.store.find_user(&r.user_id).await?.map(|u| u.login);
        return Ok(Introspection {
            active: true,
            scope: Some(r.scopes.to_space_separated()),
            client_id: Some(r.client_id),
            username,
            sub: Some(r.user_id),
            token_type: None,
            token_use: Some("refresh_token"),
            exp: r.expires_at,
            iat: Some(r.created_at),
        });
    }
    Ok(Introspection::default())
}
