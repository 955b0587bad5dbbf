//! Email verification: `GET /verify-email?token=…` from the mailed link (a button that
//! posts it), and
//! `/settings/email`, where a user gets a new link or changes the address (password
//! required): a new address replaces the old only once its link is followed.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::accounts;
use gatehouse_core::events::EventKind;
use gatehouse_core::links::{self, Verified};
use gatehouse_core::model::{LinkPurpose, User};


use super::account::signed_in;
use super::forms::{posted_form, unavailable, with_cookie};
use super::recovery::TokenQuery;
use crate::error::AppError;
use crate::rate_limit::{self, Peer};
use crate::session::Visitor;
use crate::{audit, emails, password_budget, AppState};

fn link_invalid(state: &AppState) -> Response {
    state.pages.notice(
        StatusCode::BAD_REQUEST,
        "This link does not work",
        "It was used already, it expired (verification links work for 24 hours), or a newer link replaced it.",
        Some(("/settings/email", "Get a new link")),
    )
}

/// The mailed link only shows a button: mail scanners open links, and one that verified
/// by being opened would let anyone who signs up with someone else's address have that
/// person's mail gateway prove it for them.
pub async fn confirm(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    match links::peek(&state.auth, &token, LinkPurpose::VerifyEmail).await {
        Ok(Some(link)) => {
            let Ok(visitor) = Visitor::load(&state, &headers).await else { return unavailable() };
            let ctx = minijinja::context! {
                title => "Verify your email address",
                detail => format!("Confirm that {} is your address.", link.email),
                action => "/verify-email",
                fields => vec![("token", token)],
                button => "Verify my email",
                button_class => "",
                cancel => "/",
                csrf => visitor.csrf_token(),
                user => visitor.user().map(|u| u.login.clone()),
            };
            with_cookie(state.pages.render("confirm.html", StatusCode::OK, ctx), &visitor)
        }
        Ok(None) => link_invalid(&state),
        Err(e) => AppError::page(e).into_response(),
    }
}

pub async fn verify(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, _) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let token = p.get("token").unwrap_or("").to_string();
    match links::verify_email(&state.auth, &token).await {
        Ok(Verified::Done { user, changed }) => {
            tracing::info!("email verified");
            let kind = if changed { EventKind::EmailChanged } else { EventKind::EmailVerified };
            // The address is the account's own detail, not a secret: it says which one.
            audit::record(&state, audit::event(&state, kind, &headers, peer).actor(&user).detail(user.email.clone())).await;
            let detail = format!("{} is now the verified email of {}.", user.email, user.login);
            state.pages.notice(StatusCode::OK, "Email verified", &detail, Some(("/settings/email", "Your email settings")))
        }
        Ok(Verified::Taken) => state.pages.notice(
            StatusCode::CONFLICT,
            "Address already in use",
            "Another account verified this address first. Sign in to that account, or use another address.",
            Some(("/settings/email", "Your email settings")),
        ),
        Ok(Verified::Invalid) => link_invalid(&state),
        Err(e) => AppError::page(e).into_response(),
    }
}

fn email_page(state: &AppState, v: &Visitor, user: &User, pending: &str, error: Option<&str>, notice: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! {
        csrf => v.csrf_token(), email => user.email, verified => user.email_verified, pending, error, notice,
        mail => state.mail_enabled(), user => user.login,
    };
    state.pages.render("email.html", status, ctx)
}

pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/settings/email").await {
        Ok(v) => match v.user() {
            Some(u) => email_page(&state, &v, u, "", None, None, StatusCode::OK),
            None => unavailable(),
        },
        Err(r) => r,
    }
}

pub async fn change(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, visitor) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some(user) = visitor.user().cloned() else { return Redirect::to("/login?next=%2Fsettings%2Femail").into_response() };
    let page = |pending: &str, error: Option<&str>, notice: Option<&str>, status| email_page(&state, &visitor, &user, pending, error, notice, status);
    if !state.mail_enabled() {
        return page("", Some("Email verification is not available on this server."), None, StatusCode::NOT_FOUND);
    }
    let email = p.get("email").unwrap_or("").trim().to_string();
    let password = p.get("password").unwrap_or("").to_string();
    if let Err(e) = accounts::check_email(&email) {
        return page(&email, Some(&e.to_string()), None, StatusCode::BAD_REQUEST);
    }
    if user.email_verified && user.email == email {
        return page("", None, Some("That is already your verified email."), StatusCode::OK);
    }
    // A password check like a sign-in: a stolen session must not make it a free oracle.
    if let Err(t) = password_budget::take(&state, &headers, peer, &user.login, Some(&user)).await {
        let mut res = page(&email, Some(&t.message), None, StatusCode::TOO_MANY_REQUESTS);
        t.add_headers(&mut res);
        return res;
    }
    let budget = state.config.rate_limits.recovery_mail;
    let d = state.take_rate(&format!("mail-to:{}", email.to_lowercase()), budget).await;
    if !d.allowed {
        let msg = format!("Too many links sent to that address. Try again in {} seconds.", d.retry_after);
        let mut res = page(&email, Some(&msg), None, StatusCode::TOO_MANY_REQUESTS);
        rate_limit::add_headers(res.headers_mut(), budget, &d);
        return res;
    }
    let Ok(_permit) = state.password_checks.acquire().await else { return unavailable() };
    let stored = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &stored)).await.unwrap_or(false);
    if !ok {
        return page(&email, Some("The current password is not right."), None, StatusCode::UNAUTHORIZED);
    }
    if let Err(e) = emails::claim_address(&state, &user, &email).await {
        return AppError::page(e).into_response();
    }
    let notice = format!("We sent a link to {email}. It works once, for 24 hours; your email changes when you follow it.");
    page("", None, Some(&notice), StatusCode::OK)
}
