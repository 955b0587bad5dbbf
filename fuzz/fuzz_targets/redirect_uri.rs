//! Redirect URIs: registration checks and matching against registered ones. A match
//! must be the registered URI itself or a loopback URI differing only in its port.
#![no_main]
use gatehouse_core::redirect::{match_registered, validate_registration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = validate_registration(text);
    let registered = vec![
        "https://app.example.com/callback".to_string(),
        "http://127.0.0.1/native".to_string(),
        "http://localhost/cb".to_string(),
        "com.example.app:/oauth".to_string(),
        // Registered spellings that are not canonical: no path, upper-case host, IPv6.
        "http://localhost:3000".to_string(),
        "http://LOCALHOST:4000/Up".to_string(),
        "http://[::1]/v6".to_string(),
    ];
    if let Some(matched) = match_registered(text, &registered) {
        if matched != text {
            // Not the same string: only a loopback URI differing in its port may match.
            let req = url::Url::parse(text).expect("a loopback match parses");
            let reg = url::Url::parse(matched).expect("registered URIs parse");
            assert_eq!(req.scheme(), "http");
            assert_eq!(req.host(), reg.host(), "{text} matched {matched}");
            assert_eq!(req.path(), reg.path());
            assert_eq!(req.query(), reg.query());
            assert!(req.fragment().is_none() && req.username().is_empty() && req.password().is_none());
        }
    }
});
