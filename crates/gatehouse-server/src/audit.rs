//! Recording security events from requests: who, from where, with which browser.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap};
use gatehouse_core::events::{Event, EventKind};

use crate::session::Visitor;
use crate::AppState;

/// A new event of `kind` now, from the request's address (as the rate limits see it)
/// and user agent.
pub(crate) fn event(state: &AppState, kind: EventKind, headers: &HeaderMap, peer: Option<SocketAddr>) -> Event {
    let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    Event::new(kind, state.auth.now()).from(Some(state.client_ip(headers, peer)), agent)
}

/// Stores the event. A failure to record does not fail what was done (that already
/// happened); it is logged as a storage failure.
pub(crate) async fn record(state: &AppState, event: Event) {
    if let Err(e) = state.auth.store.record_event(&event).await {
        e.log();
        tracing::warn!(kind = %event.kind, "a security event could not be recorded");
    }
}

/// A new event done by the visitor, when signed in.
pub(crate) fn by(state: &AppState, kind: EventKind, headers: &HeaderMap, peer: Option<SocketAddr>, v: &Visitor) -> Event {
    let e = event(state, kind, headers, peer);
    match v.user() {
        Some(user) => e.actor(user),
        None => e,
    }
}
