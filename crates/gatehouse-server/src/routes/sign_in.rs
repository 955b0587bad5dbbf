//! The sign-in form and the end of every sign-in (password only, or password and a
//! two-factor code): shared by `login` and `two_factor`.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::events::EventKind;

use super::forms::{app_name, next_query, unavailable, with_cookie};
use crate::session::Visitor;
use crate::{audit, known_browser, AppState};

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
