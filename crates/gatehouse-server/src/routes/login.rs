//! Sign-in and sign-out pages.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::accounts::{check_login, decoy_hash};
use serde::Deserialize;

use gatehouse_core::events::EventKind;

use super::forms::{posted_form, safe_next, unavailable, with_cookie};
use super::sign_in::{finish_sign_in, login_page};
use crate::audit;
use crate::error::AppError;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::{password_budget, AppState};

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let Ok(visitor) = Visitor::load(&state, &headers).await else { return unavailable() };
    let next = safe_next(q.next.as_deref());
    login_page(&state, &visitor, &next, "", None, StatusCode::OK).await
}

pub async fn submit(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    if p.get("pending").is_some() {
        return super::two_factor::second_step(&state, Peer(peer), &headers, &p, visitor).await;
    }
    let next = safe_next(p.get("next"));
    let login = p.get("login").unwrap_or("").trim().to_string();
    let password = p.get("password").unwrap_or("").to_string();

    // A login that breaks the rules cannot exist: no need to ask the store.
    let user = match check_login(&login) {
        Err(_) => None,
        Ok(()) => match state.auth.store.find_user_by_login(&login).await {
            Ok(u) => u,
            Err(e) => return AppError::page(e).into_response(),
        },
    };
    // Against guessing: budgets per address and per account, before the check runs.
    if let Err(t) = password_budget::take(&state, &headers, peer, &login, user.as_ref()).await {
        // Counted, not recorded: a refusal costs no row, so the budget also bounds the log.
        crate::metrics::sign_in("rate_limited");
        let shown = if t.per_account { login.as_str() } else { "" };
        let mut res = login_page(&state, &visitor, &next, shown, Some(&t.message), StatusCode::TOO_MANY_REQUESTS).await;
        t.add_headers(&mut res);
        return res;
    }

    // Verify against a decoy when the login is unknown, so timing does not tell which
    // logins exist. Argon2id takes 19 MiB and tens of milliseconds: a semaphore keeps
    // a flood of sign-ins from taking every thread and all memory.
    let hash = user.as_ref().map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    let ok = state.verify_password(password, hash).await;
    let user = match user {
        Some(u) if ok => u,
        tried => {
            tracing::info!("failed sign-in");
            crate::metrics::sign_in("failure");
            // What was typed for an unknown login is not kept: people type passwords there.
            let failed = audit::event(&state, EventKind::SignInFailed, &headers, peer);
            let failed = match &tried {
                Some(u) => failed.subject(u).detail("wrong password"),
                None => failed.detail("unknown login"),
            };
            audit::record(&state, failed).await;
            let msg = Some("Incorrect username or password.");
            return login_page(&state, &visitor, &next, &login, msg, StatusCode::UNAUTHORIZED).await;
        }
    };
    // Two-factor sign-in: one page more, for the code; no second password check.
    match super::two_factor::is_on(&state, &user.id).await {
        Ok(true) => return super::two_factor::ask_code(&state, &visitor, &user, &next),
        Ok(false) => {}
        Err(r) => return r,
    }
    finish_sign_in(&state, &headers, peer, visitor, user, &next, false).await
}

/// The header's "Sign out" on a page that has no form token links here: a page that asks.
pub async fn logout_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(visitor) = Visitor::load(&state, &headers).await else { return unavailable() };
    let Some(user) = visitor.user() else { return with_cookie(Redirect::to("/").into_response(), &visitor) };
    let ctx = minijinja::context! { user => user.login.clone(), csrf => visitor.csrf_token() };
    state.pages.render("sign_out.html", StatusCode::OK, ctx)
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let next = safe_next(p.get("next"));
    match visitor.sign_out(&state).await {
        Ok(v) => with_cookie(Redirect::to(&next).into_response(), &v),
        Err(_) => unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::forms::safe_next;

    #[test]
    fn next_is_same_site_only() {
        assert_eq!(safe_next(Some("/oauth2/authorize?x=1")), "/oauth2/authorize?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n")), "/");
        assert_eq!(safe_next(Some("/a\\b")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
