//! The security event log.

use async_trait::async_trait;
use gatehouse_core::events::{Event, EventFilter};
use gatehouse_core::store::{Events, StoreResult};

use crate::db::Db;
use crate::rows::{self, EVENT_SELECT};
use crate::values::Arg;
use crate::SqlStore;

/// Rows one DELETE of the purge takes, as in `upkeep`.
const PURGE_BATCH: u64 = 500;

#[async_trait]
impl<D: Db> Events for SqlStore<D> {
    async fn record_event(&self, e: &Event) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO events (at, kind, actor_user_id, actor_login, subject_user_id, subject_login, \
                 client_id, address, user_agent, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    e.at.into(),
                    (&e.kind).into(),
                    e.actor_user_id.as_deref().into(),
                    e.actor_login.as_deref().into(),
                    e.subject_user_id.as_deref().into(),
                    e.subject_login.as_deref().into(),
                    e.client_id.as_deref().into(),
                    e.address.as_deref().into(),
                    e.user_agent.as_deref().into(),
                    e.detail.as_deref().into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn list_events(&self, f: &EventFilter) -> StoreResult<Vec<Event>> {
        // Only the conditions given, numbered as they come: PostgreSQL must know every
        // parameter's type, which a `$1 IS NULL OR …` test would leave open.
        let mut conds = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if let Some(id) = &f.user_id {
            args.push(id.into());
            let n = args.len();
            conds.push(format!("(actor_user_id = ${n} OR subject_user_id = ${n})"));
        }
        if let Some(login) = &f.login {
            args.push(login.into());
            let n = args.len();
            conds.push(format!("(lower(actor_login) = lower(${n}) OR lower(subject_login) = lower(${n}))"));
        }
        if let Some(client) = &f.client_id {
            args.push(client.into());
            conds.push(format!("client_id = ${}", args.len()));
        }
        if let Some(since) = f.since {
            args.push(since.into());
            conds.push(format!("at >= ${}", args.len()));
        }
        args.push(f.limit.max(0).into());
        let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let sql = format!("{EVENT_SELECT}{filter} ORDER BY at DESC, id DESC LIMIT ${}", args.len());
        rows::all(self.db.read(&sql, &args).await?, rows::event)
    }

    async fn purge_events(&self, before: i64) -> StoreResult<u64> {
        let sql = format!("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < $1 LIMIT {PURGE_BATCH})");
        let mut total = 0;
        loop {
            let n = self.db.write(&sql, &[before.into()]).await?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
