//! The device flow's two sides on the web: `POST /oauth2/device` for the device, and the
//! `/activate` page where the user types the code and answers.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use gatehouse_core::client_auth::authenticate;
use gatehouse_core::device;
use gatehouse_core::events::EventKind;
use gatehouse_core::model::{category_label, Client, DeviceAuthorization};
use gatehouse_core::OAuthError;
use serde::Deserialize;

use super::forms::{posted_form, with_cookie};
use crate::audit;
use crate::error::AppError;
use crate::oauth_params::OAuthParams;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::wire::{DeviceBody, DeviceRequest, ErrorBody};
use crate::AppState;

#[utoipa::path(
    post, path = "/oauth2/device", tag = "oauth",
    request_body(content(
        (DeviceRequest = "application/x-www-form-urlencoded"), (DeviceRequest = "multipart/form-data"), (DeviceRequest = "application/json")
    ), description = "In the body, or (Twitch style) the query string; each name once"),
    responses((status = 200, description = "RFC 8628 §3.2 answer", body = DeviceBody), (status = "default", description = "An error", body = ErrorBody)),
    security((), ("client_basic" = []))
)]
pub async fn start(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, OAuthParams(p): OAuthParams) -> Result<Response, AppError> {
    let client = authenticate(&state.auth, &p.client_credentials(&headers)?).await?;
    // Budgeted as token requests are, in buckets of its own so it cannot starve them.
    if let Err(too_many) = state.take_client_rate("device", &client, &state.client_ip(&headers, peer)).await {
        return Ok(too_many);
    }
    let verification_uri = format!("{}/activate", state.config.issuer);
    // Twitch's device endpoint names the parameter `scopes`.
    let scope = match (p.get("scope"), p.get("scopes")) {
        (Some(_), Some(_)) => return Err(OAuthError::invalid_request("send scope or scopes, not both").into()),
        (scope, scopes) => scope.or(scopes),
    };
    let answer = device::start(&state.auth, &client, scope, &verification_uri).await?;
    let mut res = Json(DeviceBody::from(answer)).into_response();
    res.headers_mut().insert(axum::http::header::CACHE_CONTROL, "no-store".parse().expect("static"));
    Ok(res)
}

#[derive(Deserialize)]
pub struct ActivateQuery {
    user_code: Option<String>,
}

fn code_page(state: &AppState, visitor: &Visitor, user_code: &str, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! {
        csrf => visitor.csrf_token(),
        user_code,
        error,
        user => visitor.user().map(|u| u.login.clone()),
    };
    with_cookie(state.pages.render("activate.html", status, ctx), visitor)
}

fn login_first(next: &str) -> Response {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
    Redirect::to(&format!("/login?{q}")).into_response()
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<ActivateQuery>) -> Response {
    let Ok(visitor) = Visitor::load(&state, &headers).await else {
        return state.pages.error(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "Try again shortly.");
    };
    let code = q.user_code.unwrap_or_default();
    if visitor.signed_in.is_none() {
        let next = match device::normalize_user_code(&code) {
            Some(_) => format!("/activate?user_code={code}"),
            None => "/activate".to_string(),
        };
        return with_cookie(login_first(&next), &visitor);
    }
    code_page(&state, &visitor, &code, None, StatusCode::OK)
}

async fn device_consent(state: &AppState, visitor: &Visitor, device: &DeviceAuthorization, client: &Client, typed: &str) -> Response {
    let scopes: Vec<_> = device
        .scopes
        .iter()
        .map(|s| minijinja::context! { name => s, description => state.auth.catalog.get(s).map(|d| d.description.clone()).unwrap_or_default() })
        .collect();
    let owner = state.auth.store.find_user(&client.owner_user_id).await.ok().flatten().map(|u| u.login);
    let ctx = minijinja::context! {
        app => minijinja::context! { name => client.name, category => category_label(&client.category), owner => owner.unwrap_or_default() },
        new_scopes => scopes,
        old_scopes => Vec::<()>::new(),
        params => vec![("user_code", typed.to_string())],
        device => typed,
        csrf => visitor.csrf_token(),
        user => visitor.user().map(|u| u.login.clone()),
        return_to => format!("/activate?user_code={typed}"),
    };
    state.pages.render("consent.html", StatusCode::OK, ctx)
}

/// Typing the code shows the consent page; the consent page's answer comes back here
/// with `decision`.
pub async fn submit(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some((session, user)) = &visitor.signed_in else {
        return login_first("/activate");
    };
    let typed = p.get("user_code").unwrap_or("").trim().to_string();
    // User codes are short: limit guesses per user and per address.
    let budget = state.config.rate_limits.login;
    for key in [format!("activate:{}", user.id), format!("activate:{}", state.client_ip(&headers, peer))] {
        let d = state.take_rate(&key, budget).await;
        if !d.allowed {
            let msg = format!("Too many codes tried. Wait {} seconds and try again.", d.retry_after);
            return code_page(&state, &visitor, &typed, Some(&msg), StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let (device, client) = match device::find_pending(&state.auth, &typed).await {
        Ok(found) => found,
        Err(e) => return code_page(&state, &visitor, &typed, Some(&e.description), StatusCode::BAD_REQUEST),
    };
    let allow = match p.get("decision") {
        None => return device_consent(&state, &visitor, &device, &client, &typed).await,
        Some("allow") => true,
        Some("deny") => false,
        Some(_) => return code_page(&state, &visitor, &typed, Some("decision must be allow or deny"), StatusCode::BAD_REQUEST),
    };
    if let Err(e) = device::decide(&state.auth, &device, &user.id, session.auth_time, allow).await {
        return code_page(&state, &visitor, &typed, Some(&e.description), StatusCode::BAD_REQUEST);
    }
    if allow {
        let granted = audit::event(&state, EventKind::ConsentGranted, &headers, peer).actor(user).client(&client.id);
        audit::record(&state, granted.detail(format!("{} (device)", device.scopes.to_space_separated()))).await;
    }
    let (title, detail) = if allow {
        ("Device connected", format!("{} can now act within what you allowed. You can return to your device.", client.name))
    } else {
        ("Request denied", format!("{} was not given access.", client.name))
    };
    state.pages.render("device_done.html", StatusCode::OK, minijinja::context! { title, detail, user => user.login.clone() })
}
