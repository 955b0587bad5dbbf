//! Backups of a live SQLite database: `VACUUM INTO` writes a consistent snapshot of the
//! database as one read transaction sees it, beside a running server (WAL lets it read
//! while the server writes), into a new file readable by its owner only.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Why a backup or a restore could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; choose a new file")]
    Exists(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("{path} is not a sound SQLite database: {verdict}")]
    Damaged { path: String, verdict: String },
}

fn sqlite(path: &str) -> impl FnOnce(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite { path: path.to_string(), source }
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_string(), source }
}

/// Writes a snapshot of the database at `database` to `copy`, which must not exist.
pub fn backup_sqlite(database: &str, copy: &Path) -> Result<(), BackupError> {
    let shown = copy.display().to_string();
    if copy.exists() {
        return Err(BackupError::Exists(shown));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(database, flags).map_err(sqlite(database))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite(database))?;
    // Created empty first, 0600, so the snapshot is never readable by others.
    super::create_private(&shown).map_err(io(&shown))?;
    let result = conn.execute("VACUUM INTO ?1", [&shown]).map_err(sqlite(&shown)).and_then(|_| {
        // VACUUM INTO does not sync what it wrote: "backed up" must mean on disk.
        std::fs::File::open(copy).and_then(|f| f.sync_all()).map_err(io(&shown))?;
        sync_dir(copy).map_err(io(&shown))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(copy);
    }
    result
}

/// Syncs the directory holding `file`, so that its new entry survives a power cut.
fn sync_dir(file: &Path) -> std::io::Result<()> {
    match file.parent() {
        #[cfg(unix)]
        Some(dir) => std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all(),
        _ => Ok(()),
    }
}

/// Puts the snapshot `copy` in place as the database at `database`, which must not exist
/// (the server stopped, its old files moved away); checks the copy's integrity first.
pub fn restore_sqlite(copy: &Path, database: &str) -> Result<(), BackupError> {
    let shown = copy.display().to_string();
    for file in [database.to_string(), format!("{database}-wal")] {
        if Path::new(&file).exists() {
            return Err(BackupError::Exists(file));
        }
    }
    {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(copy, flags).map_err(sqlite(&shown))?;
        let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(sqlite(&shown))?;
        if verdict != "ok" {
            return Err(BackupError::Damaged { path: shown, verdict });
        }
    }
    super::create_private(database).map_err(io(database))?;
    let mut from = std::fs::File::open(copy).map_err(io(&shown))?;
    let mut to = std::fs::OpenOptions::new().write(true).truncate(true).open(database).map_err(io(database))?;
    std::io::copy(&mut from, &mut to).map_err(io(database))?;
    to.sync_all().map_err(io(database))?;
    sync_dir(Path::new(database)).map_err(io(database))
}
