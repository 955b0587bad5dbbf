//! Reads on the calling thread, on read-only connections of their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::store::StoreResult;
use rusqlite::{Connection, OpenFlags};

use super::conn::{is_busy, query, sqlite_err};
use crate::db::{Arg, Row};

pub(crate) struct Readers {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl Readers {
    /// `count` read-only connections to the database file at `path`.
    pub fn open(path: &str, count: usize) -> rusqlite::Result<Self> {
        let conns = (0..count.max(1))
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                // Never wait on a runtime thread: a busy database sends the read to the
                // writer's connection, which may wait.
                conn.busy_timeout(Duration::ZERO)?;
                conn.set_prepared_statement_cache_capacity(64);
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Readers { conns: conns.into_boxed_slice(), next: AtomicUsize::new(0) })
    }

    /// Connections (in use, idle) at this moment, for metrics.
    pub fn usage(&self) -> (u32, u32) {
        let in_use = self.conns.iter().filter(|c| c.try_lock().is_err()).count() as u32;
        (in_use, self.conns.len() as u32 - in_use)
    }

    /// Runs the query on a free connection, or waits for one when all are in use (a
    /// lookup takes microseconds). None: the database was busy.
    pub fn query(&self, sql: &str, args: &[Arg<'_>]) -> Option<StoreResult<Vec<Row>>> {
        let free = self.conns.iter().find_map(|c| c.try_lock().ok());
        let conn = match free {
            Some(conn) => conn,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
                self.conns[i].lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        match query(&conn, sql, args) {
            Err(e) if is_busy(&e) => None,
            result => Some(result.map_err(sqlite_err)),
        }
    }
}
