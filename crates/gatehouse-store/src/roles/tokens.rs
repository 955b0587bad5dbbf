//! Access and refresh tokens: issuing, looking up, rotating and revoking.

use async_trait::async_trait;
use gatehouse_core::model::{AccessTokenInfo, Family, RefreshToken};
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::store::{rotate_presented_in_steps, Decide, Presented, Rotation, StoreResult, TokenIssue, Tokens};

use crate::db::Db;
use crate::group_commit::{mismatched, Job, Outcome};
use crate::token_steps::{revoke_family_in, store_new_grant};
use crate::SqlStore;

#[async_trait]
impl<D: Db> Tokens for SqlStore<D> {
    async fn insert_tokens(&self, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<()> {
        if D::CAPPED_GRANTS_IN_BATCHES || issue.refresh.is_none() {
            let job = Job::Issue { issue: issue.clone(), caps, now };
            return match self.db.tokens().submit(job).await? {
                Outcome::Issued => Ok(()),
                other => Err(mismatched(other)),
            };
        }
        self.db
            .transaction((issue.clone(), caps, now), |tx, (issue, caps, now)| {
                Box::pin(store_new_grant(tx, issue, *caps, *now))
            })
            .await
    }

    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<AccessTokenInfo>> {
        self.db.find_access(token_hash).await
    }

    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        self.db.find_refresh(token_hash).await
    }

    async fn rotate_refresh_token(&self, old_hash: &str, issue: TokenIssue, now: i64) -> StoreResult<Rotation> {
        match self.db.tokens().submit(Job::Rotate { key: old_hash.to_owned(), issue, now }).await? {
            Outcome::Rotated(r) => Ok(r),
            other => Err(mismatched(other)),
        }
    }

    async fn rotate_presented(&self, old_hash: &str, now: i64, decide: Decide) -> StoreResult<Presented> {
        if !D::PRESENTED_IN_WRITER {
            return rotate_presented_in_steps(self, old_hash, now, decide).await;
        }
        match self.db.tokens().submit(Job::Present { key: old_hash.to_owned(), decide, now }).await? {
            Outcome::Presented(p) => Ok(p),
            other => Err(mismatched(other)),
        }
    }

    async fn revoke_family(&self, family: Family<'_>) -> StoreResult<()> {
        let args = (family.id.to_owned(), family.client_id.to_owned(), family.user_id.to_owned());
        self.db
            .transaction(args, |tx, (id, client_id, user_id)| {
                Box::pin(revoke_family_in(tx, Family { id, client_id, user_id }, "family_id"))
            })
            .await
    }

    async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<()> {
        self.db.write("UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = $1", &[token_hash.into()]).await?;
        Ok(())
    }

    async fn revoke_access_token(&self, token_hash: &str) -> StoreResult<()> {
        self.db.write("UPDATE access_tokens SET revoked = 1 WHERE token_hash = $1", &[token_hash.into()]).await?;
        Ok(())
    }
}
