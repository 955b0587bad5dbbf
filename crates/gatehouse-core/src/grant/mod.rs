//! One module per grant type (RFC 6749 §4, §6). Each takes an authenticated client and
//! the grant's own parameters and returns a [`TokenResponse`] or an [`OAuthError`].

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod id_token;
pub mod refresh_token;

use crate::authority::Authority;
use crate::model::{AccessToken, Client, ClientKind, RefreshToken};
use crate::policy::Policy;
use crate::scope::ScopeSet;
use crate::secret::{new_ordered_id, new_token, random_token, token_key};
use crate::store::TokenIssue;

/// A successful token response (RFC 6749 §5.1). The HTTP layer chooses how `scope` is
/// written (space-separated string, or a JSON array in the Twitch dialect).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub scope: ScopeSet,
    /// OpenID Connect: present when `openid` was granted.
    pub id_token: Option<String>,
}

/// Where a new refresh token goes: a fresh family (a new grant), an existing one
/// (rotation), or none at all (app and implicit tokens).
pub(crate) enum Refresh<'a> {
    None,
    NewFamily,
    SameFamily(&'a RefreshToken),
}

/// Fresh random tokens, their digests ready to store, and the response to send.
pub(crate) struct Minted {
    pub response: TokenResponse,
    pub issue: TokenIssue,
}

/// Adds an ID token to a response when `openid` was granted (OpenID Connect Core §3.1.3.3).
pub(crate) async fn with_id_token(
    auth: &Authority,
    mut response: TokenResponse,
    client: &Client,
    user_id: &str,
    nonce: Option<&str>,
    auth_time: Option<i64>,
) -> Result<TokenResponse, crate::error::OAuthError> {
    let facts = id_token::IdTokenFacts {
        client_id: &client.id,
        user_id,
        scopes: &response.scope,
        nonce,
        auth_time,
        access_token: &response.access_token,
    };
    response.id_token = id_token::id_token(auth, facts).await?;
    Ok(response)
}

/// RFC 9068 §2.2: the claims of a JWT access token.
#[derive(serde::Serialize)]
struct JwtAccessClaims<'a> {
    iss: &'a str,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
    client_id: &'a str,
    iat: i64,
    jti: String,
    scope: String,
}

/// The `code_hash` a new token stores: none when its family is the code (every grant
/// since migration 0008), where it only repeated the family's 74 characters in each row
/// of every rotation; the code of a family begun before then, which has a family id of
/// its own, so that a replay of that code still finds the family's tokens.
fn family_code(code_hash: Option<&str>, family_id: Option<&str>) -> Option<String> {
    code_hash.filter(|c| Some(*c) != family_id).map(str::to_string)
}

pub(crate) async fn mint(
    auth: &Authority,
    client: &Client,
    user_id: Option<&str>,
    access_scopes: &ScopeSet,
    refresh: Refresh<'_>,
    code_hash: Option<&str>,
) -> Result<Minted, crate::error::OAuthError> {
    let now = auth.now();
    let ttl = auth.policy.access_token_ttl;
    let access_plain = if auth.policy.jwt_access_tokens || client.jwt_access_tokens {
        let keyring = auth.keyring.as_ref().ok_or_else(|| {
            tracing::error!("JWT access tokens need signing keys, and none are configured");
            crate::error::OAuthError::server_error()
        })?;
        let claims = JwtAccessClaims {
            iss: &auth.issuer,
            exp: now + ttl,
            aud: &auth.issuer,
            // App tokens have no user: the client is the subject (RFC 9068 §2.2).
            sub: user_id.unwrap_or(&client.id),
            client_id: &client.id,
            iat: now,
            jti: random_token(24),
            scope: access_scopes.to_space_separated(),
        };
        keyring.sign(auth.store.as_ref(), now, &claims, "at+jwt").await?
    } else {
        new_token()
    };

    let fresh = Fresh::new(access_plain, !matches!(refresh, Refresh::None) && user_id.is_some());
    let issue = fresh.records(&auth.policy, &client.id, client.kind, user_id, access_scopes, refresh, code_hash, now);
    Ok(Minted { response: fresh.response(ttl, access_scopes.clone()), issue })
}

/// A grant's new tokens, drawn, with the keys they are stored under.
#[derive(Clone)]
pub(crate) struct Fresh {
    access: String,
    access_key: String,
    refresh: Option<(String, String)>,
}

impl Fresh {
    /// `access` and, if `with_refresh`, a new refresh token.
    pub(crate) fn new(access: String, with_refresh: bool) -> Fresh {
        let access_key = token_key(&access);
        let refresh = with_refresh.then(|| {
            let plain = new_token();
            let key = token_key(&plain);
            (plain, key)
        });
        Fresh { access, access_key, refresh }
    }

    /// The rows to store for these tokens. No I/O and no randomness: the refresh grant
    /// runs it where the old token is read (`Store::rotate_presented`), perhaps twice.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn records(
        &self,
        policy: &Policy,
        client_id: &str,
        client_kind: ClientKind,
        user_id: Option<&str>,
        access_scopes: &ScopeSet,
        refresh: Refresh<'_>,
        code_hash: Option<&str>,
        now: i64,
    ) -> TokenIssue {
        let refresh_record = match (refresh, user_id, &self.refresh) {
            (Refresh::None, _, _) | (_, None, _) | (_, _, None) => None,
            (Refresh::NewFamily, Some(uid), Some((_, key))) => Some(RefreshToken {
                token_hash: key.clone(),
                // The code's key names the family of the tokens it begins, so a replayed
                // code revokes them by family (`Store::revoke_tokens_from_code`).
                family_id: code_hash.map_or_else(new_ordered_id, str::to_string),
                client_id: client_id.to_string(),
                user_id: uid.to_string(),
                scopes: access_scopes.clone(),
                created_at: now,
                expires_at: None,
                rotated_at: None,
                revoked: false,
                // The family names the code already (see `family_code` below).
                code_hash: None,
            }),
            (Refresh::SameFamily(old), Some(_), Some((_, key))) => Some(RefreshToken {
                token_hash: key.clone(),
                created_at: now,
                rotated_at: None,
                revoked: false,
                code_hash: family_code(old.code_hash.as_deref(), Some(&old.family_id)),
                ..old.clone()
            }),
        };
        let refresh_record = refresh_record.map(|mut r| {
            // Public clients' refresh tokens expire after a period of disuse: each
            // rotation starts the period again.
            r.expires_at = match client_kind {
                ClientKind::Public => Some(now + policy.public_refresh_idle_ttl),
                ClientKind::Confidential => None,
            };
            r
        });
        let access = AccessToken {
            token_hash: self.access_key.clone(),
            client_id: client_id.to_string(),
            user_id: user_id.map(str::to_string),
            scopes: access_scopes.clone(),
            created_at: now,
            expires_at: now + policy.access_token_ttl,
            family_id: refresh_record.as_ref().map(|r| r.family_id.clone()),
            code_hash: family_code(code_hash, refresh_record.as_ref().map(|r| r.family_id.as_str())),
            revoked: false,
        };
        TokenIssue { access, refresh: refresh_record }
    }

    /// The answer that hands these tokens out.
    pub(crate) fn response(self, expires_in: i64, scope: ScopeSet) -> TokenResponse {
        TokenResponse {
            access_token: self.access,
            token_type: "bearer",
            expires_in,
            refresh_token: self.refresh.map(|(plain, _)| plain),
            scope,
            id_token: None,
        }
    }
}
