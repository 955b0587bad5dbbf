//! The seam between the store's SQL and the two drivers. What the store does is written
//! once, as SQL text and the steps around it, against [`Tx`] (statements inside one
//! transaction) and [`Db`] (a backend: reads, single writes, transactions, the token
//! writer and its lookups by key). `sqlite` implements them with rusqlite, `postgres`
//! with sqlx.
//!
//! Statements use `$1`, `$2`… placeholders, which both backends bind by number, and only
//! types both engines share: TEXT, 64-bit integers, flags as 0/1.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::error::StoreError;
use gatehouse_core::model::{AccessTokenInfo, Client, RefreshToken};
use gatehouse_core::store::StoreResult;

use crate::group_commit::TokenWriter;
use crate::rows;

/// A statement parameter. Nulls carry their type: PostgreSQL must know the column type
/// of every parameter, even a null one.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Int(i64),
    Text(Cow<'a, str>),
    NullInt,
    NullText,
}

impl Arg<'_> {
    /// The same parameter owning its text, to be sent to another thread.
    pub fn into_owned(self) -> Arg<'static> {
        match self {
            Arg::Int(i) => Arg::Int(i),
            Arg::Text(t) => Arg::Text(Cow::Owned(t.into_owned())),
            Arg::NullInt => Arg::NullInt,
            Arg::NullText => Arg::NullText,
        }
    }
}

impl From<i64> for Arg<'_> {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl From<bool> for Arg<'_> {
    fn from(b: bool) -> Self {
        Arg::Int(b as i64)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Arg<'_> {
    fn from(s: String) -> Self {
        Arg::Text(Cow::Owned(s))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(i: Option<i64>) -> Self {
        i.map_or(Arg::NullInt, Arg::Int)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Arg::NullText, Arg::from)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(s: &'a Option<String>) -> Self {
        s.as_deref().into()
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A result row, its cells in the order the SELECT names its columns. Reading a text
/// cell takes it out of the row.
#[derive(Debug)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&mut self, i: usize) -> StoreResult<&mut Cell> {
        self.0.get_mut(i).ok_or_else(|| StoreError::Backend(format!("no column {i} in the row")))
    }

    pub fn opt_text(&mut self, i: usize) -> StoreResult<Option<String>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(std::mem::take(t))),
            Cell::Int(_) => Err(StoreError::Backend(format!("column {i}: an integer where text belongs"))),
        }
    }

    pub fn text(&mut self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?.ok_or_else(|| StoreError::Backend(format!("column {i}: null where text belongs")))
    }

    pub fn opt_int(&mut self, i: usize) -> StoreResult<Option<i64>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            Cell::Text(_) => Err(StoreError::Backend(format!("column {i}: text where an integer belongs"))),
        }
    }

    pub fn int(&mut self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?.ok_or_else(|| StoreError::Backend(format!("column {i}: null where an integer belongs")))
    }

    pub fn flag(&mut self, i: usize) -> StoreResult<bool> {
        Ok(self.int(i)? != 0)
    }
}

/// Statements inside one open transaction.
#[async_trait]
pub trait Tx: Send {
    /// Runs a statement; the rows it changed.
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64>;
    /// Runs a query (or a statement with RETURNING); its rows.
    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>>;
    /// Appended to the SELECT that starts a read-modify-write: " FOR NO KEY UPDATE" on
    /// PostgreSQL (it queues writers of the row but, unlike FOR UPDATE, not the share
    /// locks that foreign-key checks take); nothing on SQLite, whose write transactions
    /// are already exclusive. The one place where the two dialects differ.
    fn row_lock(&self) -> &'static str;

    async fn row(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Option<Row>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }
}

pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 't>>;

/// The body of a transaction: its steps, given the open transaction and the arguments
/// handed to [`Db::transaction`]. A plain function (a closure that captures nothing), so
/// that a backend may run it again after a transient conflict.
pub type TxBody<A, T> = for<'t> fn(&'t mut dyn Tx, &'t A) -> TxFuture<'t, T>;

/// A backend: how the store reaches its database.
pub trait Db: Send + Sync + Sized + 'static {
    /// Grants that check the refresh-token caps go through the token writer's batches.
    /// On PostgreSQL they lock their user's row, and two instances batching them could
    /// take two users' locks in opposite orders and deadlock: there each is a
    /// transaction of its own.
    const CAPPED_GRANTS_IN_BATCHES: bool;
    /// A presented refresh token is read, decided and rotated by the token writer, from
    /// the page cache its commits keep warm (SQLite); otherwise it is read first and
    /// then rotated (PostgreSQL: a read inside the writer's transaction would be one
    /// more round trip while it is open).
    const PRESENTED_IN_WRITER: bool;

    /// A query, seeing every committed write.
    fn read(&self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = StoreResult<Vec<Row>>> + Send;

    /// One statement that commits by itself; the rows it changed.
    fn write(&self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = StoreResult<u64>> + Send;

    /// A statement on a shared rate bucket, which commits by itself; its RETURNING rows.
    fn count_rate(&self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = StoreResult<Vec<Row>>> + Send;

    /// Runs `body` in one write transaction and commits it; rolled back on any error.
    fn transaction<A, T>(&self, args: A, body: TxBody<A, T>) -> impl Future<Output = StoreResult<T>> + Send
    where
        A: Send + Sync + 'static,
        T: Send + 'static;

    /// The queue of the hot writes (see `group_commit`).
    fn tokens(&self) -> &TokenWriter;

    // The lookups every request makes, which a backend may make its own way.

    fn find_access(&self, token_hash: &str) -> impl Future<Output = StoreResult<Option<AccessTokenInfo>>> + Send {
        async move {
            self.read(&rows::ACCESS_BY_HASH, &[token_hash.into()]).await?.into_iter().next().map(rows::access).transpose()
        }
    }

    fn find_refresh(&self, token_hash: &str) -> impl Future<Output = StoreResult<Option<RefreshToken>>> + Send {
        async move {
            self.read(&rows::REFRESH_BY_HASH, &[token_hash.into()]).await?.into_iter().next().map(rows::refresh).transpose()
        }
    }

    fn find_client(&self, id: &str) -> impl Future<Output = StoreResult<Option<Client>>> + Send {
        async move {
            self.read(&rows::CLIENT_BY_ID, &[id.into()]).await?.into_iter().next().map(rows::client).transpose()
        }
    }
}

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

    #[test]
    fn rows_give_their_cells_by_type_and_refuse_the_wrong_one() {
        let mut row = Row(vec![Cell::Text("a".into()), Cell::Int(7), Cell::Null]);
        assert_eq!(row.int(1).unwrap(), 7);
        assert!(row.text(1).is_err());
        assert!(row.int(0).is_err());
        assert_eq!(row.text(0).unwrap(), "a");
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert!(row.int(2).is_err());
        assert!(row.int(3).is_err(), "past the last column");
    }
}
