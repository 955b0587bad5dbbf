//! One log line per request (method, path, status, time, request id), and its metrics.
//! Never the query string or the body, where tokens and codes travel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn log(trust_request_id: bool, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let id = match req.headers().get(X_REQUEST_ID).filter(|v| trust_request_id && acceptable(v)) {
        Some(given) => given.clone(),
        None => new_request_id(),
    };
    let started = Instant::now();
    let mut res = next.run(req).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    crate::metrics::http().record(route.as_ref().map(MatchedPath::as_str), status, elapsed);
    let ms = elapsed.as_secs_f64() * 1000.0;
    // Display, not Debug: no quotes to escape (`acceptable` allows none).
    let request_id = id.to_str().unwrap_or("");
    if status >= 500 {
        tracing::error!(%method, %path, status, ms, request_id = %request_id, "request");
    } else {
        tracing::info!(%method, %path, status, ms, request_id = %request_id, "request");
    }
    res.headers_mut().insert(X_REQUEST_ID, id);
    res
}

/// A request id from a trusted proxy: short, and only characters that cannot forge a
/// log line or a header.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=".contains(c))
}

/// 16 hex digits: a random start for this process, then a count, so ids never repeat
/// within a process and rarely across instances, without a random draw per request.
fn new_request_id() -> HeaderValue {
    static START: LazyLock<u64> = LazyLock::new(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    });
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = START.wrapping_add(COUNT.fetch_add(1, Ordering::Relaxed));
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 16];
    for (i, c) in text.iter_mut().enumerate() {
        *c = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex_and_forged_ones_are_refused() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().len() == 16 && a.to_str().unwrap().bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(acceptable(&HeaderValue::from_static("req-42_a.b")));
        for bad in ["", "a b", "x\"}{", &"x".repeat(129)] {
            assert!(!acceptable(&HeaderValue::from_str(bad).unwrap()), "{bad:?}");
        }
    }
}
