//! The demo platform API's data: channels and the relations between users.

use async_trait::async_trait;
use gatehouse_core::model::{Channel, RelatedUser, Relation};
use gatehouse_core::store::{PlatformData, StoreResult};

use crate::db::{Db, Row};
use crate::SqlStore;

fn related(mut r: Row) -> StoreResult<RelatedUser> {
    Ok(RelatedUser { user_id: r.text(0)?, login: r.text(1)?, created_at: r.int(2)? })
}

/// The users `$2` points at, by relation `$1`.
const RELATED_TO: &str = "SELECT u.id, u.login, r.created_at FROM api_relations r JOIN users u ON u.id = r.target_user_id \
     WHERE r.kind = $1 AND r.user_id = $2 ORDER BY r.created_at, u.login";
/// The users pointing at `$2`, by relation `$1`.
const RELATED_FROM: &str = "SELECT u.id, u.login, r.created_at FROM api_relations r JOIN users u ON u.id = r.user_id \
     WHERE r.kind = $1 AND r.target_user_id = $2 ORDER BY r.created_at, u.login";

impl<D: Db> SqlStore<D> {
    async fn related(&self, sql: &str, kind: Relation, user_id: &str) -> StoreResult<Vec<RelatedUser>> {
        crate::rows::all(self.db.read(sql, &[kind.as_str().into(), user_id.into()]).await?, related)
    }
}

#[async_trait]
impl<D: Db> PlatformData for SqlStore<D> {
    async fn channel(&self, user_id: &str, new_stream_key: &str, now: i64) -> StoreResult<Channel> {
        self.db
            .write(
                "INSERT INTO api_channels (user_id, status, game, stream_key, last_commercial_at, updated_at) \
                 VALUES ($1, '', '', $2, NULL, $3) ON CONFLICT (user_id) DO NOTHING",
                &[user_id.into(), new_stream_key.into(), now.into()],
            )
            .await?;
        let found = self
            .db
            .read(
                "SELECT user_id, status, game, stream_key, last_commercial_at, updated_at FROM api_channels WHERE user_id = $1",
                &[user_id.into()],
            )
            .await?;
        let mut r = found.into_iter().next().ok_or_else(|| {
            gatehouse_core::error::StoreError::Backend("a channel just stored was not found".into())
        })?;
        Ok(Channel {
            user_id: r.text(0)?,
            status: r.text(1)?,
            game: r.text(2)?,
            stream_key: r.text(3)?,
            last_commercial_at: r.opt_int(4)?,
            updated_at: r.int(5)?,
        })
    }

    async fn update_channel(&self, user_id: &str, status: Option<&str>, game: Option<&str>, now: i64) -> StoreResult<()> {
        self.db
            .write(
                "UPDATE api_channels SET status = COALESCE($2, status), game = COALESCE($3, game), updated_at = $4 \
                 WHERE user_id = $1",
                &[user_id.into(), status.into(), game.into(), now.into()],
            )
            .await?;
        Ok(())
    }

    async fn set_stream_key(&self, user_id: &str, stream_key: &str, now: i64) -> StoreResult<()> {
        self.db
            .write(
                "UPDATE api_channels SET stream_key = $2, updated_at = $3 WHERE user_id = $1",
                &[user_id.into(), stream_key.into(), now.into()],
            )
            .await?;
        Ok(())
    }

    async fn record_commercial(&self, user_id: &str, now: i64) -> StoreResult<()> {
        self.db
            .write("UPDATE api_channels SET last_commercial_at = $2 WHERE user_id = $1", &[user_id.into(), now.into()])
            .await?;
        Ok(())
    }

    async fn relate(&self, kind: Relation, user_id: &str, target: &str, now: i64) -> StoreResult<bool> {
        let n = self
            .db
            .write(
                "INSERT INTO api_relations (kind, user_id, target_user_id, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, user_id, target_user_id) DO NOTHING",
                &[kind.as_str().into(), user_id.into(), target.into(), now.into()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn unrelate(&self, kind: Relation, user_id: &str, target: &str) -> StoreResult<bool> {
        let n = self
            .db
            .write(
                "DELETE FROM api_relations WHERE kind = $1 AND user_id = $2 AND target_user_id = $3",
                &[kind.as_str().into(), user_id.into(), target.into()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn related_to(&self, kind: Relation, user_id: &str) -> StoreResult<Vec<RelatedUser>> {
        self.related(RELATED_TO, kind, user_id).await
    }

    async fn related_from(&self, kind: Relation, target: &str) -> StoreResult<Vec<RelatedUser>> {
        self.related(RELATED_FROM, kind, target).await
    }
}
