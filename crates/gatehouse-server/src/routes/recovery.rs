//! Password recovery: `/forgot-password` mails a single-use link to `/reset-password`.
//! The forgot page answers the same whether or not the address has an account, and the
//! lookup and mail happen after the answer, so its timing tells nothing either.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::events::EventKind;
use gatehouse_core::model::{LinkPurpose, User};
use gatehouse_core::{accounts, links};
use serde::Deserialize;

use super::forms::{posted_form, unavailable, with_cookie};
use crate::error::AppError;
use crate::rate_limit::{self, Peer};
use crate::session::Visitor;
use crate::{audit, emails, AppState};

fn forgot_page(state: &AppState, v: &Visitor, email: &str, sent: bool, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! {
        csrf => v.csrf_token(), email, sent, error, mail => state.mail_enabled(), user => v.user().map(|u| u.login.clone()),
    };
    with_cookie(state.pages.render("forgot.html", status, ctx), v)
}

pub async fn forgot_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(visitor) = Visitor::load(&state, &headers).await else { return unavailable() };
    forgot_page(&state, &visitor, "", false, None, StatusCode::OK)
}

pub async fn forgot(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    if !state.mail_enabled() {
        return forgot_page(&state, &visitor, "", false, None, StatusCode::NOT_FOUND);
    }
    let email = p.get("email").unwrap_or("").trim().to_string();
    if email.is_empty() || email.len() > 254 || !email.contains('@') {
        return forgot_page(&state, &visitor, &email, false, Some("Give the email address of your account."), StatusCode::BAD_REQUEST);
    }
    // Per caller address, then per address asked for: keyed by what was typed, never by
    // whether an account has it, so a refusal tells nothing about accounts either.
    let buckets = [
        (format!("forgot:{}", state.client_ip(&headers, peer)), state.config.rate_limits.login),
        (format!("mail-to:{}", email.to_lowercase()), state.config.rate_limits.recovery_mail),
    ];
    for (bucket, budget) in buckets {
        let d = state.take_rate(&bucket, budget).await;
        if !d.allowed {
            let msg = format!("Too many requests. Try again in {} seconds.", d.retry_after);
            let mut res = forgot_page(&state, &visitor, &email, false, Some(&msg), StatusCode::TOO_MANY_REQUESTS);
            rate_limit::add_headers(res.headers_mut(), budget, &d);
            return res;
        }
    }
    let (bg, address) = (state.clone(), email.clone());
    tokio::spawn(async move {
        let sent = async {
            for user in links::recovery_targets(&bg.auth, &address).await? {
                emails::send_reset(&bg, &user, &user.email).await?;
            }
            Ok::<_, gatehouse_core::error::StoreError>(())
        };
        if let Err(e) = sent.await {
            e.log();
        }
    });
    forgot_page(&state, &visitor, &email, true, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    pub(crate) token: Option<String>,
}

fn link_invalid(state: &AppState) -> Response {
    state.pages.notice(
        StatusCode::BAD_REQUEST,
        "This link does not work",
        "It was used already, it expired (reset links work for 30 minutes), or a newer link replaced it.",
        Some(("/forgot-password", "Ask for a new link")),
    )
}

fn reset_page(state: &AppState, v: &Visitor, token: &str, login: &str, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! { csrf => v.csrf_token(), token, login, error, user => v.user().map(|u| u.login.clone()) };
    with_cookie(state.pages.render("reset.html", status, ctx), v)
}

/// The enabled account a live reset link is for; else the page to answer with.
async fn link_holder(state: &AppState, token: &str) -> Result<User, Response> {
    let user = match links::peek(&state.auth, token, LinkPurpose::ResetPassword).await {
        Ok(Some(link)) => state.auth.store.find_user(&link.user_id).await.map_err(|e| AppError::page(e).into_response())?,
        Ok(None) => None,
        Err(e) => return Err(AppError::page(e).into_response()),
    };
    user.filter(|u| !u.disabled).ok_or_else(|| link_invalid(state))
}

/// Shows the form; the link is not used until the form is sent (mail scanners open links).
pub async fn reset_form(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let user = match link_holder(&state, &token).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    let Ok(visitor) = Visitor::load(&state, &headers).await else { return unavailable() };
    reset_page(&state, &visitor, &token, &user.login, None, StatusCode::OK)
}

pub async fn reset(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let token = p.get("token").unwrap_or("").to_string();
    let password = p.get("password").unwrap_or("").to_string();
    let user = match link_holder(&state, &token).await {
        Ok(user) => user,
        Err(answer) => return answer,
    };
    if let Err(e) = accounts::check_new_password(&password, &user.login, &user.email) {
        return reset_page(&state, &visitor, &token, &user.login, Some(&e.to_string()), StatusCode::BAD_REQUEST);
    }
    let Ok(_permit) = state.password_checks.acquire().await else { return unavailable() };
    let Ok(hash) = tokio::task::spawn_blocking(move || accounts::hash_password(&password)).await else { return unavailable() };
    // Used here, once: a second submission of the same form finds no link.
    let user = match links::take(&state.auth, &token, LinkPurpose::ResetPassword).await {
        Ok(Some((_, user))) => user,
        Ok(None) => return link_invalid(&state),
        Err(e) => return AppError::page(e).into_response(),
    };
    // Every session ends (this browser's too) and every token of the user is revoked.
    if let Err(e) = state.auth.store.change_password(&user.id, &hash, "").await {
        return AppError::page(e).into_response();
    }
    tracing::info!("password reset through a mailed link");
    audit::record(&state, audit::event(&state, EventKind::PasswordReset, &headers, peer).actor(&user)).await;
    state.pages.notice(
        StatusCode::OK,
        "Password changed",
        "Your new password is set. You were signed out everywhere, and applications will need you to authorize them again.",
        Some(("/login", "Sign in")),
    )
}
