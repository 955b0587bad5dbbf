//! Lookups by key batched into one query, for PostgreSQL. Every statement is a round trip
//! and a wake-up of a database process, and on a busy server the round trips, not the
//! lookups, took the CPU. Lookups that arrive while a query is in flight wait for the next
//! one, which fetches them all (`WHERE key = ANY($1)`); a lone lookup on an idle server
//! is sent straight away.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Keys one query takes at most.
const MAX_KEYS: usize = 256;

type Waiting<V> = (String, oneshot::Sender<StoreResult<Option<V>>>);

pub(crate) struct BatchedLookups<V> {
    queue: mpsc::Sender<Waiting<V>>,
}

impl<V: Clone + Send + 'static> BatchedLookups<V> {
    /// `queries` tasks, each running `fetch` for the keys waiting when it is free; `fetch`
    /// returns the rows found, each with its key and the value read from it (or why it
    /// could not be read: that row's error, its key's alone). The tasks end when this is
    /// dropped.
    pub fn start<F, Fut>(queries: usize, fetch: F) -> Self
    where
        F: Fn(Vec<String>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = StoreResult<Vec<(String, StoreResult<V>)>>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(4 * MAX_KEYS);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..queries.max(1) {
            tokio::spawn(run(rx.clone(), fetch.clone()));
        }
        BatchedLookups { queue }
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<V>> {
        // PostgreSQL refuses text with a NUL in it, so no stored key has one; asked for,
        // it would fail the whole batch.
        if key.contains('\0') {
            return Ok(None);
        }
        let stopped = || StoreError::Backend("lookups stopped".into());
        let (answer, found) = oneshot::channel();
        self.queue.send((key.to_string(), answer)).await.map_err(|_| stopped())?;
        found.await.map_err(|_| stopped())?
    }
}

async fn run<V, F, Fut>(rx: Arc<Mutex<mpsc::Receiver<Waiting<V>>>>, fetch: F)
where
    V: Clone + Send + 'static,
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<(String, StoreResult<V>)>>> + Send + 'static,
{
    let mut batch = Vec::with_capacity(MAX_KEYS);
    loop {
        // One task waits on the queue at a time; once it has its batch, the next one
        // gathers what arrives while this one's query runs.
        if rx.lock().await.recv_many(&mut batch, MAX_KEYS).await == 0 {
            return;
        }
        let keys = batch.iter().map(|(key, _)| key.clone()).collect();
        // A task of its own: should the query panic, its lookups get an error and this
        // task goes on serving the next ones.
        let fetched = tokio::spawn(fetch(keys)).await.unwrap_or_else(|e| Err(StoreError::Backend(format!("lookup failed: {e}"))));
        match fetched {
            Ok(rows) => {
                let found: HashMap<String, StoreResult<V>> = rows.into_iter().collect();
                for (key, answer) in batch.drain(..) {
                    let _ = answer.send(found.get(&key).cloned().transpose());
                }
            }
            // The query as a whole failed (the database is down, say): every lookup in it
            // gets the error. Not asked again key by key, which would hold this task for a
            // pool timeout per key and send the database more queries when it can least
            // take them.
            Err(e) => {
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}
