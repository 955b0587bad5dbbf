//! `/admin`: the operators' pages (accounts with the admin role, granted by
//! `gatehouse user admin LOGIN --grant`). Find users and applications; disable or enable
//! a user, sign a user out everywhere, revoke every token of an application. Every
//! action asks for a fresh confirmation: the operator's password, or a two-factor code.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{category_label, User};
use serde::Deserialize;

use super::account::{signed_in, when};
use super::forms::{posted_form, with_cookie};
use super::two_factor::{check_code, is_on, CodeCheck};
use gatehouse_core::events::{EventFilter, EventKind};

use crate::audit;
use crate::error::AppError;
use crate::params::Params;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::{password_budget, AppState};

/// Rows shown per list: enough to find someone; a narrower search finds the rest.
const SHOWN: usize = 50;

fn not_admin(state: &AppState, v: &Visitor) -> Response {
    let res = state.pages.error(StatusCode::FORBIDDEN, "Operators only", "These pages are for accounts with the admin role.");
    with_cookie(res, v)
}

/// The signed-in admin, or the answer for anyone else.
async fn admin(state: &AppState, headers: &HeaderMap, here: &str) -> Result<(Visitor, User), Response> {
    let v = signed_in(state, headers, here).await?;
    match v.user().cloned() {
        Some(u) if u.is_admin && !u.disabled => Ok((v, u)),
        _ => Err(not_admin(state, &v)),
    }
}

/// A posted admin form: CSRF, the admin role, and a fresh confirmation (the password,
/// or a code from the operator's authenticator when two-factor is on). One take of the
/// password budget per confirmation.
async fn confirmed(state: &AppState, peer: Option<std::net::SocketAddr>, headers: &HeaderMap, body: &[u8]) -> Result<(Params, Visitor, User, Option<&'static str>), Response> {
    let (p, v) = posted_form(state, headers, body).await?;
    let Some(admin) = v.user().cloned().filter(|u| u.is_admin && !u.disabled) else { return Err(not_admin(state, &v)) };
    if let Err(t) = password_budget::take(state, headers, peer, &admin.login, Some(&admin)).await {
        let mut res = state.pages.error(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", &t.message);
        t.add_headers(&mut res);
        return Err(res);
    }
    let code = p.get("code").unwrap_or("").trim();
    let ok = if !code.is_empty() && is_on(state, &admin.id).await? {
        matches!(check_code(state, &admin, code).await?, CodeCheck::Accepted)
    } else {
        state.verify_password(p.get("password").unwrap_or("").to_string(), admin.password_hash.clone()).await
    };
    let refused = (!ok).then_some("Not done: confirm with your password (or a code from your authenticator app).");
    Ok((p, v, admin, refused))
}

#[derive(Deserialize)]
pub struct Search {
    q: Option<String>,
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap, Query(s): Query<Search>) -> Response {
    let (v, admin) = match admin(&state, &headers, "/admin").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = s.q.unwrap_or_default().trim().to_lowercase();
    let store = &state.auth.store;
    let (users, apps) = match (store.list_users().await, store.list_clients(None).await) {
        (Ok(u), Ok(c)) => (u, c),
        (Err(e), _) | (_, Err(e)) => return AppError::page(e).into_response(),
    };
    let logins: std::collections::HashMap<&str, &str> = users.iter().map(|u| (u.id.as_str(), u.login.as_str())).collect();
    let hit = |fields: &[&str]| q.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(&q));
    let found_users: Vec<_> = users
        .iter()
        .filter(|u| hit(&[&u.login, &u.email, &u.id]))
        .take(SHOWN)
        .map(|u| minijinja::context! { id => u.id, login => u.login, email => u.email, disabled => u.disabled, is_admin => u.is_admin })
        .collect();
    let found_apps: Vec<_> = apps
        .iter()
        .filter(|c| hit(&[&c.name, &c.id]))
        .take(SHOWN)
        .map(|c| minijinja::context! { id => c.id, name => c.name, owner => logins.get(c.owner_user_id.as_str()).copied().unwrap_or("?") })
        .collect();
    let ctx = minijinja::context! { q, users => found_users, apps => found_apps, user => Some(admin.login) };
    with_cookie(state.pages.render("admin.html", StatusCode::OK, ctx), &v)
}

async fn user_page(state: &AppState, v: &Visitor, id: &str, error: Option<&str>, notice: Option<&str>, status: StatusCode) -> Response {
    let store = &state.auth.store;
    let subject = match store.find_user(id).await {
        Ok(Some(u)) => u,
        Ok(None) => return state.pages.error(StatusCode::NOT_FOUND, "No such user", "There is no account with that id."),
        Err(e) => return AppError::page(e).into_response(),
    };
    let now = state.auth.now();
    let (sessions, apps, two_factor) =
        match (store.list_sessions(&subject.id, now).await, store.list_clients(Some(&subject.id)).await, is_on(state, &subject.id).await) {
            (Ok(s), Ok(a), Ok(t)) => (s.len(), a, t),
            (Err(e), _, _) | (_, Err(e), _) => return AppError::page(e).into_response(),
            (_, _, Err(r)) => return r,
        };
    let apps: Vec<_> = apps.iter().map(|c| minijinja::context! { id => c.id, name => c.name }).collect();
    let filter = EventFilter { user_id: Some(subject.id.clone()), limit: SHOWN as i64, ..Default::default() };
    let events: Vec<_> = match store.list_events(&filter).await {
        Ok(events) => events
            .into_iter()
            .map(|e| minijinja::context! {
                when => super::security::when_exactly(e.at), kind => e.kind, actor => e.actor_login,
                client => e.client_id, address => e.address, detail => e.detail,
            })
            .collect(),
        Err(e) => return AppError::page(e).into_response(),
    };
    let ctx = minijinja::context! {
        events,
        subject => minijinja::context! {
            id => subject.id, login => subject.login, email => subject.email, email_verified => subject.email_verified,
            disabled => subject.disabled, is_admin => subject.is_admin, created => when(subject.created_at),
        },
        sessions, apps, two_factor, error, notice, csrf => v.csrf_token(), user => v.user().map(|u| u.login.clone()),
    };
    state.pages.render("admin_user.html", status, ctx)
}

pub async fn user(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match admin(&state, &headers, &format!("/admin/users/{id}")).await {
        Ok((v, _)) => user_page(&state, &v, &id, None, None, StatusCode::OK).await,
        Err(r) => r,
    }
}

/// What an operator may do to an account from its page.
#[derive(Clone, Copy)]
enum UserAction {
    Disable,
    Enable,
    SignOut,
}

async fn act_on_user(state: AppState, peer: Option<std::net::SocketAddr>, headers: HeaderMap, id: String, body: Bytes, action: UserAction) -> Response {
    let (_, v, admin, refused) = match confirmed(&state, peer, &headers, &body).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(msg) = refused {
        return user_page(&state, &v, &id, Some(msg), None, StatusCode::UNAUTHORIZED).await;
    }
    if admin.id == id && !matches!(action, UserAction::Enable) {
        let msg = "Not done: use your own security page for your own account.";
        return user_page(&state, &v, &id, Some(msg), None, StatusCode::BAD_REQUEST).await;
    }
    let store = &state.auth.store;
    let (done, notice) = match action {
        UserAction::Disable => (store.set_user_disabled(&id, true).await, "Disabled: the account cannot sign in, its sessions ended and its tokens stopped working."),
        UserAction::Enable => (store.set_user_disabled(&id, false).await, "Enabled: the account can sign in again."),
        UserAction::SignOut => (store.end_sessions(&id, None).await.map(|_| true), "Signed out everywhere."),
    };
    match done {
        Ok(true) => {
            let what = match action {
                UserAction::Disable => "disable user",
                UserAction::Enable => "enable user",
                UserAction::SignOut => "sign user out everywhere",
            };
            tracing::info!(admin = %admin.id, subject = %id, action = what, "admin action");
            let kind = match action {
                UserAction::Disable => EventKind::AccountDisabled,
                UserAction::Enable => EventKind::AccountEnabled,
                UserAction::SignOut => EventKind::SessionsEndedEverywhere,
            };
            let mut event = audit::event(&state, kind, &headers, peer).actor(&admin).detail("by an administrator");
            if let Ok(Some(subject)) = store.find_user(&id).await {
                event = event.subject(&subject);
            }
            audit::record(&state, event).await;
            user_page(&state, &v, &id, None, Some(notice), StatusCode::OK).await
        }
        Ok(false) => state.pages.error(StatusCode::NOT_FOUND, "No such user", "There is no account with that id."),
        Err(e) => AppError::page(e).into_response(),
    }
}

pub async fn disable_user(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    act_on_user(state, peer, headers, id, body, UserAction::Disable).await
}

pub async fn enable_user(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    act_on_user(state, peer, headers, id, body, UserAction::Enable).await
}

pub async fn sign_out_user(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    act_on_user(state, peer, headers, id, body, UserAction::SignOut).await
}

async fn app_page(state: &AppState, v: &Visitor, id: &str, error: Option<&str>, notice: Option<&str>, status: StatusCode) -> Response {
    let store = &state.auth.store;
    let app = match store.find_client(id).await {
        Ok(Some(c)) => c,
        Ok(None) => return state.pages.error(StatusCode::NOT_FOUND, "No such application", "There is no application with that id."),
        Err(e) => return AppError::page(e).into_response(),
    };
    let owner = match store.find_user(&app.owner_user_id).await {
        Ok(o) => o.map(|u| u.login).unwrap_or_else(|| "?".into()),
        Err(e) => return AppError::page(e).into_response(),
    };
    let ctx = minijinja::context! {
        app => minijinja::context! {
            id => app.id, name => app.name, owner, owner_id => app.owner_user_id, kind => app.kind.as_str(),
            category => category_label(&app.category), redirect_uris => app.redirect_uris, created => when(app.created_at),
        },
        error, notice, csrf => v.csrf_token(), user => v.user().map(|u| u.login.clone()),
    };
    state.pages.render("admin_app.html", status, ctx)
}

pub async fn app(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match admin(&state, &headers, &format!("/admin/apps/{id}")).await {
        Ok((v, _)) => app_page(&state, &v, &id, None, None, StatusCode::OK).await,
        Err(r) => r,
    }
}

pub async fn revoke_app_tokens(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    let (_, v, admin, refused) = match confirmed(&state, peer, &headers, &body).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(msg) = refused {
        return app_page(&state, &v, &id, Some(msg), None, StatusCode::UNAUTHORIZED).await;
    }
    match state.auth.store.revoke_client_tokens(&id).await {
        Ok(n) => {
            tracing::info!(admin = %admin.id, client_id = %id, tokens = n, action = "revoke client tokens", "admin action");
            let event = audit::event(&state, EventKind::ClientTokensRevoked, &headers, peer).actor(&admin).client(&id);
            audit::record(&state, event.detail(format!("{n} tokens, by an administrator"))).await;
            let notice = format!("Revoked {n} tokens: the application must ask its users again.");
            app_page(&state, &v, &id, None, Some(&notice), StatusCode::OK).await
        }
        Err(e) => AppError::page(e).into_response(),
    }
}
