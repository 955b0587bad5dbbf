//! PostgreSQL, through sqlx: any number of stateless Gatehouse instances share one
//! database. Migrations take an advisory lock (sqlx's migrator does), so instances may
//! start at once.

mod batch;
mod lookups;
mod notify;
mod tx;

pub(crate) use notify::{follow, PgChannel};

use std::str::FromStr;
use std::sync::Arc;

use gatehouse_core::model::{AccessTokenInfo, Client, RefreshToken};
use gatehouse_core::store::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Pool, Postgres, Row as _};

use crate::db::{Arg, Db, Row, TxBody};
use crate::retry::retrying;
use crate::group_commit::TokenWriter;
use crate::StoreOptions;
use crate::rows::{self, ACCESS_SELECT, CLIENT_COLS, REFRESH_SELECT};
use lookups::BatchedLookups;
use tx::{bound, pg_err, PgTx};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Why PostgreSQL could not be reached or migrated; the URL is shown without its password.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    #[error("bad PostgreSQL URL {url}: {source}")]
    BadUrl { url: String, source: sqlx::Error },
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrating PostgreSQL failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub struct PgDb {
    pool: Pool<Postgres>,
    /// For the shared rate-limit buckets only: commits that do not wait for the disk.
    rates: Pool<Postgres>,
    tokens: TokenWriter,
    // The lookups every token request and every validation makes, batched (see lookups).
    access: BatchedLookups<AccessTokenInfo>,
    refresh: BatchedLookups<RefreshToken>,
    clients: BatchedLookups<Client>,
}

/// Queries in flight at once per kind of lookup: with one, the lookups of a busy
/// instance wait a little longer and are fetched in half as many statements.
const LOOKUP_QUERIES: usize = 1;

/// Starts batched lookups of rows by their key: `select` is the query up to its WHERE
/// clause, `key` the key's column, which is also the row's first; `map` makes a value of
/// a row.
fn batched<V: Clone + Send + 'static>(
    pool: &Pool<Postgres>,
    select: &str,
    key: &str,
    map: fn(Row) -> StoreResult<V>,
) -> BatchedLookups<V> {
    let sql: Arc<str> = format!("{select} WHERE {key} = ANY($1)").into();
    let pool = pool.clone();
    BatchedLookups::start(LOOKUP_QUERIES, move |keys: Vec<String>| {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move {
            let found: Vec<PgRow> = sqlx::query(&sql).bind(keys).fetch_all(&pool).await.map_err(pg_err)?;
            // A row that cannot be read is its own key's error, not its neighbours'.
            let mut out = Vec::with_capacity(found.len());
            for r in &found {
                let Ok(key) = r.try_get::<String, _>(0) else { continue };
                out.push((key, tx::row(r).and_then(map)));
            }
            Ok(out)
        }
    })
}

impl PgDb {
    pub(crate) async fn connect(url: &str, store: StoreOptions) -> Result<PgDb, PgConnectError> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|source| PgConnectError::BadUrl { url: shown.clone(), source })?;
        // A lock held by an instance that died or hangs mid-transaction fails the
        // requests waiting on it as unavailable after the wait, and such a transaction
        // is ended by the server after a minute.
        let lock_timeout = store.wait.as_millis().to_string();
        let options = options.options([("lock_timeout", lock_timeout.as_str()), ("idle_in_transaction_session_timeout", "60000")]);
        let open = |max, options: PgConnectOptions| {
            let shown = shown.clone();
            async move {
                PgPoolOptions::new()
                    .max_connections(max)
                    // An unreachable database fails a request as unavailable after this.
                    .acquire_timeout(store.wait)
                    .connect_with(options)
                    .await
                    .map_err(|source| PgConnectError::Connect { url: shown, source })
            }
        };
        let pool = open(16, options.clone()).await?;
        MIGRATOR.run(&pool).await?;
        // Every request of a client counts against one row. With durable commits its lock
        // was held through each fsync, one request after another. A crash of the database
        // may forget the last moments of counting, which leaves a bucket a little fuller;
        // tokens are never written through this pool.
        let rates = open(4, options.options([("synchronous_commit", "off")])).await?;
        // One writer task: two or four at once made smaller batches and more statements.
        let tokens = TokenWriter::start(batch::PgBatches(pool.clone()));
        let access = batched(&pool, ACCESS_SELECT, "a.token_hash", rows::access);
        let refresh = batched(&pool, REFRESH_SELECT, "token_hash", rows::refresh);
        let clients = batched(&pool, &format!("SELECT {CLIENT_COLS} FROM clients c"), "c.id", rows::client);
        Ok(PgDb { pool, rates, tokens, access, refresh, clients })
    }

    pub(crate) fn pool(&self) -> &Pool<Postgres> {
        &self.pool
    }
}

impl Db for PgDb {
    const CAPPED_GRANTS_IN_BATCHES: bool = false;
    const PRESENTED_IN_WRITER: bool = false;

    async fn read(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        tx::rows(bound(sql, args).fetch_all(&self.pool).await.map_err(pg_err)?)
    }

    async fn write(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        Ok(bound(sql, args).execute(&self.pool).await.map_err(pg_err)?.rows_affected())
    }

    async fn count_rate(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        tx::rows(bound(sql, args).fetch_all(&self.rates).await.map_err(pg_err)?)
    }

    async fn transaction<A, T>(&self, args: A, body: TxBody<A, T>) -> StoreResult<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let args = &args;
        retrying(|| async move {
            let mut tx = PgTx(self.pool.begin().await.map_err(pg_err)?);
            let value = body(&mut tx, args).await?;
            tx.0.commit().await.map_err(pg_err)?;
            Ok(value)
        })
        .await
    }

    fn tokens(&self) -> &TokenWriter {
        &self.tokens
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn pool_usage(&self) -> gatehouse_core::store::PoolUsage {
        let (size, idle) = (self.pool.size() + self.rates.size(), (self.pool.num_idle() + self.rates.num_idle()) as u32);
        gatehouse_core::store::PoolUsage { in_use: size.saturating_sub(idle), idle }
    }

    async fn find_access(&self, token_hash: &str) -> StoreResult<Option<AccessTokenInfo>> {
        self.access.get(token_hash).await
    }

    async fn find_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        self.refresh.get(token_hash).await
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.clients.get(id).await
    }
}

/// A database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(super::redact_url("postgres://gh:hunter2@db:5432/gh"), "postgres://gh:***@db:5432/gh");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
