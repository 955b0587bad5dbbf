//! The group commit's writer on SQLite, for batches of refresh rotations. sqlx runs each
//! statement on its connection's own thread, so a batch of five statements was five
//! hand-offs to that thread and back, and rows came back one hand-off at a time: under
//! the refresh load the two threads switched some thirty times a batch. Such batches
//! (rotations, and app tokens beside them) therefore run on the writer's own thread,
//! through the same connection's SQLite handle, borrowed from sqlx for the length of one
//! transaction: two hand-offs a batch (the borrow, and sqlx's check of the connection
//! as it goes back to its pool). Anything else (grants that check the refresh caps,
//! code and device redemptions) goes the general way (`store_impl::write_batch`). Same
//! connection, same `synchronous=FULL`: a batch is on disk before anyone is answered.
//!
//! A presented rotation (`Store::rotate_presented`) also reads its token here, on the
//! one connection whose page cache the commits leave warm: read on a request thread's
//! read-only connection, whose cache every commit empties, it cost that thread a
//! tenth of its time; here it costs the writer a B-tree lookup in cached pages.
//!
//! The statements stay prepared from one batch to the next while batches follow each
//! other (preparing them for each batch was a tenth of the writer's time under load).
//! sqlx cannot close a connection that has statements of ours open (SQLite refuses, and
//! sqlx panics), so the writer pool never closes its connection on its own
//! (`SqliteStore::open`), and ours are finalized, with sqlx's thread locked off the
//! connection, whenever the writer's queue runs empty (`idle`; a server that stops, or
//! sits idle, holds none), and before a connection stuck in a transaction is thrown away.

use std::mem::ManuallyDrop;
use std::sync::{LazyLock, Mutex, PoisonError};

use gatehouse_core::model::{AccessToken, RefreshToken};
use rusqlite::{named_params, params, Connection};
use sqlx::{Pool, Sqlite};

use gatehouse_core::store::{Presented, TokenIssue};

use crate::direct_read::read_refresh;
use crate::group_commit::{BatchError, Pending, WriteBatch};
use crate::sql_store::{db_err, rusqlite_err, INSERT_ACCESS, INSERT_REFRESH, ROTATE};
use crate::sqlite::store_impl;

pub(crate) struct SqliteBatches {
    borrowed: Mutex<Option<Borrowed>>,
    pool: Pool<Sqlite>,
    general: store_impl::Batches,
}

/// The writer connection's SQLite handle seen through rusqlite, which does not own it,
/// with the statements it keeps prepared. Never dropped as such (that would finalize the
/// statements without the lock): `finalize` does it, under the lock.
struct Borrowed {
    handle: usize,
    db: ManuallyDrop<Connection>,
}

impl Borrowed {
    /// Finalizes the statements; the caller holds the connection's lock.
    fn finalize(self) {
        drop(ManuallyDrop::into_inner(self.db));
    }
}

impl SqliteBatches {
    pub fn new(pool: Pool<Sqlite>) -> Self {
        SqliteBatches {
            borrowed: Mutex::new(None),
            general: store_impl::Batches(pool.clone()),
            pool,
        }
    }

    /// Puts back statements that could not be finalized just now, for the next try.
    fn keep(&self, b: Borrowed) {
        *self.borrowed.lock().unwrap_or_else(PoisonError::into_inner) = Some(b);
    }
}

/// App tokens and refresh rotations: the jobs this writer does itself.
fn simple(p: &Pending) -> bool {
    match p {
        Pending::Grant(g) => g.issue.refresh.is_none(),
        Pending::Claim(c) => c.claim.caps.is_none() && c.claim.sql == ROTATE,
        Pending::Presented(_) => true,
    }
}

impl WriteBatch for SqliteBatches {
    async fn write(&self, batch: &[Pending]) -> Result<Vec<bool>, BatchError> {
        // App tokens alone are one multi-row INSERT that commits by itself: one hand-off
        // already, without BEGIN and COMMIT.
        let rotations = batch.iter().any(|p| !matches!(p, Pending::Grant(_)));
        if !rotations || !batch.iter().all(simple) {
            return self.general.write(batch).await;
        }
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let mut locked = conn.lock_handle().await.map_err(db_err)?;
        let handle = locked.as_raw_handle().as_ptr();
        let mut borrowed = self.borrowed.lock().unwrap_or_else(PoisonError::into_inner);
        let b = match &mut *borrowed {
            Some(b) if b.handle == handle as usize => b,
            // First use, or (never expected: sqlx would have panicked closing the old one
            // with our statements open) another connection; the old statements are left.
            slot => {
                // SAFETY: the handle is sqlx's open connection, and `locked` keeps its
                // thread off it while `db` is used. `db` does not own it (it never closes
                // it), and its statements are finalized only under the lock (`Borrowed`).
                // rusqlite's `hooks` feature must stay off: with it, dropping `db` would
                // clear sqlx's hooks on the connection.
                let db = unsafe { Connection::from_handle(handle) }
                    .map_err(|e| BatchError::from(rusqlite_err(e)))?;
                slot.insert(Borrowed { handle: handle as usize, db: ManuallyDrop::new(db) })
            }
        };
        let result = write_in_transaction(&b.db, batch);
        // Only if even ROLLBACK failed: a connection inside a transaction must not go
        // back to the pool, where sqlx would take it for an idle one. It is closed
        // instead, once its statements are finalized.
        let stuck = !b.db.is_autocommit();
        if stuck {
            borrowed.take().map(Borrowed::finalize);
        }
        drop(borrowed);
        drop(locked);
        if stuck {
            conn.close_on_drop();
        }
        result
    }

    async fn idle(&self) {
        let Some(b) = self.borrowed.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(_) => return self.keep(b),
        };
        let mut locked = match conn.lock_handle().await {
            Ok(locked) => locked,
            Err(_) => return self.keep(b),
        };
        if locked.as_raw_handle().as_ptr() as usize == b.handle {
            b.finalize();
        }
    }
}

/// One transaction for the batch, in arrival order; for each job, whether it won.
/// Whatever happens, the connection is handed back with no transaction open.
fn write_in_transaction(db: &Connection, batch: &[Pending]) -> Result<Vec<bool>, BatchError> {
    run(db, "BEGIN IMMEDIATE").map_err(|e| BatchError::from(rusqlite_err(e)))?;
    let open = OpenTransaction(db);
    let won = write_jobs(db, batch).map_err(|e| BatchError::from(rusqlite_err(e)))?;
    // A COMMIT that failed with the transaction still open did not happen (the guard
    // rolls it back); one that SQLite ended itself (an I/O error, a full disk) may or may
    // not have reached the disk, so its jobs are not run again.
    run(db, "COMMIT").map_err(|e| BatchError {
        error: rusqlite_err(e),
        rolled_back: !db.is_autocommit(),
    })?;
    drop(open);
    Ok(won)
}

fn write_jobs(db: &Connection, batch: &[Pending]) -> rusqlite::Result<Vec<bool>> {
    let mut won = vec![false; batch.len()];
    for (i, p) in batch.iter().enumerate() {
        match p {
            Pending::Grant(g) => {
                insert_access(db, &g.issue.access)?;
                won[i] = true;
            }
            Pending::Claim(c) => {
                let at = c.claim.at.unwrap_or(c.claim.now);
                won[i] = rotate(db, &c.claim.key, at, &c.claim.issue)?;
            }
            Pending::Presented(job) => {
                let found = match read_refresh(db, &job.key)? {
                    None => Presented::Unknown,
                    Some(record) => match (job.decide)(&record) {
                        None => Presented::Refused(record),
                        Some(issue) if rotate(db, &job.key, job.now, &issue)? => Presented::Rotated(record),
                        Some(_) => Presented::NotLive,
                    },
                };
                won[i] = matches!(found, Presented::Rotated(_));
                job.found(found);
            }
        }
    }
    Ok(won)
}

/// Marks the refresh token `key` rotated at `at` and stores `issue`, if it is still live;
/// whether it was. Of two rotations of one token, the first in the batch changes the row.
fn rotate(db: &Connection, key: &str, at: i64, issue: &TokenIssue) -> rusqlite::Result<bool> {
    let changed = db.prepare_cached(ROTATE)?.execute(named_params! { "$1": key, "$2": at })?;
    if changed != 1 {
        return Ok(false);
    }
    insert_access(db, &issue.access)?;
    if let Some(refresh) = &issue.refresh {
        insert_refresh(db, refresh)?;
    }
    Ok(true)
}

/// A statement without parameters or rows, kept prepared.
fn run(db: &Connection, sql: &str) -> rusqlite::Result<()> {
    db.prepare_cached(sql)?.execute([]).map(drop)
}

/// Rolls back on drop if a transaction is still open: an error, or a panic, part-way.
struct OpenTransaction<'a>(&'a Connection);

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            if let Err(e) = self.0.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "cannot roll back a failed token batch");
            }
        }
    }
}

// The values in `INSERT_ACCESS`'s and `INSERT_REFRESH`'s column order, as
// `insert_access_rows` and `insert_refresh_rows` bind them.
fn insert_access(db: &Connection, a: &AccessToken) -> rusqlite::Result<()> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("{INSERT_ACCESS}VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)"));
    db.prepare_cached(&SQL)?.execute(params![
        a.token_hash,
        a.client_id,
        a.user_id,
        a.scopes.to_space_separated(),
        a.created_at,
        a.expires_at,
        a.family_id,
        a.code_hash
    ])?;
    Ok(())
}

fn insert_refresh(db: &Connection, r: &RefreshToken) -> rusqlite::Result<()> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("{INSERT_REFRESH}VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 0, ?8)")
    });
    db.prepare_cached(&SQL)?.execute(params![
        r.token_hash,
        r.family_id,
        r.client_id,
        r.user_id,
        r.scopes.to_space_separated(),
        r.created_at,
        r.expires_at,
        r.code_hash
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use gatehouse_core::error::StoreError;
    use gatehouse_core::policy::RefreshCaps;
    use gatehouse_core::scope::ScopeSet;
    use gatehouse_core::secret::random_token;
    use gatehouse_core::store::{Decide, Store, TokenIssue};
    use std::sync::Arc;

    use super::*;
    use crate::sql_store::Claim;
    use crate::SqliteStore;

    const NOW: i64 = 1_800_000_000;
    const CAPS: RefreshCaps = RefreshCaps {
        per_client_user: 100,
        per_user: 100,
    };

    fn issue(family: &str, created_at: i64) -> TokenIssue {
        TokenIssue {
            access: AccessToken {
                token_hash: random_token(64),
                client_id: "c".into(),
                user_id: Some("u".into()),
                scopes: ScopeSet::from_stored("user_read"),
                created_at,
                expires_at: created_at + 3600,
                family_id: Some(family.into()),
                code_hash: Some(family.into()),
                revoked: false,
            },
            refresh: Some(RefreshToken {
                token_hash: random_token(64),
                family_id: family.into(),
                client_id: "c".into(),
                user_id: "u".into(),
                scopes: ScopeSet::from_stored("user_read"),
                created_at,
                expires_at: Some(created_at + 7200),
                rotated_at: None,
                revoked: false,
                code_hash: Some(family.into()),
            }),
        }
    }

    fn app_token() -> Pending {
        let access = AccessToken {
            user_id: None,
            family_id: None,
            code_hash: None,
            ..issue("-", NOW).access
        };
        Pending::unanswered_grant(
            TokenIssue {
                access,
                refresh: None,
            },
            CAPS,
            NOW,
        )
    }

    fn rotation(old: &TokenIssue, next: &TokenIssue, at: i64) -> Pending {
        let key = old.refresh.as_ref().unwrap().token_hash.clone();
        let claim = Claim {
            sql: ROTATE,
            key,
            at: Some(at),
            issue: next.clone(),
            caps: None,
            now: at,
        };
        Pending::unanswered_claim(claim)
    }

    fn access_hash(p: &Pending) -> &str {
        match p {
            Pending::Grant(g) => &g.issue.access.token_hash,
            Pending::Claim(c) => &c.claim.issue.access.token_hash,
            Pending::Presented(_) => unreachable!("not used in that test"),
        }
    }

    async fn rotated_at(store: &SqliteStore, i: &TokenIssue) -> Option<i64> {
        store
            .find_refresh_token(&i.refresh.as_ref().unwrap().token_hash)
            .await
            .unwrap()
            .unwrap()
            .rotated_at
    }

    /// Statements open on the writer connection (sqlx's own cached ones among them).
    async fn open_statements(store: &SqliteStore) -> usize {
        let mut conn = store.writer().acquire().await.unwrap();
        let mut locked = conn.lock_handle().await.unwrap();
        let db = locked.as_raw_handle().as_ptr();
        let mut n = 0;
        // SAFETY: sqlx's thread is locked off the connection; this only walks its list.
        let mut stmt = unsafe { rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut()) };
        while !stmt.is_null() {
            n += 1;
            stmt = unsafe { rusqlite::ffi::sqlite3_next_stmt(db, stmt) };
        }
        n
    }

    /// A batch on this writer: each rotation at its own time, the first of two of one
    /// token winning, app tokens beside them; a bad job rolls the batch back whole and
    /// leaves the connection fit for the next. The writer's five statements stay
    /// prepared from batch to batch and are finalized when it closes.
    /// A store in `dir` with the user `u` and the client `c` the tokens name.
    async fn store_with_client(dir: &tempfile::TempDir) -> SqliteStore {
        let store = SqliteStore::open(dir.path().join("t.db").to_str().unwrap())
            .await
            .unwrap();
        for sql in [
            "INSERT INTO users (id, login, email, password_hash, created_at) VALUES ('u', 'alice', 'a@example.com', 'x', 0)",
            "INSERT INTO clients (id, name, owner_user_id, category, kind, allow_implicit, redirect_uris, created_at) \
             VALUES ('c', 'App', 'u', 'Other', 'confidential', 0, '[]', 0)",
        ] {
            sqlx::query(sql).execute(store.writer()).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn rotations_and_app_tokens_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_client(&dir).await;
        let [a, b, c] = ["fa", "fb", "fc"].map(|f| issue(f, NOW));
        for i in [&a, &b, &c] {
            store.insert_tokens(i, CAPS, NOW).await.unwrap();
        }
        let writer = SqliteBatches::new(store.writer().clone());
        let sqlx_own = open_statements(&store).await;

        let (x, y, z) = (
            issue("fa", NOW + 1),
            issue("fa", NOW + 2),
            issue("fb", NOW + 3),
        );
        let batch = [
            rotation(&a, &x, NOW + 1),
            rotation(&a, &y, NOW + 2),
            app_token(),
            rotation(&b, &z, NOW + 3),
        ];
        let won = writer.write(&batch).await.map_err(|e| e.error).unwrap();
        assert_eq!(won, [true, false, true, true]);
        assert_eq!(open_statements(&store).await, sqlx_own + 5);
        assert_eq!(
            (rotated_at(&store, &a).await, rotated_at(&store, &b).await),
            (Some(NOW + 1), Some(NOW + 3))
        );
        for (p, stored) in batch.iter().zip([true, false, true, true]) {
            assert_eq!(
                store
                    .find_access_token(access_hash(p))
                    .await
                    .unwrap()
                    .is_some(),
                stored
            );
        }
        assert_eq!(rotated_at(&store, &x).await, None);
        assert!(store
            .find_refresh_token(&y.refresh.as_ref().unwrap().token_hash)
            .await
            .unwrap()
            .is_none());

        // A new access token that repeats a stored one's key: nothing of the batch stays.
        let mut bad = issue("fc", NOW + 4);
        bad.access.token_hash = x.access.token_hash.clone();
        let batch = [app_token(), rotation(&c, &bad, NOW + 4)];
        match writer.write(&batch).await {
            Err(BatchError {
                error: StoreError::Conflict(what),
                rolled_back: true,
            }) => assert_eq!(what, "unique"),
            Err(e) => panic!("unexpected {} (rolled back: {})", e.error, e.rolled_back),
            Ok(won) => panic!("the batch was written: {won:?}"),
        }
        assert_eq!(rotated_at(&store, &c).await, None);
        assert!(store
            .find_access_token(access_hash(&batch[0]))
            .await
            .unwrap()
            .is_none());

        let good = issue("fc", NOW + 5);
        let batch = [rotation(&c, &good, NOW + 5), app_token()];
        assert_eq!(
            writer.write(&batch).await.map_err(|e| e.error).unwrap(),
            [true, true]
        );
        assert_eq!(rotated_at(&store, &c).await, Some(NOW + 5));
        assert!(store
            .find_access_token(access_hash(&batch[1]))
            .await
            .unwrap()
            .is_some());

        assert_eq!(open_statements(&store).await, sqlx_own + 5, "prepared once");
        writer.idle().await;
        assert_eq!(open_statements(&store).await, sqlx_own);
    }

    /// Presented rotations: the writer reads each token in the batch and asks its
    /// decision; the first accepted rotation of a token wins, and an unknown or refused
    /// token stores nothing.
    #[tokio::test]
    async fn presented_rotations_are_read_decided_and_rotated_in_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_client(&dir).await;
        let [a, b] = ["fa", "fb"].map(|f| issue(f, NOW));
        for i in [&a, &b] {
            store.insert_tokens(i, CAPS, NOW).await.unwrap();
        }
        let writer = SqliteBatches::new(store.writer().clone());
        let key = |i: &TokenIssue| i.refresh.as_ref().unwrap().token_hash.clone();
        let offer = |next: &TokenIssue| -> Decide {
            let next = next.clone();
            Arc::new(move |_: &RefreshToken| Some(next.clone()))
        };
        let (x, y) = (issue("fa", NOW + 1), issue("fa", NOW + 1));
        let batch = [
            Pending::unanswered_presented(key(&a), NOW + 1, offer(&x)),
            // Reads the token the first rotated, and accepts it all the same: not live.
            Pending::unanswered_presented(key(&a), NOW + 1, offer(&y)),
            Pending::unanswered_presented("unknown".into(), NOW + 1, offer(&y)),
            Pending::unanswered_presented(key(&b), NOW + 1, Arc::new(|_: &RefreshToken| None)),
            app_token(),
        ];
        let won = writer.write(&batch).await.map_err(|e| e.error).unwrap();
        assert_eq!(won, [true, false, false, false, true]);
        let found: Vec<_> = batch.iter().map(Pending::take_found).collect();
        match (&found[0], &found[3]) {
            (Some(Presented::Rotated(rotated)), Some(Presented::Refused(refused))) => {
                assert_eq!((&rotated.token_hash, rotated.rotated_at), (&key(&a), None));
                assert_eq!(refused.token_hash, key(&b));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(found[1], Some(Presented::NotLive)));
        assert!(matches!(found[2], Some(Presented::Unknown)));
        assert_eq!(
            (rotated_at(&store, &a).await, rotated_at(&store, &b).await),
            (Some(NOW + 1), None)
        );
        for (i, stored) in [(&x, true), (&y, false)] {
            assert_eq!(store.find_access_token(&i.access.token_hash).await.unwrap().is_some(), stored);
            assert_eq!(store.find_refresh_token(&key(i)).await.unwrap().is_some(), stored);
        }
        writer.idle().await;
    }
}
