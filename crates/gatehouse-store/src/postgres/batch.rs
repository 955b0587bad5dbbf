//! The token writer's batches on PostgreSQL, where every statement is a round trip. The
//! common jobs, app tokens and refresh rotations, are all done by one statement
//! ([`STORE_PLAIN`]): it claims the batch's rotated tokens and stores the new tokens
//! from arrays, so its text is the same for every batch and stays prepared. Alone it
//! commits by itself: one round trip per batch. Other jobs run one by one in a
//! transaction with it.

use std::collections::HashSet;

use gatehouse_core::model::{AccessToken, RefreshToken};
use gatehouse_core::store::Rotation;
use sqlx::postgres::PgRow;
use sqlx::{Pool, Postgres, Row as _};

use super::tx::{pg_err, PgTx};
use crate::group_commit::{BatchError, Job, Outcome, WriteBatch};
use crate::token_steps::run_job;

pub(crate) struct PgBatches(pub Pool<Postgres>);

/// Claims the refresh tokens in `$2` that are still live (rotated at `$1`), and stores
/// the new tokens of each row whose old token (`$2`) it claimed or that has none (an
/// app token). Each row of the arrays is one job; the `r_` (refresh) columns are NULL
/// where it has no refresh token. Returns the keys it claimed. The statement's parts see one
/// snapshot, so the INSERTs read the claims from the UPDATE's RETURNING.
const STORE_PLAIN: &str = "\
WITH claimed AS (
    UPDATE refresh_tokens SET rotated_at = $1
    WHERE token_hash = ANY($2) AND rotated_at IS NULL AND revoked = 0
    RETURNING token_hash
), stored AS (
    SELECT * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[],
                         $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                         $16::int8[], $17::int8[], $18::text[])
        AS n(old, hash, client_id, user_id, scopes, created_at, expires_at, family_id, code_hash,
             r_hash, r_family, r_client_id, r_user_id, r_scopes, r_created_at, r_expires_at, r_code_hash)
    WHERE n.old IS NULL OR n.old IN (SELECT token_hash FROM claimed)
), access AS (
    INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, created_at, expires_at, family_id, code_hash, revoked)
    SELECT hash, client_id, user_id, scopes, created_at, expires_at, family_id, code_hash, 0 FROM stored
), refresh AS (
    INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scopes, created_at, expires_at, rotated_at,
                                revoked, code_hash)
    SELECT r_hash, r_family, r_client_id, r_user_id, r_scopes, r_created_at, r_expires_at, NULL, 0, r_code_hash
    FROM stored WHERE r_hash IS NOT NULL
)
SELECT token_hash FROM claimed";

/// The arrays of [`STORE_PLAIN`], a column each.
#[derive(Default)]
struct Plain<'a> {
    /// The rotations' time: the batch's first rotation's, shared by all of them.
    rotated_at: Option<i64>,
    old: Vec<Option<&'a str>>,
    hash: Vec<&'a str>,
    client_id: Vec<&'a str>,
    user_id: Vec<Option<&'a str>>,
    scopes: Vec<String>,
    created_at: Vec<i64>,
    expires_at: Vec<i64>,
    family_id: Vec<Option<&'a str>>,
    code_hash: Vec<Option<&'a str>>,
    r_hash: Vec<Option<&'a str>>,
    r_family: Vec<Option<&'a str>>,
    r_client_id: Vec<Option<&'a str>>,
    r_user_id: Vec<Option<&'a str>>,
    r_scopes: Vec<Option<String>>,
    r_created_at: Vec<Option<i64>>,
    r_expires_at: Vec<Option<i64>>,
    r_code_hash: Vec<Option<&'a str>>,
}

impl<'a> Plain<'a> {
    fn push(&mut self, old: Option<&'a str>, access: &'a AccessToken, refresh: Option<&'a RefreshToken>) {
        self.old.push(old);
        self.hash.push(&access.token_hash);
        self.client_id.push(&access.client_id);
        self.user_id.push(access.user_id.as_deref());
        self.scopes.push(access.scopes.to_space_separated());
        self.created_at.push(access.created_at);
        self.expires_at.push(access.expires_at);
        self.family_id.push(access.family_id.as_deref());
        self.code_hash.push(access.code_hash.as_deref());
        self.r_hash.push(refresh.map(|r| r.token_hash.as_str()));
        self.r_family.push(refresh.map(|r| r.family_id.as_str()));
        self.r_client_id.push(refresh.map(|r| r.client_id.as_str()));
        self.r_user_id.push(refresh.map(|r| r.user_id.as_str()));
        self.r_scopes.push(refresh.map(|r| r.scopes.to_space_separated()));
        self.r_created_at.push(refresh.map(|r| r.created_at));
        self.r_expires_at.push(refresh.and_then(|r| r.expires_at));
        self.r_code_hash.push(refresh.and_then(|r| r.code_hash.as_deref()));
    }

    fn is_empty(&self) -> bool {
        self.hash.is_empty()
    }

    fn query(self) -> sqlx::query::Query<'a, Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(STORE_PLAIN)
            .bind(self.rotated_at.unwrap_or(0))
            .bind(self.old)
            .bind(self.hash)
            .bind(self.client_id)
            .bind(self.user_id)
            .bind(self.scopes)
            .bind(self.created_at)
            .bind(self.expires_at)
            .bind(self.family_id)
            .bind(self.code_hash)
            .bind(self.r_hash)
            .bind(self.r_family)
            .bind(self.r_client_id)
            .bind(self.r_user_id)
            .bind(self.r_scopes)
            .bind(self.r_created_at)
            .bind(self.r_expires_at)
            .bind(self.r_code_hash)
    }
}

/// Which jobs of `batch` [`STORE_PLAIN`] does, with their columns. Of two rotations of
/// one token, the first in arrival order is the one tried; the other is not live.
fn plain_jobs<'a>(batch: &'a [Job], outcomes: &mut [Option<Outcome>]) -> (Plain<'a>, Vec<(usize, &'a str)>) {
    let mut plain = Plain::default();
    let mut rotations = Vec::new();
    let mut keys = HashSet::new();
    for (i, job) in batch.iter().enumerate() {
        match job {
            Job::Issue { issue, .. } if issue.refresh.is_none() => {
                plain.push(None, &issue.access, None);
                outcomes[i] = Some(Outcome::Issued);
            }
            Job::Rotate { key, issue, now } => {
                // Not live unless the statement claims it (see `settle`).
                outcomes[i] = Some(Outcome::Rotated(Rotation::NotLive));
                if !keys.insert(key.as_str()) {
                    continue;
                }
                plain.rotated_at.get_or_insert(*now);
                plain.push(Some(key), &issue.access, issue.refresh.as_ref());
                rotations.push((i, key.as_str()));
            }
            _ => {}
        }
    }
    (plain, rotations)
}

/// Marks rotated the rotations whose keys the statement claimed.
fn settle(rows: &[PgRow], rotations: &[(usize, &str)], outcomes: &mut [Option<Outcome>]) {
    let claimed: HashSet<&str> = rows.iter().filter_map(|r| r.try_get::<&str, _>(0).ok()).collect();
    for (i, key) in rotations {
        if claimed.contains(key) {
            outcomes[*i] = Some(Outcome::Rotated(Rotation::Rotated));
        }
    }
}

impl WriteBatch for PgBatches {
    async fn write(&self, batch: &[Job]) -> Result<Vec<Outcome>, BatchError> {
        let mut outcomes: Vec<Option<Outcome>> = batch.iter().map(|_| None).collect();
        let (plain, rotations) = plain_jobs(batch, &mut outcomes);

        if outcomes.iter().all(Option::is_some) {
            if !plain.is_empty() {
                // A statement that fails in the database is rolled back; any other
                // failure (the connection lost, say) may come after it committed.
                let rows = plain.query().fetch_all(&self.0).await.map_err(|e| BatchError {
                    rolled_back: matches!(e, sqlx::Error::Database(_)),
                    error: pg_err(e),
                })?;
                settle(&rows, &rotations, &mut outcomes);
            }
            return Ok(outcomes.into_iter().flatten().collect());
        }

        let mut tx = PgTx(self.0.begin().await.map_err(pg_err)?);
        if !plain.is_empty() {
            let rows = plain.query().fetch_all(&mut *tx.0).await.map_err(pg_err)?;
            settle(&rows, &rotations, &mut outcomes);
        }
        // The rest one by one.
        for (i, job) in batch.iter().enumerate() {
            if outcomes[i].is_none() {
                outcomes[i] = Some(run_job(&mut tx, job).await?);
            }
        }
        tx.0.commit().await.map_err(|e| BatchError { error: pg_err(e), rolled_back: false })?;
        Ok(outcomes.into_iter().flatten().collect())
    }
}
