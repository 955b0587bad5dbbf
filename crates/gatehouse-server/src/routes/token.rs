//! The token endpoint (RFC 6749 §3.2): one dispatch to the grant handlers of core.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use gatehouse_core::client_auth::authenticate;
use gatehouse_core::grant::authorization_code::{self, CodeExchange};
use gatehouse_core::grant::{client_credentials, device_code, refresh_token, TokenResponse};

const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
use gatehouse_core::model::ClientKind;
use gatehouse_core::{ErrorCode, OAuthError};

use crate::error::AppError;
use crate::oauth_params::OAuthParams;
use crate::rate_limit::{self, Peer};
use crate::wire::{ErrorBody, ScopeValue, TokenBody, TokenRequest};
use crate::AppState;

#[utoipa::path(
    post, path = "/oauth2/token", tag = "oauth",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"), (TokenRequest = "multipart/form-data"), (TokenRequest = "application/json")
    ), description = "In the body, or (Twitch style) the query string; each name once"),
    responses((status = 200, description = "Tokens", body = TokenBody), (status = "default", description = "An error", body = ErrorBody)),
    security((), ("client_basic" = []))
)]
pub async fn token(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, OAuthParams(p): OAuthParams) -> Result<Response, AppError> {
    let result = respond(&state, peer, &headers, &p).await;
    match &result {
        Ok(res) if res.status().is_success() => crate::metrics::tokens().issued(p.get("grant_type").unwrap_or("")),
        Ok(_) => {} // 429: counted by the rate limiter
        Err(AppError::OAuth(e)) => crate::metrics::token_error(e.code.as_str()),
        Err(AppError::Unavailable) => crate::metrics::token_error("temporarily_unavailable"),
        Err(_) => crate::metrics::token_error("other"),
    }
    result
}

async fn respond(
    state: &AppState,
    peer: Option<std::net::SocketAddr>,
    headers: &HeaderMap,
    p: &crate::params::Params,
) -> Result<Response, AppError> {
    let grant_type = p.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    if !matches!(grant_type, "authorization_code" | "refresh_token" | "client_credentials" | DEVICE_CODE) {
        return Err(OAuthError::new(ErrorCode::UnsupportedGrantType, "unsupported grant_type").into());
    }
    let auth = &state.auth;
    let client = authenticate(auth, &p.client_credentials(headers)?).await?;
    // Refused before counting: anyone can name a public client, and a grant it cannot
    // use must not spend its users' budget.
    if grant_type == "client_credentials" && client.kind == ClientKind::Public {
        return Err(OAuthError::unauthorized_client("public clients cannot use the client_credentials grant").into());
    }
    // Counted after authentication, so nobody can spend a confidential client's budget.
    let decision = match state.take_client_rate("token", &client, &state.client_ip(headers, peer)).await {
        Ok(d) => d,
        Err(too_many) => return Ok(too_many),
    };
    let response = match grant_type {
        "authorization_code" => {
            let req = CodeExchange {
                code: p.get("code"),
                redirect_uri: p.get("redirect_uri"),
                code_verifier: p.get("code_verifier"),
            };
            authorization_code::exchange(auth, &client, req).await?
        }
        // Fields the seeds' clients add (state, redirect_uri) are accepted and ignored.
        "refresh_token" => refresh_token::refresh(auth, &client, p.get("refresh_token"), p.get("scope")).await?,
        DEVICE_CODE => device_code::poll(auth, &client, p.get("device_code")).await?,
        _ => client_credentials::issue(auth, &client, p.get("scope")).await?,
    };
    let mut res = token_json(&response, state.config.scope_as_array);
    rate_limit::add_headers(res.headers_mut(), state.config.rate_limits.token, &decision);
    Ok(res)
}

pub fn token_json(r: &TokenResponse, scope_as_array: bool) -> Response {
    let scope = if scope_as_array {
        Some(ScopeValue::List(r.scope.iter().map(String::as_str).collect()))
    } else {
        (!r.scope.is_empty()).then(|| ScopeValue::Text(r.scope.to_space_separated()))
    };
    // Written straight from the response, not through a `serde_json::Value`: building
    // one copied every field and key (a dozen allocations a response).
    let body = TokenBody {
        access_token: &r.access_token,
        expires_in: r.expires_in,
        id_token: r.id_token.as_deref(),
        refresh_token: r.refresh_token.as_deref(),
        scope,
        token_type: r.token_type,
    };
    let mut res = axum::Json(body).into_response();
    // RFC 6749 §5.1: token responses must not be cached.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
