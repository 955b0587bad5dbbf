//! SQLite: one file in WAL mode, reached through rusqlite in two ways only.
//!
//! - **Writes** go through one connection owned by the writer thread, which runs the
//!   token writer's batches and every other write as tasks of its own runtime, one at a
//!   time (SQLite has one writer anyway). Not the server's runtime: under load a batch
//!   would wait its turn behind every request task.
//! - **Reads** run on the calling thread, on read-only connections of their own, which
//!   WAL lets read beside the writer. A lookup by key whose pages are cached takes
//!   microseconds, less than a hand-off to another thread and back.

mod backup;
mod batch;
mod conn;
mod migrate;
mod reads;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;
use rusqlite::{Connection, OpenFlags};
use tokio::runtime::Handle;
use tokio::sync::Mutex;

use crate::db::{Arg, Db, Row, TxBody};
use crate::group_commit::TokenWriter;
use crate::StoreOptions;
pub use backup::{backup_sqlite, restore_sqlite, BackupError};
pub use migrate::MigrateError;
pub(crate) use migrate::MIGRATOR;

use conn::{sqlite_err, SqliteTx};
use reads::Readers;

/// Why a SQLite database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    #[error("cannot open SQLite database {path:?}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("migrating SQLite database {path:?} failed: {source}")]
    Migrate { path: String, source: MigrateError },
    #[error("cannot create SQLite database {path:?}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("cannot start the SQLite writer thread: {0}")]
    Thread(std::io::Error),
}

pub struct SqliteDb {
    /// The writer thread's runtime, where every write runs.
    writer: Handle,
    conn: Arc<Mutex<Connection>>,
    /// How long a write may wait for a lock another process holds, from when it is asked.
    wait: Duration,
    tokens: TokenWriter,
    /// None for a database without a file (`:memory:`), which no other connection sees:
    /// its reads go to the writer's connection.
    readers: Option<Readers>,
    /// Dropped with the store, these end the writer thread and the checkpointer.
    _stop_writer: tokio::sync::oneshot::Sender<()>,
    _stop_checkpoints: Option<std::sync::mpsc::Sender<()>>,
    /// None for `:memory:`.
    file: Option<OpenFile>,
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer connection's settings.
fn configure_writer(conn: &Connection, options: StoreOptions) -> rusqlite::Result<()> {
    // How long a write waits for a lock another process holds (an admin command, a
    // backup) before it fails as unavailable.
    conn.busy_timeout(options.wait)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(
        // FULL: a commit is on disk before the client hears of it, so no issued token is
        // lost to a power cut.
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 20000; \
         PRAGMA journal_size_limit = 67108864;",
    )
    // Statement journals in memory, not temp files. Checkpoints are the checkpointer's
    // job (below); the writer does one itself only if the log grows past 20,000 pages
    // (80 MiB) all the same. After a burst, the log is cut back to 64 MiB when it starts over.
}

/// Copies committed pages from the log into the database on a connection of its own, so
/// the writer never waits for it: SQLite's own automatic checkpoint runs inside the
/// commit that crosses its threshold. PASSIVE never blocks the writer or the readers; a
/// page written many times in one interval is copied once.
fn checkpoint_until_stopped(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    let mut failing = false;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        // Said once when checkpoints start failing (a full disk, say) and once when they
        // work again, not four times a second.
        match conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "SQLite checkpoints fail; the writer will checkpoint when the log is large");
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("SQLite checkpoints work again");
            }
            _ => {}
        }
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub(crate) async fn open(path: &str, options: StoreOptions) -> Result<SqliteDb, SqliteOpenError> {
        let cannot_open = |source| SqliteOpenError::Open { path: path.to_string(), source };
        create_private(path).map_err(|e| SqliteOpenError::Create { path: path.to_string(), source: e })?;
        let writer_conn = Connection::open(path).map_err(cannot_open)?;
        configure_writer(&writer_conn, options).map_err(cannot_open)?;
        migrate::run(&writer_conn).map_err(|source| SqliteOpenError::Migrate { path: path.to_string(), source })?;
        // The file SQLite itself opened, whatever form the path was given in.
        let file = writer_conn.path().unwrap_or("").to_string();
        let (readers, checkpoints) = match file.as_str() {
            "" => (None, None),
            file => {
                // One connection per runtime thread: a lookup never waits for another.
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let readers = Readers::open(file, threads).map_err(cannot_open)?;
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let checkpoints = Connection::open_with_flags(file, flags).map_err(cannot_open)?;
                (Some(readers), Some(checkpoints))
            }
        };
        let open_file = match file.as_str() {
            "" => None,
            file => {
                let path = std::path::PathBuf::from(file);
                let id = OpenFile::identify(&path).map_err(|e| SqliteOpenError::Create { path: file.to_string(), source: e })?;
                Some(OpenFile { path, id })
            }
        };
        let conn = Arc::new(Mutex::new(writer_conn));
        let (stop_writer, stopped) = tokio::sync::oneshot::channel();
        let (writer, tokens) = start_writer(conn.clone(), options.wait, stopped).map_err(SqliteOpenError::Thread)?;
        let stop_checkpoints = match checkpoints {
            Some(checkpoints) => {
                let (stop, stopped) = std::sync::mpsc::channel();
                std::thread::Builder::new()
                    .name("gatehouse-checkpoint".into())
                    .spawn(move || checkpoint_until_stopped(checkpoints, stopped))
                    .map_err(SqliteOpenError::Thread)?;
                Some(stop)
            }
            None => None,
        };
        Ok(SqliteDb {
            writer,
            conn,
            wait: options.wait,
            tokens,
            readers,
            _stop_writer: stop_writer,
            _stop_checkpoints: stop_checkpoints,
            file: open_file,
        })
    }

    /// Runs `work` on the writer thread with its connection; a panic in it fails only
    /// this call.
    async fn on_writer<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(SqliteTx) -> StoreResult<T> + Send + 'static,
    {
        let (conn, queued, wait) = (self.conn.clone(), Instant::now(), self.wait);
        let task = self.writer.spawn(async move { work(SqliteTx::take(conn.lock_owned().await, queued, wait)?) });
        task.await.map_err(|e| StoreError::Backend(format!("a SQLite write failed: {e}")))?
    }
}

/// Creates the database file, if there is none, readable by its owner only. Its log and
/// shared-memory files are created by SQLite with the same permissions. The file holds
/// only digests of tokens and secrets, but also every user's email and password hash.
fn create_private(path: &str) -> std::io::Result<()> {
    if path == ":memory:" || path.is_empty() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Starts the writer thread: a runtime of its own running the token writer, and the
/// other writes as they come; it ends when `stopped` hears that the store is gone.
fn start_writer(
    conn: Arc<Mutex<Connection>>,
    wait: Duration,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<(Handle, TokenWriter)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = runtime.handle().clone();
    let tokens = {
        let _entered = runtime.enter();
        TokenWriter::start(batch::SqliteBatches::new(conn, wait))
    };
    std::thread::Builder::new().name("gatehouse-writer".into()).spawn(move || {
        // The store's end closes this channel; until then the runtime runs its tasks.
        let _ = runtime.block_on(stopped);
    })?;
    Ok((handle, tokens))
}

impl Db for SqliteDb {
    const CAPPED_GRANTS_IN_BATCHES: bool = true;
    const PRESENTED_IN_WRITER: bool = true;

    async fn read(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        if let Some(found) = self.readers.as_ref().and_then(|r| r.query(sql, args)) {
            return found;
        }
        // No file of its own, or busy (recovery after another process crashed, say):
        // the writer's connection reads instead, and may wait.
        let (sql, args) = owned(sql, args);
        self.on_writer(move |tx| conn::query(tx.connection(), &sql, &args).map_err(sqlite_err)).await
    }

    async fn write(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let (sql, args) = owned(sql, args);
        self.on_writer(move |tx| conn::exec(tx.connection(), &sql, &args).map_err(sqlite_err)).await
    }

    async fn count_rate(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        let (sql, args) = owned(sql, args);
        self.on_writer(move |tx| conn::query(tx.connection(), &sql, &args).map_err(sqlite_err)).await
    }

    async fn transaction<A, T>(&self, args: A, body: TxBody<A, T>) -> StoreResult<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (conn, queued, wait) = (self.conn.clone(), Instant::now(), self.wait);
        let task = self.writer.spawn(async move {
            let mut tx = SqliteTx::take(conn.lock_owned().await, queued, wait)?.begin()?;
            let value = body(&mut tx, &args).await?;
            tx.commit().map_err(|(e, _)| e)?;
            Ok(value)
        });
        task.await.map_err(|e| StoreError::Backend(format!("a SQLite transaction failed: {e}")))?
    }

    fn tokens(&self) -> &TokenWriter {
        &self.tokens
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &migrate::MIGRATOR
    }

    fn check_file(&self) -> StoreResult<()> {
        match &self.file {
            Some(file) => file.check(),
            None => Ok(()),
        }
    }

    fn pool_usage(&self) -> gatehouse_core::store::PoolUsage {
        let (in_use, idle) = self.readers.as_ref().map_or((0, 0), Readers::usage);
        gatehouse_core::store::PoolUsage { in_use, idle }
    }
}

/// The database file the store opened, known by its device and inode: a file deleted or
/// replaced at its path goes on being written, and every later write is lost on restart.
struct OpenFile {
    path: std::path::PathBuf,
    id: (u64, u64),
}

impl OpenFile {
    fn identify(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok((meta.dev(), meta.ino()))
        }
        // Elsewhere only a deleted file is seen.
        #[cfg(not(unix))]
        {
            let _ = meta;
            Ok((0, 0))
        }
    }

    fn check(&self) -> StoreResult<()> {
        match Self::identify(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            Ok(_) => Err(StoreError::Unavailable(format!("{} was replaced by another file after it was opened", self.path.display()))),
            Err(e) => Err(StoreError::Unavailable(format!("{} is gone: {e}", self.path.display()))),
        }
    }
}

/// A statement and its arguments, owned, to be sent to the writer thread.
fn owned(sql: &str, args: &[Arg<'_>]) -> (String, Vec<Arg<'static>>) {
    (sql.to_string(), args.iter().cloned().map(Arg::into_owned).collect())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    use gatehouse_core::error::StoreError;
    use rusqlite::Connection;

    use gatehouse_core::store::Accounts;

    /// A full disk (the file may not grow past its current size) is a fault that clears:
    /// writes fail as unavailable, and work again once there is room.
    #[tokio::test]
    async fn a_full_disk_is_unavailable_until_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(dir.path().join("full.db").to_str().unwrap()).await.unwrap();
        let user = |i: usize| gatehouse_core::model::User {
            id: format!("u{i}"),
            login: format!("user{i}"),
            email: format!("user{i}@example.com"),
            password_hash: "x".repeat(200),
            created_at: 0,
            ..Default::default()
        };
        let set_limit = |pages: &str| {
            let conn = store.db.conn.clone();
            let sql = format!("PRAGMA max_page_count = {pages}");
            async move { conn.lock().await.query_row(&sql, [], |_| Ok(())).unwrap() }
        };
        let pages: i64 = store.db.conn.lock().await.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        set_limit(&pages.to_string()).await;
        let mut failed = None;
        for i in 0..10_000 {
            if let Err(e) = store.create_user(&user(i)).await {
                failed = Some((i, e));
                break;
            }
        }
        let (i, error) = failed.expect("the file never filled up");
        assert!(matches!(error, gatehouse_core::error::StoreError::Unavailable(_)), "{error:?}");
        set_limit("1073741823").await;
        store.create_user(&user(i)).await.unwrap();
        assert!(store.find_user(&format!("u{i}")).await.unwrap().is_some());
    }

    /// Writes queued behind each other while another process holds the lock share one
    /// wait: the last is not answered after the sum of all of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_share_the_wait_for_a_locked_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let wait = Duration::from_millis(500);
        let options = crate::StoreOptions { wait, ..Default::default() };
        let store = std::sync::Arc::new(crate::SqliteStore::open_with(path.to_str().unwrap(), options).await.unwrap());
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let started = Instant::now();
        let writes: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.delete_session(&format!("s{i}")).await })
            })
            .collect();
        for w in writes {
            assert!(matches!(w.await.unwrap(), Err(StoreError::Unavailable(_))));
        }
        assert!(started.elapsed() < wait * 3, "four queued writes took {:?} with a wait of {wait:?}", started.elapsed());
        holder.execute_batch("COMMIT").unwrap();
        store.delete_session("s").await.unwrap();
    }

    #[tokio::test]
    async fn a_database_file_moved_away_or_replaced_is_not_ready() {
        use gatehouse_core::store::Upkeep;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.db");
        let store = crate::SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        store.check_ready().await.expect("ready when opened");
        std::fs::rename(&path, dir.path().join("away.db")).unwrap();
        let gone = store.check_ready().await.expect_err("the file is gone");
        assert!(gone.to_string().contains("gone"), "{gone}");
        std::fs::rename(dir.path().join("away.db"), &path).unwrap();
        store.check_ready().await.expect("the same file back");
        std::fs::copy(&path, dir.path().join("copy.db")).unwrap();
        std::fs::rename(dir.path().join("copy.db"), &path).unwrap();
        let replaced = store.check_ready().await.expect_err("another file at the path");
        assert!(replaced.to_string().contains("replaced"), "{replaced}");
    }

    #[tokio::test]
    async fn the_database_and_its_log_are_readable_by_their_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private.db");
        let store = crate::SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        store.delete_session("none").await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file} is {mode:o}");
        }
    }
}
