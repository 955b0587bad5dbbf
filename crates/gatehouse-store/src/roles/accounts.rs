//! Users, passwords and browser sessions.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::model::{Session, User};
use gatehouse_core::store::{Accounts, StoreResult};

use crate::db::Db;
use crate::retry::conflict_as;
use crate::rows::{self, Sql, SESSION_SELECT, USER_SELECT};
use crate::token_steps::revoke_live_refresh;
use crate::SqlStore;

#[async_trait]
impl<D: Db> Accounts for SqlStore<D> {
    async fn create_user(&self, u: &User) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO users (id, login, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[(&u.id).into(), (&u.login).into(), (&u.email).into(), (&u.password_hash).into(), u.created_at.into()],
            )
            .await
            .map_err(conflict_as("that login is taken"))?;
        Ok(())
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        static BY_ID: Sql = LazyLock::new(|| format!("{USER_SELECT} WHERE id = $1"));
        self.db.read(&BY_ID, &[id.into()]).await?.into_iter().next().map(rows::user).transpose()
    }

    async fn find_user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        static BY_LOGIN: Sql = LazyLock::new(|| format!("{USER_SELECT} WHERE lower(login) = lower($1)"));
        self.db.read(&BY_LOGIN, &[login.into()]).await?.into_iter().next().map(rows::user).transpose()
    }

    async fn change_password(&self, user_id: &str, hash: &str, keep_session: &str) -> StoreResult<()> {
        let args = (user_id.to_owned(), hash.to_owned(), keep_session.to_owned());
        self.db
            .transaction(args, |tx, (user, hash, keep)| {
                Box::pin(async move {
                    tx.exec("UPDATE users SET password_hash = $2 WHERE id = $1", &[user.into(), hash.into()]).await?;
                    revoke_live_refresh(tx, "user_id = $1", &[user.into()]).await?;
                    // Through the (client, user) index, one client at a time: an index on
                    // the user alone would cost every token issued an index entry.
                    tx.exec(
                        "UPDATE access_tokens SET revoked = 1 \
                         WHERE client_id IN (SELECT id FROM clients) AND user_id = $1 AND revoked = 0",
                        &[user.into()],
                    )
                    .await?;
                    tx.exec("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", &[user.into(), keep.into()])
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn create_session(&self, s: &Session) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO sessions (id_hash, user_id, auth_time, expires_at, user_agent, address, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    (&s.id_hash).into(),
                    (&s.user_id).into(),
                    s.auth_time.into(),
                    s.expires_at.into(),
                    (&s.user_agent).into(),
                    (&s.address).into(),
                    s.last_seen.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn find_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>> {
        static LIVE: Sql = LazyLock::new(|| format!("{SESSION_SELECT} WHERE id_hash = $1 AND expires_at > $2"));
        self.db.read(&LIVE, &[id_hash.into(), now.into()]).await?.into_iter().next().map(rows::session).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.db.write("DELETE FROM sessions WHERE id_hash = $1", &[id_hash.into()]).await?;
        Ok(())
    }
}
