//! Registered applications.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::error::StoreError;
use gatehouse_core::model::Client;
use gatehouse_core::store::{Clients, StoreResult};

use crate::db::Db;
use crate::retry::conflict_as;
use crate::rows::{self, Sql, CLIENT_COLS};
use crate::token_steps::revoke_live_refresh;
use crate::SqlStore;

const NAME_TAKEN: &str = "an application with that name already exists";

fn uris_json(uris: &[String]) -> StoreResult<String> {
    serde_json::to_string(uris).map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl<D: Db> Clients for SqlStore<D> {
    async fn revoke_client_tokens(&self, id: &str) -> StoreResult<u64> {
        self.db
            .transaction(id.to_owned(), |tx, client| {
                Box::pin(async move {
                    let id = [client.into()];
                    // Grants not yet exchanged would bring tokens back.
                    tx.exec("DELETE FROM authorization_codes WHERE client_id = $1", &id).await?;
                    tx.exec("UPDATE device_authorizations SET status = 'denied' WHERE client_id = $1 AND status = 'approved'", &id)
                        .await?;
                    let live = tx.row("SELECT count(*) FROM refresh_tokens WHERE client_id = $1 AND rotated_at IS NULL AND revoked = 0", &id).await?;
                    let refresh = match live {
                        Some(mut r) => r.int(0)?,
                        None => 0,
                    };
                    revoke_live_refresh(tx, "client_id = $1", &id).await?;
                    let access = tx.exec("UPDATE access_tokens SET revoked = 1 WHERE client_id = $1 AND revoked = 0", &id).await?;
                    Ok(refresh as u64 + access)
                })
            })
            .await
    }

    async fn create_client(&self, c: &Client) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO clients (id, name, owner_user_id, category, kind, allow_implicit, redirect_uris, \
                 secret_hash, previous_secret_hash, previous_secret_expires_at, created_at, jwt_access_tokens) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10)",
                &[
                    (&c.id).into(),
                    (&c.name).into(),
                    (&c.owner_user_id).into(),
                    (&c.category).into(),
                    c.kind.as_str().into(),
                    c.allow_implicit.into(),
                    uris_json(&c.redirect_uris)?.into(),
                    (&c.secret_hash).into(),
                    c.created_at.into(),
                    c.jwt_access_tokens.into(),
                ],
            )
            .await
            .map_err(conflict_as(NAME_TAKEN))?;
        Ok(())
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.db.find_client(id).await
    }

    async fn list_clients(&self, owner: Option<&str>) -> StoreResult<Vec<Client>> {
        static ALL: Sql = LazyLock::new(|| format!("SELECT {CLIENT_COLS} FROM clients c ORDER BY c.created_at, c.name"));
        static OF_OWNER: Sql =
            LazyLock::new(|| format!("SELECT {CLIENT_COLS} FROM clients c WHERE c.owner_user_id = $1 ORDER BY c.created_at, c.name"));
        let rows = match owner {
            Some(owner) => self.db.read(&OF_OWNER, &[owner.into()]).await?,
            None => self.db.read(&ALL, &[]).await?,
        };
        rows::all(rows, rows::client)
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        self.db
            .transaction(id.to_owned(), |tx, id| {
                Box::pin(async move {
                    for sql in [
                        "DELETE FROM access_tokens WHERE client_id = $1",
                        "DELETE FROM refresh_tokens WHERE client_id = $1",
                        "DELETE FROM authorization_codes WHERE client_id = $1",
                        "DELETE FROM consents WHERE client_id = $1",
                    ] {
                        tx.exec(sql, &[id.into()]).await?;
                    }
                    Ok(tx.exec("DELETE FROM clients WHERE id = $1", &[id.into()]).await? > 0)
                })
            })
            .await
    }

    async fn rotate_client_secret(&self, id: &str, new_hash: &str, previous_expires_at: Option<i64>) -> StoreResult<bool> {
        let n = self
            .db
            .write(
                "UPDATE clients SET \
                   previous_secret_hash = CASE WHEN CAST($3 AS BIGINT) IS NULL THEN NULL ELSE secret_hash END, \
                   previous_secret_expires_at = CAST($3 AS BIGINT), \
                   secret_hash = $2 \
                 WHERE id = $1",
                &[id.into(), new_hash.into(), previous_expires_at.into()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn update_client(
        &self,
        id: &str,
        name: &str,
        category: &str,
        redirect_uris: &[String],
        allow_implicit: bool,
    ) -> StoreResult<bool> {
        let n = self
            .db
            .write(
                "UPDATE clients SET name = $2, category = $3, redirect_uris = $4, allow_implicit = $5 WHERE id = $1",
                &[id.into(), name.into(), category.into(), uris_json(redirect_uris)?.into(), allow_implicit.into()],
            )
            .await
            .map_err(conflict_as(NAME_TAKEN))?;
        Ok(n > 0)
    }

    async fn put_secret_note(&self, session_hash: &str, client_id: &str, sealed: &str, expires_at: i64) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO secret_notes (session_hash, client_id, sealed, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session_hash, client_id) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at",
                &[session_hash.into(), client_id.into(), sealed.into(), expires_at.into()],
            )
            .await?;
        Ok(())
    }

    async fn take_secret_note(&self, session_hash: &str, client_id: &str, now: i64) -> StoreResult<Option<String>> {
        let args = (session_hash.to_owned(), client_id.to_owned());
        // Deleted as it is read, in one statement: two reloads racing see it once.
        let taken = self
            .db
            .transaction(args, |tx, (session, client)| {
                Box::pin(async move {
                    let row = tx
                        .row(
                            "DELETE FROM secret_notes WHERE session_hash = $1 AND client_id = $2 RETURNING sealed, expires_at",
                            &[session.into(), client.into()],
                        )
                        .await?;
                    row.map(|mut r| Ok((r.text(0)?, r.int(1)?))).transpose()
                })
            })
            .await?;
        Ok(taken.filter(|(_, expires_at)| *expires_at > now).map(|(sealed, _)| sealed))
    }
}
