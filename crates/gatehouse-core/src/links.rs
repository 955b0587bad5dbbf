//! Single-use links mailed to a user (or printed for an operator): email verification
//! and password reset. The link carries a random token; the store holds only its
//! SHA-256 digest, so a database dump yields no working link.

use crate::authority::Authority;
use crate::error::StoreError;
use crate::model::{LinkPurpose, LinkToken, User};
use crate::secret::{hash_secret, new_secret, verify_secret};

/// A verification link works for a day.
pub const VERIFY_TTL: i64 = 24 * 3600;
/// A reset link works for half an hour.
pub const RESET_TTL: i64 = 30 * 60;

impl LinkPurpose {
    /// The page the link opens.
    pub fn path(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "/verify-email",
            LinkPurpose::ResetPassword => "/reset-password",
        }
    }

    pub fn ttl(self) -> i64 {
        match self {
            LinkPurpose::VerifyEmail => VERIFY_TTL,
            LinkPurpose::ResetPassword => RESET_TTL,
        }
    }
}

/// The absolute URL of a link: always built from the issuer, never from a request's Host.
pub fn url(issuer: &str, purpose: LinkPurpose, token: &str) -> String {
    format!("{}{}?token={token}", issuer.trim_end_matches('/'), purpose.path())
}

/// Makes and stores a new link for `user` to `email`; the user's older link of the same
/// purpose stops working. Returns the token for the URL (never logged, never stored).
pub async fn issue(auth: &Authority, user: &User, purpose: LinkPurpose, email: &str) -> Result<String, StoreError> {
    let token = new_secret();
    let now = auth.now();
    let link = LinkToken {
        token_hash: hash_secret(&token),
        user_id: user.id.clone(),
        purpose,
        email: email.to_string(),
        created_at: now,
        expires_at: now + purpose.ttl(),
    };
    auth.store.create_link(&link).await?;
    Ok(token)
}

/// Tokens are fixed-length alphanumerics: anything else is no link of ours.
fn well_formed(token: &str) -> bool {
    token.len() == crate::secret::SECRET_LEN && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A live link, left unused (to show the page it opens). The row is found by digest and
/// the digest compared again in constant time.
pub async fn peek(auth: &Authority, token: &str, purpose: LinkPurpose) -> Result<Option<LinkToken>, StoreError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let found = auth.store.find_link(&hash_secret(token), purpose, auth.now()).await?;
    Ok(found.filter(|l| verify_secret(token, &l.token_hash)))
}

/// Uses a live link once, with its user (who must exist and not be disabled).
pub async fn take(auth: &Authority, token: &str, purpose: LinkPurpose) -> Result<Option<(LinkToken, User)>, StoreError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let Some(link) = auth.store.take_link(&hash_secret(token), purpose, auth.now()).await? else { return Ok(None) };
    if !verify_secret(token, &link.token_hash) {
        return Ok(None);
    }
    match auth.store.find_user(&link.user_id).await? {
        Some(user) if !user.disabled => Ok(Some((link, user))),
        _ => Ok(None),
    }
}

/// What following a verification link did.
#[derive(Debug)]
pub enum Verified {
    /// The address is now the account's verified email; `changed` when it replaced
    /// another address (an email change) rather than proving the one the account had.
    Done { user: User, changed: bool },
    /// Another account proved that address first.
    Taken,
    /// Used, expired, superseded or never issued.
    Invalid,
}

/// Follows a verification link: the address it was sent to becomes the account's
/// verified email.
pub async fn verify_email(auth: &Authority, token: &str) -> Result<Verified, StoreError> {
    let Some((link, mut user)) = take(auth, token, LinkPurpose::VerifyEmail).await? else { return Ok(Verified::Invalid) };
    match auth.store.set_verified_email(&user.id, &link.email).await {
        Ok(true) => {
            let changed = user.email != link.email;
            user.email = link.email;
            user.email_verified = true;
            Ok(Verified::Done { user, changed })
        }
        Ok(false) => Ok(Verified::Invalid),
        Err(StoreError::Conflict(_)) => Ok(Verified::Taken),
        Err(e) => Err(e),
    }
}

/// The accounts a recovery request for `email` may reach: the one holding it verified
/// or, when none does, the (enabled) accounts that gave it unverified, since accounts
/// made before verification existed never proved theirs.
pub async fn recovery_targets(auth: &Authority, email: &str) -> Result<Vec<User>, StoreError> {
    let mut users: Vec<User> = auth.store.find_users_by_email(email).await?.into_iter().filter(|u| !u.disabled).collect();
    if users.first().is_some_and(|u| u.email_verified) {
        users.truncate(1);
    }
    // A handful at most: no address floods itself through many accounts.
    users.truncate(5);
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_absolute_from_the_issuer() {
        assert_eq!(url("https://id.example/", LinkPurpose::ResetPassword, "abc"), "https://id.example/reset-password?token=abc");
        assert_eq!(url("http://127.0.0.1:8080", LinkPurpose::VerifyEmail, "x"), "http://127.0.0.1:8080/verify-email?token=x");
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(well_formed(&new_secret()));
        assert!(!well_formed("short"));
        assert!(!well_formed(&"é".repeat(25)));
    }
}
