//! Statements through sqlx: binding parameters, reading rows, errors.

use async_trait::async_trait;
use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Column, Postgres, Row as _, TypeInfo};

use crate::db::{Arg, Cell, Row, Tx};

/// Maps a database error to the store's, keeping the cause for the log.
pub(crate) fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.constraint().unwrap_or("unique").to_string())
        }
        // serialization_failure and deadlock_detected: the transaction lost a race and
        // may simply be run again.
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001") | Some("40P01")) => {
            StoreError::Retryable(e.to_string())
        }
        // Connection exceptions, insufficient resources (a full disk, too many
        // connections), a server shutting down or starting, and system errors: faults
        // that clear.
        // And a lock not had within lock_timeout (55P03), a statement cancelled
        // (57014), a transaction ended for idling (25P03).
        sqlx::Error::Database(d)
            if d.code().is_some_and(|c| ["08", "53", "57P", "58", "55P03", "57014", "25P03"].iter().any(|p| c.starts_with(p))) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// The statement with its arguments bound.
pub(crate) fn bound<'q>(sql: &'q str, args: &'q [Arg<'_>]) -> Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for arg in args {
        q = match arg {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(t) => q.bind(t.as_ref()),
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<&str>),
        };
    }
    q
}

/// A row's cells, by the types the schema uses.
pub(crate) fn row(r: &PgRow) -> StoreResult<Row> {
    let mut cells = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let cell = match column.type_info().name() {
            "INT8" => r.try_get::<Option<i64>, _>(i).map(|v| v.map(Cell::Int)),
            "INT4" => r.try_get::<Option<i32>, _>(i).map(|v| v.map(|n| Cell::Int(n.into()))),
            "INT2" => r.try_get::<Option<i16>, _>(i).map(|v| v.map(|n| Cell::Int(n.into()))),
            _ => r.try_get::<Option<String>, _>(i).map(|v| v.map(Cell::Text)),
        };
        cells.push(cell.map_err(pg_err)?.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

pub(crate) fn rows(found: Vec<PgRow>) -> StoreResult<Vec<Row>> {
    found.iter().map(row).collect()
}

/// An open transaction.
pub(crate) struct PgTx(pub sqlx::Transaction<'static, Postgres>);

#[async_trait]
impl Tx for PgTx {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        Ok(bound(sql, args).execute(&mut *self.0).await.map_err(pg_err)?.rows_affected())
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        rows(bound(sql, args).fetch_all(&mut *self.0).await.map_err(pg_err)?)
    }

    fn row_lock(&self) -> &'static str {
        " FOR NO KEY UPDATE"
    }
}
