//! Looking at a token: Twitch's validate endpoint and RFC 7662 introspection.

use serde::Serialize;

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

/// The body of `GET /oauth2/validate`, in Twitch's shape.
#[derive(Debug, Serialize)]
pub struct Validation {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// RFC 7662 §2.2: the RFC 6749 §7.1 token type, `bearer`, for access tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Which kind of token this is: `access_token` or `refresh_token` (an extension, as
    /// Ory Hydra's `token_use`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_use: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
