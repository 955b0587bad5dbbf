//! Client credentials grant (RFC 6749 §4.4): an app access token, with no user and no
//! refresh token.

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::grant::{mint, Refresh, TokenResponse};
use crate::model::{Client, ClientKind};

pub async fn issue(
    auth: &Authority,
    client: &Client,
    scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if client.kind == ClientKind::Public {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use the client_credentials grant",
        ));
    }
    let scopes = auth.catalog.parse(scope)?;
    let minted = mint(auth, client, None, &scopes, Refresh::None, None).await?;
    auth.store.insert_tokens(&minted.issue, auth.policy.refresh_caps(), auth.now()).await?;
    Ok(minted.response)
}
