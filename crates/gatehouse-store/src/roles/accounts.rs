//! Users, passwords and browser sessions.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::model::{LinkPurpose, LinkToken, Session, User};
use gatehouse_core::store::{Accounts, StoreResult};

use crate::db::{Db, Tx};
use crate::retry::conflict_as;
use crate::rows::{self, Sql, LINK_COLS, SESSION_SELECT, USER_SELECT};
use crate::token_steps::revoke_live_refresh;
use crate::SqlStore;

const EMAIL_TAKEN: &str = "another account holds that email address verified";

/// Revokes every refresh and access token of the user. Access tokens through the
/// (client, user) index, one client at a time: an index on the user alone would cost
/// every token issued an index entry.
async fn revoke_user_tokens(tx: &mut dyn Tx, user: &str) -> StoreResult<()> {
    revoke_live_refresh(tx, "user_id = $1", &[user.into()]).await?;
    tx.exec(
        "UPDATE access_tokens SET revoked = 1 \
         WHERE client_id IN (SELECT id FROM clients) AND user_id = $1 AND revoked = 0",
        &[user.into()],
    )
    .await?;
    Ok(())
}

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
                    revoke_user_tokens(tx, user).await?;
                    // Whoever knew the old password may have a code or a device approval
                    // not yet exchanged: it must not bring new tokens.
                    end_pending_grants(tx, user).await?;
                    // A reset link still in a mailbox must not undo this change.
                    tx.exec("DELETE FROM links WHERE user_id = $1 AND purpose = $2", &[user.into(), LinkPurpose::ResetPassword.as_str().into()])
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

    async fn find_users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        static BY_EMAIL: Sql =
            LazyLock::new(|| format!("{USER_SELECT} WHERE lower(email) = lower($1) ORDER BY email_verified DESC, created_at, id"));
        rows::all(self.db.read(&BY_EMAIL, &[email.into()]).await?, rows::user)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        static ALL: Sql = LazyLock::new(|| format!("{USER_SELECT} ORDER BY lower(login)"));
        rows::all(self.db.read(&ALL, &[]).await?, rows::user)
    }

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<bool> {
        if !disabled {
            let n = self.db.write("UPDATE users SET disabled = 0 WHERE id = $1", &[user_id.into()]).await?;
            return Ok(n > 0);
        }
        self.db
            .transaction(user_id.to_owned(), |tx, user| {
                Box::pin(async move {
                    if tx.exec("UPDATE users SET disabled = 1 WHERE id = $1", &[user.into()]).await? == 0 {
                        return Ok(false);
                    }
                    revoke_user_tokens(tx, user).await?;
                    end_pending_grants(tx, user).await?;
                    for sql in ["DELETE FROM sessions WHERE user_id = $1", "DELETE FROM links WHERE user_id = $1"] {
                        tx.exec(sql, &[user.into()]).await?;
                    }
                    Ok(true)
                })
            })
            .await
    }

    async fn set_user_admin(&self, user_id: &str, admin: bool) -> StoreResult<bool> {
        let n = self.db.write("UPDATE users SET is_admin = $2 WHERE id = $1", &[user_id.into(), admin.into()]).await?;
        Ok(n > 0)
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<Option<Vec<String>>> {
        self.db
            .transaction(user_id.to_owned(), |tx, user| {
                Box::pin(async move {
                    let Some(_) = tx.row(&format!("SELECT id FROM users WHERE id = $1{}", tx.row_lock()), &[user.into()]).await?
                    else {
                        return Ok(None);
                    };
                    let apps = tx.rows("SELECT id FROM clients WHERE owner_user_id = $1 ORDER BY id", &[user.into()]).await?;
                    let apps = apps.into_iter().map(|mut r| r.text(0)).collect::<StoreResult<Vec<_>>>()?;
                    // The user's applications, with what was issued to them (as delete_client).
                    const OWNED: &str = "client_id IN (SELECT id FROM clients WHERE owner_user_id = $1)";
                    for table in ["access_tokens", "refresh_tokens", "authorization_codes", "device_authorizations", "consents"] {
                        tx.exec(&format!("DELETE FROM {table} WHERE {OWNED}"), &[user.into()]).await?;
                    }
                    tx.exec("DELETE FROM clients WHERE owner_user_id = $1", &[user.into()]).await?;
                    // What the user holds at other applications. The access tokens first,
                    // through the (client, user) index, so the cascade finds none left.
                    tx.exec("DELETE FROM access_tokens WHERE client_id IN (SELECT id FROM clients) AND user_id = $1", &[user.into()])
                        .await?;
                    for table in ["refresh_tokens", "authorization_codes", "device_authorizations", "consents", "sessions", "links"] {
                        tx.exec(&format!("DELETE FROM {table} WHERE user_id = $1"), &[user.into()]).await?;
                    }
                    // The demo platform's rows go with it (ON DELETE CASCADE).
                    tx.exec("DELETE FROM users WHERE id = $1", &[user.into()]).await?;
                    Ok(Some(apps))
                })
            })
            .await
    }

    async fn set_verified_email(&self, user_id: &str, email: &str) -> StoreResult<bool> {
        let args = (user_id.to_owned(), email.to_owned());
        self.db
            .transaction(args, |tx, (user, email)| {
                Box::pin(async move {
                    let n = tx
                        .exec("UPDATE users SET email = $2, email_verified = 1 WHERE id = $1", &[user.into(), email.into()])
                        .await?;
                    // A reset link mailed to the address this one replaces stops working.
                    tx.exec(
                        "DELETE FROM links WHERE user_id = $1 AND purpose = $2 AND lower(email) <> lower($3)",
                        &[user.into(), LinkPurpose::ResetPassword.as_str().into(), email.into()],
                    )
                    .await?;
                    Ok(n > 0)
                })
            })
            .await
            .map_err(conflict_as(EMAIL_TAKEN))
    }

    async fn create_link(&self, l: &LinkToken) -> StoreResult<()> {
        // Replaces the user's link of this purpose, if any, in the same statement.
        self.db
            .write(
                &format!(
                    "INSERT INTO links ({LINK_COLS}) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = excluded.token_hash, \
                     email = excluded.email, created_at = excluded.created_at, expires_at = excluded.expires_at"
                ),
                &[
                    (&l.token_hash).into(),
                    (&l.user_id).into(),
                    l.purpose.as_str().into(),
                    (&l.email).into(),
                    l.created_at.into(),
                    l.expires_at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn find_link(&self, token_hash: &str, purpose: LinkPurpose, now: i64) -> StoreResult<Option<LinkToken>> {
        static LIVE: Sql =
            LazyLock::new(|| format!("SELECT {LINK_COLS} FROM links WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3"));
        let rows = self.db.read(&LIVE, &[token_hash.into(), purpose.as_str().into(), now.into()]).await?;
        rows.into_iter().next().map(rows::link).transpose()
    }

    async fn take_link(&self, token_hash: &str, purpose: LinkPurpose, now: i64) -> StoreResult<Option<LinkToken>> {
        let args = (token_hash.to_owned(), purpose.as_str(), now);
        self.db
            .transaction(args, |tx, (hash, purpose, now)| {
                Box::pin(async move {
                    let sql = format!(
                        "DELETE FROM links WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 RETURNING {LINK_COLS}"
                    );
                    let row = tx.row(&sql, &[hash.into(), (*purpose).into(), (*now).into()]).await?;
                    row.map(rows::link).transpose()
                })
            })
            .await
    }
}

/// Voids what the user approved but no client has exchanged yet: unused codes are
/// deleted, and approved device authorizations are denied (the device gets
/// `access_denied`).
async fn end_pending_grants(tx: &mut dyn Tx, user: &str) -> StoreResult<()> {
    tx.exec("DELETE FROM authorization_codes WHERE user_id = $1 AND used = 0", &[user.into()]).await?;
    tx.exec(
        "UPDATE device_authorizations SET status = 'denied' WHERE user_id = $1 AND status = 'approved'",
        &[user.into()],
    )
    .await?;
    Ok(())
}
