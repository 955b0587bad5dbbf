//! Gatehouse storage: the core `Store` trait for SQLite (the default) and PostgreSQL.
//!
//! Both backends share one body of SQL (see `sql_store.rs`): the schema is written so
//! that the same statements run on both, and the few places where the engines differ
//! (how a write transaction starts, row locks) are named per backend. One conformance
//! suite (`tests/conformance.rs`) runs every storage test against both.

mod batch_read;
mod direct_read;
mod group_commit;
mod sql_store;
mod sqlite_batch;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use gatehouse_core::store::Store;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Opens the store a database URL names, creating and migrating it as needed:
/// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, or `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        // One server owns a SQLite file, so its reads may be cached (see store_cache).
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).await?);
        Ok(Arc::new(gatehouse_core::store_cache::CachedStore::new(store)))
    } else {
        Err(format!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
            redact_url(url)
        ))
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
        assert_eq!(
            super::redact_url("postgres://gh:hunter2@db:5432/gh"),
            "postgres://gh:***@db:5432/gh"
        );
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
