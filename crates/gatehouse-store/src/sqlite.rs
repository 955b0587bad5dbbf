//! SQLite: one file in WAL mode. Writes go through a single connection (SQLite has one
//! writer at a time anyway, and queuing in the pool is cheaper than SQLITE_BUSY retries);
//! reads use a pool of their own, which WAL lets run beside the writer.

use std::str::FromStr;
use std::time::Duration;

use gatehouse_core::model::{AccessTokenInfo, Client, RefreshToken};
use gatehouse_core::store::StoreResult;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};

use crate::direct_read::DirectReads;
use crate::group_commit::TokenWriter;

pub struct SqliteStore {
    reader: Pool<Sqlite>,
    writer: Pool<Sqlite>,
    tokens: TokenWriter,
    /// None for a database without a file (`:memory:`), which no other connection sees.
    direct: Option<DirectReads>,
    checkpointer: tokio::task::JoinHandle<()>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies committed pages from the log into the database on a connection of its own, so
/// the writer never waits for it. SQLite's own automatic checkpoint runs inside the
/// commit that crosses its threshold, and with a small threshold the writer spent most
/// of its time there. PASSIVE never blocks the writer or the readers; a page written
/// many times in one interval is copied once.
fn start_checkpointer(mut conn: sqlx::SqliteConnection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            // Said once when checkpoints start failing (a full disk, say) and once when
            // they work again, not four times a second.
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "SQLite checkpoints fail; the writer will checkpoint when the log is large");
                }
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("SQLite checkpoints work again");
                }
                _ => {}
            }
        }
    })
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &str) -> Result<Self, String> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| format!("bad SQLite path {path:?}: {e}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the client hears of it, so no issued token
            // is lost to a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Statement journals (a multi-row INSERT keeps one) in memory, not temp files.
            .pragma("temp_store", "memory")
            // Checkpoints are the checkpointer task's job (below); the writer does one
            // itself only if the log grows past this many pages (80 MiB) all the same.
            .pragma("wal_autocheckpoint", "20000")
            // After a burst, the log is cut back to 64 MiB when it starts over.
            .pragma("journal_size_limit", "67108864")
            .busy_timeout(Duration::from_secs(10));
        let cannot_open = |e: sqlx::Error| format!("cannot open SQLite database {path:?}: {e}");
        // No ping before each use (a hand-off to the connection's thread and back): a
        // connection to a local file does not go stale, and sqlx still pings each one
        // as it comes back to the pool.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // Never closed by the pool on its own: the batch writer keeps statements
            // prepared on this connection, and sqlx cannot close it with them open
            // (see `sqlite_batch`).
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(cannot_open)?;
        MIGRATOR.run(&writer).await.map_err(|e| format!("migrating {path:?} failed: {e}"))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.clone().read_only(true))
            .await
            .map_err(cannot_open)?;
        let checkpoints = sqlx::Connection::connect_with(&opts).await.map_err(cannot_open)?;
        // The file SQLite itself opened, whatever form the path was given in.
        let file: String = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&writer)
            .await
            .map_err(cannot_open)?;
        let direct = match file.as_str() {
            "" => None,
            file => {
                // One connection per runtime thread: a lookup never waits for another.
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                Some(DirectReads::open(file, threads).map_err(|e| format!("cannot open SQLite database {path:?}: {e}"))?)
            }
        };
        let tokens = TokenWriter::on_thread(crate::sqlite_batch::SqliteBatches::new(writer.clone())).map_err(|e| format!("cannot start the SQLite writer: {e}"))?;
        Ok(SqliteStore { reader, writer, tokens, direct, checkpointer: start_checkpointer(checkpoints) })
    }

    /// Applied migration versions, for the test that both backends are in step.
    pub async fn migration_versions(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.reader)
            .await
    }

    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn reader(&self) -> &Pool<Sqlite> {
        &self.reader
    }

    pub(crate) fn writer(&self) -> &Pool<Sqlite> {
        &self.writer
    }

    fn rate_writer(&self) -> &Pool<Sqlite> {
        &self.writer
    }

    /// IMMEDIATE takes the write lock at once, so a transaction never fails half-way
    /// when another process (an admin command) writes at the same time.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    async fn insert_tokens_durably(
        &self,
        issue: &gatehouse_core::store::TokenIssue,
        caps: gatehouse_core::policy::RefreshCaps,
        now: i64,
    ) -> gatehouse_core::store::StoreResult<()> {
        self.tokens.insert(issue, caps, now).await
    }

    // The lookups a backend may make its own way (None: through the pool). A refresh
    // token is looked up on the calling thread (see `direct_read`); clients and access
    // tokens are cached in front of this store (`CachedStore`).
    async fn lookup_refresh(&self, token_hash: &str) -> Option<StoreResult<Option<RefreshToken>>> {
        self.direct.as_ref().and_then(|d| d.refresh_token(token_hash))
    }

    async fn lookup_access(&self, _token_hash: &str) -> Option<StoreResult<Option<AccessTokenInfo>>> {
        None
    }

    async fn lookup_client(&self, _id: &str) -> Option<StoreResult<Option<Client>>> {
        None
    }

    async fn claim_durably(&self, claim: crate::sql_store::Claim) -> gatehouse_core::store::StoreResult<bool> {
        self.tokens.claim(claim).await
    }

    /// In the writer's batch: the read there costs less than a direct read here, whose
    /// page cache every commit empties.
    async fn rotate_presented_here(
        &self,
        old_hash: &str,
        now: i64,
        decide: gatehouse_core::store::Decide,
    ) -> StoreResult<gatehouse_core::store::Presented> {
        self.tokens.rotate_presented(old_hash.to_string(), now, decide).await
    }
}

crate::sql_store::impl_store!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "", "BEGIN IMMEDIATE");
