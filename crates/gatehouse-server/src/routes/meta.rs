//! Server metadata (RFC 8414), health, the stylesheet and the home page.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::pages::STYLESHEET;
use crate::session::Visitor;
use crate::wire::MetadataBody;
use crate::AppState;

#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "Up", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
}

pub async fn console_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], crate::pages::CONSOLE_JS)
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let visitor = match Visitor::load(&state, &headers).await {
        Ok(v) => v,
        Err(_) => return state.pages.error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "Try again shortly."),
    };
    let ctx = minijinja::context! { user => visitor.user().map(|u| u.login.clone()), csrf => visitor.csrf_token() };
    let mut res = state.pages.render("home.html", StatusCode::OK, ctx);
    if let Some(c) = visitor.cookie_header() {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// OpenID Connect Discovery 1.0 §3: the RFC 8414 document plus the OIDC fields.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "meta", responses((status = 200, description = "OpenID Connect Discovery", body = MetadataBody)))]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<serde_json::Value> {
    let Json(mut m) = authorization_server_metadata(State(state.clone())).await;
    let iss = state.config.issuer.trim_end_matches('/');
    m["userinfo_endpoint"] = format!("{iss}/oauth2/userinfo").into();
    m["subject_types_supported"] = serde_json::json!(["public"]);
    m["id_token_signing_alg_values_supported"] = serde_json::json!(["RS256"]);
    m["claims_supported"] = serde_json::json!(["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "preferred_username", "email"]);
    m["claims_parameter_supported"] = false.into();
    m["request_parameter_supported"] = false.into();
    m["request_uri_parameter_supported"] = false.into();
    Json(m)
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "meta", responses((status = 200, description = "RFC 8414 metadata", body = MetadataBody)))]
pub async fn authorization_server_metadata(State(state): State<AppState>) -> Json<serde_json::Value> {
    let iss = state.config.issuer.trim_end_matches('/');
    let scopes: Vec<&str> = state.auth.catalog.all().iter().map(|s| s.name.as_str()).collect();
    Json(serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "jwks_uri": format!("{iss}/oauth2/keys"),
        "scopes_supported": scopes,
        "response_types_supported": ["code", "token"],
        "response_modes_supported": ["query", "fragment"],
        "device_authorization_endpoint": format!("{iss}/oauth2/device"),
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": if state.auth.policy.allow_plain_pkce { vec!["S256", "plain"] } else { vec!["S256"] },
        "authorization_response_iss_parameter_supported": true,
    }))
}
