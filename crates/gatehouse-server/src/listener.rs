//! The accept loop. axum's `serve` builds hyper without a timer, so a connection that
//! never finishes its headers, or sits idle, stays open for ever; here hyper gets a
//! timer and a header deadline, and a semaphore caps the connections served at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower_service::Service;

pub(crate) struct Limits {
    /// Deadline for a request's headers; hyper starts it whenever the connection waits
    /// for a request, so it is also the idle timeout between requests.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// How long requests in flight may take to finish once shutdown has begun.
    pub shutdown_grace: Duration,
}

/// Serves `app` until `shutdown` completes, then lets requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // Over the cap, connections wait in the kernel's backlog rather than take memory.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let conn = http.serve_connection(TokioIo::new(stream), service(app.clone(), peer));
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopping.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // New connections are refused from here on, not left waiting in the backlog.
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit: all of them back means all have finished.
    let all = limits.max_connections.max(1) as u32;
    if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all)).await.is_err() {
        let open = all as usize - permits.available_permits();
        tracing::warn!(connections = open, grace = ?limits.shutdown_grace, "requests still running at the end of the shutdown grace; stopping anyway");
    }
    Ok(())
}

/// The router with the peer address (for per-address limits), as hyper's service.
fn service(
    app: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response, Error = std::convert::Infallible, Future: Send> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        // A router is always ready: no need to poll it first.
        app.clone().call(req)
    })
}

/// Out of file descriptors and the like: wait rather than spin; a peer that left
/// before it was accepted is no failure.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}
