//! The management listener (`management_listen`, loopback by default): Prometheus
//! metrics, liveness and readiness, never on the public listener.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// How long a readiness check may wait for the database.
const READY_WAIT: Duration = Duration::from_secs(5);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(crate::routes::healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the management routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::listener::Limits {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 64,
        shutdown_grace: Duration::from_secs(1),
    };
    crate::listener::serve(listener, router(state), limits, shutdown).await
}

async fn metrics(State(state): State<AppState>) -> Response {
    crate::metrics::pool(state.auth.store.pool_usage());
    match crate::metrics::render() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not recorded in this process\n").into_response(),
    }
}

/// 200 when the database answers, holds every migration of this build, and (SQLite) is still
/// the file at its path; 503 saying why otherwise. Liveness stays `/healthz`.
async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(READY_WAIT, state.auth.store.check_ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the database did not answer in 5 seconds\n").into_response(),
    }
}
