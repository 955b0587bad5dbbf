//! The HTTP surface of DESIGN.md, one module per concern.

mod account;
mod admin;
mod api;
mod console;
mod authorize;
mod device;
mod email;
mod forms;
mod login;
mod meta;
mod oidc;
mod openapi;
mod recovery;
mod token;
mod token_info;
mod security;
mod sign_in;
mod two_factor;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub(crate) use meta::healthz;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(api::router(state))
        .route("/", get(meta::home))
        .route("/healthz", get(meta::healthz))
        .route("/openapi.json", get(openapi::document))
        .route("/static/style.css", get(meta::stylesheet))
        .route("/.well-known/oauth-authorization-server", get(meta::authorization_server_metadata))
        .route("/.well-known/openid-configuration", get(meta::openid_configuration))
        .route("/oauth2/keys", get(oidc::keys))
        .route("/oauth2/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", get(login::logout_page).post(login::logout))
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/settings/connections", get(account::connections))
        .route("/settings/connections/{client_id}/disconnect", post(account::disconnect))
        .route("/settings/password", get(account::password_form).post(account::change_password))
        .route("/settings/email", get(email::form).post(email::change))
        .route("/verify-email", get(email::confirm).post(email::verify))
        .route("/forgot-password", get(recovery::forgot_form).post(recovery::forgot))
        .route("/reset-password", get(recovery::reset_form).post(recovery::reset))
        .route("/settings/2fa", get(two_factor::page).post(two_factor::enable))
        .route("/settings/2fa/disable", post(two_factor::disable))
        .route("/settings/security", get(security::page))
        .route("/settings/security/sessions/{handle}/sign-out", post(security::sign_out_session))
        .route("/settings/security/sign-out-everywhere", post(security::sign_out_everywhere))
        .route("/settings/security/delete", post(security::delete_account))
        .route("/admin", get(admin::home))
        .route("/admin/users/{id}", get(admin::user))
        .route("/admin/users/{id}/disable", post(admin::disable_user))
        .route("/admin/users/{id}/enable", post(admin::enable_user))
        .route("/admin/users/{id}/sign-out", post(admin::sign_out_user))
        .route("/admin/apps/{id}", get(admin::app))
        .route("/admin/apps/{id}/revoke-tokens", post(admin::revoke_app_tokens))
        .merge(console_routes(state))
        .route("/static/console.js", get(meta::console_js))
        .route("/oauth2/authorize", get(authorize::start).post(authorize::decide))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/device", post(device::start))
        .route("/activate", get(device::page).post(device::submit))
        .route("/oauth2/revoke", post(token_info::revoke))
        .route("/oauth2/introspect", post(token_info::introspect))
        .route("/oauth2/validate", get(token_info::validate))
        // The seeds' own paths, as aliases of the same handlers, so a client written
        // from one of those documents works by changing only the host.
        .route("/kraken/oauth2/authorize", get(authorize::start))
        .route("/kraken/oauth2/token", post(token::token))
        .route("/kraken/oauth2/revoke", post(token_info::revoke))
        .route("/oauth2/token/revoke", post(token_info::revoke))
        .route("/api/v1.0/authorize", get(authorize::start))
        .route("/api/v1.0/token", post(token::token))
        .fallback(meta::not_found)
}

/// The developer console, behind the two-factor gate (`console_requires_2fa`).
fn console_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(console::list))
        .route("/console/apps/new", get(console::new_form).post(console::create))
        .route("/console/apps/{id}", get(console::manage).post(console::update))
        .route("/console/apps/{id}/edit", get(console::edit_form))
        .route("/console/apps/{id}/secret", get(console::show_secret).post(console::new_secret))
        .route("/console/apps/{id}/delete", post(console::delete))
        .route_layer(from_fn_with_state(state.clone(), two_factor::console_gate))
}
