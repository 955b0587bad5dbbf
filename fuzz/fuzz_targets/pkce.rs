//! PKCE challenges and verifiers (RFC 7636): the first byte picks the method, the rest
//! is split into challenge and verifier at the first newline.
#![no_main]
use gatehouse_core::pkce::{check_challenge, s256, verify, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (challenge, verifier) = text.split_once('\n').unwrap_or((text, ""));
    let method = match selector % 4 {
        0 => None,
        1 => Some("S256"),
        2 => Some("plain"),
        _ => Some(challenge),
    };
    if let Ok(m) = check_challenge(challenge, method, selector & 0x80 != 0) {
        let _ = verify(verifier, challenge, m);
    }
    // A verifier always answers its own S256 challenge, and never a different one.
    if verify(verifier, &s256(verifier), Method::S256) {
        assert!(!verify(verifier, &s256(&format!("{verifier}x")), Method::S256));
    }
});
