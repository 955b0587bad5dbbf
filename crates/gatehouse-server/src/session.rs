//! Browser sessions and CSRF.
//!
//! Every browser gets one random cookie. Signed in, the store holds a session under the
//! cookie's SHA-256; signed out, the cookie is only the seed of its CSRF token. The CSRF
//! token is derived from the cookie (a digest another site can neither read nor
//! compute), so no instance needs to remember it: any instance can check any form.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_core::model::{Session, User, SESSION_SEEN_EVERY};
use gatehouse_core::secret::{hash_secret, new_secret};
use subtle::ConstantTimeEq;

use crate::AppState;

/// The longest User-Agent kept for a session: enough to tell browsers apart.
const USER_AGENT_KEPT: usize = 200;

/// Where a browser's request came from, for the sessions it makes and uses.
#[derive(Clone, Default)]
struct Origin {
    address: String,
    user_agent: String,
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Notes where a request with cookies came from (its address and User-Agent), for the
/// session it signs in to or uses; requests without cookies (API and token calls) are
/// passed on as they are, at no cost.
pub async fn note_origin(State(state): State<AppState>, peer: crate::rate_limit::Peer, req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::COOKIE) {
        return next.run(req).await;
    }
    let address = state.client_ip(req.headers(), peer.0);
    let agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let user_agent = agent.chars().take(USER_AGENT_KEPT).collect();
    ORIGIN.scope(Origin { address, user_agent }, next.run(req)).await
}

fn origin() -> Origin {
    ORIGIN.try_with(Origin::clone).unwrap_or_default()
}

fn cookie_name(state: &AppState) -> &'static str {
    // The __Host- prefix pins the cookie to this host over https (no Domain, Path=/).
    if state.config.secure_cookies() {
        "__Host-gh_sid"
    } else {
        "gh_sid"
    }
}

/// Every value sent for cookie `name`, in the order the browser sent them.
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_values(headers, name)
        .next()
        .map(str::to_string)
        .filter(|v| v.len() == gatehouse_core::secret::SECRET_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Who is at the browser: its cookie, and the signed-in user if there is one.
pub struct Visitor {
    sid: String,
    /// The cookie must be (re)sent: it is new, or was rotated at sign-in.
    set_cookie: Option<HeaderValue>,
    pub signed_in: Option<(Session, User)>,
}

impl Visitor {
    pub async fn load(state: &AppState, headers: &HeaderMap) -> Result<Visitor, gatehouse_core::OAuthError> {
        match read_cookie(headers, cookie_name(state)) {
            Some(sid) => {
                let now = state.auth.now();
                let mut signed_in = None;
                if let Some(session) = state.auth.store.find_session(&hash_secret(&sid), now).await? {
                    if now - session.last_seen >= SESSION_SEEN_EVERY {
                        touch(state, &session, now);
                    }
                    // A disabled account's sessions are ended with it; one that raced the
                    // disabling is not honoured either.
                    if let Some(user) = state.auth.store.find_user(&session.user_id).await?.filter(|u| !u.disabled) {
                        signed_in = Some((session, user));
                    }
                }
                Ok(Visitor { sid, set_cookie: None, signed_in })
            }
            None => Ok(Visitor::fresh(state, None)),
        }
    }

    fn fresh(state: &AppState, max_age: Option<i64>) -> Visitor {
        let sid = new_secret();
        let cookie = build_cookie(state, &sid, max_age);
        Visitor { sid, set_cookie: Some(cookie), signed_in: None }
    }

    pub fn user(&self) -> Option<&User> {
        self.signed_in.as_ref().map(|(_, u)| u)
    }

    pub fn csrf_token(&self) -> String {
        hash_secret(&format!("csrf:{}", self.sid))[..32].to_string()
    }

    pub fn csrf_ok(&self, presented: Option<&str>) -> bool {
        let expected = self.csrf_token();
        // A fresh visitor has no form of ours yet: nothing it sends can be ours.
        self.set_cookie.is_none()
            && presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
    }

    /// The stored session's key: the digest of the cookie.
    pub fn session_hash(&self) -> String {
        hash_secret(&self.sid)
    }

    /// Seals a note that only this browser's cookie opens (see `seal_for_holder`).
    pub fn seal(&self, purpose: &str, note: &str) -> String {
        gatehouse_core::sealing::seal_for_holder(&self.sid, purpose, note)
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Option<String> {
        gatehouse_core::sealing::open_for_holder(&self.sid, purpose, sealed)
    }

    pub fn cookie_header(&self) -> Option<HeaderValue> {
        self.set_cookie.clone()
    }

    /// Signs `user` in with a new cookie value, so a cookie planted before sign-in
    /// (session fixation) never becomes a session.
    pub async fn sign_in(state: &AppState, user: User) -> Result<Visitor, gatehouse_core::OAuthError> {
        let now = state.auth.now();
        let ttl = state.auth.policy.session_ttl;
        let mut v = Visitor::fresh(state, Some(ttl));
        let Origin { address, user_agent } = origin();
        let session = Session {
            id_hash: hash_secret(&v.sid),
            user_id: user.id.clone(),
            auth_time: now,
            expires_at: now + ttl,
            user_agent,
            address,
            last_seen: now,
        };
        state.auth.store.create_session(&session).await?;
        v.signed_in = Some((session, user));
        Ok(v)
    }

    /// A value tied to this browser's cookie that is not the cookie: binds a half-done
    /// sign-in (password given, code not yet) to the browser it started in.
    pub fn binding(&self) -> String {
        hash_secret(&format!("bind:{}", self.sid))[..32].to_string()
    }

    pub async fn sign_out(self, state: &AppState) -> Result<Visitor, gatehouse_core::OAuthError> {
        state.auth.store.delete_session(&hash_secret(&self.sid)).await?;
        Ok(Visitor::fresh(state, None))
    }
}

/// Records the session's use, at most once a minute (`SESSION_SEEN_EVERY`), in the
/// background: the page does not wait for the write, and a failure only leaves the
/// time older.
fn touch(state: &AppState, session: &Session, now: i64) {
    let (store, id_hash, address) = (state.auth.store.clone(), session.id_hash.clone(), origin().address);
    tokio::spawn(async move {
        if let Err(e) = store.touch_session(&id_hash, &address, now).await {
            tracing::debug!(error = %e, "could not record a session's use");
        }
    });
}

fn build_cookie(state: &AppState, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{}={}; Path=/; HttpOnly; SameSite=Lax", cookie_name(state), value);
    if state.config.secure_cookies() {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    // Only ASCII alphanumerics and fixed text: always a valid header value.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}
