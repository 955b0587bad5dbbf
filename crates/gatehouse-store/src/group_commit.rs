//! Group commit for SQLite. With `synchronous=FULL` every commit waits for an fsync, so
//! one transaction per issued token caps throughput at the disk's fsync rate. The writes
//! of the hot paths (new tokens, code and device redemptions, refresh rotations) that
//! arrive while a commit is in flight are queued and done together in the next
//! transaction: one fsync for the batch, and each caller is answered only after the
//! commit that holds its write is on disk. Jobs run in arrival order, so of two
//! rotations of one token in a batch the first wins, as it would alone.

use gatehouse_core::error::StoreError;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::store::TokenIssue;
use sqlx::{Pool, Sqlite};
use tokio::sync::{mpsc, oneshot};

use crate::sql_store::{db_err, Claim};

/// Most inserts one transaction takes; bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 512;
/// Rows in one INSERT: nine parameters each, well under SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 256;

struct Grant {
    issue: TokenIssue,
    caps: RefreshCaps,
    now: i64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

struct ClaimJob {
    claim: Claim,
    done: oneshot::Sender<Result<bool, StoreError>>,
}

enum Pending {
    Grant(Grant),
    Claim(ClaimJob),
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
        let pending = Pending::Grant(Grant { issue: issue.clone(), caps, now, done });
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Carries out `claim` in the next batch; true if it won.
    pub async fn claim(&self, claim: Claim) -> Result<bool, StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue.send(Pending::Claim(ClaimJob { claim, done })).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("token writer stopped".into())
}

impl Pending {
    /// Hands the caller its outcome: `won` for a claim (grants have none).
    fn answer(self, result: Result<bool, StoreError>) {
        match self {
            Pending::Grant(g) => {
                let _ = g.done.send(result.map(|_| ()));
            }
            Pending::Claim(c) => {
                let _ = c.done.send(result);
            }
        }
    }
}

async fn run(pool: Pool<Sqlite>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&pool, &batch).await {
            Ok(outcomes) => {
                for (p, won) in batch.drain(..).zip(outcomes) {
                    p.answer(Ok(won));
                }
            }
            Err(e) if batch.len() == 1 => batch.pop().expect("one").answer(Err(e)),
            Err(_) => {
                // The batch rolled back whole. One bad job must not fail its neighbours:
                // do each on its own.
                for p in batch.drain(..) {
                    let result = write(&pool, std::slice::from_ref(&p)).await.map(|o| o[0]);
                    p.answer(result);
                }
            }
        }
    }
}

/// One transaction for the batch; for each job, whether it won (grants always do).
async fn write(pool: &Pool<Sqlite>, batch: &[Pending]) -> Result<Vec<bool>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    // Access tokens alone (app tokens) need no cap checks: one multi-row INSERT stores
    // a whole run of them, instead of a statement (and a hop to SQLite's thread) each.
    let alone: Vec<&Grant> = batch
        .iter()
        .filter_map(|p| match p {
            Pending::Grant(g) if g.issue.refresh.is_none() => Some(g),
            _ => None,
        })
        .collect();
    for chunk in alone.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, created_at, expires_at, family_id, code_hash, revoked) ",
        );
        insert.push_values(chunk, |mut row, g| {
            let a = &g.issue.access;
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
    let mut outcomes = Vec::with_capacity(batch.len());
    for p in batch {
        let won = match p {
            Pending::Grant(g) if g.issue.refresh.is_none() => true,
            Pending::Grant(g) => {
                crate::sqlite::store_impl::store_new_grant(&mut tx, &g.issue, g.caps, g.now).await.map_err(db_err)?;
                true
            }
            Pending::Claim(c) => crate::sqlite::store_impl::claim_then_store(&mut tx, &c.claim).await.map_err(db_err)?,
        };
        outcomes.push(won);
    }
    tx.commit().await.map_err(db_err)?;
    Ok(outcomes)
}
