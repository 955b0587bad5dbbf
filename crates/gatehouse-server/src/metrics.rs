//! Prometheus metrics, through the `metrics` facade: the store and the core count with its
//! macros where things happen rarely (a batch, a reuse); the per-request counts here use
//! handles registered once, so a request costs a map lookup and a few atomic adds.
//!
//! Label values are bounded: route templates (never raw paths), status codes, grant
//! types, OAuth error codes, bucket kinds. Client ids never appear.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds: half a millisecond up to ten seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Jobs in one store batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder, once; None when another recorder was
/// installed first. Before it, every count is dropped (as in tests that never call it).
pub fn install() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full("gatehouse_store_batch_size".into()), BATCH_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            metrics::gauge!("gatehouse_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .as_ref()
}

/// The metrics in Prometheus text format; None without a recorder.
pub fn render() -> Option<String> {
    RECORDER.get().and_then(Option::as_ref).map(PrometheusHandle::render)
}

/// Histogram samples wait in buffers until rendered: drains them now and then, so an
/// instance nobody scrapes does not grow.
pub async fn upkeep() {
    let Some(handle) = RECORDER.get().and_then(Option::as_ref) else { return };
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("gatehouse_http_requests_total", "HTTP requests by route template and status");
    describe_histogram!("gatehouse_http_request_duration_seconds", Unit::Seconds, "Time to answer, by route template");
    describe_counter!("gatehouse_tokens_issued_total", "Token responses by grant type");
    describe_counter!("gatehouse_token_errors_total", "Token endpoint errors by OAuth error code");
    describe_counter!("gatehouse_refresh_token_reuse_total", "Rotated refresh tokens presented again (their family revoked)");
    describe_counter!("gatehouse_sign_ins_total", "Sign-in attempts by outcome");
    describe_counter!("gatehouse_rate_limited_total", "Requests refused by a rate limit, by bucket kind");
    describe_histogram!("gatehouse_store_batch_size", "Jobs committed in one store write batch");
    describe_histogram!("gatehouse_store_batch_commit_seconds", Unit::Seconds, "Time to run and commit one store write batch");
    describe_gauge!("gatehouse_db_connections", "Database connections by state (in_use, idle)");
    describe_counter!("gatehouse_purged_rows_total", "Expired or revoked rows deleted by the purge");
    describe_gauge!("gatehouse_build_info", "Always 1; the version is a label");
}

/// The HTTP counts. Made at the first request, after the binary installed the recorder.
pub(crate) fn http() -> &'static HttpMetrics {
    static HTTP: LazyLock<HttpMetrics> = LazyLock::new(HttpMetrics::new);
    &HTTP
}

pub(crate) fn tokens() -> &'static TokenMetrics {
    static TOKENS: LazyLock<TokenMetrics> = LazyLock::new(TokenMetrics::new);
    &TOKENS
}

/// Counts and times of HTTP requests, by route template.
pub(crate) struct HttpMetrics {
    /// Keyed by template with foldhash (already in the tree through the exporter): the
    /// keys are the server's own route templates, never caller input, so SipHash's
    /// defence against chosen keys buys nothing here and costs most of the lookup.
    routes: RwLock<HashMap<Box<str>, RouteMetrics, foldhash::fast::RandomState>>,
    unmatched: RouteMetrics,
}

struct RouteMetrics {
    route: Box<str>,
    latency: Histogram,
    /// One counter per status code 100..=599, registered when first seen.
    by_status: Box<[OnceLock<Counter>]>,
}

impl RouteMetrics {
    fn new(route: &str) -> Self {
        RouteMetrics {
            route: route.into(),
            latency: metrics::histogram!("gatehouse_http_request_duration_seconds", "route" => route.to_string()),
            by_status: (100..600).map(|_| OnceLock::new()).collect(),
        }
    }

    fn record(&self, status: u16, elapsed: Duration) {
        self.latency.record(elapsed.as_secs_f64());
        let Some(slot) = self.by_status.get(usize::from(status.saturating_sub(100))) else { return };
        slot.get_or_init(|| {
            metrics::counter!("gatehouse_http_requests_total", "route" => self.route.to_string(), "status" => status.to_string())
        })
        .increment(1);
    }
}

impl HttpMetrics {
    pub fn new() -> Self {
        HttpMetrics { routes: RwLock::default(), unmatched: RouteMetrics::new("unmatched") }
    }

    /// One request to `route` (axum's matched path; None for no route).
    pub fn record(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        let Some(route) = route else { return self.unmatched.record(status, elapsed) };
        if let Some(m) = self.routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
            return m.record(status, elapsed);
        }
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.entry(route.into()).or_insert_with(|| RouteMetrics::new(route)).record(status, elapsed);
    }
}

/// Token responses by grant type: registered once, counted per request.
pub(crate) struct TokenMetrics {
    issued: [Counter; 4],
}

/// The grant types of `/oauth2/token`, in the order of `TokenMetrics::issued`.
pub(crate) const GRANT_TYPES: [&str; 4] =
    ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"];

impl TokenMetrics {
    pub fn new() -> Self {
        TokenMetrics { issued: GRANT_TYPES.map(|g| metrics::counter!("gatehouse_tokens_issued_total", "grant_type" => g)) }
    }

    pub fn issued(&self, grant_type: &str) {
        if let Some(i) = GRANT_TYPES.iter().position(|g| *g == grant_type) {
            self.issued[i].increment(1);
        }
    }
}

/// An error answered by the token endpoint (`error` is an RFC 6749 code: a bounded set).
pub(crate) fn token_error(error: &'static str) {
    metrics::counter!("gatehouse_token_errors_total", "error" => error).increment(1);
}

pub(crate) fn sign_in(outcome: &'static str) {
    metrics::counter!("gatehouse_sign_ins_total", "outcome" => outcome).increment(1);
}

/// A request refused by the bucket `key`, counted by the bucket's kind (what its key
/// starts with), never by client or address.
pub(crate) fn rate_limited(key: &str) {
    let kind = match key.split(':').next().unwrap_or("") {
        "token" => "token",
        "device" => "device",
        "api" => "api",
        "login" => "login",
        "login-account" => "login_account",
        "login-known" => "login_known_browser",
        "activate" => "activate",
        "signup" => "signup",
        _ => "other",
    };
    metrics::counter!("gatehouse_rate_limited_total", "bucket" => kind).increment(1);
}

/// Rows the purge deleted.
pub(crate) fn purged(rows: u64) {
    metrics::counter!("gatehouse_purged_rows_total").increment(rows);
}

/// The store's pool, sampled when metrics are rendered.
pub(crate) fn pool(usage: gatehouse_core::store::PoolUsage) {
    metrics::gauge!("gatehouse_db_connections", "state" => "in_use").set(f64::from(usage.in_use));
    metrics::gauge!("gatehouse_db_connections", "state" => "idle").set(f64::from(usage.idle));
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_are_counted_apart_by_their_template() {
        let handle = super::install().expect("the only recorder of this test binary");
        let http = super::HttpMetrics::new();
        let (a, b) = (String::from("/route/a"), String::from("/route/b"));
        for _ in 0..3 {
            http.record(Some(&a), 200, std::time::Duration::from_millis(1));
        }
        http.record(Some(&b), 404, std::time::Duration::from_millis(1));
        // The same template in another string is the same route.
        http.record(Some(&a.clone()), 200, std::time::Duration::from_millis(1));
        http.record(None, 404, std::time::Duration::from_millis(1));
        let text = handle.render();
        for line in [
            r#"gatehouse_http_requests_total{route="/route/a",status="200"} 4"#,
            r#"gatehouse_http_requests_total{route="/route/b",status="404"} 1"#,
            r#"gatehouse_http_request_duration_seconds_count{route="/route/a"} 4"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn rate_buckets_are_counted_by_kind_only() {
        let handle = super::install().expect("the only recorder of this test binary");
        // Keys carry client ids and addresses; the label must not.
        for key in ["token:abc:10.0.0.1", "api:c:u", "weird"] {
            super::rate_limited(key);
        }
        let text = handle.render();
        for kind in ["token", "api", "other"] {
            assert!(text.contains(&format!("gatehouse_rate_limited_total{{bucket=\"{kind}\"}} 1")), "{text}");
        }
        assert!(!text.contains("abc") && !text.contains("10.0.0.1"), "{text}");
    }
}
