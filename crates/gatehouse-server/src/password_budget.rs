//! The sign-in budget, taken by every check of a password (sign-in, the current password
//! on /settings/password): a second form outside the budget would be a free oracle.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::response::Response;
use gatehouse_core::accounts::check_login;
use gatehouse_core::model::{RateBudget, RateDecision, User};

use crate::{known_browser, rate_limit, AppState};

/// A check refused before it ran: what to tell the user, and the 429's headers.
pub(crate) struct Throttled {
    pub message: String,
    /// Held by the account's budget (not the address's).
    pub per_account: bool,
    budget: RateBudget,
    decision: RateDecision,
}

impl Throttled {
    pub fn add_headers(&self, res: &mut Response) {
        rate_limit::add_headers(res.headers_mut(), self.budget, &self.decision);
    }
}

/// Takes one password check for `login` (whose account is `user`, when it exists):
/// per client address, then per account for browsers that never signed in to it, or per
/// browser for those that did (see known_browser). Logins that cannot exist get no
/// bucket, so junk cannot flood the buckets. Every budget refills by itself.
pub(crate) async fn take(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>, login: &str, user: Option<&User>) -> Result<(), Throttled> {
    let budget = state.config.rate_limits.login;
    let decision = state.take_rate(&format!("login:{}", state.client_ip(headers, peer)), budget).await;
    if !decision.allowed {
        let message = format!("Too many sign-in attempts. Try again in {} seconds.", decision.retry_after);
        return Err(Throttled { message, per_account: false, budget, decision });
    }
    if user.is_none() && check_login(login).is_err() {
        return Ok(());
    }
    let bucket = match user.and_then(|u| known_browser::recognise(state, headers, u)) {
        Some(id) => format!("login-known:{id}"),
        None => format!("login-account:{}", login.to_lowercase()),
    };
    let budget = state.config.rate_limits.login_account;
    let decision = state.take_rate(&bucket, budget).await;
    if !decision.allowed {
        tracing::warn!("password checks for one account over budget");
        let message = format!(
            "Too many sign-in attempts for this account from new browsers. Try again in {} seconds, or from a browser you signed in with before.",
            decision.retry_after
        );
        return Err(Throttled { message, per_account: true, budget, decision });
    }
    Ok(())
}
