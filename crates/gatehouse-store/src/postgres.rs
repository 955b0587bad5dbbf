//! PostgreSQL: any number of stateless Gatehouse instances share one database.
//! Migrations take an advisory lock (sqlx's migrator does), so instances may start at once.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres, Transaction};

use crate::group_commit::TokenWriter;

pub struct PgStore {
    pool: Pool<Postgres>,
    /// For the shared rate-limit buckets only: commits that do not wait for the disk.
    rates: Pool<Postgres>,
    tokens: TokenWriter,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, String> {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| format!("bad PostgreSQL URL {}: {e}", crate::redact_url(url)))?;
        let open = |max, options| async move {
            PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| format!("cannot connect to PostgreSQL at {}: {e}", crate::redact_url(url)))
        };
        let pool = open(16, options.clone()).await?;
        MIGRATOR.run(&pool).await.map_err(|e| format!("migrating PostgreSQL failed: {e}"))?;
        // Every request of a client counts against one row. With durable commits its lock
        // was held through each fsync, one request after another (about 2,000 a second).
        // A crash of the database may forget the last moments of counting, which leaves
        // a bucket a little fuller; tokens are never written through this pool.
        let rates = open(4, options.options([("synchronous_commit", "off")])).await?;
        // New tokens, redemptions and rotations in batches (see group_commit): one
        // statement per token had PostgreSQL spend its CPU on round trips and commits.
        let tokens = TokenWriter::on_tasks(store_impl::Batches(pool.clone()), 1);
        Ok(PgStore { pool, rates, tokens })
    }

    pub async fn migration_versions(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
    }

    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn reader(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn rate_writer(&self) -> &Pool<Postgres> {
        &self.rates
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// PostgreSQL already groups the WAL flushes of concurrent commits.
    async fn insert_tokens_durably(
        &self,
        issue: &gatehouse_core::store::TokenIssue,
        caps: gatehouse_core::policy::RefreshCaps,
        now: i64,
    ) -> gatehouse_core::store::StoreResult<()> {
        self.tokens.insert(issue, caps, now).await
    }

    async fn claim_durably(&self, claim: crate::sql_store::Claim) -> gatehouse_core::store::StoreResult<bool> {
        self.tokens.claim(claim).await
    }
}

crate::sql_store::impl_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, " FOR NO KEY UPDATE", "BEGIN");
