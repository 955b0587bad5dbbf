//! The seam between the store's SQL and the two drivers. What the store does is written
//! once, as SQL text and the steps around it, against [`Tx`] (statements inside one
//! transaction) and [`Db`] (a backend: reads, single writes, transactions, the token
//! writer and its lookups by key). `sqlite` implements them with rusqlite, `postgres`
//! with sqlx.
//!
//! Statements use `$1`, `$2`… placeholders, which both backends bind by number, and only
//! types both engines share: TEXT, 64-bit integers, flags as 0/1.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use gatehouse_core::model::{AccessTokenInfo, Client, RefreshToken};
use gatehouse_core::store::StoreResult;

use crate::group_commit::TokenWriter;
use crate::rows;
pub use crate::values::{Arg, Cell, Row};

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

    /// The migrations this build applies to the backend.
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// For readiness: whether the database's file is still the one open (SQLite).
    fn check_file(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Connections of the pool, for metrics.
    fn pool_usage(&self) -> gatehouse_core::store::PoolUsage;

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
