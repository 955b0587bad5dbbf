//! `/settings/security`: where the user is signed in (browser, address, last seen), with
//! sign-out per session and everywhere, and deleting the account.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_core::model::Session;
use gatehouse_core::secret::hash_secret;
use subtle::ConstantTimeEq;

use super::account::{signed_in, when};
use super::forms::{posted_form, unavailable, with_cookie};
use gatehouse_core::events::{EventFilter, EventKind};

use crate::audit;
use crate::error::AppError;
use crate::rate_limit::Peer;
use crate::session::Visitor;
use crate::AppState;
use super::two_factor::{confirm_identity, Confirmed};

/// A session's name in the page's forms: derived from its key, not the key itself.
fn handle(s: &Session) -> String {
    hash_secret(&format!("session-handle:{}", s.id_hash))[..24].to_string()
}

/// A date and time (UTC, to the minute).
pub(crate) fn when_exactly(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    format!("{} {:02}:{:02} UTC", when(unix), secs / 3600, secs % 3600 / 60)
}

/// "Chrome on Linux" from a User-Agent: enough to tell one's own browsers apart.
pub(crate) fn browser_name(ua: &str) -> String {
    if ua.is_empty() {
        return "Unknown browser".into();
    }
    let browser = [("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl")]
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| *name);
    let os = [("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux")]
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        _ => ua.chars().take(60).collect(),
    }
}

async fn security_page(state: &AppState, v: &Visitor, error: Option<&str>, notice: Option<&str>, status: StatusCode) -> Response {
    let Some((current, user)) = v.signed_in.as_ref() else { return unavailable() };
    let store = &state.auth.store;
    let sessions = match store.list_sessions(&user.id, state.auth.now()).await {
        Ok(list) => list,
        Err(e) => return AppError::page(e).into_response(),
    };
    let apps: Vec<String> = match store.list_clients(Some(&user.id)).await {
        Ok(apps) => apps.into_iter().map(|c| c.name).collect(),
        Err(e) => return AppError::page(e).into_response(),
    };
    let filter = EventFilter { user_id: Some(user.id.clone()), limit: RECENT, ..Default::default() };
    let activity: Vec<_> = match store.list_events(&filter).await {
        Ok(events) => events
            .iter()
            .map(|e| {
                let by_other = e.actor_user_id.as_deref().is_some_and(|a| a != user.id);
                minijinja::context! {
                    when => when_exactly(e.at), what => EventKind::describe(&e.kind),
                    address => e.address.clone().unwrap_or_default(),
                    browser => e.user_agent.as_deref().map(browser_name).unwrap_or_default(),
                    by => if by_other { e.actor_login.clone() } else { None },
                }
            })
            .collect(),
        Err(e) => return AppError::page(e).into_response(),
    };
    let two_factor = match super::two_factor::is_on(state, &user.id).await {
        Ok(on) => on,
        Err(r) => return r,
    };
    let sessions: Vec<_> = sessions
        .iter()
        .map(|s| {
            minijinja::context! {
                handle => handle(s), browser => browser_name(&s.user_agent),
                address => if s.address.is_empty() { "unknown".to_string() } else { s.address.clone() },
                last_seen => when_exactly(s.last_seen.max(s.auth_time)), current => bool::from(s.id_hash.as_bytes().ct_eq(current.id_hash.as_bytes())),
            }
        })
        .collect();
    let ctx = minijinja::context! {
        sessions, two_factor, apps, activity, error, notice, csrf => v.csrf_token(), user => Some(user.login.clone()),
    };
    with_cookie(state.pages.render("security.html", status, ctx), v)
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers, "/settings/security").await {
        Ok(v) => security_page(&state, &v, None, None, StatusCode::OK).await,
        Err(r) => r,
    }
}

/// Events shown under "Recent activity".
const RECENT: i64 = 20;

const SIGN_IN_AGAIN: &str = "/login?next=%2Fsettings%2Fsecurity";

/// Ends one of the user's other sessions.
pub async fn sign_out_session(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, Path(h): Path<String>, body: Bytes) -> Response {
    let (_, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some((_, user)) = v.signed_in.as_ref() else { return Redirect::to(SIGN_IN_AGAIN).into_response() };
    let sessions = match state.auth.store.list_sessions(&user.id, state.auth.now()).await {
        Ok(list) => list,
        Err(e) => return AppError::page(e).into_response(),
    };
    let Some(target) = sessions.iter().find(|s| bool::from(handle(s).as_bytes().ct_eq(h.as_bytes()))) else {
        return security_page(&state, &v, Some("That session has ended already."), None, StatusCode::NOT_FOUND).await;
    };
    match state.auth.store.end_session(&user.id, &target.id_hash).await {
        Ok(_) => {
            tracing::info!("session signed out from the security page");
            let ended = audit::by(&state, EventKind::SessionEnded, &headers, peer, &v).detail(browser_name(&target.user_agent));
            audit::record(&state, ended).await;
            security_page(&state, &v, None, Some("Signed out: that browser must sign in again."), StatusCode::OK).await
        }
        Err(e) => AppError::page(e).into_response(),
    }
}

/// Ends every session of the user, this one too.
pub async fn sign_out_everywhere(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (_, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some((_, user)) = v.signed_in.clone() else { return Redirect::to(SIGN_IN_AGAIN).into_response() };
    if let Err(e) = state.auth.store.end_sessions(&user.id, None).await {
        return AppError::page(e).into_response();
    }
    tracing::info!("signed out everywhere");
    audit::record(&state, audit::by(&state, EventKind::SessionsEndedEverywhere, &headers, peer, &v)).await;
    // This browser's session is gone too: give it a fresh cookie.
    match v.sign_out(&state).await {
        Ok(fresh) => with_cookie(Redirect::to("/login").into_response(), &fresh),
        Err(_) => unavailable(),
    }
}

/// Deletes the account after a fresh confirmation (password, and a code when two-factor
/// is on): its sessions, consents and tokens go, and so do the applications it owns,
/// with every token issued to them; the page names those applications.
pub async fn delete_account(State(state): State<AppState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    let (p, v) = match posted_form(&state, &headers, &body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some((_, user)) = v.signed_in.clone() else { return Redirect::to(SIGN_IN_AGAIN).into_response() };
    match confirm_identity(&state, &headers, peer, &user, &p, false).await {
        Ok(Confirmed::Yes) => {}
        Ok(Confirmed::No(msg, status)) => return security_page(&state, &v, Some(msg), None, status).await,
        Ok(Confirmed::Throttled(t)) => {
            let mut res = security_page(&state, &v, Some(&t.message), None, StatusCode::TOO_MANY_REQUESTS).await;
            t.add_headers(&mut res);
            return res;
        }
        Err(r) => return r,
    }
    // Their names, for the page: the store answers with ids.
    let apps = match state.auth.store.list_clients(Some(&user.id)).await {
        Ok(apps) => apps,
        Err(e) => return AppError::page(e).into_response(),
    };
    let deleted = match state.auth.store.delete_user(&user.id).await {
        Ok(Some(ids)) => ids,
        Ok(None) => Vec::new(),
        Err(e) => return AppError::page(e).into_response(),
    };
    tracing::info!(applications = deleted.len(), "account deleted by its owner");
    for id in &deleted {
        audit::record(&state, audit::event(&state, EventKind::ClientDeleted, &headers, peer).actor(&user).client(id).detail("with its owner's account")).await;
    }
    audit::record(&state, audit::event(&state, EventKind::AccountDeleted, &headers, peer).actor(&user)).await;
    let names: Vec<String> = apps.into_iter().filter(|c| deleted.contains(&c.id)).map(|c| c.name).collect();
    let fresh = match v.sign_out(&state).await {
        Ok(fresh) => fresh,
        Err(_) => return unavailable(),
    };
    let ctx = minijinja::context! { login => user.login, apps => names };
    with_cookie(state.pages.render("account_deleted.html", StatusCode::OK, ctx), &fresh)
}

#[cfg(test)]
mod tests {
    use super::browser_name;

    #[test]
    fn browsers_are_named() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(browser_name(chrome), "Chrome on Linux");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
        assert_eq!(browser_name(firefox), "Firefox on Windows");
        assert_eq!(browser_name(""), "Unknown browser");
        assert_eq!(browser_name("reqwest"), "reqwest");
    }
}
