//! A read cache in front of a store, for the lookups every request makes: the client
//! behind a token request and the access token behind a validation. Entries live for a
//! second at most, and every write made through this store that could revoke a token
//! or change a client drops what it could affect, so this process never serves a
//! revoked token; writes by another process (an admin command on the same SQLite file)
//! are seen within the second. Use it where one server owns the database (SQLite); with
//! several instances on PostgreSQL each would see the others' revocations a second
//! late, so there it is not used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use gatehouse_core::model::*;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::store::*;

const TTL: Duration = Duration::from_secs(1);
/// Entries before the cache starts over: bounds memory under a flood of distinct keys.
const CAPACITY: usize = 50_000;

struct Entries<T>(Mutex<HashMap<String, (Instant, T)>>);

impl<T: Clone> Entries<T> {
    fn new() -> Self {
        Entries(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &str) -> Option<T> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).filter(|(at, _)| at.elapsed() < TTL).map(|(_, v)| v.clone())
    }

    fn put(&self, key: &str, value: T) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, (at, _)| at.elapsed() < TTL);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key.to_string(), (Instant::now(), value));
    }

    fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

pub struct CachedStore {
    inner: Arc<dyn Store>,
    clients: Entries<Option<Client>>,
    users: Entries<Option<User>>,
    tokens: Entries<Option<AccessTokenInfo>>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        CachedStore { inner, clients: Entries::new(), users: Entries::new(), tokens: Entries::new() }
    }
}

#[async_trait]
impl Accounts for CachedStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.inner.create_user(user).await
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        if let Some(hit) = self.users.get(id) {
            return Ok(hit);
        }
        let found = self.inner.find_user(id).await?;
        if found.is_some() {
            self.users.put(id, found.clone());
        }
        Ok(found)
    }

    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        self.inner.find_user_by_login(login).await
    }

    async fn change_password(&self, user_id: &str, password_hash: &str, keep_session: &str) -> StoreResult<()> {
        let result = self.inner.change_password(user_id, password_hash, keep_session).await;
        self.users.forget(user_id);
        self.tokens.clear();
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
}

#[async_trait]
impl Clients for CachedStore {
    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        self.inner.create_client(client).await
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        if let Some(hit) = self.clients.get(id) {
            return Ok(hit);
        }
        let found = self.inner.find_client(id).await?;
        self.clients.put(id, found.clone());
        Ok(found)
    }

    async fn list_clients(&self, owner_user_id: Option<&str>) -> StoreResult<Vec<Client>> {
        self.inner.list_clients(owner_user_id).await
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let result = self.inner.delete_client(id).await;
        self.clients.forget(id);
        self.tokens.clear();
        result
    }

    async fn rotate_client_secret(&self, id: &str, new_hash: &str, previous_expires_at: Option<i64>,) -> StoreResult<bool> {
        let result = self.inner.rotate_client_secret(id, new_hash, previous_expires_at).await;
        self.clients.forget(id);
        self.tokens.clear();
        result
    }

    async fn update_client(&self, id: &str, name: &str, category: &str, redirect_uris: &[String], allow_implicit: bool,) -> StoreResult<bool> {
        let result = self.inner.update_client(id, name, category, redirect_uris, allow_implicit).await;
        self.clients.forget(id);
        self.tokens.clear();
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
        self.tokens.clear();
        result
    }

    async fn insert_code(&self, code: &AuthorizationCode) -> StoreResult<()> {
        self.inner.insert_code(code).await
    }

    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>> {
        self.inner.find_code(code_hash).await
    }

    async fn redeem_code(&self, code_hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64,) -> StoreResult<Redemption> {
        let result = self.inner.redeem_code(code_hash, issue, caps, now).await;
        self.tokens.clear();
        result
    }

    async fn revoke_tokens_from_code(&self, code: Family<'_>) -> StoreResult<()> {
        let result = self.inner.revoke_tokens_from_code(code).await;
        self.tokens.clear();
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
        let result = self.inner.redeem_device(device_code_hash, issue, caps, now).await;
        self.tokens.clear();
        result
    }
}

#[async_trait]
impl Tokens for CachedStore {
    async fn insert_tokens(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<()> {
        let result = self.inner.insert_tokens(issue, caps, now).await;
        // A grant with a refresh token may push an older one over the caps and revoke it.
        if issue.refresh.is_some() {
            self.tokens.clear();
        }
        result
    }

    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<AccessTokenInfo>> {
        if let Some(hit) = self.tokens.get(token_hash) {
            return Ok(hit);
        }
        let found = self.inner.find_access_token(token_hash).await?;
        // Only live-looking tokens are kept: a miss stays a miss in the store.
        if found.as_ref().is_some_and(|t| !t.token.revoked) {
            self.tokens.put(token_hash, found.clone());
        }
        Ok(found)
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
        self.tokens.clear();
        result
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<()> {
        // Refresh tokens are not cached.
        self.inner.revoke_refresh_token(token_hash).await
    }

    async fn revoke_access_token(&self, token_hash: &str) -> StoreResult<()> {
        let result = self.inner.revoke_access_token(token_hash).await;
        self.tokens.clear();
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
impl Upkeep for CachedStore {
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.inner.purge_expired(now).await
    }
}
