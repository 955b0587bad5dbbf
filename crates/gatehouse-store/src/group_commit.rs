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
use sqlx::{Pool, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use crate::sql_store::{db_err, Claim};

/// Most inserts one transaction takes; bounds the time a batch holds the write lock.
const MAX_BATCH: usize = 512;
/// Rows in one INSERT: ten parameters at most, well under SQLite's limit of 32,766.
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
    /// Starts the writer on a thread of its own; it ends when the store is dropped.
    ///
    /// Not a task on the server's runtime: a batch takes several round trips to SQLite's
    /// thread, and under load each one waited its turn behind every request task before
    /// the writer ran again, so batches took milliseconds of waiting for microseconds of work.
    pub fn start(pool: Pool<Sqlite>) -> std::io::Result<TokenWriter> {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("gatehouse-writer".into())
            .spawn(move || runtime.block_on(run(pool, rx)))?;
        Ok(TokenWriter { queue })
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
    insert_issues(&mut tx, &alone).await.map_err(db_err)?;

    // Refresh rotations in bulk too: one UPDATE claims every old token it can, and says
    // which; of two rotations of one token, the first in arrival order wins.
    let rotations: Vec<(usize, &Claim)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Pending::Claim(c) if c.claim.caps.is_none() => Some((i, &c.claim)),
            _ => None,
        })
        .collect();
    if !rotations.is_empty() {
        let at = rotations[0].1.at.unwrap_or(rotations[0].1.now);
        let mut update = sqlx::QueryBuilder::<Sqlite>::new("UPDATE refresh_tokens SET rotated_at = ");
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

    // The rest one by one: grants with refresh tokens (their caps) and redemptions.
    for (i, p) in batch.iter().enumerate() {
        match p {
            Pending::Grant(g) if g.issue.refresh.is_some() => {
                crate::sqlite::store_impl::store_new_grant(&mut tx, &g.issue, g.caps, g.now).await.map_err(db_err)?;
                won[i] = true;
            }
            Pending::Claim(c) if c.claim.caps.is_some() => {
                won[i] = crate::sqlite::store_impl::claim_then_store(&mut tx, &c.claim).await.map_err(db_err)?;
            }
            _ => {}
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(won)
}

/// Stores the access (and any refresh) tokens of `issues` with multi-row INSERTs.
async fn insert_issues(tx: &mut sqlx::Transaction<'_, Sqlite>, issues: &[&TokenIssue]) -> Result<(), sqlx::Error> {
    use crate::sqlite::store_impl::{insert_access_rows, insert_refresh_rows};
    for chunk in issues.chunks(ROWS_PER_INSERT) {
        insert_access_rows(chunk.iter().map(|i| &i.access)).build().execute(&mut **tx).await?;
        let mut refresh = chunk.iter().filter_map(|i| i.refresh.as_ref()).peekable();
        if refresh.peek().is_some() {
            insert_refresh_rows(refresh).build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}
