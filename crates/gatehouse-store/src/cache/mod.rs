//! A read cache in front of a store, for the lookups every request makes: the client
//! behind a token request, the user behind an API call and the access token behind a
//! validation. Entries live for the configured staleness at most (one second by
//! default), and every write through this store that could revoke a token or change a
//! client or user drops what it could affect, at once in this process and, where several
//! instances share the database, in every other one through a [`CacheChannel`]
//! (PostgreSQL's LISTEN/NOTIFY). An instance that cannot hear the others (its listener
//! is lost) empties its caches and reads through until it listens again. Writes by a
//! process that does not announce them (another program on the same SQLite file) are
//! seen within the staleness.

mod entries;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use gatehouse_core::events::{Event, EventFilter};
use gatehouse_core::model::*;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::store::*;

pub use entries::{Caches, Invalidation};
use entries::Entries;

/// How the instances that share a database tell each other what to drop.
#[async_trait]
pub trait CacheChannel: Send + Sync {
    /// Tells every other instance to drop what `drops` names.
    async fn announce(&self, drops: &[Invalidation]) -> StoreResult<()>;
}

/// A task that ends with the cache it serves.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct CachedStore {
    inner: Arc<dyn Store>,
    caches: Arc<Caches>,
    channel: Option<Arc<dyn CacheChannel>>,
    _follower: Option<AbortOnDrop>,
}

impl CachedStore {
    /// A cache for a store that one process owns (SQLite).
    pub fn new(inner: Arc<dyn Store>, staleness: Duration) -> Self {
        CachedStore { inner, caches: Arc::new(Caches::new(staleness, true)), channel: None, _follower: None }
    }

    /// A cache shared with other instances: writes are announced on `channel`, and
    /// `follow` (given the caches) listens for the others' announcements, making the
    /// caches coherent while it listens.
    pub(crate) fn shared(
        inner: Arc<dyn Store>,
        staleness: Duration,
        channel: Arc<dyn CacheChannel>,
        follow: impl FnOnce(std::sync::Weak<Caches>) -> tokio::task::JoinHandle<()>,
    ) -> Self {
        let caches = Arc::new(Caches::new(staleness, false));
        let follower = AbortOnDrop(follow(Arc::downgrade(&caches)));
        CachedStore { inner, caches, channel: Some(channel), _follower: Some(follower) }
    }

    /// Drops what a write made stale, here and in the other instances.
    async fn invalidate(&self, drops: &[Invalidation]) {
        for what in drops {
            self.caches.apply(what);
        }
        if let Some(channel) = &self.channel {
            // Not the write's failure: the others see it within the staleness anyway.
            if let Err(e) = channel.announce(drops).await {
                tracing::warn!(error = %e, "could not tell the other instances what to drop from their caches");
            }
        }
    }

    /// A lookup through the cache; `keep` says whether a value may be kept.
    async fn cached<T: Clone + Send>(
        &self,
        entries: &Entries<Option<T>>,
        key: &str,
        keep: impl Fn(&Option<T>) -> bool + Send,
        load: impl std::future::Future<Output = StoreResult<Option<T>>> + Send,
    ) -> StoreResult<Option<T>> {
        let read = self.caches.reading();
        if read.is_some() {
            if let Some(hit) = entries.get(key) {
                return Ok(hit);
            }
        }
        let found = load.await?;
        if keep(&found) {
            self.caches.keep(entries, key, found.clone(), read);
        }
        Ok(found)
    }
}

#[async_trait]
impl Accounts for CachedStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.inner.create_user(user).await
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        self.cached(&self.caches.users, id, Option::is_some, self.inner.find_user(id)).await
    }

    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        self.inner.find_user_by_login(login).await
    }

    async fn change_password(&self, user_id: &str, password_hash: &str, keep_session: &str) -> StoreResult<()> {
        let result = self.inner.change_password(user_id, password_hash, keep_session).await;
        self.invalidate(&[Invalidation::User(user_id.into()), Invalidation::AllTokens]).await;
        result
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.inner.create_session(session).await
    }

    async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        self.inner.find_session(id_hash, now).await
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.inner.delete_session(id_hash).await
    }

    async fn find_users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        self.inner.find_users_by_email(email).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.inner.list_users().await
    }

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<bool> {
        let result = self.inner.set_user_disabled(user_id, disabled).await;
        // Cached access tokens of the user stop working here and in every instance now,
        // not when the staleness runs out.
        self.invalidate(&[Invalidation::User(user_id.into()), Invalidation::AllTokens]).await;
        result
    }

    async fn set_user_admin(&self, user_id: &str, admin: bool) -> StoreResult<bool> {
        let result = self.inner.set_user_admin(user_id, admin).await;
        self.invalidate(&[Invalidation::User(user_id.into())]).await;
        result
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<Option<Vec<String>>> {
        let result = self.inner.delete_user(user_id).await;
        let mut drops = vec![Invalidation::User(user_id.into()), Invalidation::AllTokens];
        if let Ok(Some(apps)) = &result {
            drops.extend(apps.iter().map(|id| Invalidation::Client(id.clone())));
        }
        self.invalidate(&drops).await;
        result
    }

    async fn set_verified_email(&self, user_id: &str, email: &str) -> StoreResult<bool> {
        let result = self.inner.set_verified_email(user_id, email).await;
        self.invalidate(&[Invalidation::User(user_id.into())]).await;
        result
    }

    async fn create_link(&self, link: &LinkToken) -> StoreResult<()> {
        self.inner.create_link(link).await
    }

    async fn find_link(&self, token_hash: &str, purpose: LinkPurpose, now: i64) -> StoreResult<Option<LinkToken>> {
        self.inner.find_link(token_hash, purpose, now).await
    }

    async fn take_link(&self, token_hash: &str, purpose: LinkPurpose, now: i64) -> StoreResult<Option<LinkToken>> {
        self.inner.take_link(token_hash, purpose, now).await
    }
}

#[async_trait]
impl Clients for CachedStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        self.inner.create_client(client).await
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.cached(&self.caches.clients, id, |_| true, self.inner.find_client(id)).await
    }

    async fn list_clients(&self, owner_user_id: Option<&str>) -> StoreResult<Vec<Client>> {
        self.inner.list_clients(owner_user_id).await
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let result = self.inner.delete_client(id).await;
        self.invalidate(&[Invalidation::Client(id.into()), Invalidation::AllTokens]).await;
        result
    }

    async fn rotate_client_secret(&self, id: &str, new_hash: &str, previous_expires_at: Option<i64>,) -> StoreResult<bool> {
        let result = self.inner.rotate_client_secret(id, new_hash, previous_expires_at).await;
        self.invalidate(&[Invalidation::Client(id.into()), Invalidation::AllTokens]).await;
        result
    }

    async fn update_client(&self, id: &str, name: &str, category: &str, redirect_uris: &[String], allow_implicit: bool,) -> StoreResult<bool> {
        let result = self.inner.update_client(id, name, category, redirect_uris, allow_implicit).await;
        self.invalidate(&[Invalidation::Client(id.into()), Invalidation::AllTokens]).await;
        result
    }
}

#[async_trait]
impl Grants for CachedStore {
    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<(Consent, Client)>> {
        self.inner.list_consents(user_id).await
    }

    async fn disconnect(&self, user_id: &str, client_id: &str) -> StoreResult<()> {
        let result = self.inner.disconnect(user_id, client_id).await;
        self.invalidate(&[Invalidation::AllTokens]).await;
        result
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        self.inner.insert_code(code).await
    }

    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>> {
        self.inner.find_code(code_hash).await
    }

    async fn redeem_code(&self, code_hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64,) -> StoreResult<Redemption> {
        // Stores tokens and revokes none: the caps evict refresh tokens, never cached.
        self.inner.redeem_code(code_hash, issue, caps, now).await
    }

    async fn revoke_tokens_from_code(&self, code: Family<'_>) -> StoreResult<()> {
        let result = self.inner.revoke_tokens_from_code(code).await;
        self.invalidate(&[Invalidation::AllTokens]).await;
        result
    }

    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        self.inner.find_consent(user_id, client_id).await
    }

    async fn grant_consent(&self, user_id: &str, client_id: &str, scopes: &ScopeSet, now: i64,) -> StoreResult<()> {
        self.inner.grant_consent(user_id, client_id, scopes, now).await
    }

    async fn insert_device(&self, device: &DeviceAuthorization) -> StoreResult<()> {
        self.inner.insert_device(device).await
    }

    async fn find_device_by_user_code(&self, user_code_hash: &str) -> StoreResult<Option<DeviceAuthorization>> {
        self.inner.find_device_by_user_code(user_code_hash).await
    }

    async fn poll_device(&self, device_code_hash: &str, now: i64) -> StoreResult<Option<(DeviceAuthorization, bool)>> {
        self.inner.poll_device(device_code_hash, now).await
    }

    async fn decide_device(&self, device_code_hash: &str, approve: Option<(&str, i64)>, now: i64,) -> StoreResult<bool> {
        self.inner.decide_device(device_code_hash, approve, now).await
    }

    async fn redeem_device(&self, device_code_hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<Redemption> {
        self.inner.redeem_device(device_code_hash, issue, caps, now).await
    }
}

#[async_trait]
impl Tokens for CachedStore {
    async fn insert_tokens(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<()> {
        // A grant with a refresh token may push an older one over the caps and revoke it,
        // but refresh tokens are not cached: nothing here goes stale.
        self.inner.insert_tokens(issue, caps, now).await
    }

    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<AccessTokenInfo>> {
        // Only live-looking tokens are kept: a miss stays a miss in the store.
        let live = |found: &Option<AccessTokenInfo>| found.as_ref().is_some_and(|t| !t.token.revoked);
        self.cached(&self.caches.tokens, token_hash, live, self.inner.find_access_token(token_hash)).await
    }

    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        self.inner.find_refresh_token(token_hash).await
    }

    async fn rotate_refresh_token(&self, old_hash: &str, issue: TokenIssue, now: i64) -> StoreResult<Rotation> {
        self.inner.rotate_refresh_token(old_hash, issue, now).await
    }

    async fn rotate_presented(&self, old_hash: &str, now: i64, decide: Decide) -> StoreResult<Presented> {
        self.inner.rotate_presented(old_hash, now, decide).await
    }

    async fn revoke_family(&self, family: Family<'_>) -> StoreResult<()> {
        let result = self.inner.revoke_family(family).await;
        self.invalidate(&[Invalidation::AllTokens]).await;
        result
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<()> {
        // Refresh tokens are not cached.
        self.inner.revoke_refresh_token(token_hash).await
    }

    async fn revoke_access_token(&self, token_hash: &str) -> StoreResult<()> {
        let result = self.inner.revoke_access_token(token_hash).await;
        self.invalidate(&[Invalidation::AllTokens]).await;
        result
    }
}

#[async_trait]
impl SigningKeys for CachedStore {
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()> {
        self.inner.insert_signing_key(key).await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        self.inner.list_signing_keys().await
    }

    async fn retire_signing_keys(&self, keep_kid: &str, now: i64) -> StoreResult<()> {
        self.inner.retire_signing_keys(keep_kid, now).await
    }
}

#[async_trait]
impl PlatformData for CachedStore {
    async fn channel(&self, user_id: &str, new_stream_key: &str, now: i64) -> StoreResult<Channel> {
        self.inner.channel(user_id, new_stream_key, now).await
    }

    async fn update_channel(&self, user_id: &str, status: Option<&str>, game: Option<&str>, now: i64,) -> StoreResult<()> {
        self.inner.update_channel(user_id, status, game, now).await
    }

    async fn set_stream_key(&self, user_id: &str, stream_key: &str, now: i64) -> StoreResult<()> {
        self.inner.set_stream_key(user_id, stream_key, now).await
    }

    async fn record_commercial(&self, user_id: &str, now: i64) -> StoreResult<()> {
        self.inner.record_commercial(user_id, now).await
    }

    async fn relate(&self, kind: Relation, user_id: &str, target_user_id: &str, now: i64) -> StoreResult<bool> {
        self.inner.relate(kind, user_id, target_user_id, now).await
    }

    async fn unrelate(&self, kind: Relation, user_id: &str, target_user_id: &str) -> StoreResult<bool> {
        self.inner.unrelate(kind, user_id, target_user_id).await
    }

    async fn related_to(&self, kind: Relation, user_id: &str) -> StoreResult<Vec<RelatedUser>> {
        self.inner.related_to(kind, user_id).await
    }

    async fn related_from(&self, kind: Relation, target_user_id: &str) -> StoreResult<Vec<RelatedUser>> {
        self.inner.related_from(kind, target_user_id).await
    }
}

#[async_trait]
impl RateBuckets for CachedStore {
    async fn take_rate_tokens(&self, bucket: &str, budget: RateBudget, now: i64, count: i64) -> StoreResult<RateTake> {
        self.inner.take_rate_tokens(bucket, budget, now, count).await
    }
}

#[async_trait]
impl Events for CachedStore {
    async fn record_event(&self, event: &Event) -> StoreResult<()> {
        self.inner.record_event(event).await
    }

    async fn list_events(&self, filter: &EventFilter) -> StoreResult<Vec<Event>> {
        self.inner.list_events(filter).await
    }

    async fn purge_events(&self, before: i64) -> StoreResult<u64> {
        self.inner.purge_events(before).await
    }
}

#[async_trait]
impl Upkeep for CachedStore {
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.inner.purge_expired(now).await
    }
}
