//! The security page's view of a user's sessions: list, touch, end.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::model::Session;
use gatehouse_core::store::{Sessions, StoreResult};

use crate::db::Db;
use crate::rows::{self, Sql, SESSION_SELECT};
use crate::SqlStore;

#[async_trait]
impl<D: Db> Sessions for SqlStore<D> {
    async fn list_sessions(&self, user_id: &str, now: i64) -> StoreResult<Vec<Session>> {
        static BY_USER: Sql = LazyLock::new(|| {
            format!("{SESSION_SELECT} WHERE user_id = $1 AND expires_at > $2 ORDER BY last_seen DESC, auth_time DESC, id_hash")
        });
        rows::all(self.db.read(&BY_USER, &[user_id.into(), now.into()]).await?, rows::session)
    }

    async fn touch_session(&self, id_hash: &str, address: &str, now: i64) -> StoreResult<()> {
        // Only forward: two instances touching at once never move it back.
        self.db
            .write(
                "UPDATE sessions SET last_seen = $3, address = $2 WHERE id_hash = $1 AND last_seen < $3",
                &[id_hash.into(), address.into(), now.into()],
            )
            .await?;
        Ok(())
    }

    async fn end_session(&self, user_id: &str, id_hash: &str) -> StoreResult<bool> {
        let n = self
            .db
            .write("DELETE FROM sessions WHERE user_id = $1 AND id_hash = $2", &[user_id.into(), id_hash.into()])
            .await?;
        Ok(n > 0)
    }

    async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> StoreResult<u64> {
        self.db
            .write("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", &[user_id.into(), keep.unwrap_or("").into()])
            .await
    }
}
