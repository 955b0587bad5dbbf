//! Revocation (RFC 7009), introspection (RFC 7662) and Twitch's validate endpoint.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::client_auth::{authenticate, identify_for_revocation};
use gatehouse_core::model::ClientKind;
use gatehouse_core::{inspect, revoke as revocation, ErrorCode, OAuthError};

use crate::error::AppError;
use crate::oauth_params::OAuthParams;
use crate::params::bearer_token;
use crate::wire::{EmptyBody, ErrorBody, IntrospectionBody, TokenQuery, ValidationBody};
use crate::AppState;

#[utoipa::path(
    post, path = "/oauth2/revoke", tag = "oauth",
    request_body(content(
        (TokenQuery = "application/x-www-form-urlencoded"), (TokenQuery = "multipart/form-data"), (TokenQuery = "application/json")
    ), description = "In the body, or (Twitch style) the query string; each name once"),
    responses((status = 200, description = "Revoked, or not a token (RFC 7009 §2.2)", body = EmptyBody), (status = "default", description = "An error", body = ErrorBody)),
    security((), ("client_basic" = []))
)]
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, OAuthParams(p): OAuthParams) -> Result<Response, AppError> {
    let client = identify_for_revocation(&state.auth, &p.client_credentials(&headers)?).await?;
    revocation::revoke(&state.auth, &client, p.get("token")).await?;
    // `{}` rather than nothing: some clients parse every answer as JSON.
    Ok(Json(EmptyBody {}).into_response())
}

#[utoipa::path(
    post, path = "/oauth2/introspect", tag = "oauth",
    request_body(content(
        (TokenQuery = "application/x-www-form-urlencoded"), (TokenQuery = "multipart/form-data"), (TokenQuery = "application/json")
    ), description = "In the body, or (Twitch style) the query string; each name once"),
    responses((status = 200, description = "RFC 7662 answer", body = IntrospectionBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("client_basic" = []), ())
)]
pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, OAuthParams(p): OAuthParams) -> Result<Response, AppError> {
    let client = authenticate(&state.auth, &p.client_credentials(&headers)?).await?;
    if client.kind == ClientKind::Public {
        return Err(OAuthError::invalid_client("introspection needs a confidential client").into());
    }
    Ok(Json(IntrospectionBody::from(inspect::introspect(&state.auth, p.get("token")).await?)).into_response())
}

#[utoipa::path(
    get, path = "/oauth2/validate", tag = "oauth",
    responses((status = 200, description = "The token is live", body = ValidationBody), (status = "default", description = "An error", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn validate(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let token = bearer_token(&headers)
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "missing access token"))?;
    Ok(Json(ValidationBody::from(inspect::validate(&state.auth, &token).await?)).into_response())
}
