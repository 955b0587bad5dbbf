//! User accounts: who may sign up with what, and passwords kept as Argon2id hashes.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::authority::Authority;
use crate::error::StoreError;
use crate::model::User;
use crate::secret::random_token;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("that login is taken")]
    LoginTaken,
    #[error("the account could not be saved")]
    Storage,
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => AccountError::LoginTaken,
            other => {
                other.log();
                AccountError::Storage
            }
        }
    }
}

/// Logins are 3 to 25 letters, digits or underscores, as on Twitch.
pub fn check_login(login: &str) -> Result<(), AccountError> {
    let ok = (3..=25).contains(&login.len()) && login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid("a login is 3 to 25 letters, digits or underscores".into()))
    }
}

/// A bare address, `local@domain`, and nothing a mail library could read as more: no
/// display name, quotes, angle brackets, comments or lists. Otherwise
/// `"victim@x.com"<attacker@evil.com>` would be mailed to the attacker and then shown to
/// applications, verified, as the victim's. The local part is a dot-atom (RFC 5322
/// §3.2.3) of letters, digits and its symbols; the domain, labels of letters, digits
/// and hyphens. Letters beyond ASCII are allowed (RFC 6531).
pub fn check_email(email: &str) -> Result<(), AccountError> {
    const LOCAL_SYMBOLS: &str = "!#$%&'*+/=?^_`{|}~-";
    let dot_atom = |part: &str, allowed: &dyn Fn(char) -> bool| {
        !part.is_empty() && part.split('.').all(|atom| !atom.is_empty() && atom.chars().all(allowed))
    };
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            local.len() <= 64
                && dot_atom(local, &|c| c.is_alphanumeric() || LOCAL_SYMBOLS.contains(c))
                && domain.contains('.')
                && dot_atom(domain, &|c| c.is_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid("that does not look like an email address".into()))
    }
}

pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < 8 {
        return Err(AccountError::Invalid("a password needs at least 8 characters".into()));
    }
    if password.len() > 1024 {
        return Err(AccountError::Invalid("a password may have at most 1024 bytes".into()));
    }
    Ok(())
}

/// Checks a password a user is choosing (NIST SP 800-63B §5.1.1.2): the length rules of
/// `check_password`, no composition rules, and not one of the most common passwords nor
/// one built from the account's own login or email, which are guessed first.
pub fn check_new_password(password: &str, login: &str, email: &str) -> Result<(), AccountError> {
    check_password(password)?;
    let lower = password.to_lowercase();
    if common_passwords().contains(lower.as_str()) {
        return Err(AccountError::Invalid(
            "that password is too common, among the first a guesser tries: choose another, such as a few unrelated words".into(),
        ));
    }
    let email = email.to_lowercase();
    let local = email.split('@').next().unwrap_or("");
    let own = [login.to_lowercase(), email.clone(), local.to_string()];
    if own.iter().any(|part| part.chars().count() >= 3 && lower.contains(part.as_str())) {
        return Err(AccountError::Invalid("a password may not contain your login or email".into()));
    }
    Ok(())
}

/// The list in `data/` (see its README for source and licence), read once.
fn common_passwords() -> &'static std::collections::HashSet<&'static str> {
    static LIST: std::sync::OnceLock<std::collections::HashSet<&'static str>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| include_str!("../data/common-passwords.txt").lines().collect())
}

/// Argon2id with the crate's defaults (RFC 9106's second recommended option:
/// 19 MiB, 2 passes). Slow on purpose: call it off the async threads.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Only fails for out-of-range parameters, which the defaults are not.
        .unwrap_or_default()
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when a login is unknown so that the
/// answer takes as long as for a known login with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token(32)))
}

/// Checks a sign-up and hashes its password (slow: call off the async threads); the
/// result is ready for `Store::create_user`.
pub fn new_user(login: &str, email: &str, password: &str, now: i64) -> Result<User, AccountError> {
    check_login(login)?;
    check_email(email)?;
    check_new_password(password, login, email)?;
    Ok(User {
        id: random_token(16),
        login: login.to_string(),
        email: email.to_string(),
        password_hash: hash_password(password),
        created_at: now,
        ..User::default()
    })
}

/// Creates a user. The password is hashed here; call from a blocking-friendly context.
pub async fn create_user(
    auth: &Authority,
    login: &str,
    email: &str,
    password: &str,
) -> Result<User, AccountError> {
    let user = new_user(login, email, password, auth.now())?;
    auth.store.create_user(&user).await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn login_rules() {
        assert!(check_login("alice_99").is_ok());
        assert!(check_login("al").is_err());
        assert!(check_login("alice smith").is_err());
        assert!(check_login("ålice").is_err());
        assert!(check_email("a@b.c").is_ok());
        assert!(check_email("first.last+tag@mail.example.com").is_ok());
        assert!(check_email("josé@exämple.de").is_ok());
        assert!(check_email("nope").is_err());
        assert!(check_email("@b").is_err());
        // Anything a mail library could read as a display name and another address.
        for spoof in [
            "\"victim@x.com\"<attacker@evil.com>",
            "victim@x.com <attacker@evil.com>",
            "Victim <attacker@evil.com>",
            "victim@x.com,attacker@evil.com",
            "victim@x.com(attacker@evil.com)",
            "a@b@c.d",
            "a..b@c.d",
            "a@c",
            "a@-.",
            ".a@c.d",
        ] {
            assert!(check_email(spoof).is_err(), "{spoof}");
        }
        assert!(check_password("short").is_err());
    }

    #[test]
    fn new_passwords_are_long_uncommon_and_not_the_users_own() {
        assert!(common_passwords().len() > 10_000);
        assert!(check_new_password("Password1", "bob", "b@x.io").is_err());
        assert!(check_new_password("bobby-tables-1", "bob", "b@x.io").is_err());
        assert!(check_new_password("my-mail-is-robert@x.io", "rob", "robert@x.io").is_err());
        assert!(check_new_password("plain lower case words", "bob", "b@x.io").is_ok());
        assert!(check_new_password(&"x7".repeat(200), "bob", "b@x.io").is_ok());
    }
}
