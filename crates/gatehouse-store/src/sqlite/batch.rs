//! The token writer's batches on SQLite: one IMMEDIATE transaction on the writer's
//! connection, the jobs in arrival order, one commit. Each statement runs in-process
//! and stays prepared from one batch to the next, so a job is a few B-tree updates in
//! pages the writer's own commits keep cached; the commit (and its fsync) is shared by
//! the whole batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::Mutex;

use super::conn::SqliteTx;
use crate::group_commit::{BatchError, Job, Outcome, WriteBatch};
use crate::token_steps::run_job;

pub(crate) struct SqliteBatches {
    conn: Arc<Mutex<Connection>>,
    /// How long a batch may wait for a lock another process holds.
    wait: Duration,
}

impl SqliteBatches {
    pub fn new(conn: Arc<Mutex<Connection>>, wait: Duration) -> Self {
        SqliteBatches { conn, wait }
    }
}

impl WriteBatch for SqliteBatches {
    async fn write(&self, batch: &[Job]) -> Result<Vec<Outcome>, BatchError> {
        let mut tx = SqliteTx::take(self.conn.clone().lock_owned().await, Instant::now(), self.wait)?.begin()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            outcomes.push(run_job(&mut tx, job).await?);
        }
        tx.commit().map_err(|(error, still_open)| BatchError { error, rolled_back: still_open })?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gatehouse_core::error::StoreError;
    use gatehouse_core::model::*;
    use gatehouse_core::policy::RefreshCaps;
    use gatehouse_core::scope::ScopeSet;
    use gatehouse_core::secret::random_token;
    use gatehouse_core::store::*;

    use super::*;
    use crate::SqliteStore;

    const NOW: i64 = 1_800_000_000;
    const CAPS: RefreshCaps = RefreshCaps { per_client_user: 100, per_user: 100 };

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

    fn app_token() -> Job {
        let access = AccessToken { user_id: None, family_id: None, code_hash: None, ..issue("-", NOW).access };
        Job::Issue { issue: TokenIssue { access, refresh: None }, caps: CAPS, now: NOW }
    }

    fn key(i: &TokenIssue) -> String {
        i.refresh.as_ref().unwrap().token_hash.clone()
    }

    fn rotation(old: &TokenIssue, next: &TokenIssue, now: i64) -> Job {
        Job::Rotate { key: key(old), issue: next.clone(), now }
    }

    fn access_key(job: &Job) -> &str {
        match job {
            Job::Issue { issue, .. } | Job::Rotate { issue, .. } => &issue.access.token_hash,
            _ => unreachable!("not used in these tests"),
        }
    }

    fn rotations(outcomes: &[Outcome]) -> Vec<bool> {
        outcomes.iter().map(|o| matches!(o, Outcome::Rotated(Rotation::Rotated) | Outcome::Issued)).collect()
    }

    async fn rotated_at(store: &SqliteStore, i: &TokenIssue) -> Option<i64> {
        store.find_refresh_token(&key(i)).await.unwrap().unwrap().rotated_at
    }

    /// A store in `dir` with the user `u` and the client `c` the tokens name, and its
    /// batch writer.
    async fn store_with_client(dir: &tempfile::TempDir) -> (SqliteStore, SqliteBatches) {
        let store = SqliteStore::open(dir.path().join("t.db").to_str().unwrap()).await.unwrap();
        let user = User { id: "u".into(), login: "alice".into(), email: "a@example.com".into(), password_hash: "x".into(), created_at: 0, ..User::default() };
        store.create_user(&user).await.unwrap();
        let client = Client {
            id: "c".into(),
            name: "App".into(),
            owner_user_id: "u".into(),
            category: "other".into(),
            kind: ClientKind::Confidential,
            allow_implicit: false,
            redirect_uris: vec![],
            secret_hash: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: 0,
            jwt_access_tokens: false,
        };
        store.create_client(&client).await.unwrap();
        let writer = SqliteBatches::new(store.db.conn.clone(), std::time::Duration::from_secs(3));
        (store, writer)
    }

    /// A batch: each rotation at its own time, the first of two of one token winning, app
    /// tokens beside them; a bad job rolls the batch back whole and leaves the connection
    /// fit for the next.
    #[tokio::test]
    async fn rotations_and_app_tokens_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = store_with_client(&dir).await;
        let [a, b, c] = ["fa", "fb", "fc"].map(|f| issue(f, NOW));
        for i in [&a, &b, &c] {
            store.insert_tokens(i, CAPS, NOW).await.unwrap();
        }

        let (x, y, z) = (issue("fa", NOW + 1), issue("fa", NOW + 2), issue("fb", NOW + 3));
        let batch = [rotation(&a, &x, NOW + 1), rotation(&a, &y, NOW + 2), app_token(), rotation(&b, &z, NOW + 3)];
        let outcomes = writer.write(&batch).await.map_err(|e| e.error).unwrap();
        assert_eq!(rotations(&outcomes), [true, false, true, true]);
        assert_eq!((rotated_at(&store, &a).await, rotated_at(&store, &b).await), (Some(NOW + 1), Some(NOW + 3)));
        for (job, stored) in batch.iter().zip([true, false, true, true]) {
            assert_eq!(store.find_access_token(access_key(job)).await.unwrap().is_some(), stored);
        }
        assert_eq!(rotated_at(&store, &x).await, None);
        assert!(store.find_refresh_token(&key(&y)).await.unwrap().is_none());

        // A new access token that repeats a stored one's key: nothing of the batch stays.
        let mut bad = issue("fc", NOW + 4);
        bad.access.token_hash = x.access.token_hash.clone();
        let batch = [app_token(), rotation(&c, &bad, NOW + 4)];
        match writer.write(&batch).await {
            Err(BatchError { error: StoreError::Conflict(what), rolled_back: true }) => assert_eq!(what, "unique"),
            Err(e) => panic!("unexpected {} (rolled back: {})", e.error, e.rolled_back),
            Ok(outcomes) => panic!("the batch was written: {outcomes:?}"),
        }
        assert_eq!(rotated_at(&store, &c).await, None);
        assert!(store.find_access_token(access_key(&batch[0])).await.unwrap().is_none());

        let good = issue("fc", NOW + 5);
        let batch = [rotation(&c, &good, NOW + 5), app_token()];
        let outcomes = writer.write(&batch).await.map_err(|e| e.error).unwrap();
        assert_eq!(rotations(&outcomes), [true, true]);
        assert_eq!(rotated_at(&store, &c).await, Some(NOW + 5));
        assert!(store.find_access_token(access_key(&batch[1])).await.unwrap().is_some());
    }

    /// Presented rotations: the writer reads each token in the batch and asks its
    /// decision; the first accepted rotation of a token wins, and an unknown or refused
    /// token stores nothing.
    #[tokio::test]
    async fn presented_rotations_are_read_decided_and_rotated_in_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer) = store_with_client(&dir).await;
        let [a, b] = ["fa", "fb"].map(|f| issue(f, NOW));
        for i in [&a, &b] {
            store.insert_tokens(i, CAPS, NOW).await.unwrap();
        }
        let offer = |next: &TokenIssue| -> Decide {
            let next = next.clone();
            Arc::new(move |_: &RefreshToken| Some(next.clone()))
        };
        let present = |key: String, decide| Job::Present { key, decide, now: NOW + 1 };
        let (x, y) = (issue("fa", NOW + 1), issue("fa", NOW + 1));
        let batch = [
            present(key(&a), offer(&x)),
            // Reads the token the first rotated, and accepts it all the same: not live.
            present(key(&a), offer(&y)),
            present("unknown".into(), offer(&y)),
            present(key(&b), Arc::new(|_: &RefreshToken| None)),
            app_token(),
        ];
        let outcomes = writer.write(&batch).await.map_err(|e| e.error).unwrap();
        match &outcomes[..] {
            [Outcome::Presented(Presented::Rotated(rotated)), Outcome::Presented(Presented::NotLive), Outcome::Presented(Presented::Unknown), Outcome::Presented(Presented::Refused(refused)), Outcome::Issued] =>
            {
                assert_eq!((&rotated.token_hash, rotated.rotated_at), (&key(&a), None));
                assert_eq!(refused.token_hash, key(&b));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((rotated_at(&store, &a).await, rotated_at(&store, &b).await), (Some(NOW + 1), None));
        for (i, stored) in [(&x, true), (&y, false)] {
            assert_eq!(store.find_access_token(&i.access.token_hash).await.unwrap().is_some(), stored);
            assert_eq!(store.find_refresh_token(&key(i)).await.unwrap().is_some(), stored);
        }
    }
}
