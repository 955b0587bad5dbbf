//! The one body of SQL behind both backends. `impl_store!` stamps out `impl Store` for a
//! backend type that provides `reader()`, `writer()` and `begin_write()`. Statements use
//! `$N` placeholders, which SQLite (through sqlx) and PostgreSQL both read by number, and
//! only types both engines share (TEXT, 64-bit integers; flags as 0/1).
//! `$lock` is appended to the SELECT that starts a read-modify-write: " FOR NO KEY UPDATE"
//! on PostgreSQL (it queues writers of the row but, unlike FOR UPDATE, not the share locks
//! that foreign-key checks take); empty on SQLite, whose write transactions are already
//! exclusive.

use std::future::Future;
use std::time::Duration;

use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;

/// Maps a database error to the store's error, keeping the cause for the log.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.constraint().unwrap_or("unique").to_string())
        }
        // PostgreSQL's serialization_failure and deadlock_detected: the transaction
        // lost a race and may simply be run again.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001") | Some("40P01")) => {
            StoreError::Retryable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// The same for rusqlite (SQLite's direct reads and batch writer). The conflict names no
/// table or column: its text can reach a client.
pub(crate) fn rusqlite_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            StoreError::Conflict("unique".into())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

const ATTEMPTS: u32 = 5;

/// Runs a write transaction again when it failed on a transient conflict, with a short
/// growing pause; any other outcome is returned as it is.
pub(crate) async fn retrying<T, F, Fut>(mut transaction: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(StoreError::Retryable(cause)) if attempt < ATTEMPTS => {
                tracing::debug!(%cause, attempt, "retrying a transaction after a conflict");
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The start of a new access token's INSERT; its values are bound in this order by
/// `insert_access_rows` and, on SQLite, by `sqlite_batch`.
pub(crate) const INSERT_ACCESS: &str = "INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, \
    created_at, expires_at, family_id, code_hash, revoked) ";
/// The same for a new (live, unrotated) refresh token.
pub(crate) const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, \
    scopes, created_at, expires_at, rotated_at, revoked, code_hash) ";
/// A refresh rotation's claim: `$1` the old token's key, `$2` the time.
pub(crate) const ROTATE: &str =
    "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 AND rotated_at IS NULL AND revoked = 0";

/// A single-use step and what it pays for: the conditional UPDATE `sql` (binding `key`,
/// then `at` if given) is the one point where concurrent attempts are decided, as only
/// one of them sees a row change; the winner's tokens are stored in the same
/// transaction, with the refresh-token caps checked when `caps` is given. A claim
/// without caps is a refresh rotation (one live token replaces another), which the
/// group commit does in bulk.
#[derive(Clone)]
pub(crate) struct Claim {
    pub sql: &'static str,
    pub key: String,
    pub at: Option<i64>,
    pub issue: gatehouse_core::store::TokenIssue,
    pub caps: Option<gatehouse_core::policy::RefreshCaps>,
    pub now: i64,
}

macro_rules! impl_store {
    ($Store:ident, $Db:ty, $Row:ty, $lock:literal, $begin:literal) => {
        pub(crate) mod store_impl {
            use async_trait::async_trait;
            use gatehouse_core::model::*;
            use gatehouse_core::pkce;
            use gatehouse_core::policy::RefreshCaps;
            use gatehouse_core::scope::ScopeSet;
            use gatehouse_core::store::{Decide, Presented, Redemption, Rotation, Store, StoreResult, TokenIssue};
            use sqlx::{Row, Transaction};

            use super::$Store;
            use crate::group_commit::{BatchError, Pending};
            use crate::sql_store::{conflict_as, db_err, retrying};

            type Tx = Transaction<'static, $Db>;

            const USER_COLS: &str = "id, login, email, password_hash, created_at";
            pub(crate) const CLIENT_COLS: &str = "id, name, owner_user_id, category, kind, allow_implicit, \
                redirect_uris, secret_hash, previous_secret_hash, previous_secret_expires_at, created_at, jwt_access_tokens";
            /// An access token with its user's login; a WHERE clause follows.
            pub(crate) const ACCESS_SELECT: &str = "SELECT a.token_hash, a.client_id, a.user_id, a.scopes, a.created_at, \
                a.expires_at, a.family_id, a.code_hash, a.revoked, u.login \
                FROM access_tokens a LEFT JOIN users u ON u.id = a.user_id";
            const CODE_COLS: &str = "code_hash, client_id, user_id, redirect_uri, redirect_uri_given, scopes, code_challenge, \
                code_challenge_method, nonce, auth_time, created_at, expires_at, used";
            pub(crate) const REFRESH_COLS: &str = "token_hash, family_id, client_id, user_id, scopes, created_at, \
                expires_at, rotated_at, revoked, code_hash";

            fn user(r: &$Row) -> Result<User, sqlx::Error> {
                Ok(User {
                    id: r.try_get("id")?,
                    login: r.try_get("login")?,
                    email: r.try_get("email")?,
                    password_hash: r.try_get("password_hash")?,
                    created_at: r.try_get("created_at")?,
                })
            }

            pub(crate) fn client(r: &$Row) -> Result<Client, sqlx::Error> {
                let uris: String = r.try_get("redirect_uris")?;
                let kind: String = r.try_get("kind")?;
                Ok(Client {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    owner_user_id: r.try_get("owner_user_id")?,
                    category: r.try_get("category")?,
                    kind: ClientKind::parse(&kind)
                        .ok_or_else(|| sqlx::Error::Decode(format!("bad client kind {kind:?}").into()))?,
                    allow_implicit: r.try_get::<i64, _>("allow_implicit")? != 0,
                    redirect_uris: serde_json::from_str(&uris)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    secret_hash: r.try_get("secret_hash")?,
                    previous_secret_hash: r.try_get("previous_secret_hash")?,
                    previous_secret_expires_at: r.try_get("previous_secret_expires_at")?,
                    created_at: r.try_get("created_at")?,
                    jwt_access_tokens: r.try_get::<i64, _>("jwt_access_tokens")? != 0,
                })
            }

            fn code(r: &$Row) -> Result<AuthorizationCode, sqlx::Error> {
                let method: Option<String> = r.try_get("code_challenge_method")?;
                Ok(AuthorizationCode {
                    code_hash: r.try_get("code_hash")?,
                    client_id: r.try_get("client_id")?,
                    user_id: r.try_get("user_id")?,
                    redirect_uri: r.try_get("redirect_uri")?,
                    redirect_uri_given: r.try_get::<i64, _>("redirect_uri_given")? != 0,
                    scopes: ScopeSet::from_stored(&r.try_get::<String, _>("scopes")?),
                    code_challenge: r.try_get("code_challenge")?,
                    code_challenge_method: method.as_deref().and_then(pkce::Method::parse),
                    nonce: r.try_get("nonce")?,
                    auth_time: r.try_get("auth_time")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    used: r.try_get::<i64, _>("used")? != 0,
                })
            }

            pub(crate) fn access(r: &$Row) -> Result<AccessTokenInfo, sqlx::Error> {
                Ok(AccessTokenInfo {
                    token: AccessToken {
                        token_hash: r.try_get("token_hash")?,
                        client_id: r.try_get("client_id")?,
                        user_id: r.try_get("user_id")?,
                        scopes: ScopeSet::from_stored(&r.try_get::<String, _>("scopes")?),
                        created_at: r.try_get("created_at")?,
                        expires_at: r.try_get("expires_at")?,
                        family_id: r.try_get("family_id")?,
                        code_hash: r.try_get("code_hash")?,
                        revoked: r.try_get::<i64, _>("revoked")? != 0,
                    },
                    user_login: r.try_get("login")?,
                })
            }

            pub(crate) fn refresh(r: &$Row) -> Result<RefreshToken, sqlx::Error> {
                Ok(RefreshToken {
                    token_hash: r.try_get("token_hash")?,
                    family_id: r.try_get("family_id")?,
                    client_id: r.try_get("client_id")?,
                    user_id: r.try_get("user_id")?,
                    scopes: ScopeSet::from_stored(&r.try_get::<String, _>("scopes")?),
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    rotated_at: r.try_get("rotated_at")?,
                    revoked: r.try_get::<i64, _>("revoked")? != 0,
                    code_hash: r.try_get("code_hash")?,
                })
            }

            const DEVICE_COLS: &str = "device_code_hash, user_code_hash, client_id, scopes, status, user_id, \
                auth_time, created_at, expires_at, poll_interval, last_poll_at";

            fn device(r: &$Row) -> Result<DeviceAuthorization, sqlx::Error> {
                let status: String = r.try_get("status")?;
                Ok(DeviceAuthorization {
                    device_code_hash: r.try_get("device_code_hash")?,
                    user_code_hash: r.try_get("user_code_hash")?,
                    client_id: r.try_get("client_id")?,
                    scopes: ScopeSet::from_stored(&r.try_get::<String, _>("scopes")?),
                    status: DeviceStatus::parse(&status)
                        .ok_or_else(|| sqlx::Error::Decode(format!("bad device status {status:?}").into()))?,
                    user_id: r.try_get("user_id")?,
                    auth_time: r.try_get("auth_time")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    interval: r.try_get("poll_interval")?,
                    last_poll_at: r.try_get("last_poll_at")?,
                })
            }

            fn related(r: &$Row) -> Result<RelatedUser, sqlx::Error> {
                Ok(RelatedUser { user_id: r.try_get("id")?, login: r.try_get("login")?, created_at: r.try_get("created_at")? })
            }

            fn consent(r: &$Row) -> Result<Consent, sqlx::Error> {
                Ok(Consent {
                    user_id: r.try_get("user_id")?,
                    client_id: r.try_get("client_id")?,
                    scopes: ScopeSet::from_stored(&r.try_get::<String, _>("scopes")?),
                    granted_at: r.try_get("granted_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            /// One INSERT of any number of access tokens: a grant stores one, the group
            /// commit a whole batch.
            pub(crate) fn insert_access_rows<'a>(
                tokens: impl IntoIterator<Item = &'a AccessToken>,
            ) -> sqlx::QueryBuilder<'a, $Db> {
                let mut insert = sqlx::QueryBuilder::new(crate::sql_store::INSERT_ACCESS);
                insert.push_values(tokens, |mut row, a| {
                    row.push_bind(&a.token_hash)
                        .push_bind(&a.client_id)
                        .push_bind(&a.user_id)
                        .push_bind(a.scopes.to_space_separated())
                        .push_bind(a.created_at)
                        .push_bind(a.expires_at)
                        .push_bind(&a.family_id)
                        .push_bind(&a.code_hash)
                        .push_bind(0i64);
                });
                insert
            }

            /// The same for new (live, unrotated) refresh tokens.
            pub(crate) fn insert_refresh_rows<'a>(
                tokens: impl IntoIterator<Item = &'a RefreshToken>,
            ) -> sqlx::QueryBuilder<'a, $Db> {
                let mut insert = sqlx::QueryBuilder::new(crate::sql_store::INSERT_REFRESH);
                insert.push_values(tokens, |mut row, r| {
                    row.push_bind(&r.token_hash)
                        .push_bind(&r.family_id)
                        .push_bind(&r.client_id)
                        .push_bind(&r.user_id)
                        .push_bind(r.scopes.to_space_separated())
                        .push_bind(r.created_at)
                        .push_bind(r.expires_at)
                        .push_bind(None::<i64>)
                        .push_bind(0i64)
                        .push_bind(&r.code_hash);
                });
                insert
            }

            /// One access token; on a pool, a statement that commits by itself.
            pub(crate) async fn insert_access<'e, E>(ex: E, a: &AccessToken) -> Result<(), sqlx::Error>
            where
                E: sqlx::Executor<'e, Database = $Db>,
            {
                insert_access_rows([a]).build().execute(ex).await?;
                Ok(())
            }

            async fn insert_issue(tx: &mut Tx, issue: &TokenIssue) -> Result<(), sqlx::Error> {
                insert_access(&mut **tx, &issue.access).await?;
                if let Some(r) = &issue.refresh {
                    insert_refresh_rows([r]).build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Seed 000: over either cap, the oldest live refresh tokens stop working.
            /// The token just issued is never the one evicted. Within one second, keys
            /// with the issue-order prefix say which came later (older keys, digests
            /// alone, fall in no particular order).
            async fn enforce_caps(
                tx: &mut Tx,
                new: &RefreshToken,
                caps: RefreshCaps,
                now: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash IN ( \
                       SELECT token_hash FROM refresh_tokens \
                       WHERE user_id = $1 AND client_id = $2 AND rotated_at IS NULL AND revoked = 0 \
                         AND (expires_at IS NULL OR expires_at > $3) AND token_hash <> $4 \
                       ORDER BY created_at DESC, token_hash DESC LIMIT 1000000000 OFFSET $5)",
                )
                .bind(&new.user_id)
                .bind(&new.client_id)
                .bind(now)
                .bind(&new.token_hash)
                .bind((caps.per_client_user - 1).max(0))
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash IN ( \
                       SELECT token_hash FROM refresh_tokens \
                       WHERE user_id = $1 AND rotated_at IS NULL AND revoked = 0 \
                         AND (expires_at IS NULL OR expires_at > $2) AND token_hash <> $3 \
                       ORDER BY created_at DESC, token_hash DESC LIMIT 1000000000 OFFSET $4)",
                )
                .bind(&new.user_id)
                .bind(now)
                .bind(&new.token_hash)
                .bind((caps.per_user - 1).max(0))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Carries out a [`Claim`] in `tx`; true if this one won.
            pub(crate) async fn claim_then_store(tx: &mut Tx, c: &crate::sql_store::Claim) -> Result<bool, sqlx::Error> {
                let mut q = sqlx::query(c.sql).bind(&c.key);
                if let Some(at) = c.at {
                    q = q.bind(at);
                }
                if q.execute(&mut **tx).await?.rows_affected() != 1 {
                    return Ok(false);
                }
                match c.caps {
                    Some(caps) => store_new_grant(tx, &c.issue, caps, c.now).await?,
                    // A rotation: one live token replaces another, the caps are unchanged.
                    None => insert_issue(tx, &c.issue).await?,
                }
                Ok(true)
            }

            /// Redeems a single-use grant (a code, an approved device authorization).
            async fn redeem_once(
                store: &$Store,
                claim: &'static str,
                key: &str,
                issue: &TokenIssue,
                caps: RefreshCaps,
                now: i64,
            ) -> StoreResult<Redemption> {
                let claim = crate::sql_store::Claim { sql: claim, key: key.to_string(), at: None, issue: issue.clone(), caps: Some(caps), now };
                Ok(if store.claim_durably(claim).await? { Redemption::Issued } else { Redemption::AlreadyUsed })
            }

            /// One transaction for the batch; for each job, whether it won (grants always do).
            pub(crate) async fn write_batch(pool: &sqlx::Pool<$Db>, batch: &[Pending]) -> Result<Vec<bool>, BatchError> {
                let mut won = vec![false; batch.len()];
                // Access tokens alone (app tokens) need no cap checks: multi-row INSERTs store a
                // whole run of them, instead of a statement (and a hop to SQLite's thread) each.
                let mut alone = Vec::new();
                for (i, p) in batch.iter().enumerate() {
                    if let Pending::Grant(g) = p {
                        if g.issue.refresh.is_none() {
                            alone.push(&g.issue);
                            won[i] = true;
                        }
                    }
                }
                // Nothing but app tokens, and few enough for one INSERT: no transaction around
                // it, one statement (one round trip on PostgreSQL) that commits by itself.
                if alone.len() == batch.len() && alone.len() <= crate::group_commit::ROWS_PER_INSERT {
                    let access: Vec<&AccessToken> = alone.iter().map(|i| &i.access).collect();
                    insert_access_rows(access).build().execute(pool).await.map_err(db_err)?;
                    return Ok(won);
                }

                let mut tx = pool.begin_with($begin).await.map_err(db_err)?;
                insert_issues(&mut tx, &alone).await.map_err(db_err)?;

                // Refresh rotations in bulk too: one UPDATE claims every old token it can, and says
                // which; of two rotations of one token, the first in arrival order wins.
                let mut rotations: Vec<(usize, &crate::sql_store::Claim)> = Vec::new();
                for (i, p) in batch.iter().enumerate() {
                    if let Pending::Claim(c) = p {
                        if c.claim.caps.is_none() {
                            rotations.push((i, &c.claim));
                        }
                    }
                }
                if !rotations.is_empty() {
                    let at = rotations[0].1.at.unwrap_or(rotations[0].1.now);
                    let mut update = sqlx::QueryBuilder::<$Db>::new("UPDATE refresh_tokens SET rotated_at = ");
                    update.push_bind(at).push(" WHERE rotated_at IS NULL AND revoked = 0 AND token_hash IN (");
                    let mut list = update.separated(", ");
                    for (_, c) in &rotations {
                        list.push_bind(&c.key);
                    }
                    update.push(") RETURNING token_hash");
                    let rows = update.build().fetch_all(&mut *tx).await.map_err(db_err)?;
                    let mut claimed: std::collections::HashSet<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
                    let mut issues = Vec::new();
                    for (i, c) in &rotations {
                        if claimed.remove(&c.key) {
                            won[*i] = true;
                            issues.push(&c.issue);
                        }
                    }
                    insert_issues(&mut tx, &issues).await.map_err(db_err)?;
                }

                // The rest one by one: grants with refresh tokens (their caps), redemptions,
                // and rotations decided on the token read here (`read_then_rotate`).
                for (i, p) in batch.iter().enumerate() {
                    match p {
                        Pending::Grant(g) if g.issue.refresh.is_some() => {
                            store_new_grant(&mut tx, &g.issue, g.caps, g.now).await.map_err(db_err)?;
                            won[i] = true;
                        }
                        Pending::Claim(c) if c.claim.caps.is_some() => {
                            won[i] = claim_then_store(&mut tx, &c.claim).await.map_err(db_err)?;
                        }
                        Pending::Presented(job) => {
                            won[i] = read_then_rotate(&mut tx, job).await.map_err(db_err)?;
                        }
                        _ => {}
                    }
                }
                tx.commit().await.map_err(|e| BatchError { error: db_err(e), rolled_back: false })?;
                Ok(won)
            }

            /// A rotation decided on the stored token (`Store::rotate_presented`), inside the
            /// batch's transaction; what it found is left in the job for its caller.
            async fn read_then_rotate(tx: &mut Tx, job: &crate::group_commit::PresentedJob) -> Result<bool, sqlx::Error> {
                let sql = format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1");
                let row = sqlx::query(&sql).bind(&job.key).fetch_optional(&mut **tx).await?;
                let found = match row.as_ref().map(refresh).transpose()? {
                    None => Presented::Unknown,
                    Some(record) => match (job.decide)(&record) {
                        None => Presented::Refused(record),
                        Some(issue) => {
                            let rotated = sqlx::query(crate::sql_store::ROTATE)
                                .bind(&job.key)
                                .bind(job.now)
                                .execute(&mut **tx)
                                .await?
                                .rows_affected();
                            if rotated == 1 {
                                insert_issues(tx, &[&issue]).await?;
                                Presented::Rotated(record)
                            } else {
                                Presented::NotLive
                            }
                        }
                    },
                };
                let won = matches!(found, Presented::Rotated(_));
                job.found(found);
                Ok(won)
            }

            /// Stores the access (and any refresh) tokens of `issues` with multi-row INSERTs.
            async fn insert_issues(tx: &mut Tx, issues: &[&TokenIssue]) -> Result<(), sqlx::Error> {
                // Plain loops, not iterator adapters: closures held across an await keep
                // the future from being Send (rustc's "FnOnce is not general enough").
                for chunk in issues.chunks(crate::group_commit::ROWS_PER_INSERT) {
                    let mut access = Vec::with_capacity(chunk.len());
                    let mut refresh = Vec::with_capacity(chunk.len());
                    for issue in chunk {
                        access.push(&issue.access);
                        refresh.extend(issue.refresh.as_ref());
                    }
                    insert_access_rows(access).build().execute(&mut **tx).await?;
                    if !refresh.is_empty() {
                        insert_refresh_rows(refresh).build().execute(&mut **tx).await?;
                    }
                }
                Ok(())
            }

            /// The group commit's writer on this backend.
            pub(crate) struct Batches(pub sqlx::Pool<$Db>);

            impl crate::group_commit::WriteBatch for Batches {
                async fn write(&self, batch: &[Pending]) -> Result<Vec<bool>, BatchError> {
                    write_batch(&self.0, batch).await
                }
            }

            /// Revokes the live refresh tokens `filter` selects (`$1`, `$2`… are `values`).
            /// Rotated ones are left as they are (the indexes that find a user's, a client's
            /// or a family's tokens hold live ones only): none can be used again, and a
            /// reuse of one revokes its family.
            /// A rotation in flight may insert a new token the UPDATE's snapshot cannot see
            /// (PostgreSQL, READ COMMITTED): the UPDATE waits on the row the rotation locked,
            /// finds it rotated and skips it. So an UPDATE that revokes nothing proves
            /// little; only a fresh statement that finds no live token ends the loop (a
            /// rotation not yet committed still shows its old token live to it). Access
            /// tokens are revoked after this, once every rotation that could add one has
            /// committed.
            async fn revoke_live_refresh(tx: &mut Tx, filter: &str, values: &[&str]) -> Result<(), sqlx::Error> {
                let live = format!("{filter} AND rotated_at IS NULL AND revoked = 0");
                let revoke = format!("UPDATE refresh_tokens SET revoked = 1 WHERE {live}");
                let any_left = format!("SELECT 1 FROM refresh_tokens WHERE {live} LIMIT 1");
                loop {
                    let mut update = sqlx::query(&revoke);
                    for v in values {
                        update = update.bind(*v);
                    }
                    if update.execute(&mut **tx).await?.rows_affected() > 0 {
                        continue;
                    }
                    let mut check = sqlx::query(&any_left);
                    for v in values {
                        check = check.bind(*v);
                    }
                    if check.fetch_optional(&mut **tx).await?.is_none() {
                        return Ok(());
                    }
                }
            }

            /// Revokes `family`'s live refresh tokens, then its access tokens; `column` says
            /// which tokens are the family's: `family_id`, or `code_hash` for tokens issued
            /// from a code before migration 0008. Neither has an index of its own (each cost
            /// every rotation index writes): the tokens are found among those of the family's
            /// client and user (`refresh_tokens_live`, `access_tokens_client_user`).
            async fn revoke_family_in(tx: &mut Tx, family: Family<'_>, column: &str) -> Result<(), sqlx::Error> {
                let filter = format!("user_id = $1 AND client_id = $2 AND {column} = $3");
                revoke_live_refresh(tx, &filter, &[family.user_id, family.client_id, family.id]).await?;
                let access = format!(
                    "UPDATE access_tokens SET revoked = 1 WHERE client_id = $1 AND user_id = $2 AND {column} = $3 AND revoked = 0"
                );
                sqlx::query(&access).bind(family.client_id).bind(family.user_id).bind(family.id).execute(&mut **tx).await?;
                Ok(())
            }

            pub(crate) async fn store_new_grant(
                tx: &mut Tx,
                issue: &TokenIssue,
                caps: RefreshCaps,
                now: i64,
            ) -> Result<(), sqlx::Error> {
                if let Some(r) = &issue.refresh {
                    // Serialise grants to one user so two at once cannot both slip under
                    // a cap. Taken before the inserts, whose foreign keys share-lock the
                    // same row: the other order deadlocks on PostgreSQL.
                    sqlx::query(concat!("SELECT id FROM users WHERE id = $1", $lock))
                        .bind(&r.user_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                }
                insert_issue(tx, issue).await?;
                if let Some(r) = &issue.refresh {
                    enforce_caps(tx, r, caps, now).await?;
                }
                Ok(())
            }

            #[async_trait]
            impl Store for $Store {
                async fn create_user(&self, u: &User) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO users (id, login, email, password_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&u.id)
                    .bind(&u.login)
                    .bind(&u.email)
                    .bind(&u.password_hash)
                    .bind(u.created_at)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)
                    .map_err(conflict_as("that login is taken"))?;
                    Ok(())
                }

                async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
                    let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
                    let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(user).transpose().map_err(db_err)
                }

                async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
                    let sql = format!("SELECT {USER_COLS} FROM users WHERE lower(login) = lower($1)");
                    let row = sqlx::query(&sql).bind(login).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(user).transpose().map_err(db_err)
                }

                async fn create_client(&self, c: &Client) -> StoreResult<()> {
                    let uris = serde_json::to_string(&c.redirect_uris)
                        .map_err(|e| gatehouse_core::error::StoreError::Backend(e.to_string()))?;
                    sqlx::query(
                        "INSERT INTO clients (id, name, owner_user_id, category, kind, allow_implicit, \
                         redirect_uris, secret_hash, previous_secret_hash, previous_secret_expires_at, \
                         created_at, jwt_access_tokens) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10)",
                    )
                    .bind(&c.id)
                    .bind(&c.name)
                    .bind(&c.owner_user_id)
                    .bind(&c.category)
                    .bind(c.kind.as_str())
                    .bind(c.allow_implicit as i64)
                    .bind(uris)
                    .bind(&c.secret_hash)
                    .bind(c.created_at)
                    .bind(c.jwt_access_tokens as i64)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)
                    .map_err(conflict_as("an application with that name already exists"))?;
                    Ok(())
                }

                async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
                    if let Some(found) = self.lookup_client(id).await {
                        return found;
                    }
                    let sql = format!("SELECT {CLIENT_COLS} FROM clients WHERE id = $1");
                    let row = sqlx::query(&sql).bind(id).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(client).transpose().map_err(db_err)
                }

                async fn list_clients(&self, owner: Option<&str>) -> StoreResult<Vec<Client>> {
                    let sql = format!(
                        "SELECT {CLIENT_COLS} FROM clients WHERE ($1 IS NULL OR owner_user_id = $1) \
                         ORDER BY created_at, name"
                    );
                    let rows = sqlx::query(&sql).bind(owner).fetch_all(self.reader()).await.map_err(db_err)?;
                    rows.iter().map(client).collect::<Result<_, _>>().map_err(db_err)
                }

                async fn delete_client(&self, id: &str) -> StoreResult<bool> {
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        for sql in [
                            "DELETE FROM access_tokens WHERE client_id = $1",
                            "DELETE FROM refresh_tokens WHERE client_id = $1",
                            "DELETE FROM authorization_codes WHERE client_id = $1",
                            "DELETE FROM consents WHERE client_id = $1",
                        ] {
                            sqlx::query(sql).bind(id).execute(&mut *tx).await.map_err(db_err)?;
                        }
                        let n = sqlx::query("DELETE FROM clients WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?
                            .rows_affected();
                        tx.commit().await.map_err(db_err)?;
                        Ok(n > 0)
                    })
                    .await
                }

                async fn rotate_client_secret(
                    &self,
                    id: &str,
                    new_hash: &str,
                    previous_expires_at: Option<i64>,
                ) -> StoreResult<bool> {
                    let n = sqlx::query(
                        "UPDATE clients SET \
                           previous_secret_hash = CASE WHEN CAST($3 AS BIGINT) IS NULL THEN NULL ELSE secret_hash END, \
                           previous_secret_expires_at = CAST($3 AS BIGINT), \
                           secret_hash = $2 \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(new_hash)
                    .bind(previous_expires_at)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                    Ok(n > 0)
                }

                async fn update_client(
                    &self,
                    id: &str,
                    name: &str,
                    category: &str,
                    redirect_uris: &[String],
                    allow_implicit: bool,
                ) -> StoreResult<bool> {
                    let uris = serde_json::to_string(redirect_uris)
                        .map_err(|e| gatehouse_core::error::StoreError::Backend(e.to_string()))?;
                    let n = sqlx::query(
                        "UPDATE clients SET name = $2, category = $3, redirect_uris = $4, allow_implicit = $5 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(name)
                    .bind(category)
                    .bind(uris)
                    .bind(allow_implicit as i64)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)
                    .map_err(conflict_as("an application with that name already exists"))?
                    .rows_affected();
                    Ok(n > 0)
                }

                async fn change_password(&self, user_id: &str, hash: &str, keep_session: &str) -> StoreResult<()> {
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                            .bind(user_id)
                            .bind(hash)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        revoke_live_refresh(&mut tx, "user_id = $1", &[user_id]).await.map_err(db_err)?;
                        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
                            .bind(user_id)
                            .bind(keep_session)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        tx.commit().await.map_err(db_err)
                    })
                    .await
                }

                async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<(Consent, Client)>> {
                    let sql = format!(
                        "SELECT co.user_id, co.client_id, co.scopes, co.granted_at, co.updated_at, {} \
                         FROM consents co JOIN clients c ON c.id = co.client_id WHERE co.user_id = $1 \
                         ORDER BY co.updated_at DESC, c.name",
                        CLIENT_COLS.split(", ").map(|col| format!("c.{col}")).collect::<Vec<_>>().join(", ")
                    );
                    let rows = sqlx::query(&sql).bind(user_id).fetch_all(self.reader()).await.map_err(db_err)?;
                    rows.iter()
                        .map(|r| Ok((consent(r)?, client(r)?)))
                        .collect::<Result<_, sqlx::Error>>()
                        .map_err(db_err)
                }

                async fn disconnect(&self, user_id: &str, client_id: &str) -> StoreResult<()> {
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        let run = |sql: &'static str| sqlx::query(sql).bind(user_id).bind(client_id);
                        run("DELETE FROM consents WHERE user_id = $1 AND client_id = $2").execute(&mut *tx).await.map_err(db_err)?;
                        // Grants given but not yet exchanged would bring the app back.
                        run("DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2").execute(&mut *tx).await.map_err(db_err)?;
                        run("UPDATE device_authorizations SET status = 'denied' WHERE user_id = $1 AND client_id = $2 AND status = 'approved'")
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        revoke_live_refresh(&mut tx, "user_id = $1 AND client_id = $2", &[user_id, client_id]).await.map_err(db_err)?;
                        run("UPDATE access_tokens SET revoked = 1 WHERE user_id = $1 AND client_id = $2 AND revoked = 0")
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        tx.commit().await.map_err(db_err)
                    })
                    .await
                }

                async fn create_session(&self, s: &Session) -> StoreResult<()> {
                    sqlx::query("INSERT INTO sessions (id_hash, user_id, auth_time, expires_at) VALUES ($1, $2, $3, $4)")
                        .bind(&s.id_hash)
                        .bind(&s.user_id)
                        .bind(s.auth_time)
                        .bind(s.expires_at)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
                    let row = sqlx::query(
                        "SELECT id_hash, user_id, auth_time, expires_at FROM sessions \
                         WHERE id_hash = $1 AND expires_at > $2",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_err)?;
                    let Some(r) = row else { return Ok(None) };
                    let s = (|| -> Result<Session, sqlx::Error> {
                        Ok(Session {
                            id_hash: r.try_get("id_hash")?,
                            user_id: r.try_get("user_id")?,
                            auth_time: r.try_get("auth_time")?,
                            expires_at: r.try_get("expires_at")?,
                        })
                    })()
                    .map_err(db_err)?;
                    Ok(Some(s))
                }

                async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                        .bind(id_hash)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn insert_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, \
                         scopes, code_challenge, code_challenge_method, nonce, auth_time, created_at, \
                         expires_at, used, redirect_uri_given) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)",
                    )
                    .bind(&c.code_hash)
                    .bind(&c.client_id)
                    .bind(&c.user_id)
                    .bind(&c.redirect_uri)
                    .bind(c.scopes.to_space_separated())
                    .bind(&c.code_challenge)
                    .bind(c.code_challenge_method.map(|m| m.as_str()))
                    .bind(&c.nonce)
                    .bind(c.auth_time)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(c.redirect_uri_given as i64)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                    Ok(())
                }

                async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>> {
                    let sql = format!("SELECT {CODE_COLS} FROM authorization_codes WHERE code_hash = $1");
                    let row = sqlx::query(&sql).bind(code_hash).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(code).transpose().map_err(db_err)
                }

                async fn redeem_code(
                    &self,
                    code_hash: &str,
                    issue: &TokenIssue,
                    caps: RefreshCaps,
                    now: i64,
                ) -> StoreResult<Redemption> {
                    redeem_once(self, "UPDATE authorization_codes SET used = 1 WHERE code_hash = $1 AND used = 0", code_hash, issue, caps, now).await
                }

                async fn revoke_tokens_from_code(&self, code: Family<'_>) -> StoreResult<()> {
                    // Tokens issued before migration 0008 have a family of their own and name
                    // the code only in code_hash, no longer indexed. Only codes of that time
                    // (keys without the issue-order prefix) can have such tokens, and only a
                    // replay within the hour or so that codes are kept can ask: a scan, once.
                    let before_0008 = !gatehouse_core::secret::has_order_prefix(code.id);
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        revoke_family_in(&mut tx, code, "family_id").await.map_err(db_err)?;
                        if before_0008 {
                            revoke_family_in(&mut tx, code, "code_hash").await.map_err(db_err)?;
                        }
                        tx.commit().await.map_err(db_err)?;
                        Ok(())
                    })
                    .await
                }

                async fn insert_tokens(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<()> {
                    self.insert_tokens_durably(issue, caps, now).await
                }

                async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<AccessTokenInfo>> {
                    if let Some(found) = self.lookup_access(token_hash).await {
                        return found;
                    }
                    let sql = format!("{ACCESS_SELECT} WHERE a.token_hash = $1");
                    let row = sqlx::query(&sql).bind(token_hash).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(access).transpose().map_err(db_err)
                }

                async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
                    if let Some(found) = self.lookup_refresh(token_hash).await {
                        return found;
                    }
                    let sql = format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1");
                    let row = sqlx::query(&sql).bind(token_hash).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(refresh).transpose().map_err(db_err)
                }

                async fn rotate_refresh_token(&self, old_hash: &str, issue: TokenIssue, now: i64) -> StoreResult<Rotation> {
                    let claim = crate::sql_store::Claim {
                        sql: crate::sql_store::ROTATE,
                        key: old_hash.to_string(),
                        at: Some(now),
                        issue,
                        caps: None,
                        now,
                    };
                    Ok(if self.claim_durably(claim).await? { Rotation::Rotated } else { Rotation::NotLive })
                }

                async fn rotate_presented(&self, old_hash: &str, now: i64, decide: Decide) -> StoreResult<Presented> {
                    self.rotate_presented_here(old_hash, now, decide).await
                }

                async fn revoke_family(&self, family: Family<'_>) -> StoreResult<()> {
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        revoke_family_in(&mut tx, family, "family_id").await.map_err(db_err)?;
                        tx.commit().await.map_err(db_err)?;
                        Ok(())
                    })
                    .await
                }

                async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<()> {
                    sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn revoke_access_token(&self, token_hash: &str) -> StoreResult<()> {
                    sqlx::query("UPDATE access_tokens SET revoked = 1 WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
                    let row = sqlx::query(
                        "SELECT user_id, client_id, scopes, granted_at, updated_at FROM consents \
                         WHERE user_id = $1 AND client_id = $2",
                    )
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_err)?;
                    row.as_ref().map(consent).transpose().map_err(db_err)
                }

                async fn grant_consent(
                    &self,
                    user_id: &str,
                    client_id: &str,
                    scopes: &ScopeSet,
                    now: i64,
                ) -> StoreResult<()> {
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        // Make sure the row exists first, so that the locking read below has
                        // a row to lock even on the first grant: two first grants at once
                        // then queue instead of one overwriting the other.
                        sqlx::query(
                            "INSERT INTO consents (user_id, client_id, scopes, granted_at, updated_at) \
                             VALUES ($1, $2, '', $3, $3) ON CONFLICT (user_id, client_id) DO NOTHING",
                        )
                        .bind(user_id)
                        .bind(client_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                        let earlier: String = sqlx::query_scalar(concat!(
                            "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2",
                            $lock
                        ))
                        .bind(user_id)
                        .bind(client_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_err)?;
                        let merged = ScopeSet::from_stored(&earlier).union(scopes);
                        sqlx::query("UPDATE consents SET scopes = $3, updated_at = $4 WHERE user_id = $1 AND client_id = $2")
                            .bind(user_id)
                            .bind(client_id)
                            .bind(merged.to_space_separated())
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        tx.commit().await.map_err(db_err)?;
                        Ok(())
                    })
                    .await
                }

                async fn insert_signing_key(&self, k: &SigningKey) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, retired_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&k.kid)
                    .bind(&k.alg)
                    .bind(&k.private_key)
                    .bind(&k.public_jwk)
                    .bind(k.created_at)
                    .bind(k.retired_at)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                    Ok(())
                }

                async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
                    let rows = sqlx::query(
                        "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
                    )
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_err)?;
                    rows.iter()
                        .map(|r| -> Result<SigningKey, sqlx::Error> {
                            Ok(SigningKey {
                                kid: r.try_get("kid")?,
                                alg: r.try_get("alg")?,
                                private_key: r.try_get("private_key")?,
                                public_jwk: r.try_get("public_jwk")?,
                                created_at: r.try_get("created_at")?,
                                retired_at: r.try_get("retired_at")?,
                            })
                        })
                        .collect::<Result<_, _>>()
                        .map_err(db_err)
                }

                async fn retire_signing_keys(&self, keep_kid: &str, now: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE signing_keys SET retired_at = $2 WHERE kid <> $1 AND retired_at IS NULL")
                        .bind(keep_kid)
                        .bind(now)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn insert_device(&self, d: &DeviceAuthorization) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scopes, status, \
                         user_id, auth_time, created_at, expires_at, poll_interval, last_poll_at) \
                         VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8, NULL)",
                    )
                    .bind(&d.device_code_hash)
                    .bind(&d.user_code_hash)
                    .bind(&d.client_id)
                    .bind(d.scopes.to_space_separated())
                    .bind(d.status.as_str())
                    .bind(d.created_at)
                    .bind(d.expires_at)
                    .bind(d.interval)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                    Ok(())
                }

                async fn find_device_by_user_code(&self, user_code_hash: &str) -> StoreResult<Option<DeviceAuthorization>> {
                    let sql = format!("SELECT {DEVICE_COLS} FROM device_authorizations WHERE user_code_hash = $1");
                    let row = sqlx::query(&sql).bind(user_code_hash).fetch_optional(self.reader()).await.map_err(db_err)?;
                    row.as_ref().map(device).transpose().map_err(db_err)
                }

                async fn poll_device(&self, hash: &str, now: i64) -> StoreResult<Option<(DeviceAuthorization, bool)>> {
                    retrying(|| async move {
                        let mut tx = self.begin_write().await.map_err(db_err)?;
                        let sql = format!("SELECT {DEVICE_COLS} FROM device_authorizations WHERE device_code_hash = $1{}", $lock);
                        let Some(row) = sqlx::query(&sql).bind(hash).fetch_optional(&mut *tx).await.map_err(db_err)? else {
                            tx.rollback().await.map_err(db_err)?;
                            return Ok(None);
                        };
                        let d = device(&row).map_err(db_err)?;
                        let too_fast = d.last_poll_at.is_some_and(|last| now - last < d.interval);
                        let interval = if too_fast { d.interval + 5 } else { d.interval };
                        sqlx::query("UPDATE device_authorizations SET last_poll_at = $2, poll_interval = $3 WHERE device_code_hash = $1")
                            .bind(hash)
                            .bind(now)
                            .bind(interval)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        tx.commit().await.map_err(db_err)?;
                        Ok(Some((d, too_fast)))
                    })
                    .await
                }

                async fn decide_device(&self, hash: &str, approve: Option<(&str, i64)>, now: i64) -> StoreResult<bool> {
                    let status = if approve.is_some() { "approved" } else { "denied" };
                    let n = sqlx::query(
                        "UPDATE device_authorizations SET status = $2, user_id = $3, auth_time = $4 \
                         WHERE device_code_hash = $1 AND status = 'pending' AND expires_at > $5",
                    )
                    .bind(hash)
                    .bind(status)
                    .bind(approve.map(|(u, _)| u))
                    .bind(approve.map(|(_, t)| t))
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                    Ok(n == 1)
                }

                async fn redeem_device(&self, hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<Redemption> {
                    let claim = "UPDATE device_authorizations SET status = 'used' WHERE device_code_hash = $1 AND status = 'approved'";
                    redeem_once(self, claim, hash, issue, caps, now).await
                }

                async fn channel(&self, user_id: &str, new_stream_key: &str, now: i64) -> StoreResult<Channel> {
                    sqlx::query(
                        "INSERT INTO api_channels (user_id, status, game, stream_key, last_commercial_at, updated_at) \
                         VALUES ($1, '', '', $2, NULL, $3) ON CONFLICT (user_id) DO NOTHING",
                    )
                    .bind(user_id)
                    .bind(new_stream_key)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                    let r = sqlx::query(
                        "SELECT user_id, status, game, stream_key, last_commercial_at, updated_at \
                         FROM api_channels WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .fetch_one(self.writer())
                    .await
                    .map_err(db_err)?;
                    (|| -> Result<Channel, sqlx::Error> {
                        Ok(Channel {
                            user_id: r.try_get("user_id")?,
                            status: r.try_get("status")?,
                            game: r.try_get("game")?,
                            stream_key: r.try_get("stream_key")?,
                            last_commercial_at: r.try_get("last_commercial_at")?,
                            updated_at: r.try_get("updated_at")?,
                        })
                    })()
                    .map_err(db_err)
                }

                async fn update_channel(&self, user_id: &str, status: Option<&str>, game: Option<&str>, now: i64) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE api_channels SET status = COALESCE($2, status), game = COALESCE($3, game), \
                         updated_at = $4 WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .bind(status)
                    .bind(game)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?;
                    Ok(())
                }

                async fn set_stream_key(&self, user_id: &str, stream_key: &str, now: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE api_channels SET stream_key = $2, updated_at = $3 WHERE user_id = $1")
                        .bind(user_id)
                        .bind(stream_key)
                        .bind(now)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn record_commercial(&self, user_id: &str, now: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE api_channels SET last_commercial_at = $2 WHERE user_id = $1")
                        .bind(user_id)
                        .bind(now)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn relate(&self, kind: Relation, user_id: &str, target: &str, now: i64) -> StoreResult<bool> {
                    let n = sqlx::query(
                        "INSERT INTO api_relations (kind, user_id, target_user_id, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (kind, user_id, target_user_id) DO NOTHING",
                    )
                    .bind(kind.as_str())
                    .bind(user_id)
                    .bind(target)
                    .bind(now)
                    .execute(self.writer())
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                    Ok(n > 0)
                }

                async fn unrelate(&self, kind: Relation, user_id: &str, target: &str) -> StoreResult<bool> {
                    let n = sqlx::query("DELETE FROM api_relations WHERE kind = $1 AND user_id = $2 AND target_user_id = $3")
                        .bind(kind.as_str())
                        .bind(user_id)
                        .bind(target)
                        .execute(self.writer())
                        .await
                        .map_err(db_err)?
                        .rows_affected();
                    Ok(n > 0)
                }

                async fn related_to(&self, kind: Relation, user_id: &str) -> StoreResult<Vec<RelatedUser>> {
                    let rows = sqlx::query(
                        "SELECT u.id, u.login, r.created_at FROM api_relations r JOIN users u ON u.id = r.target_user_id \
                         WHERE r.kind = $1 AND r.user_id = $2 ORDER BY r.created_at, u.login",
                    )
                    .bind(kind.as_str())
                    .bind(user_id)
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_err)?;
                    rows.iter().map(related).collect::<Result<_, _>>().map_err(db_err)
                }

                async fn related_from(&self, kind: Relation, target: &str) -> StoreResult<Vec<RelatedUser>> {
                    let rows = sqlx::query(
                        "SELECT u.id, u.login, r.created_at FROM api_relations r JOIN users u ON u.id = r.user_id \
                         WHERE r.kind = $1 AND r.target_user_id = $2 ORDER BY r.created_at, u.login",
                    )
                    .bind(kind.as_str())
                    .bind(target)
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_err)?;
                    rows.iter().map(related).collect::<Result<_, _>>().map_err(db_err)
                }

                async fn take_rate_tokens(&self, bucket: &str, budget: RateBudget, now: i64, count: i64) -> StoreResult<RateTake> {
                    // One statement, so the row is locked only while it runs: the
                    // token-bucket arithmetic of RateBudget::take, in SQL, for `count`
                    // requests at once (all that the bucket holds whole requests for).
                    // Elapsed time is capped at the window (a bucket is full by then),
                    // which also keeps elapsed × full well inside 64 bits. SQL has no
                    // local names, so the text is assembled once from its parts.
                    // $1 bucket, $2 full level, $3 now, $4 window, $5 count.
                    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                        let elapsed = "(CASE WHEN $3 - b.updated_at > $4 THEN $4 \
                                       WHEN $3 > b.updated_at THEN $3 - b.updated_at ELSE 0 END)";
                        let gained = format!("b.level + {elapsed} * $2 / $4");
                        let r = format!("(CASE WHEN {gained} >= $2 THEN $2 ELSE {gained} END)");
                        let taken = |level: &str| format!("(CASE WHEN {level} / 1000 >= $5 THEN $5 ELSE {level} / 1000 END)");
                        format!(
                            "INSERT INTO rate_buckets AS b (bucket, level, updated_at, allowed) \
                             VALUES ($1, $2 - 1000 * {new_taken}, $3, {new_taken}) \
                             ON CONFLICT (bucket) DO UPDATE SET \
                             level = {r} - 1000 * {taken}, \
                             allowed = {taken}, \
                             updated_at = CASE WHEN $3 > b.updated_at THEN $3 ELSE b.updated_at END \
                             RETURNING level, allowed",
                            new_taken = taken("$2"),
                            taken = taken(&r),
                        )
                    });
                    let (full, window) = (budget.full_level(), budget.window.max(1));
                    retrying(|| async {
                        let row = sqlx::query(SQL.as_str())
                            .bind(bucket)
                            .bind(full)
                            .bind(now)
                            .bind(window)
                            .bind(count)
                            .fetch_one(self.rate_writer())
                            .await
                            .map_err(db_err)?;
                        Ok(RateTake { level: row.try_get("level").map_err(db_err)?, allowed: row.try_get("allowed").map_err(db_err)? })
                    })
                    .await
                }

                async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
                    // Used codes are kept an hour past expiry so that a late replay is
                    // still recognised; rotated refresh tokens 30 days, for reuse detection.
                    // Rate buckets untouched for a day are full again (no window is longer).
                    // One rule per condition, each token condition with its own index
                    // (migration 0007): an OR of them scanned the whole table for
                    // every batch. Rate buckets are the exception: an index on
                    // updated_at would cost every rate-limited request an index update.
                    // `$1` is the cutoff, where the rule has one.
                    let rules: [(&str, &str, &str, Option<i64>); 9] = [
                        ("authorization_codes", "code_hash", "expires_at <= $1", Some(now - 3600)),
                        ("device_authorizations", "device_code_hash", "expires_at <= $1", Some(now - 3600)),
                        ("sessions", "id_hash", "expires_at <= $1", Some(now)),
                        ("access_tokens", "token_hash", "expires_at <= $1", Some(now)),
                        ("access_tokens", "token_hash", "revoked = 1", None),
                        ("refresh_tokens", "token_hash", "expires_at <= $1", Some(now)),
                        ("refresh_tokens", "token_hash", "rotated_at <= $1", Some(now - 2_592_000)),
                        ("refresh_tokens", "token_hash", "revoked = 1", None),
                        ("rate_buckets", "bucket", "updated_at <= $1", Some(now - 86400)),
                    ];
                    let mut total = 0;
                    for (table, key, cond, cutoff) in rules {
                        let sql = format!(
                            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {cond} LIMIT 500)"
                        );
                        loop {
                            let mut query = sqlx::query(&sql);
                            if let Some(cutoff) = cutoff {
                                query = query.bind(cutoff);
                            }
                            let n = query
                                .execute(self.writer())
                                .await
                                .map_err(db_err)?
                                .rows_affected();
                            total += n;
                            if n < 500 {
                                break;
                            }
                            // Let waiting requests have the writer between batches.
                            tokio::task::yield_now().await;
                        }
                    }
                    Ok(total)
                }
            }
        }
    };
}

pub(crate) use impl_store;

pub(crate) fn conflict_as(what: &str) -> impl Fn(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => StoreError::Conflict(what.to_string()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_conflicts_are_retried_then_reported() {
        let calls = AtomicU32::new(0);
        let r: StoreResult<u32> = retrying(|| async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 3 { Err(StoreError::Retryable("deadlock".into())) } else { Ok(n) }
        })
        .await;
        assert_eq!(r.unwrap(), 3);

        calls.store(0, Ordering::SeqCst);
        let r: StoreResult<()> = retrying(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Retryable("serialization".into()))
        })
        .await;
        assert!(matches!(r, Err(StoreError::Retryable(_))));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);

        calls.store(0, Ordering::SeqCst);
        let r: StoreResult<()> = retrying(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Backend("disk full".into()))
        })
        .await;
        assert!(matches!(r, Err(StoreError::Backend(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "other errors are not retried");
    }
}
