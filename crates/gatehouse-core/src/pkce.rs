//! PKCE (RFC 7636). Only S256 is accepted unless `plain` is switched on by policy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::OAuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
    Plain,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::S256 => "S256",
            Method::Plain => "plain",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "S256" => Some(Method::S256),
            "plain" => Some(Method::Plain),
            _ => None,
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
/// A challenge has the same shape (S256 gives exactly 43).
fn is_verifier_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the authorize request's challenge; `method` absent means `plain` (RFC 7636 §4.3).
pub fn check_challenge(
    challenge: &str,
    method: Option<&str>,
    allow_plain: bool,
) -> Result<Method, OAuthError> {
    let method = match method {
        None => Method::Plain,
        Some(m) => Method::parse(m).ok_or_else(|| {
            OAuthError::invalid_request("code_challenge_method must be S256")
        })?,
    };
    if method == Method::Plain && !allow_plain {
        return Err(OAuthError::invalid_request(
            "code_challenge_method plain is not allowed; use S256",
        ));
    }
    if !is_verifier_shaped(challenge) {
        return Err(OAuthError::invalid_request("code_challenge is malformed"));
    }
    Ok(method)
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Does the token request's verifier answer the stored challenge?
pub fn verify(verifier: &str, challenge: &str, method: Method) -> bool {
    if !is_verifier_shaped(verifier) {
        return false;
    }
    let computed = match method {
        Method::S256 => s256(verifier),
        Method::Plain => verifier.to_string(),
    };
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_example_verifies() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        assert!(verify(VERIFIER, CHALLENGE, Method::S256));
    }

    #[test]
    fn wrong_verifier_fails() {
        let other = "aBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(!verify(other, CHALLENGE, Method::S256));
        assert!(!verify("short", CHALLENGE, Method::S256));
    }

    #[test]
    fn plain_is_refused_by_default_and_missing_method_means_plain() {
        assert!(check_challenge(CHALLENGE, Some("plain"), false).is_err());
        assert!(check_challenge(CHALLENGE, None, false).is_err());
        assert_eq!(check_challenge(CHALLENGE, None, true).unwrap(), Method::Plain);
        assert_eq!(check_challenge(CHALLENGE, Some("S256"), false).unwrap(), Method::S256);
        assert!(check_challenge(CHALLENGE, Some("S512"), false).is_err());
        assert!(check_challenge("tooshort", Some("S256"), false).is_err());
    }
}
