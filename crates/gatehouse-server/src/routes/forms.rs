//! What every page handler shares: reading a posted form with its CSRF token, the
//! answers for an expired form or an unavailable store, the visitor's cookie, and the
//! same-site `next` a sign-in returns to.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::params::Params;
use crate::session::Visitor;
use crate::AppState;

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
