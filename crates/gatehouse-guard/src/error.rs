//! Guard failures as RFC 6750 §3 responses, and [`ErrorBody`]: the one JSON shape of
//! every Gatehouse error, written here and by the server alike.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Every error: RFC 6749 §5.2 fields plus Twitch's `status` and `message`.
// `message` repeats `error_description`, so clients of either style read it. Defined
// here, below the server, because APIs behind the guard answer in it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    // Fields in alphabetical order: the order these bodies have always been written in.
    pub error: String,
    pub error_description: String,
    pub message: String,
    /// With `insufficient_scope`: the scope the request needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub status: u16,
}

impl ErrorBody {
    pub fn new(status: StatusCode, error: &str, description: impl Into<String>) -> ErrorBody {
        let description = description.into();
        ErrorBody {
            error: error.to_string(),
            message: description.clone(),
            error_description: description,
            scope: None,
            status: status.as_u16(),
        }
    }

    pub fn with_scope(mut self, scope: &str) -> ErrorBody {
        self.scope = Some(scope.to_string());
        self
    }
}

/// The body with its status; headers (challenges, caching) are the caller's to add.
impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self)).into_response()
    }
}

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
        let mut body = ErrorBody::new(status, code, description);
        if let GuardError::InsufficientScope(scope) = &self {
            body = body.with_scope(scope);
        }
        let mut res = body.into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            if !challenge.is_empty() {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}
