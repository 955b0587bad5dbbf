//! OAuth errors as HTTP: RFC 6749 §5.2 JSON that also carries Twitch's `status` and
//! `message`, so clients written for either read it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::{ErrorCode, OAuthError};
use gatehouse_guard::ErrorBody;

/// An OAuth error on its way out as JSON.
#[derive(Debug)]
pub struct ApiError(pub OAuthError);

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = ErrorBody::new(status, e.code.as_str(), e.description).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match e.code {
            ErrorCode::InvalidClient => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gatehouse\""));
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
}
