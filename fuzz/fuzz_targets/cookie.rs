//! Cookie headers: finding the session cookie.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};
use gatehouse_server::untrusted::read_cookie;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for part in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append(header::COOKIE, v);
        }
    }
    for name in ["gh_sid", "__Host-gh_sid"] {
        if let Some(sid) = read_cookie(&headers, name) {
            assert!(sid.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
});
