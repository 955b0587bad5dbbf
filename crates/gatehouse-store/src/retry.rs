//! Transactions run again after a transient conflict, and conflicts said in the caller's
//! words.

use std::future::Future;
use std::time::Duration;

use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;

const ATTEMPTS: u32 = 5;

/// Runs a write transaction again when it failed on a transient conflict, with a short
/// growing pause; any other outcome is returned as it is.
pub async fn retrying<T, F, Fut>(mut transaction: F) -> StoreResult<T>
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

/// A `Conflict` error said in the caller's words: the database's names a table or column.
pub fn conflict_as(what: &str) -> impl Fn(StoreError) -> StoreError + '_ {
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
