//! Where a resource server finds the access token: Authorization headers, query strings
//! and form bodies. Two tokens in one place is an error, never a silent pick.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};
use gatehouse_guard::untrusted::{from_header, from_pairs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = from_pairs(data);
    let mut headers = HeaderMap::new();
    for part in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append(header::AUTHORIZATION, v);
        }
    }
    if let Ok(Some(token)) = from_header(&headers) {
        assert!(!token.is_empty());
    }
});
