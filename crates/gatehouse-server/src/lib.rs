//! Gatehouse's HTTP server: turns HTTP into calls on `gatehouse-core` and core errors
//! into HTTP. Handlers stay short: extract, call the core, write the answer.

mod audit;
mod emails;
mod error;
mod http_log;
mod listener;
mod known_browser;
mod management;
pub mod metrics;
pub mod mail;
mod pages;
mod oauth_params;
mod params;
mod password_budget;
mod rate_limit;
mod routes;
mod security_headers;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use gatehouse_core::Authority;

pub use error::AppError;
pub use rate_limit::RateLimits;

/// The server's parsers of untrusted input, public so that fuzz targets can reach them.
pub mod untrusted {
    pub use crate::params::{basic_auth, bearer_token, Params};
    pub use crate::session::read_cookie;
}

/// Settings the HTTP layer needs beyond the core's policy.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The public base URL, e.g. `https://id.example.com`. Cookies are `Secure` when it
    /// is https.
    pub issuer: String,
    /// Write `scope` in token responses as a JSON array, as Twitch does, instead of the
    /// RFC 6749 space-separated string.
    pub scope_as_array: bool,
    /// How often expired codes, tokens and sessions are deleted.
    pub purge_interval: Duration,
    /// How long security events are kept before the purge deletes them.
    pub event_retention: Duration,
    pub rate_limits: RateLimits,
    /// Accept access tokens in the query string on the demo API (`?oauth_token=`).
    pub api_query_tokens: bool,
    /// Whether `/signup` lets anyone make an account.
    pub signup_enabled: bool,
    /// How long a connection may take to send a request's headers, and may stay idle
    /// between requests, before it is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Read parameters of `POST /oauth2/{token,revoke,device,introspect}` from the query
    /// string too, as Twitch's client libraries send them; off, such a query is refused.
    pub query_params: bool,
    /// How long requests in flight may take to finish after SIGTERM before the server
    /// stops anyway.
    pub shutdown_grace: Duration,
    /// Take the request id from a request's `X-Request-Id` (set by a proxy in front that
    /// replaces any the caller sent); otherwise every request gets a new one.
    pub trust_request_id: bool,
    /// The developer console is for accounts with two-factor sign-in only (as Twitch
    /// requires it before an application may be registered).
    pub console_requires_2fa: bool,
    /// Outgoing mail (verification, recovery); None turns those features off.
    pub mail: Option<mail::MailSettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            issuer: "http://127.0.0.1:8080".into(),
            scope_as_array: false,
            purge_interval: Duration::from_secs(60),
            event_retention: Duration::from_secs(90 * 86_400),
            rate_limits: RateLimits::default(),
            api_query_tokens: true,
            signup_enabled: true,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            query_params: true,
            shutdown_grace: Duration::from_secs(30),
            trust_request_id: false,
            console_requires_2fa: false,
            mail: None,
        }
    }
}

impl Shared {
    /// Whether mail goes out: the pages that need it say so when it does not.
    pub fn mail_enabled(&self) -> bool {
        self.mailer.is_some()
    }
}

impl ServerConfig {
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

/// What every handler can reach. One shared allocation: axum clones the state for every
/// extractor and middleware of every request, so a clone must cost one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub auth: Authority,
    pub config: Arc<ServerConfig>,
    pages: &'static pages::Pages,
    /// Password checks allowed at once (one per core).
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Argon2id verifications run through `verify_password` (sign-in and the two-factor
    /// and security forms), for the measure that two-factor sign-in adds none.
    password_verifications: std::sync::atomic::AtomicU64,
    buckets: Arc<rate_limit::MemoryBuckets>,
    rate_queues: rate_limit::SharedQueues,
    /// The queue of outgoing mail, when mail is configured.
    mailer: Option<mail::Mailer>,
}

impl AppState {
    pub fn new(auth: Authority, config: ServerConfig) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        // Settings are checked at start-up (`mail::Mailer::check`); a failure here is
        // logged and leaves mail off.
        let mailer = config.mail.as_ref().and_then(|m| {
            mail::Mailer::start(m).map_err(|e| tracing::error!(error = %e, "mail is off")).ok()
        });
        AppState(Arc::new(Shared {
            auth,
            config: Arc::new(config),
            pages: pages::Pages::shared(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(cores)),
            password_verifications: Default::default(),
            buckets: Arc::default(),
            rate_queues: Default::default(),
            mailer,
        }))
    }
}

impl AppState {
    /// How many password hashes (Argon2id) this server has verified.
    pub fn password_verifications(&self) -> u64 {
        self.password_verifications.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Verifies a password against its Argon2id hash off the async threads, at most one
    /// per core at once (19 MiB and tens of milliseconds each); false if it does not match
    /// or the check could not run.
    pub(crate) async fn verify_password(&self, password: String, hash: String) -> bool {
        let Ok(_permit) = self.password_checks.acquire().await else { return false };
        self.password_verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || gatehouse_core::accounts::verify_password(&password, &hash)).await.unwrap_or(false)
    }
}

pub fn router(state: AppState) -> Router {
    let trust_request_id = state.config.trust_request_id;
    routes::router(&state)
        .layer(axum::middleware::from_fn_with_state(state.clone(), session::note_origin))
        .layer(axum::middleware::from_fn(security_headers::add))
        .layer(axum::middleware::from_fn(move |req, next| http_log::log(trust_request_id, req, next)))
        .with_state(state)
}

pub use management::{router as management_router, serve as serve_management};

/// Serves until the future `shutdown` completes, purging expired records in the
/// background meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let purge = tokio::spawn(purge_loop(state.clone()));
    let upkeep = tokio::spawn(metrics::upkeep());
    let limits = listener::Limits {
        header_read_timeout: state.config.header_read_timeout,
        max_connections: state.config.max_connections,
        shutdown_grace: state.config.shutdown_grace,
    };
    let result = listener::serve(listener, router(state), limits, shutdown).await;
    purge.abort();
    upkeep.abort();
    result
}

async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.config.purge_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.auth.store.purge_expired(state.auth.now()).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::purged(n);
                tracing::debug!(rows = n, "purged expired records");
            }
            Err(e) => tracing::warn!(error = %e, "purging expired records failed"),
        }
        let before = state.auth.now() - state.config.event_retention.as_secs() as i64;
        match state.auth.store.purge_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "purged security events past their retention"),
            Err(e) => tracing::warn!(error = %e, "purging old security events failed"),
        }
    }
}
