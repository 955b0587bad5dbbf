//! Authorization code grant, token step (RFC 6749 §4.1.3, RFC 7636 §4.6).

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::grant::{mint, with_id_token, Refresh, TokenResponse};
use crate::model::{Client, ClientKind};
use crate::pkce;
use crate::secret::token_key;
use crate::store::Redemption;

#[derive(Debug, Default)]
pub struct CodeExchange<'a> {
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
}

pub async fn exchange(
    auth: &Authority,
    client: &Client,
    req: CodeExchange<'_>,
) -> Result<TokenResponse, OAuthError> {
    let code = req.code.ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let code_hash = token_key(code);
    let now = auth.now();
    let invalid = || OAuthError::invalid_grant("the authorization code is invalid or expired");

    let record = auth.store.find_code(&code_hash).await?.ok_or_else(invalid)?;
    if record.client_id != client.id {
        return Err(invalid());
    }
    if record.used {
        // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
        auth.store.revoke_tokens_from_code(record.family()).await?;
        return Err(OAuthError::invalid_grant("the authorization code was already used"));
    }
    if now >= record.expires_at {
        return Err(invalid());
    }
    // RFC 6749 §4.1.3: if the authorize request named redirect_uri, the token request
    // must repeat it exactly; if it relied on the sole registered URI, it may be left out.
    match req.redirect_uri {
        Some(r) if r != record.redirect_uri => {
            return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
        }
        None if record.redirect_uri_given => {
            return Err(OAuthError::invalid_grant("redirect_uri is required: the authorization request sent one"));
        }
        _ => {}
    }
    match &record.code_challenge {
        Some(challenge) => {
            let verifier = req
                .code_verifier
                .ok_or_else(|| OAuthError::invalid_grant("code_verifier is required"))?;
            // A challenge always has a method; should one be missing, S256 is the safe reading.
            let method = record.code_challenge_method.unwrap_or(pkce::Method::S256);
            if !pkce::verify(verifier, challenge, method) {
                return Err(OAuthError::invalid_grant("code_verifier does not match the challenge"));
            }
        }
        None => {
            if req.code_verifier.is_some() {
                // RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a
                // sign of a PKCE downgrade attack.
                return Err(OAuthError::invalid_grant("code_verifier sent for a code issued without PKCE"));
            }
            if client.kind == ClientKind::Public {
                return Err(OAuthError::invalid_grant("PKCE is required for public clients"));
            }
        }
    }

    let minted = mint(
        auth,
        client,
        Some(&record.user_id),
        &record.scopes,
        Refresh::NewFamily,
        Some(&code_hash),
    ).await?;
    match auth.store.redeem_code(&code_hash, &minted.issue, auth.policy.refresh_caps(), now).await? {
        Redemption::Issued => {
            with_id_token(auth, minted.response, client, &record.user_id, record.nonce.as_deref(), Some(record.auth_time)).await
        }
        Redemption::AlreadyUsed => {
            auth.store.revoke_tokens_from_code(record.family()).await?;
            Err(OAuthError::invalid_grant("the authorization code was already used"))
        }
    }
}
