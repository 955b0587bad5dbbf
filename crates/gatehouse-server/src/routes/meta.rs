//! Server metadata (RFC 8414), health, the stylesheet and the home page.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use gatehouse_guard::ErrorBody;
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

/// Any path no route claims: JSON for the machine-facing prefixes, a page for people.
pub async fn not_found(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if ["/oauth2/", "/api/", "/kraken/", "/.well-known/"].iter().any(|p| path.starts_with(p)) {
        return ErrorBody::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response();
    }
    let user = Visitor::load(&state, &headers).await.ok().and_then(|v| v.user().map(|u| u.login.clone()));
    let ctx = minijinja::context! {
        title => "Page not found", detail => format!("There is no page at {path}."), not_found => true, user,
    };
    state.pages.render("error.html", StatusCode::NOT_FOUND, ctx)
}

/// OpenID Connect Discovery 1.0 §3: the RFC 8414 document plus the OIDC fields.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "meta", responses((status = 200, description = "OpenID Connect Discovery", body = MetadataBody)))]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<MetadataBody> {
    let iss = state.config.issuer.trim_end_matches('/');
    Json(MetadataBody {
        userinfo_endpoint: Some(format!("{iss}/oauth2/userinfo")),
        subject_types_supported: Some(vec!["public"]),
        id_token_signing_alg_values_supported: Some(vec!["RS256"]),
        claims_supported: Some(vec!["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "preferred_username", "email"]),
        claims_parameter_supported: Some(false),
        request_parameter_supported: Some(false),
        request_uri_parameter_supported: Some(false),
        ..metadata(&state)
    })
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "meta", responses((status = 200, description = "RFC 8414 metadata", body = MetadataBody)))]
pub async fn authorization_server_metadata(State(state): State<AppState>) -> Json<MetadataBody> {
    Json(metadata(&state))
}

fn metadata(state: &AppState) -> MetadataBody {
    let iss = state.config.issuer.trim_end_matches('/');
    let client_auth = vec!["client_secret_basic", "client_secret_post", "none"];
    MetadataBody {
        issuer: iss.to_string(),
        authorization_endpoint: format!("{iss}/oauth2/authorize"),
        token_endpoint: format!("{iss}/oauth2/token"),
        revocation_endpoint: format!("{iss}/oauth2/revoke"),
        introspection_endpoint: format!("{iss}/oauth2/introspect"),
        jwks_uri: format!("{iss}/oauth2/keys"),
        scopes_supported: state.auth.catalog.all().iter().map(|s| s.name.clone()).collect(),
        response_types_supported: vec!["code", "token"],
        response_modes_supported: vec!["query", "fragment"],
        device_authorization_endpoint: format!("{iss}/oauth2/device"),
        grant_types_supported: vec!["authorization_code", "implicit", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"],
        token_endpoint_auth_methods_supported: client_auth.clone(),
        revocation_endpoint_auth_methods_supported: client_auth,
        introspection_endpoint_auth_methods_supported: vec!["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported: if state.auth.policy.allow_plain_pkce { vec!["S256", "plain"] } else { vec!["S256"] },
        authorization_response_iss_parameter_supported: true,
        claims_parameter_supported: None,
        claims_supported: None,
        id_token_signing_alg_values_supported: None,
        request_parameter_supported: None,
        request_uri_parameter_supported: None,
        subject_types_supported: None,
        userinfo_endpoint: None,
    }
}
