//! Group commit. Every commit waits for the disk (SQLite's `synchronous=FULL`, PostgreSQL's
//! WAL flush), and on PostgreSQL every statement is a round trip and a slice of the
//! server's CPU, so one transaction per issued token caps throughput. The writes of the
//! hot paths (new tokens, code and device redemptions, refresh rotations) that arrive
//! while a batch is in flight are queued and done together in the next transaction
//! (`store_impl::write_batch`, the same SQL on both backends): multi-row INSERTs, one
//! UPDATE for all rotations, one commit; each caller is answered only after the commit
//! that holds its write is durable. Jobs run in arrival order, so of two rotations of one
//! token in a batch the first wins, as it would alone. On PostgreSQL the batches carry
//! app tokens and rotations only (see `PgStore::insert_tokens_durably`).

use std::future::Future;

use gatehouse_core::error::StoreError;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::store::{Decide, Presented, TokenIssue};
use tokio::sync::{mpsc, oneshot};

use crate::sql_store::{retrying, Claim};

/// How long the queue stays empty before the writer lets go of what it keeps between
/// batches (`WriteBatch::idle`).
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Most jobs one transaction takes; bounds the time a batch holds its locks.
const MAX_BATCH: usize = 512;
/// Rows in one INSERT: ten parameters at most, well under SQLite's limit of 32,766 (and
/// PostgreSQL's of 65,535).
pub(crate) const ROWS_PER_INSERT: usize = 256;

/// What carries out a batch in one transaction; for each job, whether it won.
pub(crate) trait WriteBatch: Send + Sync + 'static {
    fn write(&self, batch: &[Pending]) -> impl Future<Output = Result<Vec<bool>, BatchError>> + Send;

    /// Lets go of what the writer holds on its connection: called when the queue has
    /// been empty for `IDLE_AFTER`, and once the last batch is done.
    fn idle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A batch that failed, and whether it is known not to have been committed.
pub(crate) struct BatchError {
    pub error: StoreError,
    /// False when COMMIT itself failed: the outcome is unknown (the connection may have
    /// dropped after the database committed), so running the jobs again could refuse a
    /// rotation or redemption that in fact succeeded.
    pub rolled_back: bool,
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        BatchError { error, rolled_back: true }
    }
}

pub(crate) struct Grant {
    pub issue: TokenIssue,
    pub caps: RefreshCaps,
    pub now: i64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

pub(crate) struct ClaimJob {
    pub claim: Claim,
    done: oneshot::Sender<Result<bool, StoreError>>,
}

/// A rotation the writer decides on the token it reads (`Store::rotate_presented`).
pub(crate) struct PresentedJob {
    pub key: String,
    pub now: i64,
    pub decide: Decide,
    /// What the writer found, kept for the answer (a batch run again overwrites it).
    found: std::sync::Mutex<Option<Presented>>,
    done: oneshot::Sender<Result<Presented, StoreError>>,
}

impl PresentedJob {
    pub(crate) fn found(&self, found: Presented) {
        *self.found.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found);
    }
}

pub(crate) enum Pending {
    Grant(Grant),
    Claim(ClaimJob),
    Presented(PresentedJob),
}

#[derive(Clone)]
pub struct TokenWriter {
    queue: mpsc::Sender<Pending>,
}

impl TokenWriter {
    /// Starts the writer on a thread of its own (SQLite); it ends when the store is dropped.
    ///
    /// Not a task on the server's runtime: a batch takes several round trips to SQLite's
    /// thread, and under load each one waited its turn behind every request task before
    /// the writer ran again, so batches took milliseconds of waiting for microseconds of work.
    pub fn on_thread(writer: impl WriteBatch) -> std::io::Result<TokenWriter> {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("gatehouse-writer".into())
            .spawn(move || runtime.block_on(run(writer, rx)))?;
        Ok(TokenWriter { queue })
    }

    /// Starts the writer as a task on the current runtime (PostgreSQL: its round trips
    /// wait on the network, not on a thread of ours).
    pub fn on_task(writer: impl WriteBatch) -> TokenWriter {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(writer, rx));
        TokenWriter { queue }
    }

    pub async fn insert(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let pending = Pending::Grant(Grant { issue: issue.clone(), caps, now, done });
        self.queue.send(pending).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| unanswered())?
    }

    /// Reads, decides and rotates the refresh token `key` in the next batch.
    pub async fn rotate_presented(&self, key: String, now: i64, decide: Decide) -> Result<Presented, StoreError> {
        let (done, answer) = oneshot::channel();
        let job = PresentedJob { key, now, decide, found: std::sync::Mutex::new(None), done };
        self.queue.send(Pending::Presented(job)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| unanswered())?
    }

    /// Carries out `claim` in the next batch; true if it won.
    pub async fn claim(&self, claim: Claim) -> Result<bool, StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue.send(Pending::Claim(ClaimJob { claim, done })).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| unanswered())?
    }
}

/// Jobs whose answers nobody waits for, for tests that hand a batch to a writer.
#[cfg(test)]
impl Pending {
    pub(crate) fn unanswered_grant(issue: TokenIssue, caps: RefreshCaps, now: i64) -> Pending {
        Pending::Grant(Grant { issue, caps, now, done: oneshot::channel().0 })
    }

    pub(crate) fn unanswered_claim(claim: Claim) -> Pending {
        Pending::Claim(ClaimJob { claim, done: oneshot::channel().0 })
    }

    pub(crate) fn unanswered_presented(key: String, now: i64, decide: Decide) -> Pending {
        let found = std::sync::Mutex::new(None);
        Pending::Presented(PresentedJob { key, now, decide, found, done: oneshot::channel().0 })
    }

    /// What a presented rotation found, once written.
    pub(crate) fn take_found(&self) -> Option<Presented> {
        match self {
            Pending::Presented(p) => p.found.lock().unwrap().take(),
            _ => None,
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("token writer stopped".into())
}

/// The batch holding the write ended without an answer (it panicked, see `run`).
fn unanswered() -> StoreError {
    StoreError::Backend("token batch failed".into())
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
            Pending::Presented(p) => {
                let found = p.found.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
                let result = result.and_then(|_| found.ok_or_else(unanswered));
                let _ = p.done.send(result);
            }
        }
    }
}

async fn run(writer: impl WriteBatch, mut rx: mpsc::Receiver<Pending>) {
    let writer = std::sync::Arc::new(writer);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = match tokio::time::timeout(IDLE_AFTER, rx.recv_many(&mut batch, MAX_BATCH)).await {
            Ok(n) => n,
            Err(_) => {
                writer.idle().await;
                rx.recv_many(&mut batch, MAX_BATCH).await
            }
        };
        if received == 0 {
            break;
        }
        // Each batch is a task of its own, so that a panic in it (a bug) ends that batch
        // only: its callers' answers are dropped, which they hear as an error, and the
        // writer goes on with the next batch instead of failing every write after it.
        let writer = writer.clone();
        let mut jobs = std::mem::take(&mut batch);
        let written = tokio::spawn(async move {
            write_and_answer(&*writer, &mut jobs).await;
            jobs
        });
        match written.await {
            Ok(emptied) => batch = emptied,
            Err(e) => {
                tracing::error!(error = %e, "a token batch failed; its writes were answered with an error");
                batch = Vec::with_capacity(MAX_BATCH);
            }
        }
    }
    writer.idle().await;
}

/// Writes `batch` and answers (and empties) it.
async fn write_and_answer(writer: &impl WriteBatch, batch: &mut Vec<Pending>) {
    match writer.write(batch).await {
        Ok(outcomes) => {
            for (p, won) in batch.drain(..).zip(outcomes) {
                p.answer(Ok(won));
            }
        }
        Err(BatchError { error, rolled_back }) if !rolled_back || batch.len() == 1 && !matches!(error, StoreError::Retryable(_)) => {
            for p in batch.drain(..) {
                p.answer(Err(error.clone()));
            }
        }
        Err(_) => {
            // The batch rolled back whole. One bad job must not fail its neighbours:
            // do each on its own (again if it lost a race on PostgreSQL).
            for p in batch.drain(..) {
                let one = std::slice::from_ref(&p);
                let result = retrying(|| async { writer.write(one).await.map(|o| o[0]).map_err(|e| e.error) }).await;
                p.answer(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use gatehouse_core::model::AccessToken;
    use gatehouse_core::scope::ScopeSet;

    use super::*;

    /// Panics on its first batch (a bug, say) and writes every later one.
    struct PanicsOnce(AtomicBool);

    impl WriteBatch for PanicsOnce {
        async fn write(&self, batch: &[Pending]) -> Result<Vec<bool>, BatchError> {
            if !self.0.swap(true, Ordering::SeqCst) {
                panic!("a bug in the batch");
            }
            Ok(vec![true; batch.len()])
        }
    }

    fn app_token() -> TokenIssue {
        let access = AccessToken {
            token_hash: "k".into(),
            client_id: "c".into(),
            user_id: None,
            scopes: ScopeSet::from_stored(""),
            created_at: 0,
            expires_at: 1,
            family_id: None,
            code_hash: None,
            revoked: false,
        };
        TokenIssue { access, refresh: None }
    }

    /// Writes every batch, and counts the times it is told the queue went quiet.
    struct CountsIdle(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl WriteBatch for CountsIdle {
        async fn write(&self, batch: &[Pending]) -> Result<Vec<bool>, BatchError> {
            Ok(vec![true; batch.len()])
        }

        async fn idle(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_writer_lets_go_once_its_queue_stays_empty() {
        let caps = RefreshCaps { per_client_user: 1, per_user: 1 };
        let idle = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = TokenWriter::on_task(CountsIdle(idle.clone()));
        writer.insert(&app_token(), caps, 0).await.unwrap();
        let before = idle.load(Ordering::SeqCst);
        tokio::time::sleep(IDLE_AFTER * 3).await;
        assert!(idle.load(Ordering::SeqCst) > before, "no idle call after a quiet spell");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_panics_fails_its_callers_and_the_writer_goes_on() {
        let caps = RefreshCaps { per_client_user: 1, per_user: 1 };
        for writer in [
            TokenWriter::on_thread(PanicsOnce(AtomicBool::new(false))).unwrap(),
            TokenWriter::on_task(PanicsOnce(AtomicBool::new(false))),
        ] {
            assert!(writer.insert(&app_token(), caps, 0).await.is_err());
            writer.insert(&app_token(), caps, 0).await.unwrap();
        }
    }
}
