//! Guard failures as RFC 6750 §3 responses, in the same JSON shape Gatehouse's own
//! errors use (`error`, `error_description`, and Twitch's `status` and `message`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// No token was sent: 401 with a bare challenge (RFC 6750 §3.1).
    Missing,
    /// The token is unknown, expired, revoked, or not for this `Client-Id`.
    InvalidToken(String),
    /// The token lacks the named scope.
    InsufficientScope(String),
    /// The request is malformed: a token sent two ways, or in a disabled way.
    InvalidRequest(String),
    /// The token could not be checked (introspection endpoint unreachable).
    Unavailable,
}

impl IntoResponse for GuardError {
    fn into_response(self) -> Response {
        let (status, code, description, challenge) = match &self {
            GuardError::Missing => (StatusCode::UNAUTHORIZED, "invalid_token", "an access token is required".to_string(), "Bearer realm=\"gatehouse\"".to_string()),
            GuardError::InvalidToken(d) => (StatusCode::UNAUTHORIZED, "invalid_token", d.clone(), "Bearer realm=\"gatehouse\", error=\"invalid_token\"".to_string()),
            GuardError::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this request needs the {scope} scope"),
                format!("Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"{scope}\""),
            ),
            GuardError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d.clone(), "Bearer realm=\"gatehouse\", error=\"invalid_request\"".to_string()),
            GuardError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "the token could not be checked; try again".to_string(), String::new()),
        };
        let mut body = serde_json::json!({
            "error": code,
            "error_description": description,
            "status": status.as_u16(),
            "message": description,
        });
        if let GuardError::InsufficientScope(scope) = &self {
            body["scope"] = scope.clone().into();
        }
        let mut res = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            if !challenge.is_empty() {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}
