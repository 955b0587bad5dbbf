//! The security event log: who signed in, changed a secret, revoked what, when and from
//! where. An event never holds a secret: no password, code, token or link, only names,
//! ids and a short reason.

use serde::Serialize;

use crate::model::User;

/// What happened. Stored as the text of [`EventKind::as_str`], so that an operator can
/// filter on it and an older reader still shows a kind a newer writer added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    SignInSucceeded,
    /// The detail says why: unknown login, wrong password, over budget, disabled.
    SignInFailed,
    TwoFactorEnabled,
    TwoFactorDisabled,
    TwoFactorFailed,
    PasswordChanged,
    PasswordReset,
    EmailVerified,
    EmailChanged,
    ConsentGranted,
    ConsentRevoked,
    ClientCreated,
    ClientEdited,
    ClientSecretRotated,
    ClientDeleted,
    /// A client's tokens revoked all at once (by its owner or an operator).
    ClientTokensRevoked,
    /// A rotated refresh token came back: its whole family was revoked.
    RefreshTokenReused,
    SessionEnded,
    SessionsEndedEverywhere,
    AccountDisabled,
    AccountEnabled,
    AccountDeleted,
    AdminGranted,
    AdminRevoked,
}

impl EventKind {
    pub const ALL: [EventKind; 24] = [
        EventKind::SignInSucceeded,
        EventKind::SignInFailed,
        EventKind::TwoFactorEnabled,
        EventKind::TwoFactorDisabled,
        EventKind::TwoFactorFailed,
        EventKind::PasswordChanged,
        EventKind::PasswordReset,
        EventKind::EmailVerified,
        EventKind::EmailChanged,
        EventKind::ConsentGranted,
        EventKind::ConsentRevoked,
        EventKind::ClientCreated,
        EventKind::ClientEdited,
        EventKind::ClientSecretRotated,
        EventKind::ClientDeleted,
        EventKind::ClientTokensRevoked,
        EventKind::RefreshTokenReused,
        EventKind::SessionEnded,
        EventKind::SessionsEndedEverywhere,
        EventKind::AccountDisabled,
        EventKind::AccountEnabled,
        EventKind::AccountDeleted,
        EventKind::AdminGranted,
        EventKind::AdminRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignInSucceeded => "sign_in.succeeded",
            EventKind::SignInFailed => "sign_in.failed",
            EventKind::TwoFactorEnabled => "two_factor.enabled",
            EventKind::TwoFactorDisabled => "two_factor.disabled",
            EventKind::TwoFactorFailed => "two_factor.failed",
            EventKind::PasswordChanged => "password.changed",
            EventKind::PasswordReset => "password.reset",
            EventKind::EmailVerified => "email.verified",
            EventKind::EmailChanged => "email.changed",
            EventKind::ConsentGranted => "consent.granted",
            EventKind::ConsentRevoked => "consent.revoked",
            EventKind::ClientCreated => "client.created",
            EventKind::ClientEdited => "client.edited",
            EventKind::ClientSecretRotated => "client.secret_rotated",
            EventKind::ClientDeleted => "client.deleted",
            EventKind::ClientTokensRevoked => "client.tokens_revoked",
            EventKind::RefreshTokenReused => "refresh_token.reused",
            EventKind::SessionEnded => "session.ended",
            EventKind::SessionsEndedEverywhere => "session.ended_everywhere",
            EventKind::AccountDisabled => "account.disabled",
            EventKind::AccountEnabled => "account.enabled",
            EventKind::AccountDeleted => "account.deleted",
            EventKind::AdminGranted => "admin.granted",
            EventKind::AdminRevoked => "admin.revoked",
        }
    }

    /// A short sentence for the pages ("Signed in", "Application deleted").
    pub fn describe(kind: &str) -> &'static str {
        let Some(k) = EventKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
            return "Other activity";
        };
        match k {
            EventKind::SignInSucceeded => "Signed in",
            EventKind::SignInFailed => "Failed sign-in",
            EventKind::TwoFactorEnabled => "Two-factor authentication turned on",
            EventKind::TwoFactorDisabled => "Two-factor authentication turned off",
            EventKind::TwoFactorFailed => "Wrong two-factor code",
            EventKind::PasswordChanged => "Password changed",
            EventKind::PasswordReset => "Password reset",
            EventKind::EmailVerified => "Email address verified",
            EventKind::EmailChanged => "Email address changed",
            EventKind::ConsentGranted => "Application authorized",
            EventKind::ConsentRevoked => "Application disconnected",
            EventKind::ClientCreated => "Application registered",
            EventKind::ClientEdited => "Application edited",
            EventKind::ClientSecretRotated => "Application secret replaced",
            EventKind::ClientDeleted => "Application deleted",
            EventKind::ClientTokensRevoked => "Application's tokens revoked",
            EventKind::RefreshTokenReused => "Reused refresh token: its tokens were revoked",
            EventKind::SessionEnded => "Signed out a session",
            EventKind::SessionsEndedEverywhere => "Signed out everywhere",
            EventKind::AccountDisabled => "Account disabled",
            EventKind::AccountEnabled => "Account enabled",
            EventKind::AccountDeleted => "Account deleted",
            EventKind::AdminGranted => "Made an administrator",
            EventKind::AdminRevoked => "No longer an administrator",
        }
    }
}

/// One event as stored. `actor` did it (None: the system, or someone not signed in);
/// `subject` is the account it was done to, when that is someone else or nobody signed
/// in (a failed sign-in names the account tried). Logins are kept beside ids so that the
/// log still reads after an account is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at: i64,
    pub kind: String,
    pub actor_user_id: Option<String>,
    pub actor_login: Option<String>,
    pub subject_user_id: Option<String>,
    pub subject_login: Option<String>,
    pub client_id: Option<String>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// The longest user agent kept: enough to tell browsers apart, not a place to store data.
const MAX_USER_AGENT: usize = 200;

impl Event {
    pub fn new(kind: EventKind, at: i64) -> Event {
        Event {
            at,
            kind: kind.as_str().to_owned(),
            actor_user_id: None,
            actor_login: None,
            subject_user_id: None,
            subject_login: None,
            client_id: None,
            address: None,
            user_agent: None,
            detail: None,
        }
    }

    pub fn actor(mut self, user: &User) -> Event {
        self.actor_user_id = Some(user.id.clone());
        self.actor_login = Some(user.login.clone());
        self
    }

    pub fn subject(mut self, user: &User) -> Event {
        self.subject_user_id = Some(user.id.clone());
        self.subject_login = Some(user.login.clone());
        self
    }

    /// A subject known only by the login that was typed (a failed sign-in of an
    /// unknown account).
    pub fn subject_login(mut self, login: &str) -> Event {
        self.subject_login = Some(login.chars().take(64).collect());
        self
    }

    pub fn client(mut self, client_id: &str) -> Event {
        self.client_id = Some(client_id.to_owned());
        self
    }

    /// Where the request came from.
    pub fn from(mut self, address: Option<String>, user_agent: Option<&str>) -> Event {
        self.address = address;
        self.user_agent = user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT).collect());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = Some(detail.into());
        self
    }

    /// Whether this event is about the user: done by them or to them.
    pub fn concerns(&self, user_id: &str) -> bool {
        self.actor_user_id.as_deref() == Some(user_id) || self.subject_user_id.as_deref() == Some(user_id)
    }
}

/// Which events to list, newest first. Every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Done by or to this user id.
    pub user_id: Option<String>,
    /// Done by or to this login (ignoring case): finds a deleted account's events too.
    pub login: Option<String>,
    pub client_id: Option<String>,
    /// At or after this time.
    pub since: Option<i64>,
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_names_and_descriptions() {
        let names: std::collections::HashSet<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        for k in EventKind::ALL {
            assert_ne!(EventKind::describe(k.as_str()), "Other activity", "{k:?}");
        }
        assert_eq!(EventKind::describe("from.a.newer.version"), "Other activity");
    }

    #[test]
    fn user_agents_are_cut_and_cleaned() {
        let ua = format!("Mozilla\n{}", "x".repeat(500));
        let e = Event::new(EventKind::SignInFailed, 1).from(None, Some(&ua));
        let kept = e.user_agent.unwrap();
        assert_eq!(kept.chars().count(), MAX_USER_AGENT);
        assert!(!kept.contains('\n'));
    }
}
