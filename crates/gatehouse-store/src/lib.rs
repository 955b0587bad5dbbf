//! Gatehouse storage: the core's storage roles for SQLite (the default) and PostgreSQL.
//!
//! The layout, from the core's traits down to the drivers:
//! - `roles/`: one file per role trait of `gatehouse_core::store`, each implemented once
//!   for [`SqlStore`], whatever its backend, as SQL text and the steps around it.
//! - `token_steps`: the steps of the token writes (new tokens, caps, claims, rotations,
//!   revocations), shared by the roles and the batch writers.
//! - `group_commit`: the queue of hot token writes ([`group_commit::Job`]), done in
//!   batches, one commit each.
//! - `db`: the seam between SQL and driver: `Db` (a backend) and `Tx` (an open
//!   transaction), parameters and rows.
//! - `sqlite/` (rusqlite: a writer thread owning its connection, read-only connections for
//!   lookups) and `postgres/` (sqlx: pools, batched lookups, bulk batches).
//! - `cache/`: the read cache in front of a store, kept coherent across instances on
//!   PostgreSQL by `postgres/notify.rs`.
//!
//! One conformance suite (`tests/conformance.rs`) runs every storage test against both.
//!
//! To add a table: a migration in both `migrations/sqlite` and `migrations/postgres` with
//! the same number; its column list and row reader in `rows.rs` (as `SESSION_SELECT` and
//! `session`); the methods in a role trait of `gatehouse_core::store` and their SQL in
//! the matching `roles/` file (as `create_session` and `find_session` in
//! `roles/accounts.rs`: `Db::write`, `Db::read`, or `Db::transaction` for several
//! statements, as `change_password`); a case in the conformance suite. A read cache, if
//! any, goes in `cache/`.
//!
//! To add a hot write that is worth batching: a variant of `group_commit::Job` and of
//! `Outcome`, its steps in `token_steps::run_job` (both backends' batch writers fall back
//! to it for jobs they do not do in bulk), and a role method that submits it (as
//! `rotate_refresh_token` in `roles/tokens.rs`).

mod cache;
mod db;
mod group_commit;
mod postgres;
mod retry;
mod roles;
mod rows;
mod sqlite;
mod token_steps;
mod values;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::store::Store;

pub use cache::CachedStore;
pub use postgres::{redact_url, PgConnectError, PgDb};
pub use sqlite::{backup_sqlite, restore_sqlite, BackupError, MigrateError, SqliteDb, SqliteOpenError};

/// How the store meets a fault.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// How long a request waits for the database (a free connection, a lock another
    /// process holds) before it fails as unavailable, answered 503 with Retry-After: an
    /// outage holds no client longer than this.
    pub wait: Duration,
    /// How long a cached lookup (a client, a user, an access token) may be served before
    /// it is read again; zero turns the cache off. Writes through any instance drop what
    /// they make stale at once; this bounds what else could be missed.
    pub staleness: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { wait: Duration::from_secs(3), staleness: Duration::from_secs(1) }
    }
}

/// The store, on the backend `D`.
pub struct SqlStore<D> {
    db: D,
}

pub type SqliteStore = SqlStore<SqliteDb>;
pub type PgStore = SqlStore<PgDb>;

impl SqlStore<SqliteDb> {
    /// Opens (creating if needed) the SQLite database file at `path` and applies migrations.
    pub async fn open(path: &str) -> Result<Self, SqliteOpenError> {
        Self::open_with(path, StoreOptions::default()).await
    }

    pub async fn open_with(path: &str, options: StoreOptions) -> Result<Self, SqliteOpenError> {
        Ok(SqlStore { db: SqliteDb::open(path, options).await? })
    }

    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &sqlite::MIGRATOR
    }
}

impl SqlStore<PgDb> {
    /// Connects to PostgreSQL and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, PgConnectError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, PgConnectError> {
        Ok(SqlStore { db: PgDb::connect(url, options).await? })
    }

    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &postgres::MIGRATOR
    }

    /// Applied migration versions, for the test that both backends are in step.
    pub async fn migration_versions(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(self.db.pool()).await
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH (no options) or postgres://…")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Sqlite(#[from] SqliteOpenError),
    #[error(transparent)]
    Postgres(#[from] PgConnectError),
}

/// Opens the store a database URL names, creating and migrating it as needed:
/// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, or `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, OpenError> {
    open_with(url, StoreOptions::default()).await
}

/// `open`, with how the store meets a fault.
pub async fn open_with(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>, OpenError> {
    let uncached = options.staleness.is_zero();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect_with(url, options).await?;
        if uncached {
            return Ok(Arc::new(store));
        }
        // Several instances may share the database: their caches are kept coherent.
        let pool = store.db.pool().clone();
        let channel = Arc::new(postgres::PgChannel(pool.clone()));
        let follow = |caches| postgres::follow(pool, caches);
        Ok(Arc::new(CachedStore::shared(Arc::new(store), options.staleness, channel, follow)))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        // A path, not a URI: `?mode=…` would name another file, not set an option.
        if path.contains('?') {
            return Err(OpenError::UnsupportedUrl(redact_url(url)));
        }
        let store = SqliteStore::open_with(path, options).await?;
        if uncached {
            return Ok(Arc::new(store));
        }
        // One server owns a SQLite file: its own writes are all there is to hear of.
        Ok(Arc::new(CachedStore::new(Arc::new(store), options.staleness)))
    } else {
        Err(OpenError::UnsupportedUrl(redact_url(url)))
    }
}
