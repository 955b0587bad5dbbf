//! OpenID Connect's own endpoints: the JWKS and userinfo.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::{inspect, ErrorCode, OAuthError};
use gatehouse_guard::GuardError;

use crate::error::AppError;
use crate::params::bearer_token;
use crate::wire::{ErrorBody, JwksBody, UserInfoBody};
use crate::AppState;

#[utoipa::path(get, path = "/oauth2/keys", tag = "oidc", responses((status = 200, description = "JWKS", body = JwksBody), (status = "default", description = "An error", body = ErrorBody)))]
pub async fn keys(State(state): State<AppState>) -> Result<Response, AppError> {
    let Some(keyring) = &state.auth.keyring else {
        return Ok(Json(JwksBody { keys: Vec::new() }).into_response());
    };
    let jwks = keyring.jwks(state.auth.store.as_ref(), state.auth.now()).await?;
    // Short caching: a rotation should reach clients within minutes.
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(jwks)).into_response())
}

/// OpenID Connect Core §5.3. Needs an access token with the `openid` scope.
#[utoipa::path(
    get, path = "/oauth2/userinfo", tag = "oidc",
    responses((status = 200, description = "Claims about the user", body = UserInfoBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let token = bearer_token(&headers).ok_or(GuardError::Missing)?;
    let info = inspect::live_access_token(&state.auth, &token).await.map_err(|e| match e.code {
        ErrorCode::InvalidToken => AppError::Guard(GuardError::InvalidToken(e.description)),
        _ => AppError::OAuth(e),
    })?;
    let t = &info.token;
    if !t.scopes.contains(gatehouse_core::oidc::OPENID) {
        return Err(GuardError::InsufficientScope("openid".into()).into());
    }
    let user_id = t.user_id.as_deref().ok_or_else(|| GuardError::InvalidToken("an app token has no user".into()))?;
    // An OAuth endpoint: a store failure is the core's server_error (logged there).
    let user = state
        .auth
        .store
        .find_user(user_id)
        .await
        .map_err(OAuthError::from)?
        .ok_or_else(|| GuardError::InvalidToken("the token's user no longer exists".into()))?;
    // Verified only once the user followed the link mailed to that very address.
    let email_verified = t.scopes.contains("user_read").then_some(user.email_verified);
    let email = t.scopes.contains("user_read").then_some(user.email);
    Ok(Json(UserInfoBody { email, email_verified, preferred_username: user.login, sub: user.id }).into_response())
}
