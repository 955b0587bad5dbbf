//! Protect an axum API with Gatehouse access tokens.
//!
//! ```ignore
//! let guard = Guard::introspection("https://id.example.com/oauth2/introspect", "rs-client", "secret");
//! let app = Router::new()
//!     .route("/channel", put(edit_channel))
//!     .route_layer(from_fn_with_state("channel_editor", require_scope))
//!     .route("/user", get(show_user))
//!     .layer(from_fn_with_state(Arc::new(guard), authenticate));
//!
//! async fn show_user(Token(t): Token) -> String { format!("hello {}", t.login.unwrap_or_default()) }
//! ```
//!
//! `authenticate` finds the token (RFC 6750 and Twitch's ways of sending it), checks it,
//! compares a `Client-Id` header with the token's client, and puts a [`TokenInfo`] in the
//! request. `require_scope` refuses requests whose token lacks a scope (403
//! `insufficient_scope`). The [`Token`] extractor hands the handler the token.

mod error;
mod middleware;
mod token_source;
mod verify;

pub use error::{ErrorBody, GuardError};
pub use middleware::{authenticate, require_scope, Token};
pub use token_source::redact_query;
pub use verify::{IntrospectionVerifier, JwtVerifier, LocalVerifier, Verifier};

/// The guard's parsers of untrusted input, public so that fuzz targets can reach them.
pub mod untrusted {
    pub use crate::token_source::{from_header, from_pairs};
    pub use crate::verify::{jwt_claims, jwt_key_id};
}

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::Authority;

/// A checked access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub client_id: String,
    /// None for app access tokens (client credentials).
    pub user_id: Option<String>,
    pub login: Option<String>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl TokenInfo {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Ok if the token carries `scope`, else the 403 to return.
    pub fn require(&self, scope: &str) -> Result<(), GuardError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(GuardError::InsufficientScope(scope.to_string()))
        }
    }
}

/// How tokens are found and checked.
#[derive(Clone)]
pub struct Guard {
    verifier: Arc<dyn Verifier>,
    allow_query_tokens: bool,
}

impl Guard {
    pub fn new(verifier: Arc<dyn Verifier>) -> Guard {
        Guard { verifier, allow_query_tokens: true }
    }

    /// Checks tokens against Gatehouse's store in the same process.
    pub fn local(auth: Authority) -> Guard {
        Guard::new(Arc::new(LocalVerifier::new(auth)))
    }

    /// Checks tokens against a remote Gatehouse by RFC 7662 introspection, authenticating
    /// as a confidential client, and remembers answers for up to 10 seconds.
    pub fn introspection(url: &str, client_id: &str, client_secret: &str) -> Guard {
        Guard::new(Arc::new(IntrospectionVerifier::new(url, client_id, client_secret, Duration::from_secs(10), 10_000)))
    }

    /// Whether `?oauth_token=` / `?access_token=` are accepted (default: yes, as Twitch
    /// did; they end up in logs, so switch them off where clients allow).
    pub fn allow_query_tokens(mut self, allow: bool) -> Guard {
        self.allow_query_tokens = allow;
        self
    }
}
