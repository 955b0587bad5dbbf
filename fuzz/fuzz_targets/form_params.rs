//! Form bodies and query strings: parsing, the repeated-parameter rule, typed decoding.
#![no_main]
use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderValue};
use gatehouse_server::untrusted::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = Params::parse(data) {
        // An empty value reads as absent (RFC 6749 §3.1).
        if let Some(v) = params.get("grant_type") {
            assert!(!v.is_empty());
        }
        let _ = params.decode::<HashMap<String, String>>();
        let _ = params.client_credentials(&HeaderMap::new());
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
    let _ = Params::from_form(&headers, data);
});
