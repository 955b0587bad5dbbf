//! Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::grant::{mint, with_id_token, Refresh, TokenResponse};
use crate::model::Client;
use crate::secret::token_key;
use crate::store::Rotation;

pub async fn refresh(
    auth: &Authority,
    client: &Client,
    refresh_token: Option<&str>,
    scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let presented =
        refresh_token.ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = token_key(presented);
    let now = auth.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid");

    let record = auth.store.find_refresh_token(&hash).await?.ok_or_else(invalid)?;
    if record.client_id != client.id || record.revoked {
        return Err(invalid());
    }
    if let Some(rotated_at) = record.rotated_at {
        // Within the grace period this is most likely a retry of a request whose response
        // was lost, or a concurrent duplicate: refuse it, but keep the family.
        if now - rotated_at > auth.policy.refresh_reuse_grace {
            tracing::warn!(client_id = %client.id, "rotated refresh token reused; revoking its family");
            auth.store.revoke_family(record.family()).await?;
            // Then the token: presented again, it is refused as revoked instead of
            // revoking the family once more (after the family, so that a crash between
            // the two cannot leave the family live behind a revoked token).
            auth.store.revoke_refresh_token(&hash).await?;
        }
        return Err(invalid());
    }
    if record.expires_at.is_some_and(|e| now >= e) {
        return Err(OAuthError::invalid_grant("the refresh token has expired"));
    }

    // A narrower scope may be asked for; the new refresh token keeps the original
    // scope (RFC 6749 §6).
    let access_scopes = match scope.filter(|s| !s.trim().is_empty()) {
        None => record.scopes.clone(),
        Some(raw) => {
            let asked = auth.catalog.parse(Some(raw))?;
            if !asked.is_subset_of(&record.scopes) {
                return Err(OAuthError::invalid_scope("scope exceeds what was originally granted"));
            }
            asked
        }
    };
    let mut minted = mint(
        auth,
        client,
        Some(&record.user_id),
        &access_scopes,
        Refresh::SameFamily(&record),
        record.code_hash.as_deref(),
    ).await?;
    if let Some(r) = minted.issue.refresh.as_mut() {
        r.scopes = record.scopes.clone();
    }
    match auth.store.rotate_refresh_token(&hash, minted.issue, now).await? {
        Rotation::Rotated => with_id_token(auth, minted.response, client, &record.user_id, None, None).await,
        Rotation::NotLive => Err(invalid()),
    }
}
