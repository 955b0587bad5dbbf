//! The Authorization header: HTTP Basic client credentials and Bearer/OAuth tokens.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};
use gatehouse_server::untrusted::{basic_auth, bearer_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let _ = basic_auth(&headers);
    if let Some(token) = bearer_token(&headers) {
        assert!(!token.is_empty());
        assert_eq!(token, token.trim());
    }
});
