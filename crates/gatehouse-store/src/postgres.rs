//! PostgreSQL: any number of stateless Gatehouse instances share one database.
//! Migrations take an advisory lock (sqlx's migrator does), so instances may start at once.

use std::str::FromStr;
use std::time::Duration;

use gatehouse_core::model::{AccessTokenInfo, Client, RefreshToken};
use gatehouse_core::store::StoreResult;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres, Transaction};

use crate::batch_read::BatchedLookups;
use crate::group_commit::TokenWriter;
use crate::sql_store::db_err;

pub struct PgStore {
    pool: Pool<Postgres>,
    /// For the shared rate-limit buckets only: commits that do not wait for the disk.
    rates: Pool<Postgres>,
    tokens: TokenWriter,
    // The lookups every token request and every validation makes, batched (see batch_read).
    access: BatchedLookups<AccessTokenInfo>,
    refresh: BatchedLookups<RefreshToken>,
    clients: BatchedLookups<Client>,
}

/// Queries in flight at once per kind of lookup.
const LOOKUP_QUERIES: usize = 2;

/// Starts batched lookups of rows by their key: `select` is the query up to its WHERE
/// clause, `key` the key's column as the WHERE clause names it and `column` as the row
/// does, `map` makes a value of a row.
fn batched<V: Clone + Send + 'static>(
    pool: &Pool<Postgres>,
    select: String,
    (key, column): (&'static str, &'static str),
    map: fn(&sqlx::postgres::PgRow) -> Result<V, sqlx::Error>,
) -> BatchedLookups<V> {
    let sql: std::sync::Arc<str> = format!("{select} WHERE {key} = ANY($1)").into();
    let pool = pool.clone();
    BatchedLookups::start(LOOKUP_QUERIES, move |keys: Vec<String>| {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move {
            use sqlx::Row;
            let rows = sqlx::query(&sql).bind(keys).fetch_all(&pool).await.map_err(db_err)?;
            // A row that cannot be read is its own key's error, not its neighbours'.
            Ok(rows.iter().filter_map(|r| Some((r.try_get(column).ok()?, map(r).map_err(db_err)))).collect())
        }
    })
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
        // App tokens and rotations in batches (see group_commit): one statement per token
        // had PostgreSQL spend its CPU on round trips and commits. One writer task: two
        // or four at once were slower (smaller batches, more statements).
        let tokens = TokenWriter::on_task(store_impl::Batches(pool.clone()));
        let access = batched(&pool, store_impl::ACCESS_SELECT.into(), ("a.token_hash", "token_hash"), store_impl::access);
        let refresh_select = format!("SELECT {} FROM refresh_tokens", store_impl::REFRESH_COLS);
        let refresh = batched(&pool, refresh_select, ("token_hash", "token_hash"), store_impl::refresh);
        let client_select = format!("SELECT {} FROM clients", store_impl::CLIENT_COLS);
        let clients = batched(&pool, client_select, ("id", "id"), store_impl::client);
        Ok(PgStore { pool, rates, tokens, access, refresh, clients })
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

    /// App tokens and rotations go through the batch writer. Grants that check the
    /// refresh caps lock their user's row; batched, two instances could take two users'
    /// locks in opposite orders and deadlock, so each of those is a transaction of its
    /// own, as the pool allows several at once.
    async fn insert_tokens_durably(
        &self,
        issue: &gatehouse_core::store::TokenIssue,
        caps: gatehouse_core::policy::RefreshCaps,
        now: i64,
    ) -> gatehouse_core::store::StoreResult<()> {
        use crate::sql_store::{db_err, retrying};
        if issue.refresh.is_none() {
            return self.tokens.insert(issue, caps, now).await;
        }
        retrying(|| async move {
            let mut tx = self.begin_write().await.map_err(db_err)?;
            store_impl::store_new_grant(&mut tx, issue, caps, now).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    // The lookups a backend may make its own way (None: through the pool): batched here.
    async fn lookup_refresh(&self, token_hash: &str) -> Option<StoreResult<Option<RefreshToken>>> {
        Some(self.refresh.get(token_hash).await)
    }

    async fn lookup_access(&self, token_hash: &str) -> Option<StoreResult<Option<AccessTokenInfo>>> {
        Some(self.access.get(token_hash).await)
    }

    async fn lookup_client(&self, id: &str) -> Option<StoreResult<Option<Client>>> {
        Some(self.clients.get(id).await)
    }

    async fn claim_durably(&self, claim: crate::sql_store::Claim) -> gatehouse_core::store::StoreResult<bool> {
        use crate::sql_store::{db_err, retrying};
        if claim.caps.is_none() {
            return self.tokens.claim(claim).await;
        }
        let claim = &claim;
        retrying(|| async move {
            let mut tx = self.begin_write().await.map_err(db_err)?;
            let won = store_impl::claim_then_store(&mut tx, claim).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(won)
        })
        .await
    }

    /// A read (batched with others, see `lookup_refresh`) and then the rotation: a read
    /// inside the writer's transaction would be one more round trip while it is open.
    async fn rotate_presented_here(
        &self,
        old_hash: &str,
        now: i64,
        decide: gatehouse_core::store::Decide,
    ) -> StoreResult<gatehouse_core::store::Presented> {
        gatehouse_core::store::rotate_presented_in_steps(self, old_hash, now, decide).await
    }
}

crate::sql_store::impl_store!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, " FOR NO KEY UPDATE", "BEGIN");
