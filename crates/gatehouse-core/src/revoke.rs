//! Token revocation (RFC 7009).

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::model::Client;
use crate::secret::token_key;

/// Revokes an access or refresh token issued to `client`. Unknown tokens are not an
/// error (RFC 7009 §2.2): the answer is the same as for a revoked one. A refresh token
/// takes its whole family, and the access tokens issued within it, with it (§2.1).
pub async fn revoke(auth: &Authority, client: &Client, token: Option<&str>) -> Result<(), OAuthError> {
    let token = token.ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let hash = token_key(token);
    let not_yours = || OAuthError::invalid_request("the token was not issued to this client");
    // The hint (token_type_hint) only speeds up a lookup; both kinds are one indexed
    // read each, so it is not needed.
    if let Some(info) = auth.store.find_access_token(&hash).await? {
        if info.token.client_id != client.id {
            return Err(not_yours());
        }
        auth.store.revoke_access_token(&hash).await?;
        return Ok(());
    }
    if let Some(rt) = auth.store.find_refresh_token(&hash).await? {
        if rt.client_id != client.id {
            return Err(not_yours());
        }
        auth.store.revoke_family(rt.family()).await?;
        // The token itself too, should it be a rotated one (the family's revocation
        // takes its live tokens only).
        auth.store.revoke_refresh_token(&hash).await?;
    }
    Ok(())
}
