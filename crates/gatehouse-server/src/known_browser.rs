//! The "known browser" cookie behind the per-account sign-in throttle (OWASP's device
//! cookies). A browser that signed in to an account gets a sealed note naming the
//! account, a random id, when it was issued and a tag of the password it was issued
//! under. Such a browser is held by a budget of its own instead of the account's, so an
//! attacker guessing from elsewhere cannot lock the owner out; a note is worth nothing
//! after a password change or a year, and a copied one is limited by its own budget.

use axum::http::{HeaderMap, HeaderValue};
use gatehouse_core::model::User;
use gatehouse_core::secret::{hash_secret, random_token};

use crate::AppState;

const PURPOSE: &str = "known-browser";
const MAX_AGE: i64 = 365 * 24 * 3600;

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies() {
        "__Host-gh_known"
    } else {
        "gh_known"
    }
}

/// Ties a note to the password: a change of password retires every note.
fn password_tag(user: &User) -> String {
    hash_secret(&user.password_hash)[..16].to_string()
}

/// The id of a valid note this browser holds for `user`. Every cookie of the name is
/// tried, so one planted beside the real one cannot hide it.
pub fn recognise(state: &AppState, headers: &HeaderMap, user: &User) -> Option<String> {
    let keyring = state.auth.keyring.as_ref()?;
    let now = state.auth.now();
    let tag = password_tag(user);
    crate::session::cookie_values(headers, cookie_name(state))
        .filter_map(|v| keyring.open_note(v, PURPOSE))
        .find_map(|note| {
            let mut parts = note.split('|');
            let (user_id, id, issued, pw) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let issued: i64 = issued.parse().ok()?;
            (user_id == user.id && pw == tag && now - issued < MAX_AGE).then(|| id.to_string())
        })
}

/// A year-long cookie that recognises this browser for `user`.
pub fn remember(state: &AppState, user: &User) -> Option<HeaderValue> {
    let keyring = state.auth.keyring.as_ref()?;
    let note = format!("{}|{}|{}|{}", user.id, random_token(16), state.auth.now(), password_tag(user));
    let sealed = keyring.seal_note(&note, PURPOSE);
    let secure = if state.config.secure_cookies() { "; Secure" } else { "" };
    let c = format!("{}={sealed}; Path=/; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE}{secure}", cookie_name(state));
    HeaderValue::from_str(&c).ok()
}
