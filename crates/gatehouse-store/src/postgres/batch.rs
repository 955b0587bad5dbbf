//! The token writer's batches on PostgreSQL, where every statement is a round trip: app
//! tokens are stored with multi-row INSERTs, and every rotation in the batch is claimed
//! by one UPDATE … RETURNING, its successors stored with multi-row INSERTs too. Other
//! jobs run one by one in the same transaction.

use std::collections::HashSet;

use gatehouse_core::model::{AccessToken, RefreshToken};
use gatehouse_core::store::{Rotation, TokenIssue};
use sqlx::{Pool, Postgres, QueryBuilder, Row as _};

use super::tx::{pg_err, PgTx};
use crate::group_commit::{BatchError, Job, Outcome, WriteBatch};
use crate::token_steps::run_job;

/// Rows in one INSERT: ten parameters at most, well under PostgreSQL's limit of 65,535.
const ROWS_PER_INSERT: usize = 256;

pub(crate) struct PgBatches(pub Pool<Postgres>);

fn insert_access_rows<'a>(tokens: impl IntoIterator<Item = &'a AccessToken>) -> QueryBuilder<'a, Postgres> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, created_at, expires_at, family_id, \
         code_hash, revoked) ",
    );
    insert.push_values(tokens, |mut row, a| {
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
    insert
}

fn insert_refresh_rows<'a>(tokens: impl IntoIterator<Item = &'a RefreshToken>) -> QueryBuilder<'a, Postgres> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scopes, created_at, expires_at, \
         rotated_at, revoked, code_hash) ",
    );
    insert.push_values(tokens, |mut row, r| {
        row.push_bind(&r.token_hash)
            .push_bind(&r.family_id)
            .push_bind(&r.client_id)
            .push_bind(&r.user_id)
            .push_bind(r.scopes.to_space_separated())
            .push_bind(r.created_at)
            .push_bind(r.expires_at)
            .push_bind(None::<i64>)
            .push_bind(0i64)
            .push_bind(&r.code_hash);
    });
    insert
}

/// Stores the tokens of `issues` with multi-row INSERTs.
async fn insert_issues(tx: &mut PgTx, issues: &[&TokenIssue]) -> Result<(), sqlx::Error> {
    // Plain loops, not iterator adapters: closures held across an await keep the future
    // from being Send (rustc's "FnOnce is not general enough").
    for chunk in issues.chunks(ROWS_PER_INSERT) {
        let mut access = Vec::with_capacity(chunk.len());
        let mut refresh = Vec::with_capacity(chunk.len());
        for issue in chunk {
            access.push(&issue.access);
            refresh.extend(issue.refresh.as_ref());
        }
        insert_access_rows(access).build().execute(&mut *tx.0).await?;
        if !refresh.is_empty() {
            insert_refresh_rows(refresh).build().execute(&mut *tx.0).await?;
        }
    }
    Ok(())
}

/// App tokens: access tokens alone, which need no cap checks.
fn app_token(job: &Job) -> Option<&TokenIssue> {
    match job {
        Job::Issue { issue, .. } if issue.refresh.is_none() => Some(issue),
        _ => None,
    }
}

impl WriteBatch for PgBatches {
    async fn write(&self, batch: &[Job]) -> Result<Vec<Outcome>, BatchError> {
        let mut outcomes: Vec<Option<Outcome>> = batch.iter().map(|_| None).collect();
        let mut apps = Vec::new();
        for (i, job) in batch.iter().enumerate() {
            if let Some(issue) = app_token(job) {
                apps.push(issue);
                outcomes[i] = Some(Outcome::Issued);
            }
        }
        // Nothing but app tokens, few enough for one INSERT: one statement (one round
        // trip) that commits by itself.
        if apps.len() == batch.len() && apps.len() <= ROWS_PER_INSERT {
            let access: Vec<&AccessToken> = apps.iter().map(|i| &i.access).collect();
            insert_access_rows(access).build().execute(&self.0).await.map_err(pg_err)?;
            return Ok(outcomes.into_iter().flatten().collect());
        }

        let mut tx = PgTx(self.0.begin().await.map_err(pg_err)?);
        insert_issues(&mut tx, &apps).await.map_err(pg_err)?;

        // Every rotation claimed by one UPDATE, which says which old tokens it claimed; of
        // two rotations of one token, the first in arrival order wins. The batch's
        // rotations share the first one's time.
        let rotations: Vec<(usize, &str, &TokenIssue, i64)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, job)| match job {
                Job::Rotate { key, issue, now } => Some((i, key.as_str(), issue, *now)),
                _ => None,
            })
            .collect();
        if let Some(&(_, _, _, at)) = rotations.first() {
            let mut update = QueryBuilder::<Postgres>::new("UPDATE refresh_tokens SET rotated_at = ");
            update.push_bind(at).push(" WHERE rotated_at IS NULL AND revoked = 0 AND token_hash IN (");
            let mut list = update.separated(", ");
            for (_, key, _, _) in &rotations {
                list.push_bind(*key);
            }
            update.push(") RETURNING token_hash");
            let claimed_rows = update.build().fetch_all(&mut *tx.0).await.map_err(pg_err)?;
            let mut claimed: HashSet<String> = claimed_rows.iter().map(|r| r.get::<String, _>(0)).collect();
            let mut issues = Vec::new();
            for (i, key, issue, _) in &rotations {
                let won = claimed.remove(*key);
                if won {
                    issues.push(*issue);
                }
                outcomes[*i] = Some(Outcome::Rotated(if won { Rotation::Rotated } else { Rotation::NotLive }));
            }
            insert_issues(&mut tx, &issues).await.map_err(pg_err)?;
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
