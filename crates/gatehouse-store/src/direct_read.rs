//! Lookups by key on the calling thread, for SQLite. sqlx runs each SQLite connection on
//! a thread of its own, so every query it makes is a hand-off to that thread and a wake-up
//! of the caller's when the answer is back; under load those thread switches cost more
//! than the lookup. A lookup by primary key whose pages are cached takes microseconds, so
//! it runs here instead, on a read-only connection of its own (WAL lets it read beside
//! the writer). Used for refresh-token lookups (revocation, and the refresh grant for JWT
//! access tokens; other rotations read theirs in the writer's batch), which are never cached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::model::RefreshToken;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::store::StoreResult;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

pub(crate) struct DirectReads {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl DirectReads {
    /// `count` read-only connections to the database file at `path`.
    pub fn open(path: &str, count: usize) -> rusqlite::Result<Self> {
        let conns = (0..count.max(1))
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                // Never wait on a runtime thread: a busy database (recovery after another
                // process crashed, say) sends the lookup to the pool, which may wait.
                conn.busy_timeout(Duration::ZERO)?;
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(DirectReads { conns: conns.into_boxed_slice(), next: AtomicUsize::new(0) })
    }

    /// Runs `read` on a free connection, or waits for one when all are in use (a lookup
    /// takes microseconds). None: the database was busy.
    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<StoreResult<T>> {
        let free = self.conns.iter().find_map(|c| c.try_lock().ok());
        let conn = match free {
            Some(conn) => conn,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
                self.conns[i].lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        match read(&conn) {
            Err(e) if matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) => None,
            result => Some(result.map_err(crate::sql_store::rusqlite_err)),
        }
    }

    /// None: the database was busy; ask the pool.
    pub fn refresh_token(&self, token_hash: &str) -> Option<StoreResult<Option<RefreshToken>>> {
        self.with(|conn| read_refresh(conn, token_hash))
    }
}

/// The refresh token `token_hash`, read through rusqlite (here, and by the batch writer).
pub(crate) fn read_refresh(conn: &Connection, token_hash: &str) -> rusqlite::Result<Option<RefreshToken>> {
    let mut stmt = conn.prepare_cached(
        "SELECT token_hash, family_id, client_id, user_id, scopes, created_at, expires_at, \
         rotated_at, revoked, code_hash FROM refresh_tokens WHERE token_hash = ?1",
    )?;
    stmt.query_row([token_hash], |r| {
        Ok(RefreshToken {
            token_hash: r.get(0)?,
            family_id: r.get(1)?,
            client_id: r.get(2)?,
            user_id: r.get(3)?,
            scopes: ScopeSet::from_stored(&r.get::<_, String>(4)?),
            created_at: r.get(5)?,
            expires_at: r.get(6)?,
            rotated_at: r.get(7)?,
            revoked: r.get::<_, i64>(8)? != 0,
            code_hash: r.get(9)?,
        })
    })
    .optional()
}
