//! Sign-in and sign-out pages.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::accounts::{check_login, decoy_hash};
use serde::Deserialize;

use gatehouse_core::events::EventKind;

use crate::audit;
use crate::error::AppError;
use crate::params::Params;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::{known_browser, password_budget, AppState};

/// Only same-site paths may be returned to after sign-in: never `//host` or a URL,
/// which would make /login an open redirector. Browsers drop tabs and newlines from a
/// URL and read `\` as `/`, so `/<tab>/evil` or `/\evil` would become `//evil`: a path
/// with whitespace, control characters or backslashes is refused outright.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// `?next=…` for links between sign-in and sign-up, so a pending authorization survives
/// the detour; empty when there is nowhere particular to go back to.
pub(crate) fn next_query(next: &str) -> String {
    if next == "/" {
        return String::new();
    }
    format!("?{}", url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish())
}

/// The name of the application an authorize URL is for, to show on the sign-in page.
pub(crate) async fn app_name(state: &AppState, next: &str) -> Option<String> {
    let query = next.strip_prefix("/oauth2/authorize?")?;
    let client_id = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "client_id")?.1;
    state.auth.store.find_client(&client_id).await.ok().flatten().map(|c| c.name)
}

pub(crate) fn with_cookie(mut res: Response, visitor: &Visitor) -> Response {
    if let Some(c) = visitor.cookie_header() {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// A page's answer when something other than the store failed (a store failure is
/// logged through `AppError::page` first).
pub(crate) fn unavailable() -> Response {
    AppError::unavailable_page().into_response()
}

pub(crate) fn csrf_refused(state: &AppState) -> Response {
    state.pages.error(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form was not sent from this site's page, or it has expired. Go back, reload the page and try again.",
    )
}

/// Reads a form posted from one of our pages: its fields, and the visitor whose CSRF
/// token it carries. Anything else is answered with an error page.
pub(crate) async fn posted_form(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(Params, Visitor), Response> {
    let Ok(p) = Params::from_form(headers, body) else {
        return Err(state.pages.error(StatusCode::BAD_REQUEST, "Bad request", "The form could not be read."));
    };
    let Ok(visitor) = Visitor::load(state, headers).await else { return Err(unavailable()) };
    if !visitor.csrf_ok(p.get("csrf")) {
        return Err(csrf_refused(state));
    }
    Ok((p, visitor))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub(crate) async fn login_page(state: &AppState, visitor: &Visitor, next: &str, login: &str, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! {
        csrf => visitor.csrf_token(),
        next,
        next_query => next_query(next),
        signup => state.config.signup_enabled,
        mail => state.mail_enabled(),
        login,
        error,
        app => app_name(state, next).await,
        user => visitor.user().map(|u| u.login.clone()),
        mail => state.mail_enabled(),
    };
    with_cookie(state.pages.render("login.html", status, ctx), visitor)
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

/// Signs `user` in at this browser (the password, and the code if asked for, were
/// right) and sends it on to `next`.
/// `with_code`: a two-factor code was asked for and given (said in the event).
pub(crate) async fn finish_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    visitor: Visitor,
    user: gatehouse_core::model::User,
    next: &str,
    with_code: bool,
) -> Response {
    if user.disabled {
        tracing::info!("sign-in to a disabled account refused");
        // Said only to someone who knows the password.
        let failed = audit::event(state, EventKind::SignInFailed, headers, peer).subject(&user).detail("account disabled");
        audit::record(state, failed).await;
        let msg = Some("This account is disabled. Contact the administrator of this server.");
        return login_page(state, &visitor, next, &user.login, msg, StatusCode::FORBIDDEN).await;
    }
    if visitor.signed_in.is_some() {
        // Switching accounts: end the old session rather than leave it behind.
        if visitor.sign_out(state).await.is_err() {
            return unavailable();
        }
    }
    let mut signed_in = audit::event(state, EventKind::SignInSucceeded, headers, peer).actor(&user);
    if with_code {
        signed_in = signed_in.detail("with two-factor");
    }
    let remember = known_browser::remember(state, &user);
    match Visitor::sign_in(state, user).await {
        Ok(v) => {
            crate::metrics::sign_in("success");
            audit::record(state, signed_in).await;
            let mut res = with_cookie(Redirect::to(next).into_response(), &v);
            res.headers_mut().extend(remember.map(|c| (header::SET_COOKIE, c)));
            res
        }
        Err(_) => unavailable(),
    }
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
    use super::safe_next;

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
