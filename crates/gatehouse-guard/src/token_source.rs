//! Finding the access token in a request: `Authorization: Bearer` or `OAuth` (Twitch's
//! kraken), the `oauth_token` / `access_token` query parameters, or an `oauth_token` /
//! `access_token` form field on requests other than GET, HEAD and DELETE. RFC 6750 §2:
//! a client must use only one way; two ways at once is an invalid request.

use axum::http::{header, HeaderMap, Method, Uri};

use crate::error::GuardError;

const NAMES: [&str; 2] = ["oauth_token", "access_token"];

pub fn from_header(headers: &HeaderMap) -> Result<Option<String>, GuardError> {
    let mut found = None;
    for value in headers.get_all(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| GuardError::InvalidRequest("malformed Authorization header".into()))?;
        let Some((scheme, token)) = value.split_once(' ') else { continue };
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") {
            if found.is_some() {
                return Err(GuardError::InvalidRequest("more than one access token was sent".into()));
            }
            found = Some(token.trim().to_string()).filter(|t| !t.is_empty());
        }
    }
    Ok(found)
}

/// Tokens among URL-encoded pairs (a query string or a form body).
pub fn from_pairs(raw: &[u8]) -> Result<Option<String>, GuardError> {
    let mut found = None;
    for (k, v) in url::form_urlencoded::parse(raw) {
        if NAMES.contains(&k.as_ref()) {
            if found.is_some() {
                return Err(GuardError::InvalidRequest("more than one access token was sent".into()));
            }
            found = Some(v.into_owned());
        }
    }
    Ok(found)
}

pub(crate) fn from_query(uri: &Uri) -> Result<Option<String>, GuardError> {
    from_pairs(uri.query().unwrap_or("").as_bytes())
}

/// Whether the body may carry the token (RFC 6750 §2.2; Twitch: not on GET or DELETE).
pub(crate) fn body_may_carry_token(method: &Method, headers: &HeaderMap) -> bool {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    form && !matches!(*method, Method::GET | Method::HEAD | Method::DELETE)
}

/// A URI for logging, with any token in its query string replaced by `REDACTED`.
pub fn redact_query(uri: &Uri) -> String {
    let Some(q) = uri.query() else { return uri.path().to_string() };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| {
            let v = if NAMES.contains(&k.as_ref()) { "REDACTED".to_string() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("{}?{}", uri.path(), q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_schemes_bearer_and_oauth() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "OAuth abc".parse().unwrap());
        assert_eq!(from_header(&h).unwrap().as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(from_header(&h).unwrap().as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(from_header(&h).unwrap(), None);
    }

    #[test]
    fn repeated_query_tokens_are_refused() {
        assert_eq!(from_pairs(b"oauth_token=a&x=1").unwrap().as_deref(), Some("a"));
        assert!(from_pairs(b"oauth_token=a&access_token=b").is_err());
        assert!(from_pairs(b"oauth_token=a&oauth_token=a").is_err());
    }

    #[test]
    fn query_tokens_are_redacted_for_logs() {
        let uri: Uri = "/api/user?oauth_token=secret123&x=1".parse().unwrap();
        let shown = redact_query(&uri);
        assert!(!shown.contains("secret123"));
        assert_eq!(shown, "/api/user?oauth_token=REDACTED&x=1");
        let uri: Uri = "/api/user".parse().unwrap();
        assert_eq!(redact_query(&uri), "/api/user");
    }

    #[test]
    fn only_form_bodies_of_writing_methods_carry_tokens() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        assert!(body_may_carry_token(&Method::POST, &h));
        assert!(body_may_carry_token(&Method::PUT, &h));
        assert!(!body_may_carry_token(&Method::GET, &h));
        assert!(!body_may_carry_token(&Method::DELETE, &h));
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!body_may_carry_token(&Method::POST, &h));
    }
}
