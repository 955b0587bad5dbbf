//! Group commit for SQLite. With `synchronous=FULL` every commit waits for an fsync, so
//! one transaction per issued token caps throughput at the disk's fsync rate. Token
//! inserts that arrive while a commit is in flight are queued and stored together in
//! the next transaction: one fsync for the batch, and each caller is answered only
//! after the commit that holds its token is on disk.

use gatehouse_core::error::StoreError;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::store::TokenIssue;
use sqlx::{Pool, Sqlite};
use tokio::sync::{mpsc, oneshot};

use crate::sql_store::db_err;

/// Most inserts one transaction takes; bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 512;
/// Rows in one INSERT: nine parameters each, well under SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 256;

struct Pending {
    issue: TokenIssue,
    caps: RefreshCaps,
    now: i64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

#[derive(Clone)]
pub struct TokenWriter {
    queue: mpsc::Sender<Pending>,
}

impl TokenWriter {
    /// Starts the writer task on the current runtime; it ends when the store is dropped.
    pub fn start(pool: Pool<Sqlite>) -> TokenWriter {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        TokenWriter { queue }
    }

    pub async fn insert(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let pending = Pending { issue: issue.clone(), caps, now, done };
        self.queue.send(pending).await.map_err(|_| StoreError::Backend("token writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("token writer stopped".into()))?
    }
}

async fn run(pool: Pool<Sqlite>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = write(&pool, &batch).await;
        if result.is_err() && batch.len() > 1 {
            // One bad insert must not fail its neighbours: store each on its own.
            for p in batch.drain(..) {
                let result = write(&pool, std::slice::from_ref(&p)).await;
                let _ = p.done.send(result);
            }
            continue;
        }
        let mut result = Some(result);
        for p in batch.drain(..) {
            // A single-item batch hands over its own result; a whole batch shares Ok.
            let _ = p.done.send(result.take().unwrap_or(Ok(())));
        }
    }
}

async fn write(pool: &Pool<Sqlite>, batch: &[Pending]) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    // Access tokens alone (app tokens) need no cap checks: one multi-row INSERT stores
    // a whole run of them, instead of a statement (and a hop to SQLite's thread) each.
    let (alone, grants): (Vec<&Pending>, Vec<&Pending>) = batch.iter().partition(|p| p.issue.refresh.is_none());
    for chunk in alone.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, created_at, expires_at, family_id, code_hash, revoked) ",
        );
        insert.push_values(chunk, |mut row, p| {
            let a = &p.issue.access;
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
        insert.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    for p in grants {
        crate::sqlite::store_impl::store_new_grant(&mut tx, &p.issue, p.caps, p.now).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}
