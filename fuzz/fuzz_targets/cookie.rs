//! Cookie headers: finding the session cookie, and opening sealed cookie notes (the
//! known-browser cookie) with a fixed key: a forged note must never open.
#![no_main]
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue};
use gatehouse_core::oidc::{KeyEncryptionKey, Keyring};
use gatehouse_server::untrusted::read_cookie;
use libfuzzer_sys::fuzz_target;

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::new(KeyEncryptionKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap()))
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for part in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append(header::COOKIE, v);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(keyring().open_note(text, "known-browser").is_none(), "a note opened without the key");
    }
    for name in ["gh_sid", "__Host-gh_sid"] {
        if let Some(sid) = read_cookie(&headers, name) {
            assert!(sid.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
});
