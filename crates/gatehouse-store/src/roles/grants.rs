//! What users granted: consents, authorization codes and device authorizations.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::device::slowed_interval;
use gatehouse_core::model::{AuthorizationCode, Client, Consent, DeviceAuthorization, Family};
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::store::{Grants, Redemption, StoreResult, TokenIssue};

use crate::db::Db;
use crate::group_commit::{mismatched, Job, Outcome, SingleUse};
use crate::rows::{self, Sql, CLIENT_COLS, CODE_SELECT, CONSENT_COLS, DEVICE_SELECT};
use crate::token_steps::{revoke_family_in, revoke_live_refresh, store_new_grant};
use crate::SqlStore;

impl<D: Db> SqlStore<D> {
    /// Claims a code or an approved device authorization and stores its tokens, in the
    /// token writer's next batch or, where grants with refresh tokens lock their user's
    /// row, in a transaction of its own.
    async fn redeem(&self, what: SingleUse, key: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<Redemption> {
        if D::CAPPED_GRANTS_IN_BATCHES || issue.refresh.is_none() {
            let job = Job::Redeem { what, key: key.to_owned(), issue: issue.clone(), caps, now };
            return match self.db.tokens().submit(job).await? {
                Outcome::Redeemed(r) => Ok(r),
                other => Err(mismatched(other)),
            };
        }
        let args = (what, key.to_owned(), issue.clone(), caps, now);
        self.db
            .transaction(args, |tx, (what, key, issue, caps, now)| {
                Box::pin(async move {
                    if tx.exec(what.claim_sql(), &[key.into()]).await? != 1 {
                        return Ok(Redemption::AlreadyUsed);
                    }
                    store_new_grant(tx, issue, *caps, *now).await?;
                    Ok(Redemption::Issued)
                })
            })
            .await
    }
}

#[async_trait]
impl<D: Db> Grants for SqlStore<D> {
    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Consent>> {
        static ONE: Sql =
            LazyLock::new(|| format!("SELECT {CONSENT_COLS} FROM consents co WHERE co.user_id = $1 AND co.client_id = $2"));
        let found = self.db.read(&ONE, &[user_id.into(), client_id.into()]).await?.into_iter().next();
        found.map(|mut r| rows::consent(&mut r)).transpose()
    }

    async fn grant_consent(&self, user_id: &str, client_id: &str, scopes: &ScopeSet, now: i64) -> StoreResult<()> {
        let args = (user_id.to_owned(), client_id.to_owned(), scopes.clone(), now);
        self.db
            .transaction(args, |tx, (user, client, scopes, now)| {
                Box::pin(async move {
                    let ids = [user.into(), client.into()];
                    // Make sure the row exists first, so that the locking read below has a
                    // row to lock even on the first grant: two first grants at once then
                    // queue instead of one overwriting the other.
                    tx.exec(
                        "INSERT INTO consents (user_id, client_id, scopes, granted_at, updated_at) \
                         VALUES ($1, $2, '', $3, $3) ON CONFLICT (user_id, client_id) DO NOTHING",
                        &[user.into(), client.into(), (*now).into()],
                    )
                    .await?;
                    let read = format!("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2{}", tx.row_lock());
                    let earlier = match tx.row(&read, &ids).await? {
                        Some(mut row) => row.text(0)?,
                        None => String::new(),
                    };
                    let merged = ScopeSet::from_stored(&earlier).union(scopes);
                    tx.exec(
                        "UPDATE consents SET scopes = $3, updated_at = $4 WHERE user_id = $1 AND client_id = $2",
                        &[user.into(), client.into(), merged.to_space_separated().into(), (*now).into()],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<(Consent, Client)>> {
        static OF_USER: Sql = LazyLock::new(|| {
            format!(
                "SELECT {CONSENT_COLS}, {CLIENT_COLS} FROM consents co JOIN clients c ON c.id = co.client_id \
                 WHERE co.user_id = $1 ORDER BY co.updated_at DESC, c.name"
            )
        });
        let found = self.db.read(&OF_USER, &[user_id.into()]).await?;
        found
            .into_iter()
            .map(|mut r| {
                let consent = rows::consent(&mut r)?;
                Ok((consent, rows::client_at(r, 5)?.0))
            })
            .collect()
    }

    async fn disconnect(&self, user_id: &str, client_id: &str) -> StoreResult<()> {
        self.db
            .transaction((user_id.to_owned(), client_id.to_owned()), |tx, (user, client)| {
                Box::pin(async move {
                    let ids = [user.into(), client.into()];
                    tx.exec("DELETE FROM consents WHERE user_id = $1 AND client_id = $2", &ids).await?;
                    // Grants given but not yet exchanged would bring the app back.
                    tx.exec("DELETE FROM authorization_codes WHERE user_id = $1 AND client_id = $2", &ids).await?;
                    tx.exec(
                        "UPDATE device_authorizations SET status = 'denied' \
                         WHERE user_id = $1 AND client_id = $2 AND status = 'approved'",
                        &ids,
                    )
                    .await?;
                    revoke_live_refresh(tx, "user_id = $1 AND client_id = $2", &ids).await?;
                    tx.exec("UPDATE access_tokens SET revoked = 1 WHERE user_id = $1 AND client_id = $2 AND revoked = 0", &ids)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn insert_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scopes, code_challenge, \
                 code_challenge_method, nonce, auth_time, created_at, expires_at, used, redirect_uri_given) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)",
                &[
                    (&c.code_hash).into(),
                    (&c.client_id).into(),
                    (&c.user_id).into(),
                    (&c.redirect_uri).into(),
                    c.scopes.to_space_separated().into(),
                    (&c.code_challenge).into(),
                    c.code_challenge_method.map(|m| m.as_str()).into(),
                    (&c.nonce).into(),
                    c.auth_time.into(),
                    c.created_at.into(),
                    c.expires_at.into(),
                    c.redirect_uri_given.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<AuthorizationCode>> {
        static BY_HASH: Sql = LazyLock::new(|| format!("{CODE_SELECT} WHERE code_hash = $1"));
        self.db.read(&BY_HASH, &[code_hash.into()]).await?.into_iter().next().map(rows::code).transpose()
    }

    async fn redeem_code(&self, code_hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<Redemption> {
        self.redeem(SingleUse::Code, code_hash, issue, caps, now).await
    }

    async fn revoke_tokens_from_code(&self, code: Family<'_>) -> StoreResult<()> {
        // Codes whose keys have no issue-order prefix are older than family ids taken
        // from the code: their tokens name the code only in code_hash, which has no index
        // of its own. Only a replay within the hour or so that codes are kept can ask:
        // a scan, once.
        let unprefixed = !gatehouse_core::secret::has_order_prefix(code.id);
        let args = (code.id.to_owned(), code.client_id.to_owned(), code.user_id.to_owned(), unprefixed);
        self.db
            .transaction(args, |tx, (id, client_id, user_id, unprefixed)| {
                Box::pin(async move {
                    let family = Family { id, client_id, user_id };
                    revoke_family_in(tx, family, "family_id").await?;
                    if *unprefixed {
                        revoke_family_in(tx, family, "code_hash").await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn insert_device(&self, d: &DeviceAuthorization) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id, scopes, status, \
                 user_id, auth_time, created_at, expires_at, poll_interval, last_poll_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $8, NULL)",
                &[
                    (&d.device_code_hash).into(),
                    (&d.user_code_hash).into(),
                    (&d.client_id).into(),
                    d.scopes.to_space_separated().into(),
                    d.status.as_str().into(),
                    d.created_at.into(),
                    d.expires_at.into(),
                    d.interval.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn find_device_by_user_code(&self, user_code_hash: &str) -> StoreResult<Option<DeviceAuthorization>> {
        static BY_USER_CODE: Sql = LazyLock::new(|| format!("{DEVICE_SELECT} WHERE user_code_hash = $1"));
        self.db.read(&BY_USER_CODE, &[user_code_hash.into()]).await?.into_iter().next().map(rows::device).transpose()
    }

    async fn poll_device(&self, hash: &str, now: i64) -> StoreResult<Option<(DeviceAuthorization, bool)>> {
        self.db
            .transaction((hash.to_owned(), now), |tx, (hash, now)| {
                Box::pin(async move {
                    let read = format!("{DEVICE_SELECT} WHERE device_code_hash = $1{}", tx.row_lock());
                    let Some(row) = tx.row(&read, &[hash.into()]).await? else {
                        return Ok(None);
                    };
                    let d = rows::device(row)?;
                    let too_fast = d.last_poll_at.is_some_and(|last| now - last < d.interval);
                    // A refused poll grows the interval (capped) but keeps the clock of
                    // the last accepted one: else a client polling each second would be
                    // refused until its code expired.
                    if too_fast {
                        let interval = slowed_interval(d.interval);
                        tx.exec(
                            "UPDATE device_authorizations SET poll_interval = $2 WHERE device_code_hash = $1",
                            &[hash.into(), interval.into()],
                        )
                        .await?;
                    } else {
                        tx.exec(
                            "UPDATE device_authorizations SET last_poll_at = $2 WHERE device_code_hash = $1",
                            &[hash.into(), (*now).into()],
                        )
                        .await?;
                    }
                    Ok(Some((d, too_fast)))
                })
            })
            .await
    }

    async fn decide_device(&self, hash: &str, approve: Option<(&str, i64)>, now: i64) -> StoreResult<bool> {
        let status = if approve.is_some() { "approved" } else { "denied" };
        let n = self
            .db
            .write(
                "UPDATE device_authorizations SET status = $2, user_id = $3, auth_time = $4 \
                 WHERE device_code_hash = $1 AND status = 'pending' AND expires_at > $5",
                &[hash.into(), status.into(), approve.map(|(u, _)| u).into(), approve.map(|(_, t)| t).into(), now.into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn redeem_device(&self, hash: &str, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<Redemption> {
        self.redeem(SingleUse::Device, hash, issue, caps, now).await
    }
}
