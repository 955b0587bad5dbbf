//! The authorization endpoint: GET shows sign-in or consent; POST takes the answer.
//! The consent form carries the request's parameters back, and POST validates them
//! again from scratch, so no instance keeps a pending request in memory.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::authorize::{self, AuthorizeError, AuthorizeParams, AuthorizeRequest, Prompt};
use gatehouse_core::events::EventKind;
use gatehouse_core::model::category_label;
use gatehouse_core::{ErrorCode, OAuthError};
use serde::Serialize;

use super::forms::{csrf_refused, with_cookie};
use crate::audit;
use crate::params::Params;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::AppState;

fn fail(state: &AppState, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(e) => state.pages.error(StatusCode::BAD_REQUEST, "This authorization request is not valid", &e.description),
        AuthorizeError::Redirect(target, e) => Redirect::to(&target.error(&e)).into_response(),
    }
}

fn authorize_url(params: &AuthorizeParams) -> String {
    format!("/oauth2/authorize?{}", serde_urlencoded::to_string(params).unwrap_or_default())
}

fn login_redirect(params: &AuthorizeParams) -> Response {
    let next = authorize_url(params);
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish();
    Redirect::to(&format!("/login?{q}")).into_response()
}

/// A request that cannot go back to the app, told to the person at the browser: with
/// their name in the header when signed in, the redirect URL that was sent, and, for the
/// app's owner, the registered ones and where to fix them.
async fn refused_page(state: &AppState, headers: &HeaderMap, params: &AuthorizeParams, e: OAuthError) -> Response {
    let visitor = Visitor::load(state, headers).await.ok();
    let user = visitor.as_ref().and_then(|v| v.user());
    let client = match params.client_id.as_deref() {
        Some(id) => state.auth.store.find_client(id).await.ok().flatten(),
        None => None,
    };
    // Only when the redirect URL is what is wrong: then it and the registered ones help.
    let about_redirect = client.is_some() && e.description.contains("redirect_uri");
    let tried = params.redirect_uri.as_deref().filter(|_| about_redirect);
    let owner = client.as_ref().filter(|c| about_redirect && user.is_some_and(|u| u.id == c.owner_user_id));
    let ctx = minijinja::context! {
        title => "This authorization request is not valid",
        detail => e.description,
        tried,
        registered => owner.map(|c| c.redirect_uris.clone()),
        app_id => owner.map(|c| c.id.clone()),
        user => user.map(|u| u.login.clone()),
        csrf => visitor.as_ref().map(|v| v.csrf_token()),
    };
    state.pages.render("error.html", StatusCode::BAD_REQUEST, ctx)
}

pub async fn start(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()).and_then(|p| p.decode::<AuthorizeParams>()) {
        Ok(p) => p,
        Err(e) => return fail(&state, AuthorizeError::Page(e)),
    };
    let req = match authorize::validate(&state.auth, &params).await {
        Ok(r) => r,
        Err(AuthorizeError::Page(e)) => return refused_page(&state, &headers, &params, e).await,
        Err(e) => return fail(&state, e),
    };
    let visitor = match Visitor::load(&state, &headers).await {
        Ok(v) => v,
        Err(e) => return fail(&state, AuthorizeError::Redirect(req.redirect.clone(), e)),
    };
    let back = |code, d: &str| fail(&state, AuthorizeError::Redirect(req.redirect.clone(), OAuthError::new(code, d)));

    let Some((session, user)) = &visitor.signed_in else {
        if req.prompt == Some(Prompt::None) {
            return back(ErrorCode::LoginRequired, "the user is not signed in");
        }
        return with_cookie(login_redirect(&params), &visitor);
    };
    if req.prompt == Some(Prompt::Login) {
        // Ask for the password again; the request then goes on without the prompt.
        return login_redirect(&AuthorizeParams { prompt: None, ..params });
    }
    if req.max_age.is_some_and(|age| state.auth.now() - session.auth_time > age) {
        // OpenID Connect Core §3.1.2.1: the sign-in is too old; a fresh one meets max_age.
        if req.prompt == Some(Prompt::None) {
            return back(ErrorCode::LoginRequired, "the sign-in is older than max_age");
        }
        return login_redirect(&params);
    }
    let consent = match authorize::consent_state(&state.auth, &req, &user.id).await {
        Ok(c) => c,
        Err(e) => return fail(&state, e),
    };
    if !consent.must_ask {
        return match authorize::approve(&state.auth, &req, &user.id, session.auth_time, Some(consent.previously_granted)).await {
            Ok(url) => Redirect::to(&url).into_response(),
            Err(e) => fail(&state, e),
        };
    }
    if req.prompt == Some(Prompt::None) {
        return back(ErrorCode::ConsentRequired, "the user has not approved this request");
    }
    consent_page(&state, &visitor, &req, &params, &consent.previously_granted).await
}

#[derive(Serialize)]
struct ScopeView {
    name: String,
    description: String,
}

async fn consent_page(
    state: &AppState,
    visitor: &Visitor,
    req: &AuthorizeRequest,
    params: &AuthorizeParams,
    previously: &gatehouse_core::scope::ScopeSet,
) -> Response {
    let view = |name: &String| ScopeView {
        name: name.clone(),
        description: state.auth.catalog.get(name).map(|d| d.description.clone()).unwrap_or_default(),
    };
    let new_scopes: Vec<ScopeView> = req.scopes.iter().filter(|s| !previously.contains(s)).map(view).collect();
    let old_scopes: Vec<ScopeView> = req.scopes.iter().filter(|s| previously.contains(s)).map(view).collect();
    let owner = state.auth.store.find_user(&req.client.owner_user_id).await.ok().flatten().map(|u| u.login);
    let redirect_host = url::Url::parse(&req.redirect.uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| req.redirect.uri.clone());
    let hidden: Vec<(String, String)> = url::form_urlencoded::parse(
        serde_urlencoded::to_string(params).unwrap_or_default().as_bytes(),
    )
    .map(|(k, v)| (k.into_owned(), v.into_owned()))
    .collect();
    let ctx = minijinja::context! {
        app => minijinja::context! {
            name => req.client.name.clone(),
            category => category_label(&req.client.category),
            owner => owner.unwrap_or_else(|| "unknown".into()),
        },
        new_scopes,
        old_scopes,
        redirect_host,
        params => hidden,
        csrf => visitor.csrf_token(),
        user => visitor.user().map(|u| u.login.clone()),
        return_to => authorize_url(params),
    };
    state.pages.render("consent.html", StatusCode::OK, ctx)
}

pub async fn decide(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let p = match Params::from_form(&headers, &body) {
        Ok(p) => p,
        Err(e) => return fail(&state, AuthorizeError::Page(e)),
    };
    let visitor = match Visitor::load(&state, &headers).await {
        Ok(v) => v,
        Err(e) => return fail(&state, AuthorizeError::Page(e)),
    };
    if !visitor.csrf_ok(p.get("csrf")) {
        return csrf_refused(&state);
    }
    let params = match p.decode::<AuthorizeParams>() {
        Ok(p) => p,
        Err(e) => return fail(&state, AuthorizeError::Page(e)),
    };
    let req = match authorize::validate(&state.auth, &params).await {
        Ok(r) => r,
        Err(e) => return fail(&state, e),
    };
    let Some((session, user)) = &visitor.signed_in else {
        return login_redirect(&params);
    };
    match p.get("decision") {
        Some("allow") => match authorize::approve(&state.auth, &req, &user.id, session.auth_time, None).await {
            Ok(url) => {
                let granted = audit::event(&state, EventKind::ConsentGranted, &headers, peer).actor(user);
                audit::record(&state, granted.client(&req.client.id).detail(req.scopes.to_space_separated())).await;
                Redirect::to(&url).into_response()
            }
            Err(e) => fail(&state, e),
        },
        Some("deny") => Redirect::to(&authorize::deny(&req)).into_response(),
        _ => state.pages.error(StatusCode::BAD_REQUEST, "Bad request", "decision must be allow or deny"),
    }
}
