//! Refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

use std::sync::Arc;

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::events::{Event, EventKind};
use crate::grant::{mint, with_id_token, Fresh, Refresh, TokenResponse};
use crate::model::{Client, RefreshToken};
use crate::scope::ScopeSet;
use crate::secret::{new_token, token_key};
use crate::store::{Presented, Rotation};

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
    // A narrower scope may be asked for; the new refresh token keeps the original
    // scope (RFC 6749 §6). An unknown name is refused only after the token's own
    // checks, so that a reused token still revokes its family.
    let asked: Asked = scope
        .filter(|s| !s.trim().is_empty())
        .map(|raw| auth.catalog.parse(Some(raw)))
        .transpose();
    if auth.policy.jwt_access_tokens || client.jwt_access_tokens {
        // A JWT access token is signed with claims from the stored token, and signing
        // may read keys from the store: read first, then rotate.
        return refresh_in_steps(auth, client, &hash, &asked, now).await;
    }

    // Opaque tokens are drawn before the old one is read, so that the store can read,
    // check and rotate it in one step (on SQLite, inside the writer's batch).
    let fresh = Arc::new(Fresh::new(new_token(), true));
    let decide = {
        let (fresh, client_id, kind) = (fresh.clone(), client.id.clone(), client.kind);
        let (policy, asked) = (auth.policy.clone(), asked.clone());
        Arc::new(move |record: &RefreshToken| {
            let access_scopes = check(record, &client_id, now, policy.refresh_reuse_grace, &asked).ok()?;
            let user = Some(record.user_id.as_str());
            let code = record.code_hash.as_deref();
            Some(fresh.records(&policy, &client_id, kind, user, &access_scopes, Refresh::SameFamily(record), code, now))
        })
    };
    match auth.store.rotate_presented(&hash, now, decide).await? {
        Presented::Rotated(record) => {
            let access_scopes = check(&record, &client.id, now, auth.policy.refresh_reuse_grace, &asked)
                .map_err(|_| OAuthError::server_error())?;
            // The writer may not have dropped its copy of the decision yet.
            let response = Arc::unwrap_or_clone(fresh).response(auth.policy.access_token_ttl, access_scopes);
            with_id_token(auth, response, client, &record.user_id, None, None).await
        }
        Presented::Refused(record) => {
            let refusal = check(&record, &client.id, now, auth.policy.refresh_reuse_grace, &asked)
                .err()
                .unwrap_or(Refusal::Invalid);
            Err(refuse(auth, client, &record, &hash, refusal).await?)
        }
        Presented::Unknown | Presented::NotLive => Err(invalid()),
    }
}

/// The same grant as a read and then a rotation, for JWT access tokens.
async fn refresh_in_steps(
    auth: &Authority,
    client: &Client,
    hash: &str,
    asked: &Asked,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let record = auth.store.find_refresh_token(hash).await?.ok_or_else(invalid)?;
    let access_scopes = match check(&record, &client.id, now, auth.policy.refresh_reuse_grace, asked) {
        Ok(scopes) => scopes,
        Err(refusal) => return Err(refuse(auth, client, &record, hash, refusal).await?),
    };
    let minted = mint(
        auth,
        client,
        Some(&record.user_id),
        &access_scopes,
        Refresh::SameFamily(&record),
        record.code_hash.as_deref(),
    ).await?;
    match auth.store.rotate_refresh_token(hash, minted.issue, now).await? {
        Rotation::Rotated => with_id_token(auth, minted.response, client, &record.user_id, None, None).await,
        Rotation::NotLive => Err(invalid()),
    }
}

/// The scope asked for, if any, as read against the catalog.
type Asked = Result<Option<ScopeSet>, OAuthError>;

/// Why a presented refresh token is not rotated.
enum Refusal {
    /// Unknown to this client, revoked, or rotated within the grace period.
    Invalid,
    /// Rotated longer ago than the grace period: presented again, it revokes its family.
    Reused,
    Expired,
    /// More scope asked for than was granted.
    Scope,
    /// A scope name the catalog does not know: its error.
    UnknownScope(OAuthError),
}

/// The checks on a stored refresh token, and the access token's scope if it passes. No
/// I/O: it runs where the token is read (see `Store::rotate_presented`).
fn check(
    record: &RefreshToken,
    client_id: &str,
    now: i64,
    reuse_grace: i64,
    asked: &Asked,
) -> Result<ScopeSet, Refusal> {
    if record.client_id != client_id || record.revoked {
        return Err(Refusal::Invalid);
    }
    if let Some(rotated_at) = record.rotated_at {
        // Within the grace period this is most likely a retry of a request whose response
        // was lost, or a concurrent duplicate: refuse it, but keep the family.
        return Err(if now - rotated_at > reuse_grace { Refusal::Reused } else { Refusal::Invalid });
    }
    if record.expires_at.is_some_and(|e| now >= e) {
        return Err(Refusal::Expired);
    }
    match asked {
        Err(unknown) => Err(Refusal::UnknownScope(unknown.clone())),
        Ok(None) => Ok(record.scopes.clone()),
        Ok(Some(asked)) if asked.is_subset_of(&record.scopes) => Ok(asked.clone()),
        Ok(Some(_)) => Err(Refusal::Scope),
    }
}

/// The error for a refusal, after what it calls for: a reused token revokes its family.
async fn refuse(
    auth: &Authority,
    client: &Client,
    record: &RefreshToken,
    hash: &str,
    refusal: Refusal,
) -> Result<OAuthError, OAuthError> {
    Ok(match refusal {
        Refusal::Invalid => invalid(),
        Refusal::Reused => {
            tracing::warn!(client_id = %client.id, "rotated refresh token reused; revoking its family");
            auth.store.revoke_family(record.family()).await?;
            // Then the token: presented again, it is refused as revoked instead of
            // revoking the family once more (after the family, so that a crash between
            // the two cannot leave the family live behind a revoked token).
            auth.store.revoke_refresh_token(hash).await?;
            let mut reused = Event::new(EventKind::RefreshTokenReused, auth.now()).client(&client.id);
            reused.subject_user_id = Some(record.user_id.clone());
            reused = reused.detail("its family of tokens was revoked");
            if let Err(e) = auth.store.record_event(&reused).await {
                e.log();
            }
            invalid()
        }
        Refusal::Expired => OAuthError::invalid_grant("the refresh token has expired"),
        Refusal::Scope => OAuthError::invalid_scope("scope exceeds what was originally granted"),
        Refusal::UnknownScope(error) => error,
    })
}

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid")
}
