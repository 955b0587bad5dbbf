//! SQLite's migrations, applied through the writer's own rusqlite connection. The files are
//! embedded by sqlx's `migrate!`, like PostgreSQL's, and the applied ones are recorded in
//! sqlx's `_sqlx_migrations` table with sqlx's checksums: a database migrated by an
//! earlier Gatehouse (which ran them through sqlx) carries on, and the test that both
//! backends hold the same versions reads one list.

use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension};
use sqlx::migrate::Migrator;

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {0} was left half-applied by an earlier run; restore a backup")]
    Dirty(i64),
    #[error("migration {0} was changed after it was applied")]
    Changed(i64),
    #[error("the database has migration {0}, which this Gatehouse does not know: it is older than the database")]
    Unknown(i64),
    #[error("migration {version} failed: {source}")]
    Failed { version: i64, source: rusqlite::Error },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Applies every migration not yet applied, each in a transaction of its own.
pub(crate) fn run(conn: &Connection) -> Result<(), MigrateError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations ( \
            version BIGINT PRIMARY KEY, \
            description TEXT NOT NULL, \
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
            success BOOLEAN NOT NULL, \
            checksum BLOB NOT NULL, \
            execution_time BIGINT NOT NULL)",
    )?;
    let dirty: Option<i64> = conn
        .query_row("SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1", [], |r| r.get(0))
        .optional()?;
    if let Some(version) = dirty {
        return Err(MigrateError::Dirty(version));
    }
    let applied: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (version, _) in &applied {
        if !MIGRATOR.iter().any(|m| m.version == *version) {
            return Err(MigrateError::Unknown(*version));
        }
    }
    for m in MIGRATOR.iter() {
        match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, checksum)) if checksum.as_slice() != &*m.checksum => return Err(MigrateError::Changed(m.version)),
            Some(_) => continue,
            None => {}
        }
        let started = Instant::now();
        let failed = |source| MigrateError::Failed { version: m.version, source };
        conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
        let applied = conn.execute_batch(&m.sql).and_then(|()| {
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, ?4)",
                params![m.version, &*m.description, &*m.checksum, started.elapsed().as_nanos() as i64],
            )
        });
        match applied.and_then(|_| conn.execute_batch("COMMIT")) {
            Ok(()) => tracing::info!(version = m.version, description = %m.description, "applied a migration"),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(failed(e));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_a_changed_one_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        run(&conn).unwrap();
        run(&conn).unwrap();
        let count: i64 = conn.query_row("SELECT count(*) FROM _sqlx_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(count as usize, MIGRATOR.iter().count());
        conn.execute("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1", []).unwrap();
        assert!(matches!(run(&conn), Err(MigrateError::Changed(1))));
    }
}
