//! Client authentication at the token, revocation and introspection endpoints
//! (RFC 6749 §2.3): `client_secret_basic` or `client_secret_post`, never both.

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::model::{Client, ClientKind};
use crate::secret::verify_secret;

/// The credentials a request carried, as the HTTP layer found them.
#[derive(Debug, Default, Clone)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`, already form-decoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
    pub form_client_id: Option<String>,
    pub form_client_secret: Option<String>,
}

impl ClientCredentials {
    fn id_and_secret(&self) -> Result<(Option<&str>, Option<&str>), OAuthError> {
        let form_secret = self.form_client_secret.as_deref().filter(|s| !s.is_empty());
        match &self.basic {
            Some((id, secret)) => {
                if form_secret.is_some() {
                    return Err(OAuthError::invalid_request(
                        "use only one client authentication method",
                    ));
                }
                if let Some(form_id) = self.form_client_id.as_deref() {
                    if form_id != id {
                        return Err(OAuthError::invalid_request(
                            "client_id does not match the Authorization header",
                        ));
                    }
                }
                Ok((Some(id.as_str()), Some(secret.as_str()).filter(|s| !s.is_empty())))
            }
            None => Ok((self.form_client_id.as_deref(), form_secret)),
        }
    }
}

/// Client ids are issued by Gatehouse as short alphanumeric strings. Anything else
/// (overlong, control characters, a NUL that PostgreSQL would refuse) cannot name a
/// client, and is answered without asking the store.
pub fn plausible_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn secret_matches(client: &Client, secret: &str, now: i64) -> bool {
    let current = client.secret_hash.as_deref().is_some_and(|h| verify_secret(secret, h));
    let previous = match (&client.previous_secret_hash, client.previous_secret_expires_at) {
        (Some(h), Some(until)) if now < until => verify_secret(secret, h),
        _ => false,
    };
    current | previous
}

/// Authenticates the client: confidential clients must present a valid secret;
/// public clients identify themselves by `client_id` alone and must not send one.
pub async fn authenticate(auth: &Authority, creds: &ClientCredentials) -> Result<Client, OAuthError> {
    let (id, secret) = creds.id_and_secret()?;
    let id = id.ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
    if !plausible_client_id(id) {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    let client = auth
        .store
        .find_client(id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    match (client.kind, secret) {
        (ClientKind::Confidential, Some(s)) if secret_matches(&client, s, auth.now()) => Ok(client),
        (ClientKind::Confidential, None) => {
            Err(OAuthError::invalid_client("client_secret is required for this client"))
        }
        (ClientKind::Public, None) => Ok(client),
        (ClientKind::Public, Some(_)) => {
            Err(OAuthError::invalid_client("public clients have no client secret"))
        }
        _ => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// For revocation only: Twitch's clients revoke with `client_id` and `token` and no
/// secret. Holding the token is the proof that matters, so a confidential client may be
/// identified without its secret here; a secret, when sent, must still be right.
pub async fn identify_for_revocation(
    auth: &Authority,
    creds: &ClientCredentials,
) -> Result<Client, OAuthError> {
    let (id, secret) = creds.id_and_secret()?;
    if secret.is_some() {
        return authenticate(auth, creds).await;
    }
    let id = id.ok_or_else(|| OAuthError::invalid_client("client_id is required"))?;
    if !plausible_client_id(id) {
        return Err(OAuthError::invalid_client("client authentication failed"));
    }
    auth.store
        .find_client(id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))
}
