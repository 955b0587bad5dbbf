//! Errors that carry their RFC 6749 code. The HTTP layer only writes them out.

use std::fmt;

/// The `error` values of RFC 6749 §4.1.2.1 and §5.2, RFC 7009, RFC 6750 and RFC 8628.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidToken,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 8628 §3.5: the user has not answered yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: polling too fast.
    SlowDown,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
        }
    }

    /// The HTTP status a token-endpoint style response uses for this code (RFC 6749 §5.2).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An OAuth error: the RFC code plus a description that is safe to show the client.
/// Private detail (a database failure's cause) is logged where it happens, never put here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError { code, description: description.into() }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "the server could not complete the request")
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// A storage failure. `Conflict` is a broken uniqueness rule (a taken login or name);
/// the others keep the cause so that it can be logged (never sent: it may name tables
/// or values).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A transient conflict between transactions (a deadlock or serialization failure)
    /// that retrying did not resolve.
    #[error("transient storage conflict: {0}")]
    Retryable(String),
    /// The database could not be reached or could not write in the time allowed (disk
    /// full, I/O error, a lock held too long, a lost connection): the same request may
    /// succeed once the fault clears.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Logs the cause: a bug or an unexpected failure every time; an outage once when it
    /// begins, not once per request (a quiet spell of `INCIDENT_GAP` ends an incident).
    pub fn log(&self) {
        match self {
            StoreError::Backend(cause) => tracing::error!(%cause, "storage failure"),
            StoreError::Retryable(cause) => tracing::warn!(%cause, "storage conflict persisted after retries"),
            StoreError::Conflict(what) => tracing::debug!(%what, "storage conflict"),
            StoreError::Unavailable(cause) => {
                if let Some(earlier) = outage::begins() {
                    tracing::error!(%cause, failures_in_the_previous_outage = earlier, "storage unavailable; answering 503 until it recovers");
                }
            }
        }
    }
}

mod outage {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// Failures further apart than this belong to different outages.
    const INCIDENT_GAP: Duration = Duration::from_secs(30);

    /// When the last failure was seen, and how many this outage has had.
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

    /// Counts a failure; Some(failures of the previous outage) when this one begins one.
    pub fn begins() -> Option<u64> {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *last {
            Some((at, count)) if now.duration_since(at) < INCIDENT_GAP => {
                *last = Some((now, count + 1));
                None
            }
            previous => {
                *last = Some((now, 1));
                Some(previous.map_or(0, |(_, count)| count))
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        e.log();
        match e {
            StoreError::Conflict(what) => OAuthError::invalid_request(what),
            StoreError::Backend(_) => OAuthError::server_error(),
            StoreError::Retryable(_) => OAuthError::new(ErrorCode::TemporarilyUnavailable, "the server is busy; try again"),
            StoreError::Unavailable(_) => {
                OAuthError::new(ErrorCode::TemporarilyUnavailable, "the service is briefly unavailable; try again shortly")
            }
        }
    }
}

#[cfg(test)]
mod outage_tests {
    #[test]
    fn an_outage_is_reported_when_it_begins_not_at_every_failure() {
        // The only test that touches this process-wide state.
        assert!(super::outage::begins().is_some(), "the first failure begins an outage");
        for _ in 0..100 {
            assert_eq!(super::outage::begins(), None, "later failures of the same outage are counted, not logged");
        }
    }
}
