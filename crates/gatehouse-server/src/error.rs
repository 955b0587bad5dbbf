//! The server's one error type: what a handler could not do, and the HTTP answer that
//! says so. OAuth errors go out as RFC 6749 §5.2 JSON that also carries Twitch's
//! `status` and `message` ([`ErrorBody`]), so clients written for either read it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::error::StoreError;
use gatehouse_core::{ErrorCode, OAuthError};
use gatehouse_guard::{ErrorBody, GuardError};

use crate::pages::Pages;

/// When a client told `temporarily_unavailable` may try again (RFC 9110 §10.2.3).
const RETRY_AFTER_SECONDS: &str = "2";

#[derive(Debug)]
pub enum AppError {
    /// An OAuth error of the core, as RFC 6749 JSON.
    OAuth(OAuthError),
    /// A refusal on the resource-server side (RFC 6750), as the guard writes it.
    Guard(GuardError),
    /// Any other JSON answer, such as the demo API's `not_found`.
    Body(ErrorBody),
    /// The store failed (its cause logged when this was made): 503 JSON, so the client
    /// tries again.
    Unavailable,
    /// An error page for a person at a browser.
    Page { status: StatusCode, title: &'static str, detail: &'static str },
}

impl AppError {
    /// The page for a request that could not be completed: the store failed, or a
    /// password check could not run.
    pub fn unavailable_page() -> AppError {
        AppError::Page {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Unavailable",
            detail: "The service could not complete that. Try again shortly.",
        }
    }

    /// A store failure met while serving a page: logged, then [`AppError::unavailable_page`].
    pub fn page(e: StoreError) -> AppError {
        log_store(&e);
        AppError::unavailable_page()
    }
}

/// The cause may name tables or values: logged once, here, and never sent.
fn log_store(e: &StoreError) {
    e.log();
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        log_store(&e);
        AppError::Unavailable
    }
}

impl From<OAuthError> for AppError {
    fn from(e: OAuthError) -> Self {
        AppError::OAuth(e)
    }
}

impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        AppError::Guard(e)
    }
}

impl From<ErrorBody> for AppError {
    fn from(e: ErrorBody) -> Self {
        AppError::Body(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::OAuth(e) => oauth_response(e),
            AppError::Guard(e) => e.into_response(),
            AppError::Body(b) => b.into_response(),
            AppError::Unavailable => {
                let mut res = ErrorBody::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly")
                    .into_response();
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
                res
            }
            AppError::Page { status, title, detail } => Pages::shared().error(status, title, detail),
        }
    }
}

fn oauth_response(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = ErrorBody::new(status, e.code.as_str(), e.description);
    // Twitch's device flow says which wait this is in `message`, and its clients read it there.
    if matches!(e.code, ErrorCode::AuthorizationPending | ErrorCode::SlowDown) {
        body.message = e.code.as_str().to_string();
    }
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match e.code {
        ErrorCode::InvalidClient => {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gatehouse\""));
        }
        ErrorCode::TemporarilyUnavailable => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        ErrorCode::InvalidToken => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
            );
        }
        _ => {}
    }
    res
}
