//! Gatehouse core: the OAuth 2.0 protocol and Gatehouse's policy, with no HTTP and no SQL.
//!
//! The server turns HTTP requests into the request types here and turns [`OAuthError`]s
//! back into HTTP. Storage sits behind the [`store::Store`] trait defined here and
//! implemented in `gatehouse-store`. Every function takes the current time from a
//! [`clock::Clock`] so that expiry rules can be tested without waiting.

pub mod accounts;
pub mod app_name;
pub mod authority;
pub mod authorize;
pub mod client_auth;
pub mod clock;
pub mod device;
pub mod error;
pub mod events;
pub mod grant;
pub mod inspect;
pub mod links;
pub mod model;
pub mod oidc;
pub mod pkce;
pub mod policy;
pub mod redirect;
pub mod registration;
pub mod revoke;
pub mod scope;
pub mod sealing;
pub mod secret;
pub mod store;
pub mod totp;

pub use authority::Authority;
pub use error::{ErrorCode, OAuthError};
