//! Group commit. Every commit waits for the disk (SQLite's `synchronous=FULL`, PostgreSQL's
//! WAL flush), and on PostgreSQL every statement is a round trip, so one transaction per
//! issued token caps throughput. The hot writes ([`Job`]: new tokens, code and device
//! redemptions, refresh rotations) that arrive while a batch is in flight are queued and
//! done together in the next transaction by the backend's [`WriteBatch`]; each caller is
//! answered, with its job's [`Outcome`], only after the commit that holds its write is
//! durable. Jobs run in arrival order, so of two rotations of one token in a batch the
//! first wins, as it would alone.

use std::future::Future;

use gatehouse_core::error::StoreError;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::store::{Decide, Presented, Redemption, Rotation, TokenIssue};
use tokio::sync::{mpsc, oneshot};

use crate::retry::retrying;

/// How long the queue stays empty before the writer is told it is idle.
const IDLE_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// Most jobs one transaction takes; bounds the time a batch holds its locks.
const MAX_BATCH: usize = 512;

/// A single-use grant that a redemption claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SingleUse {
    Code,
    Device,
}

impl SingleUse {
    /// The conditional UPDATE that claims it: of concurrent attempts, only one sees a row
    /// change, and only that one stores its tokens.
    pub fn claim_sql(self) -> &'static str {
        match self {
            SingleUse::Code => "UPDATE authorization_codes SET used = 1 WHERE code_hash = $1 AND used = 0",
            SingleUse::Device => {
                "UPDATE device_authorizations SET status = 'used' WHERE device_code_hash = $1 AND status = 'approved'"
            }
        }
    }
}

/// A hot write.
pub(crate) enum Job {
    /// Store new tokens not tied to a code (client credentials, implicit grant; with a
    /// refresh token, the caps are enforced).
    Issue { issue: TokenIssue, caps: RefreshCaps, now: i64 },
    /// Claim a code or an approved device authorization and store its tokens.
    Redeem { what: SingleUse, key: String, issue: TokenIssue, caps: RefreshCaps, now: i64 },
    /// Mark the live refresh token `key` rotated at `now` and store its successors.
    Rotate { key: String, issue: TokenIssue, now: i64 },
    /// Read the refresh token `key`, ask `decide` for its successors, and rotate it.
    Present { key: String, decide: Decide, now: i64 },
}

/// What came of a job.
#[derive(Debug)]
pub(crate) enum Outcome {
    Issued,
    Redeemed(Redemption),
    Rotated(Rotation),
    Presented(Presented),
}

/// What carries out a batch in one transaction: each job's outcome, in order.
pub(crate) trait WriteBatch: Send + Sync + 'static {
    fn write(&self, batch: &[Job]) -> impl Future<Output = Result<Vec<Outcome>, BatchError>> + Send;

    /// Called when the queue has been empty for `IDLE_AFTER`, and once the last batch is
    /// done.
    fn idle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A batch that failed, and whether it is known not to have been committed.
#[derive(Debug)]
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

type Queued = (Job, oneshot::Sender<Result<Outcome, StoreError>>);

#[derive(Clone)]
pub struct TokenWriter {
    queue: mpsc::Sender<Queued>,
}

impl TokenWriter {
    /// Starts the writer as a task on the current runtime (on SQLite, the writer thread's).
    pub(crate) fn start(writer: impl WriteBatch) -> TokenWriter {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(writer, rx));
        TokenWriter { queue }
    }

    /// Does `job` in the next batch; its outcome once that batch is durable.
    pub(crate) async fn submit(&self, job: Job) -> Result<Outcome, StoreError> {
        let (done, answer) = oneshot::channel();
        self.queue.send((job, done)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| unanswered())?
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("token writer stopped".into())
}

/// The batch holding the write ended without an answer (it panicked, see `run`).
fn unanswered() -> StoreError {
    StoreError::Backend("token batch failed".into())
}

/// An outcome of the wrong kind for its job: a bug in a backend's writer.
pub(crate) fn mismatched(outcome: Outcome) -> StoreError {
    StoreError::Backend(format!("the token writer answered {outcome:?} to another kind of job"))
}

async fn run(writer: impl WriteBatch, mut rx: mpsc::Receiver<Queued>) {
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
async fn write_and_answer(writer: &impl WriteBatch, batch: &mut Vec<Queued>) {
    let (jobs, answers): (Vec<Job>, Vec<_>) = batch.drain(..).unzip();
    let started = std::time::Instant::now();
    let written = writer.write(&jobs).await;
    // Once a batch, not once a request: the registry lookup of the macros is cheap here.
    metrics::histogram!("gatehouse_store_batch_size").record(jobs.len() as f64);
    metrics::histogram!("gatehouse_store_batch_commit_seconds").record(started.elapsed().as_secs_f64());
    match written {
        Ok(outcomes) => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(Ok(outcome));
            }
        }
        // Not known to be rolled back, or the database is unavailable (each job alone
        // would wait for it again): every caller hears the error.
        Err(BatchError { error, rolled_back })
            if !rolled_back
                || matches!(error, StoreError::Unavailable(_))
                || jobs.len() == 1 && !matches!(error, StoreError::Retryable(_)) =>
        {
            for answer in answers {
                let _ = answer.send(Err(error.clone()));
            }
        }
        Err(_) => {
            // The batch rolled back whole. One bad job must not fail its neighbours:
            // do each on its own (again if it lost a race on PostgreSQL).
            for (job, answer) in jobs.iter().zip(answers) {
                let one = std::slice::from_ref(job);
                let result = retrying(|| async {
                    let mut outcomes = writer.write(one).await.map_err(|e| e.error)?;
                    outcomes.pop().ok_or_else(unanswered)
                })
                .await;
                let _ = answer.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use gatehouse_core::model::AccessToken;
    use gatehouse_core::scope::ScopeSet;

    use super::*;

    /// Panics on its first batch (a bug, say) and writes every later one.
    struct PanicsOnce(AtomicBool);

    impl WriteBatch for PanicsOnce {
        async fn write(&self, batch: &[Job]) -> Result<Vec<Outcome>, BatchError> {
            if !self.0.swap(true, Ordering::SeqCst) {
                panic!("a bug in the batch");
            }
            Ok(batch.iter().map(|_| Outcome::Issued).collect())
        }
    }

    /// Fails every batch of more than one job (a bad job among them), and each job alone
    /// whose key is "bad".
    struct OneBad;

    impl WriteBatch for OneBad {
        async fn write(&self, batch: &[Job]) -> Result<Vec<Outcome>, BatchError> {
            let bad = |j: &Job| matches!(j, Job::Issue { issue, .. } if issue.access.client_id == "bad");
            if batch.iter().any(bad) {
                return Err(StoreError::Conflict("unique".into()).into());
            }
            Ok(batch.iter().map(|_| Outcome::Issued).collect())
        }
    }

    fn app_token(key: &str) -> Job {
        let access = AccessToken {
            token_hash: key.into(),
            client_id: key.into(),
            user_id: None,
            scopes: ScopeSet::from_stored(""),
            created_at: 0,
            expires_at: 1,
            family_id: None,
            code_hash: None,
            revoked: false,
        };
        let caps = RefreshCaps { per_client_user: 1, per_user: 1 };
        Job::Issue { issue: TokenIssue { access, refresh: None }, caps, now: 0 }
    }

    /// Writes every batch, and counts the times it is told the queue went quiet.
    struct CountsIdle(Arc<AtomicUsize>);

    impl WriteBatch for CountsIdle {
        async fn write(&self, batch: &[Job]) -> Result<Vec<Outcome>, BatchError> {
            Ok(batch.iter().map(|_| Outcome::Issued).collect())
        }

        async fn idle(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_writer_is_told_once_its_queue_stays_empty() {
        let idle = Arc::new(AtomicUsize::new(0));
        let writer = TokenWriter::start(CountsIdle(idle.clone()));
        writer.submit(app_token("a")).await.unwrap();
        let before = idle.load(Ordering::SeqCst);
        tokio::time::sleep(IDLE_AFTER * 3).await;
        assert!(idle.load(Ordering::SeqCst) > before, "no idle call after a quiet spell");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_panics_fails_its_callers_and_the_writer_goes_on() {
        let writer = TokenWriter::start(PanicsOnce(AtomicBool::new(false)));
        assert!(writer.submit(app_token("a")).await.is_err());
        assert!(matches!(writer.submit(app_token("b")).await, Ok(Outcome::Issued)));
    }

    /// Fails every batch as unavailable, counting the batches it was given.
    struct Unreachable(Arc<AtomicUsize>);

    impl WriteBatch for Unreachable {
        async fn write(&self, _: &[Job]) -> Result<Vec<Outcome>, BatchError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            // As a database lock held elsewhere would: the next jobs queue meanwhile.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Err(StoreError::Unavailable("disk full".into()).into())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unavailable_database_fails_the_batch_without_a_try_per_job() {
        let tries = Arc::new(AtomicUsize::new(0));
        let writer = TokenWriter::start(Unreachable(tries.clone()));
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.submit(app_token("a")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let results = futures_join(&writer, &["b", "c", "d"]).await;
        assert!(matches!(first.await.unwrap(), Err(StoreError::Unavailable(_))));
        assert!(results.iter().all(|r| matches!(r, Err(StoreError::Unavailable(_)))), "{results:?}");
        assert_eq!(tries.load(Ordering::SeqCst), 2, "one try per batch, not one more per job");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_job_fails_alone() {
        let writer = TokenWriter::start(OneBad);
        let keys = ["a", "bad", "c", "d"];
        let results = futures_join(&writer, &keys).await;
        for (key, result) in keys.iter().zip(results) {
            assert_eq!(result.is_err(), *key == "bad", "{key}: {result:?}");
        }
    }

    async fn futures_join(writer: &TokenWriter, keys: &[&str]) -> Vec<Result<Outcome, StoreError>> {
        let tasks: Vec<_> = keys
            .iter()
            .map(|k| {
                let (writer, job) = (writer.clone(), app_token(k));
                tokio::spawn(async move { writer.submit(job).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    }
}
