//! Statements on a rusqlite connection: binding `$N` parameters, reading rows, and the
//! transaction the writer holds.

use std::time::{Duration, Instant};

use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement, ToSql};
use tokio::sync::OwnedMutexGuard;

use async_trait::async_trait;

use crate::db::{Arg, Cell, Row, Tx};

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Arg::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Arg::NullInt | Arg::NullText => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// Maps a rusqlite error to the store's. The conflict names no table or column: its
/// text can reach a client.
pub(crate) fn sqlite_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict("unique".into())
        }
        _ if is_fault(&e) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

/// A fault of the file or of its locks, which may clear: a full disk, an I/O error, a
/// lock held by another process past the writer's wait.
fn is_fault(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OutOfMemory
        )
    )
}

/// Whether the error says another connection holds a lock this one needs.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Binds `args` to the statement's `$N` parameters by number, whatever order the text
/// names them in (SQLite itself numbers named parameters as they first appear).
fn bind(stmt: &mut Statement<'_>, args: &[Arg<'_>]) -> rusqlite::Result<()> {
    for index in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let arg = args.get(n - 1).ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        stmt.raw_bind_parameter(index, arg)?;
    }
    Ok(())
}

/// Runs a statement; the rows it changed.
pub(crate) fn exec(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    Ok(stmt.raw_execute()? as u64)
}

/// Runs a query; its rows.
pub(crate) fn query(conn: &Connection, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut cells = Vec::with_capacity(columns);
        for i in 0..columns {
            cells.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                other => {
                    let kind = other.data_type();
                    return Err(rusqlite::Error::InvalidColumnType(i, format!("column {i}"), kind));
                }
            });
        }
        out.push(Row(cells));
    }
    Ok(out)
}

/// The writer connection, held for the length of one transaction (or one statement
/// that commits by itself). A transaction still open when this is dropped (an error, or
/// a panic unwinding) is rolled back.
pub(crate) struct SqliteTx {
    conn: OwnedMutexGuard<Connection>,
}

impl SqliteTx {
    /// The writer connection for work queued at `queued`, which may wait for a lock
    /// another process holds until `wait` has passed since then, in all: a request queued
    /// behind others that waited is not made to wait its whole turn again. Unavailable
    /// once that time is spent, or if the connection is stuck in a transaction that an
    /// earlier ROLLBACK could not end (a statement run in it would be undone later).
    pub fn take(conn: OwnedMutexGuard<Connection>, queued: Instant, wait: Duration) -> StoreResult<SqliteTx> {
        let left = wait.saturating_sub(queued.elapsed());
        if left.is_zero() {
            return Err(StoreError::Unavailable("the database stayed locked for the whole wait".into()));
        }
        conn.busy_timeout(left).map_err(sqlite_err)?;
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
            if !conn.is_autocommit() {
                return Err(StoreError::Unavailable("the SQLite writer is stuck in a transaction".into()));
            }
        }
        Ok(SqliteTx { conn })
    }

    /// IMMEDIATE takes the write lock at once, so a transaction never fails half-way
    /// when another process (an admin command) writes at the same time.
    pub fn begin(self) -> StoreResult<SqliteTx> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_err)?;
        Ok(self)
    }

    /// Commits. On failure, whether SQLite still has the transaction open: if so it did
    /// not commit (and is rolled back as this is dropped); if SQLite ended it itself (an
    /// I/O error, a full disk), the outcome is unknown.
    pub fn commit(self) -> Result<(), (StoreError, bool)> {
        self.conn.execute_batch("COMMIT").map_err(|e| (sqlite_err(e), !self.conn.is_autocommit()))
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "SQLite could not roll back a failed transaction");
            }
        }
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<u64> {
        exec(&self.conn, sql, args).map_err(sqlite_err)
    }

    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> StoreResult<Vec<Row>> {
        query(&self.conn, sql, args).map_err(sqlite_err)
    }

    fn row_lock(&self) -> &'static str {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_bind_by_number_in_any_order() {
        let conn = Connection::open_in_memory().unwrap();
        let rows = query(&conn, "SELECT $2, $1, $2 + 1", &[Arg::from("a"), Arg::Int(5)]).unwrap();
        assert_eq!(rows[0].0, vec![Cell::Int(5), Cell::Text("a".into()), Cell::Int(6)]);
        assert!(query(&conn, "SELECT $3", &[Arg::Int(1)]).is_err(), "a missing parameter is an error");
    }
}
