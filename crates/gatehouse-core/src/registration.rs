//! Registering applications (clients) and rotating their secrets.

use crate::app_name;
use crate::authority::Authority;
use crate::error::StoreError;
use crate::model::{Client, ClientKind, CATEGORIES};
use crate::redirect::{validate_registration, RedirectUriError};
use crate::secret::{hash_secret, new_client_id, new_secret};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    RedirectUri(#[from] RedirectUriError),
    #[error("an application with that name already exists")]
    NameTaken,
    #[error("no such application")]
    NotFound,
    #[error("the application could not be saved")]
    Storage,
}

impl From<StoreError> for RegistrationError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => RegistrationError::NameTaken,
            other => {
                other.log();
                RegistrationError::Storage
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub owner_user_id: String,
    pub category: String,
    pub kind: ClientKind,
    pub allow_implicit: bool,
    pub redirect_uris: Vec<String>,
    pub jwt_access_tokens: bool,
}

/// Checks a registration: a name, a known category, at least one valid redirect URI.
pub fn check(new: &NewClient) -> Result<(), RegistrationError> {
    app_name::normalize(&new.name).map_err(|why| RegistrationError::Invalid(why.into()))?;
    if !CATEGORIES.iter().any(|(k, _)| *k == new.category) {
        return Err(RegistrationError::Invalid(format!(
            "category must be one of: {}",
            CATEGORIES.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        )));
    }
    if new.redirect_uris.is_empty() {
        return Err(RegistrationError::Invalid("at least one redirect URI is needed".into()));
    }
    if new.redirect_uris.len() > 10 {
        return Err(RegistrationError::Invalid("at most 10 redirect URIs".into()));
    }
    for uri in &new.redirect_uris {
        validate_registration(uri)?;
    }
    Ok(())
}

/// Registers a client. Returns it and, for a confidential client, its secret: the only
/// time the secret exists outside the caller's hands.
pub async fn register(auth: &Authority, new: NewClient) -> Result<(Client, Option<String>), RegistrationError> {
    check(&new)?;
    let name = distinct_name(auth, &new.name, None).await?;
    let secret = (new.kind == ClientKind::Confidential).then(new_secret);
    let client = Client {
        id: new_client_id(),
        name,
        owner_user_id: new.owner_user_id,
        category: new.category,
        kind: new.kind,
        allow_implicit: new.allow_implicit,
        redirect_uris: new.redirect_uris,
        secret_hash: secret.as_deref().map(hash_secret),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        created_at: auth.now(),
        jwt_access_tokens: new.jwt_access_tokens,
    };
    auth.store.create_client(&client).await?;
    Ok((client, secret))
}

/// Gives a confidential client a new secret. The old one stops working at once, or
/// after `grace_seconds` when given (so a deployment can roll over).
pub async fn rotate_secret(
    auth: &Authority,
    client_id: &str,
    grace_seconds: Option<i64>,
) -> Result<String, RegistrationError> {
    let client = auth.store.find_client(client_id).await?.ok_or(RegistrationError::NotFound)?;
    if client.kind == ClientKind::Public {
        return Err(RegistrationError::Invalid("public clients have no secret".into()));
    }
    if grace_seconds.is_some_and(|g| g < 0) {
        return Err(RegistrationError::Invalid("the grace period cannot be negative".into()));
    }
    let secret = new_secret();
    let until = grace_seconds.filter(|g| *g > 0).map(|g| auth.now() + g);
    if !auth.store.rotate_client_secret(client_id, &hash_secret(&secret), until).await? {
        return Err(RegistrationError::NotFound);
    }
    Ok(secret)
}

/// Applies a developer's edit: the same rules as registration.
pub async fn update(auth: &Authority, client: &Client, edit: NewClient) -> Result<(), RegistrationError> {
    check(&edit)?;
    let name = distinct_name(auth, &edit.name, Some(&client.id)).await?;
    let found = auth
        .store
        .update_client(&client.id, &name, &edit.category, &edit.redirect_uris, edit.allow_implicit)
        .await?;
    if found {
        Ok(())
    } else {
        Err(RegistrationError::NotFound)
    }
}

/// The name in its stored form, if no other application's name looks like it. The
/// store's unique index still decides between two registrations of one name at once;
/// look-alikes are compared here, against every registered name (registrations are few).
async fn distinct_name(auth: &Authority, raw: &str, except: Option<&str>) -> Result<String, RegistrationError> {
    let name = app_name::normalize(raw).map_err(|why| RegistrationError::Invalid(why.into()))?;
    let key = app_name::look_alike_key(&name);
    let others = auth.store.list_clients(None).await?;
    if others.iter().any(|c| Some(c.id.as_str()) != except && app_name::look_alike_key(&c.name) == key) {
        return Err(RegistrationError::NameTaken);
    }
    Ok(name)
}
