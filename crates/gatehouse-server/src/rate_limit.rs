//! Token-bucket rate limits: per client (per client and user for user tokens) on the API
//! and the token endpoint, per IP on sign-in. One instance keeps its buckets in memory;
//! several instances share them through the database so the budget holds across them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{Client, ClientKind, RateBudget, RateDecision};
use tokio::sync::oneshot;
use gatehouse_guard::TokenInfo;

use crate::AppState;

/// The budgets, each `capacity` requests refilled over `window` seconds.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub api: RateBudget,
    pub token: RateBudget,
    /// A public client's token and device requests per caller address: a public client
    /// is known by its id alone, so one address must not spend its whole `token` budget.
    pub token_per_address: RateBudget,
    pub login: RateBudget,
    /// Sign-in attempts per account from browsers that have not signed in to it before.
    pub login_account: RateBudget,
    /// Mails with a link (recovery, verification) to one address: no page can be made to
    /// flood a mailbox.
    pub recovery_mail: RateBudget,
    /// Keep buckets in the database, shared by every instance (for PostgreSQL
    /// deployments); otherwise in this process's memory.
    pub shared: bool,
    /// Take the client address from `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// How many trusted proxies append to `X-Forwarded-For`: the caller's address is
    /// this many entries from the right.
    pub trusted_proxies: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            // Twitch's kraken allowed 800 requests a minute per client.
            api: RateBudget { capacity: 800, window: 60 },
            token: RateBudget { capacity: 3000, window: 60 },
            token_per_address: RateBudget { capacity: 300, window: 60 },
            login: RateBudget { capacity: 20, window: 60 },
            // Ten guesses, then one every 90 seconds: slow enough against guessing, and
            // a lock that lifts by itself; known browsers are never held by it.
            login_account: RateBudget { capacity: 10, window: 900 },
            recovery_mail: RateBudget { capacity: 3, window: 3600 },
            shared: false,
            trust_forwarded_for: false,
            trusted_proxies: 1,
        }
    }
}

/// Buckets of one process: level in thousandths of a request, when it was counted, and
/// the budget it counts against (budgets differ in window, so each bucket keeps its own).
#[derive(Default)]
pub struct MemoryBuckets(Mutex<HashMap<String, (i64, i64, RateBudget)>>);

const MAX_MEMORY_BUCKETS: usize = 100_000;

impl MemoryBuckets {
    fn take(&self, key: &str, budget: RateBudget, now: i64) -> RateDecision {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_MEMORY_BUCKETS && !map.contains_key(key) {
            // Forget buckets that have refilled: they hold no information.
            map.retain(|_, (level, at, b)| b.take(Some(*level), now - *at).1 + 1000 < b.full_level());
        }
        // A known bucket is updated in place: no key to copy on the hot path.
        if let Some(bucket) = map.get_mut(key) {
            let (decision, level) = budget.take(Some(bucket.0), now - bucket.1);
            *bucket = (level, now.max(bucket.1), budget);
            return decision;
        }
        let (decision, level) = budget.take(None, 0);
        map.insert(key.to_string(), (level, now, budget));
        decision
    }
}

/// Requests for shared buckets (in the database), queued by bucket. A client's requests
/// all update its one row, and each statement waits on the row lock the one before held:
/// so the requests that arrive while a bucket's statement is in flight are queued and
/// taken together by its next statement, one statement per round trip instead of one
/// per request. A busy bucket's statement also takes some requests ahead (a lease, see
/// [`SharedQueues::ahead`]), which the instance's next requests spend without a round trip.
#[derive(Default)]
pub struct SharedQueues {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<RateDecision>>>>,
    leases: Mutex<HashMap<String, Lease>>,
    /// When expired leases were last forgotten (only done once the table is full).
    pruned: Mutex<Option<std::time::Instant>>,
}

/// Requests taken from a shared bucket ahead of time and not yet spent: `left` of them,
/// with `level` left in the bucket beside them when they were taken.
struct Lease {
    level: i64,
    /// How many were taken ahead, and how many of them are left.
    size: i64,
    left: i64,
    until: std::time::Instant,
}

/// How long a lease may be spent: what it holds is gone from the bucket meanwhile, so it
/// must not outlast a quiet spell by much.
const LEASE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Leases held at once; beyond that, buckets are counted without one.
const MAX_LEASES: usize = 10_000;

/// The most an instance takes ahead: 1 % of the budget, at most 1,000; none for small
/// budgets (sign-in, mail), which stay exact.
fn max_lease(budget: RateBudget) -> i64 {
    (budget.capacity / 100).min(1000)
}

impl SharedQueues {
    /// Lets through up to `n` requests of bucket `key` from its lease; their decisions.
    fn spend_lease(&self, key: &str, budget: &RateBudget, n: usize) -> Vec<RateDecision> {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lease) = leases.get_mut(key) else { return Vec::new() };
        let mut spent = Vec::new();
        if lease.until > std::time::Instant::now() {
            while lease.left > 0 && spent.len() < n {
                lease.left -= 1;
                // As if taken alone: the requests still leased are left beside the bucket.
                spent.push(budget.decision(lease.level + lease.left * 1000, true));
            }
        }
        spent
    }

    /// How many to take ahead with the `count` requests of bucket `key` now waiting. What
    /// a lease holds when it expires is lost to the bucket, so a lease follows demand:
    /// twice the last one if that was all spent in time, else as many as are waiting
    /// together now (none for a lone request). A client whose requests come one at a
    /// time is counted exactly, and what a client can lose is about what it recently
    /// used, at most 1 % of the budget per instance and second.
    fn ahead(&self, key: &str, count: i64, budget: RateBudget) -> i64 {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.len() >= MAX_LEASES && !leases.contains_key(key) {
            // No room to keep a lease: take none, rather than one that would be lost.
            // Expired ones are forgotten at most once a lifetime, not on every statement.
            let now = std::time::Instant::now();
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.is_none_or(|at| now - at > LEASE_LIFETIME) {
                leases.retain(|_, l| l.until > now);
                *pruned = Some(now);
            }
            if leases.len() >= MAX_LEASES {
                return 0;
            }
        }
        let spent_in_time = leases.get(key).filter(|l| l.left == 0 && l.until > std::time::Instant::now());
        let wanted = match spent_in_time {
            Some(last) => 2 * last.size,
            None if count > 1 => count,
            None => 0,
        };
        wanted.min(max_lease(budget))
    }

    /// Keeps a lease taken after `ahead` made room for it (one drain task per bucket, so
    /// no other lease of this bucket came in between).
    fn keep_lease(&self, key: &str, lease: Lease) {
        self.leases.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string(), lease);
    }
}

/// What a request is told when the shared store fails: an outage of the limiter must not
/// become an outage of the API.
const LET_THROUGH: RateDecision = RateDecision { allowed: true, remaining: 0, reset_after: 0, retry_after: 0 };

impl AppState {
    /// Takes one request from bucket `key`; a refusal is counted in the metrics.
    pub(crate) async fn take_rate(&self, key: &str, budget: RateBudget) -> RateDecision {
        let decision = self.take_from_bucket(key, budget).await;
        if !decision.allowed {
            crate::metrics::rate_limited(key);
        }
        decision
    }

    async fn take_from_bucket(&self, key: &str, budget: RateBudget) -> RateDecision {
        if !self.config.rate_limits.shared {
            return self.buckets.take(key, budget, self.auth.now());
        }
        if let Some(leased) = self.rate_queues.spend_lease(key, &budget, 1).pop() {
            return leased;
        }
        let (told, answer) = oneshot::channel();
        let first = {
            let mut queues = self.rate_queues.waiting.lock().unwrap_or_else(|e| e.into_inner());
            match queues.get_mut(key) {
                Some(waiting) => {
                    waiting.push(told);
                    false
                }
                None => {
                    queues.insert(key.to_string(), vec![told]);
                    true
                }
            }
        };
        if first {
            // A task of its own, not this request's: were the request dropped (its client
            // gone), the requests queued behind it must still be answered.
            tokio::spawn(self.clone().drain_rate_queue(key.to_string(), budget));
        }
        answer.await.unwrap_or(LET_THROUGH)
    }

    /// Takes the queued requests of bucket `key` together, until none are left.
    async fn drain_rate_queue(self, key: String, budget: RateBudget) {
        // Should this task panic, the bucket's queue goes with it: its requests are let
        // through, and later ones start a new queue rather than wait behind a dead one.
        struct OnPanic<'a>(&'a SharedQueues, &'a str);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(self.1);
                }
            }
        }
        let _on_panic = OnPanic(&self.rate_queues, &key);
        loop {
            let mut batch = {
                let mut queues = self.rate_queues.waiting.lock().unwrap_or_else(|e| e.into_inner());
                let Some(waiting) = queues.get_mut(&key) else { return };
                if waiting.is_empty() {
                    queues.remove(&key);
                    return;
                }
                std::mem::take(waiting)
            };
            // Those that queued while the lease was being taken spend it first.
            let leased = self.rate_queues.spend_lease(&key, &budget, batch.len());
            for (told, decision) in batch.drain(..leased.len()).zip(leased) {
                let _ = told.send(decision);
            }
            if batch.is_empty() {
                continue;
            }
            let count = batch.len() as i64;
            let asked = count + self.rate_queues.ahead(&key, count, budget);
            let taken_at = std::time::Instant::now();
            match self.auth.store.take_rate_tokens(&key, budget, self.auth.now(), asked).await {
                Ok(take) => {
                    for (i, told) in (0..).zip(batch) {
                        let _ = told.send(take.decision(&budget, i));
                    }
                    if take.allowed > count {
                        let size = take.allowed - count;
                        let lease = Lease { level: take.level, size, left: size, until: taken_at + LEASE_LIFETIME };
                        self.rate_queues.keep_lease(&key, lease);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rate limit store unavailable; allowing the request");
                    for told in batch {
                        let _ = told.send(LET_THROUGH);
                    }
                }
            }
        }
    }

    /// Counts a request of an authenticated client to `endpoint` (token, device). A
    /// public client is known by its id alone, so its requests are first counted per
    /// caller address: one address cannot spend the budget of all its users. Returns the
    /// decision to report, or the 429 to answer.
    pub(crate) async fn take_client_rate(&self, endpoint: &str, client: &Client, ip: &str) -> Result<RateDecision, Response> {
        let limits = &self.config.rate_limits;
        if client.kind == ClientKind::Public {
            let budget = limits.token_per_address;
            let d = self.take_rate(&format!("{endpoint}:{}:{ip}", client.id), budget).await;
            if !d.allowed {
                return Err(too_many(budget, &d));
            }
        }
        let d = self.take_rate(&format!("{endpoint}:{}", client.id), limits.token).await;
        if !d.allowed {
            return Err(too_many(limits.token, &d));
        }
        Ok(d)
    }

    /// The client's address, for per-IP limits.
    pub(crate) fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        let limits = &self.config.rate_limits;
        if limits.trust_forwarded_for {
            if let Some(ip) = forwarded_address(headers, limits.trusted_proxies) {
                return ip.to_string();
            }
        }
        peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".into())
    }
}

/// The address the outermost of `proxies` trusted proxies saw: each appends its peer's
/// address, so entries further left are whatever the caller chose to send.
fn forwarded_address(headers: &HeaderMap, proxies: usize) -> Option<IpAddr> {
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        entries.extend(value.to_str().ok()?.split(',').map(str::trim));
    }
    // Fewer entries than proxies: every one was appended by a proxy; take the outermost.
    let entry = entries.iter().rev().nth(proxies.max(1) - 1).or(entries.first())?;
    entry.parse().ok()
}

/// `Ratelimit-*` headers (draft-ietf-httpapi-ratelimit-headers), and `Retry-After` on 429.
pub(crate) fn add_headers(headers: &mut HeaderMap, budget: RateBudget, d: &RateDecision) {
    // Names made once: inserted by `&str`, a name outside http's standard list is
    // copied into a new allocation on every response.
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    headers.insert(LIMIT, HeaderValue::from(budget.capacity));
    headers.insert(REMAINING, HeaderValue::from(d.remaining));
    headers.insert(RESET, HeaderValue::from(d.reset_after));
    if !d.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after));
    }
}

pub(crate) fn too_many(budget: RateBudget, d: &RateDecision) -> Response {
    let msg = format!("rate limit exceeded; try again in {} seconds", d.retry_after);
    let body = serde_json::json!({ "error": "too_many_requests", "error_description": msg, "status": 429, "message": msg });
    let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    add_headers(res.headers_mut(), budget, d);
    res
}

/// API middleware, after authentication: one bucket per client for app tokens, per
/// (client, user) for user tokens.
pub async fn api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = req.extensions().get::<TokenInfo>() else { return next.run(req).await };
    let key = match &token.user_id {
        Some(user) => format!("api:{}:{}", token.client_id, user),
        None => format!("api:{}", token.client_id),
    };
    let budget = state.config.rate_limits.api;
    let decision = state.take_rate(&key, budget).await;
    if !decision.allowed {
        return too_many(budget, &decision);
    }
    let mut res = next.run(req).await;
    add_headers(res.headers_mut(), budget, &decision);
    res
}

/// The peer's address, when the server was started with connect info.
pub(crate) struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_follows_demand() {
        let queues = SharedQueues::default();
        let budget = RateBudget { capacity: 3000, window: 60 };
        // A lone request takes nothing ahead; several waiting together take as many.
        assert_eq!(queues.ahead("k", 1, budget), 0);
        assert_eq!(queues.ahead("k", 5, budget), 5);
        let until = std::time::Instant::now() + LEASE_LIFETIME;
        queues.keep_lease("k", Lease { level: 100_000, size: 5, left: 5, until });
        // Unspent, it earns nothing more.
        assert_eq!(queues.ahead("k", 1, budget), 0);
        assert_eq!(queues.spend_lease("k", &budget, 10).len(), 5);
        // Spent in time: twice as many next, up to 1 % of the budget.
        assert_eq!(queues.ahead("k", 1, budget), 10);
        queues.keep_lease("k", Lease { level: 100_000, size: 20, left: 0, until });
        assert_eq!(queues.ahead("k", 1, budget), 30);
        // Expired with some left: those are lost, and the next statement takes none ahead.
        let gone = std::time::Instant::now() - std::time::Duration::from_millis(1);
        queues.keep_lease("k", Lease { level: 100_000, size: 5, left: 2, until: gone });
        assert!(queues.spend_lease("k", &budget, 1).is_empty());
        assert_eq!(queues.ahead("k", 1, budget), 0);
        // Small budgets stay exact.
        assert_eq!(queues.ahead("login", 8, RateBudget { capacity: 20, window: 60 }), 0);
    }

    #[test]
    fn with_no_room_for_a_lease_none_is_taken() {
        let queues = SharedQueues::default();
        let budget = RateBudget { capacity: 3000, window: 60 };
        let live = std::time::Instant::now() + LEASE_LIFETIME;
        for i in 0..MAX_LEASES {
            queues.keep_lease(&format!("k{i}"), Lease { level: 0, size: 1, left: 1, until: live });
        }
        assert_eq!(queues.ahead("new", 5, budget), 0, "a lease that could not be kept would be lost");
        // Once they have expired, they are forgotten and there is room again.
        let gone = std::time::Instant::now() - std::time::Duration::from_millis(1);
        for i in 0..MAX_LEASES {
            queues.keep_lease(&format!("k{i}"), Lease { level: 0, size: 1, left: 1, until: gone });
        }
        *queues.pruned.lock().unwrap() = None;
        assert_eq!(queues.ahead("new", 5, budget), 5);
    }

    fn forwarded(values: &[&str], proxies: usize) -> Option<String> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        forwarded_address(&headers, proxies).map(|ip| ip.to_string())
    }

    #[test]
    fn the_forwarded_address_is_counted_from_the_right() {
        assert_eq!(forwarded(&["1.1.1.1, 2.2.2.2"], 1).as_deref(), Some("2.2.2.2"));
        assert_eq!(forwarded(&["1.1.1.1", "2.2.2.2, 3.3.3.3"], 2).as_deref(), Some("2.2.2.2"));
        assert_eq!(forwarded(&["2.2.2.2"], 3).as_deref(), Some("2.2.2.2"));
        assert_eq!(forwarded(&["1.1.1.1, ::1"], 1).as_deref(), Some("::1"));
        assert_eq!(forwarded(&["1.1.1.1, junk"], 1), None);
        assert_eq!(forwarded(&[], 1), None);
    }
}
