//! Two-factor sign-in: the sealed TOTP secret, its last used step, and recovery codes.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::model::TwoFactor;
use gatehouse_core::store::{StoreResult, TwoFactors};

use crate::db::Db;
use crate::rows::{self, Sql, TWO_FACTOR_SELECT};
use crate::SqlStore;

#[async_trait]
impl<D: Db> TwoFactors for SqlStore<D> {
    async fn find_two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>> {
        static BY_USER: Sql = LazyLock::new(|| format!("{TWO_FACTOR_SELECT} WHERE t.user_id = $1"));
        self.db.read(&BY_USER, &[user_id.into()]).await?.into_iter().next().map(rows::two_factor).transpose()
    }

    async fn enable_two_factor(&self, t: &TwoFactor, recovery_hashes: &[String]) -> StoreResult<bool> {
        let args = (t.clone(), recovery_hashes.to_vec());
        self.db
            .transaction(args, |tx, (t, codes)| {
                Box::pin(async move {
                    let added = tx
                        .exec(
                            "INSERT INTO two_factor (user_id, secret_sealed, last_step, enabled_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING",
                            &[(&t.user_id).into(), (&t.secret_sealed).into(), t.last_step.into(), t.enabled_at.into()],
                        )
                        .await?;
                    if added == 0 {
                        return Ok(false);
                    }
                    // Codes left from an earlier time two-factor was on are worth nothing now.
                    tx.exec("DELETE FROM recovery_codes WHERE user_id = $1", &[(&t.user_id).into()]).await?;
                    for hash in codes {
                        tx.exec(
                            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
                            &[(&t.user_id).into(), hash.into()],
                        )
                        .await?;
                    }
                    Ok(true)
                })
            })
            .await
    }

    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let n = self
            .db
            .write("UPDATE two_factor SET last_step = $2 WHERE user_id = $1 AND last_step < $2", &[user_id.into(), step.into()])
            .await?;
        Ok(n == 1)
    }

    async fn use_recovery_code(&self, user_id: &str, code_hash: &str, now: i64) -> StoreResult<bool> {
        let n = self
            .db
            .write(
                "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                &[user_id.into(), code_hash.into(), now.into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn disable_two_factor(&self, user_id: &str) -> StoreResult<bool> {
        self.db
            .transaction(user_id.to_owned(), |tx, user| {
                Box::pin(async move {
                    tx.exec("DELETE FROM recovery_codes WHERE user_id = $1", &[user.into()]).await?;
                    Ok(tx.exec("DELETE FROM two_factor WHERE user_id = $1", &[user.into()]).await? > 0)
                })
            })
            .await
    }
}
