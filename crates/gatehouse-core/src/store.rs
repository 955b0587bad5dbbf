//! The storage contract. Core owns it; `gatehouse-store` implements it for SQLite and
//! PostgreSQL. Every method that checks time takes `now` from the caller, so backends
//! never disagree about the clock. Methods that must be atomic say so.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::events::{Event, EventFilter};
use crate::model::*;
use crate::policy::RefreshCaps;
use crate::scope::ScopeSet;

pub type StoreResult<T> = Result<T, StoreError>;

/// What came of redeeming an authorization code.
#[derive(Debug, PartialEq, Eq)]
pub enum Redemption {
    /// The code was unused; it is now used and the tokens were stored.
    Issued,
    /// The code had already been used (a replay or a lost race): nothing was stored.
    AlreadyUsed,
}

/// What came of rotating a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// This request won: the old token is rotated, the new ones are stored.
    Rotated,
    /// The token was no longer live (another request rotated it first, or it was
    /// revoked): nothing was stored.
    NotLive,
}

/// What came of a rotation decided where the presented token is read
/// (`Store::rotate_presented`).
#[derive(Debug)]
pub enum Presented {
    /// No token has that key.
    Unknown,
    /// The decision refused the stored token, given here; nothing was stored.
    Refused(RefreshToken),
    /// The token, as it was stored, is rotated and the new tokens are stored.
    Rotated(RefreshToken),
    /// The decision accepted the token, but it was no longer live when claimed (another
    /// rotation won first): nothing was stored.
    NotLive,
}

/// Decides a rotation from the stored token: the tokens to store in its place, or None to
/// refuse it. It may be called more than once (a batch that rolled back is run again), so
/// it gives the same answer for the same token.
pub type Decide = std::sync::Arc<dyn Fn(&RefreshToken) -> Option<TokenIssue> + Send + Sync>;

/// `Store::rotate_presented` in two steps, a read and then a rotation: for backends whose
/// writer does not read.
pub async fn rotate_presented_in_steps(
    store: &(impl Tokens + ?Sized),
    old_hash: &str,
    now: i64,
    decide: Decide,
) -> StoreResult<Presented> {
    let Some(record) = store.find_refresh_token(old_hash).await? else {
        return Ok(Presented::Unknown);
    };
    let Some(issue) = decide(&record) else {
        return Ok(Presented::Refused(record));
    };
    Ok(match store.rotate_refresh_token(old_hash, issue, now).await? {
        Rotation::Rotated => Presented::Rotated(record),
        Rotation::NotLive => Presented::NotLive,
    })
}

/// Tokens to store together, in one transaction.
#[derive(Debug, Clone)]
pub struct TokenIssue {
    pub access: AccessToken,
    pub refresh: Option<RefreshToken>,
}

/// Users, their passwords and their browser sessions.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Fails with `Conflict` if the login is taken (case-insensitive).
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn find_user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<User>>;
    /// A new password hash; every refresh and access token of the user stops working, as
    /// platforms do on a password change, and every other session ends.
    async fn change_password(&self, user_id: &str, password_hash: &str, keep_session: &str) -> StoreResult<()>;
    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Every account whose email is `email` ignoring case, the one holding it verified
    /// (at most one) first.
    async fn find_users_by_email(&self, email: &str) -> StoreResult<Vec<User>>;
    /// Every account, by login.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Disables or enables an account; false if there is none. Disabling is atomic and
    /// takes effect at once: every session ends, every refresh and access token of the
    /// user is revoked, unredeemed codes and approved device authorizations are dropped,
    /// and mailed links stop working. Enabling gives nothing of that back.
    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<bool>;
    /// Grants or revokes the admin role; false if there is no such account.
    async fn set_user_admin(&self, user_id: &str, admin: bool) -> StoreResult<bool>;
    /// Deletes an account atomically: its sessions, consents, codes, tokens and links,
    /// and the applications it owns with every code, token and consent issued to them.
    /// The deleted applications' ids, or None if there was no such account.
    async fn delete_user(&self, user_id: &str) -> StoreResult<Option<Vec<String>>>;
    /// Makes `email` the account's verified address; `Conflict` if another account holds
    /// it verified (ignoring case), false if there is no such account.
    async fn set_verified_email(&self, user_id: &str, email: &str) -> StoreResult<bool>;
    /// Stores a link; the user's older links of the same purpose stop working, so only
    /// the newest works.
    async fn create_link(&self, link: &LinkToken) -> StoreResult<()>;
    /// An unexpired link of that purpose, left unused (to show the page it opens).
    async fn find_link(&self, token_hash: &str, purpose: LinkPurpose, now: i64) -> StoreResult<Option<LinkToken>>;
    /// Uses an unexpired link of that purpose: it is deleted and returned, once; None
    /// for a used, expired, superseded or unknown link.
    async fn take_link(&self, token_hash: &str, purpose: LinkPurpose, now: i64) -> StoreResult<Option<LinkToken>>;
}

/// A user's signed-in browsers, as the security page lists them.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// The user's unexpired sessions, most recently seen first.
    async fn list_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>>;
    /// Records a use of the session: when and from where.
    async fn touch_session(&self, id_hash: &str, address: &str, now: i64) -> StoreResult<()>;
    /// Ends one of the user's sessions; false if the user had no such session.
    async fn end_session(&self, user_id: &str, id_hash: &str) -> StoreResult<bool>;
    /// Ends every session of the user but `keep` (all of them when None); the count ended.
    async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64>;
}

/// Two-factor sign-in: a sealed TOTP secret and single-use recovery codes per user.
#[async_trait]
pub trait TwoFactors: Send + Sync {
    async fn find_two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>>;
    /// Turns two-factor on with these recovery-code digests; false (and nothing
    /// changed) if it was on already.
    async fn enable_two_factor(&self, two_factor: &TwoFactor, recovery_hashes: &[String]) -> StoreResult<bool>;
    /// Atomically records `step` as used if it is newer than the last used step; false
    /// if it is not (the code was used already, or a newer one was).
    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Atomically marks an unused recovery code used; false if there was none.
    async fn use_recovery_code(&self, user_id: &str, code_hash: &str, now: i64) -> StoreResult<bool>;
    /// Turns two-factor off: the secret and every recovery code are deleted.
    async fn disable_two_factor(&self, user_id: &str) -> StoreResult<bool>;
}

/// Registered applications.
#[async_trait]
pub trait Clients: Send + Sync {
    /// Fails with `Conflict` if the name is taken (case-insensitive, across all clients).
    async fn create_client(&self, client: &Client) -> StoreResult<()>;
    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>>;
    async fn list_clients(&self, owner_user_id: Option<&str>) -> StoreResult<Vec<Client>>;
    /// Deletes the client and every code, token and consent issued to it.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;
    /// Sets a new secret digest; the old one is kept until `previous_expires_at` when given.
    async fn rotate_client_secret(
        &self,
        id: &str,
        new_hash: &str,
        previous_expires_at: Option<i64>,
    ) -> StoreResult<bool>;
    /// Revokes every refresh and access token issued to the client and drops its
    /// unredeemed codes and approved device authorizations (an operator's answer to a
    /// leaked secret or a misbehaving app); consents stay. The tokens revoked.
    async fn revoke_client_tokens(&self, id: &str) -> StoreResult<u64>;
    /// Changes what a developer may edit; `Conflict` if the new name is taken.
    async fn update_client(
        &self,
        id: &str,
        name: &str,
        category: &str,
        redirect_uris: &[String],
        allow_implicit: bool,
    ) -> StoreResult<bool>;
    /// Keeps a sealed note (a new client secret, to show once) for one browser session
    /// and client, replacing any earlier one.
    async fn put_secret_note(&self, session_hash: &str, client_id: &str, sealed: &str, expires_at: i64) -> StoreResult<()>;
    /// Hands the note over once: it is deleted as it is read. None when there is none,
    /// it was taken already, or it expired.
    async fn take_secret_note(&self, session_hash: &str, client_id: &str, now: i64) -> StoreResult<Option<String>>;
}

/// What users granted: consents, authorization codes and device authorizations, and
/// the single-use steps that turn a code or an approved device into tokens.
#[async_trait]
pub trait Grants: Send + Sync {
    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>>;
    /// Records that the user granted `scopes` to the client, adding to earlier grants.
    async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &ScopeSet,
        now: i64,
    ) -> StoreResult<()>;
    /// The applications a user has authorized, with what and when.
    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<(Consent, Client)>>;
    /// Forgets the user's consent to the client and revokes every token it holds for them.
    async fn disconnect(&self, user_id: &str, client_id: &str) -> StoreResult<()>;
    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>>;
    /// Atomically: mark the code used if it is unused, and store the tokens; or nothing.
    async fn redeem_code(
        &self,
        code_hash: &str,
        issue: &TokenIssue,
        caps: RefreshCaps,
        now: i64,
    ) -> StoreResult<Redemption>;
    /// Revokes every token issued from this code (on a replay). Tokens issued from a code
    /// carry the code's key as their family id, so this is `revoke_family(code.family())`:
    /// one index serves both, instead of one more index entry per token for the code.
    /// Older codes (keys without the issue-order prefix) also take
    /// the tokens that name them in `code_hash`.
    async fn revoke_tokens_from_code(&self, code: Family<'_>) -> StoreResult<()>;
    async fn insert_device(&self, device: &DeviceAuthorization) -> StoreResult<()>;
    async fn find_device_by_user_code(&self, user_code_hash: &str) -> StoreResult<Option<DeviceAuthorization>>;
    /// Atomically records a poll at `now` and returns the authorization as it was
    /// before, and whether the poll came sooner than its interval allows after the last
    /// accepted poll. A poll too soon is not recorded as accepted; it grows the interval
    /// by 5 seconds (RFC 8628 §3.5, `slow_down`), up to `device::MAX_POLL_INTERVAL`.
    async fn poll_device(&self, device_code_hash: &str, now: i64) -> StoreResult<Option<(DeviceAuthorization, bool)>>;
    /// Approves or denies a pending, unexpired authorization; false if it was not pending.
    async fn decide_device(
        &self,
        device_code_hash: &str,
        approve: Option<(&str, i64)>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Atomically: mark an approved authorization used and store the tokens; or nothing.
    async fn redeem_device(&self, device_code_hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64)
        -> StoreResult<Redemption>;
}

/// Access and refresh tokens: issuing, looking up, rotating and revoking.
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Stores tokens not tied to a code (client credentials, implicit grant).
    async fn insert_tokens(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64)
        -> StoreResult<()>;
    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<AccessTokenInfo>>;
    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
    /// Atomically: if `old_hash` is live, mark it rotated at `now` and store `issue`
    /// (taken, not borrowed: it goes on to the token writer).
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        issue: TokenIssue,
        now: i64,
    ) -> StoreResult<Rotation>;
    /// Atomically: reads the refresh token `old_hash`, asks `decide` what replaces it, and
    /// if it answers and the token is live, marks it rotated at `now` and stores the new
    /// tokens. One step where the backend can: on SQLite the writer reads the token
    /// inside the batch that rotates it, from a page cache its commits keep warm.
    async fn rotate_presented(&self, old_hash: &str, now: i64, decide: Decide) -> StoreResult<Presented>;
    /// Revokes every refresh token of the family and every access token issued within it.
    async fn revoke_family(&self, family: Family<'_>) -> StoreResult<()>;
    /// Marks one refresh token revoked, rotated or not: a rotated token presented again
    /// revokes its family once, and is then refused as revoked (`revoke_family` leaves
    /// rotated tokens as they are).
    async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<()>;
    async fn revoke_access_token(&self, token_hash: &str) -> StoreResult<()>;
}

/// OpenID Connect signing keys.
#[async_trait]
pub trait SigningKeys: Send + Sync {
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()>;
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Marks every unretired key but `keep_kid` retired at `now`.
    async fn retire_signing_keys(&self, keep_kid: &str, now: i64) -> StoreResult<()>;
}

/// Rate limits shared by every instance.
#[async_trait]
pub trait RateBuckets: Send + Sync {
    /// Takes `count` requests from the named bucket at once, atomically: as many as it
    /// holds are let through, in order.
    async fn take_rate_tokens(&self, bucket: &str, budget: RateBudget, now: i64, count: i64) -> StoreResult<RateTake>;
}

/// Housekeeping.
#[async_trait]
pub trait Upkeep: Send + Sync {
    /// Deletes expired codes, sessions and tokens, and revoked tokens past any use.
    /// Works in small batches so it never holds the database for long. Returns rows deleted.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
    /// Readiness: the database answers a query and holds every migration of this build,
    /// and (SQLite) the file at the configured path is still the one open. The error says
    /// what is wrong.
    async fn check_ready(&self) -> StoreResult<()>;
    /// Connections (in use, idle) of the backend's pool, for metrics.
    fn pool_usage(&self) -> PoolUsage;
}

/// Connections of a store's pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    pub in_use: u32,
    pub idle: u32,
}

/// The security event log.
#[async_trait]
pub trait Events: Send + Sync {
    async fn record_event(&self, event: &Event) -> StoreResult<()>;
    /// Newest first, at most `filter.limit`.
    async fn list_events(&self, filter: &EventFilter) -> StoreResult<Vec<Event>>;
    /// Deletes the events recorded before `before`, in small batches; returns how many.
    async fn purge_events(&self, before: i64) -> StoreResult<u64>;
}

/// The demo platform API's own data (channels, follows, blocks, subscriptions): not
/// part of the OAuth server, kept apart so that a platform with its own API drops it.
#[async_trait]
pub trait PlatformData: Send + Sync {
    /// The user's channel, created with a fresh stream key on first use.
    async fn channel(&self, user_id: &str, new_stream_key: &str, now: i64) -> StoreResult<Channel>;
    async fn update_channel(
        &self,
        user_id: &str,
        status: Option<&str>,
        game: Option<&str>,
        now: i64,
    ) -> StoreResult<()>;
    async fn set_stream_key(&self, user_id: &str, stream_key: &str, now: i64) -> StoreResult<()>;
    async fn record_commercial(&self, user_id: &str, now: i64) -> StoreResult<()>;
    /// Adds an edge; returns false if it was already there.
    async fn relate(&self, kind: Relation, user_id: &str, target_user_id: &str, now: i64) -> StoreResult<bool>;
    /// Removes an edge; returns false if there was none.
    async fn unrelate(&self, kind: Relation, user_id: &str, target_user_id: &str) -> StoreResult<bool>;
    /// The users `user_id` points at (whom they follow, block, subscribe to).
    async fn related_to(&self, kind: Relation, user_id: &str) -> StoreResult<Vec<RelatedUser>>;
    /// The users pointing at `target_user_id` (its followers, subscribers).
    async fn related_from(&self, kind: Relation, target_user_id: &str) -> StoreResult<Vec<RelatedUser>>;
}

/// The whole storage contract: what a backend implements, and what the server holds.
pub trait Store:
    Accounts + Sessions + TwoFactors + Clients + Grants + Tokens + SigningKeys + RateBuckets + Upkeep + Events + PlatformData + 'static
{
}

impl<T> Store for T where
    T: Accounts + Sessions + TwoFactors + Clients + Grants + Tokens + SigningKeys + RateBuckets + Upkeep + Events + PlatformData + 'static
{
}
