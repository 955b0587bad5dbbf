//! A client for Gatehouse (or any RFC 8414 server): app tokens, the authorization code
//! flow with PKCE and a loopback listener, the device flow, refresh, revoke and
//! validate, built on the `oauth2` crate; and a [`TokenManager`] that refreshes before
//! expiry, once for many callers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gatehouse_client::ClientError> {
//! use gatehouse_client::Gatehouse;
//! let gh = Gatehouse::discover("http://localhost:8080", "my-client-id", Some("my-secret")).await?;
//! let app = gh.app_token(&["user_read"]).await?;
//! println!("{} expires in {:?}", app.access_token, app.expires_in());
//! # Ok(()) }
//! ```

mod loopback;
mod manager;

pub use loopback::LoopbackOptions;
pub use manager::{PersistHook, TokenManager};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthUrl, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, RefreshToken, RequestTokenError,
    RevocationUrl, Scope, StandardDeviceAuthorizationResponse, StandardErrorResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

type OAuthClient = BasicClient<EndpointSet, EndpointSet, EndpointNotSet, EndpointSet, EndpointSet>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an OAuth error (`invalid_grant`, `access_denied`, …).
    #[error("{error}: {description}")]
    Server { error: String, description: String },
    /// The server could not be reached, or answered with something unreadable.
    #[error("cannot talk to the server: {0}")]
    Network(String),
    /// The authorization endpoint refused the request outright (unknown client, a
    /// redirect URI not registered): it would show the person an error page.
    #[error("the server refused the authorization request: {reason} (redirect URI {redirect})")]
    Rejected { reason: String, redirect: String },
    /// The loopback listener's port is taken by another program.
    #[error("port {0} is already in use")]
    PortInUse(u16),
    /// Anything else: a bad URL, a callback that never came, a state mismatch.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    /// The OAuth `error` code, when the server gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn token_error<RE, T>(e: RequestTokenError<RE, StandardErrorResponse<T>>) -> ClientError
where
    RE: std::error::Error + 'static,
    T: oauth2::ErrorResponseType + std::fmt::Display + 'static,
{
    match e {
        RequestTokenError::ServerResponse(r) => ClientError::Server {
            // The error types serialise as their RFC code.
            error: r.error().to_string(),
            description: r.error_description().cloned().unwrap_or_default(),
        },
        RequestTokenError::Request(e) => ClientError::Network(e.to_string()),
        RequestTokenError::Parse(e, _) => ClientError::Network(format!("unreadable answer: {e}")),
        RequestTokenError::Other(e) => ClientError::Other(e),
    }
}

/// A set of tokens and when the access token stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds. Seed 003's `created_at + expires_in`, kept for you.
    pub expires_at: Option<u64>,
    pub scopes: Vec<String>,
    pub id_token: Option<String>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl TokenSet {
    fn from_response(r: &BasicTokenResponse, id_token: Option<String>) -> TokenSet {
        TokenSet {
            access_token: r.access_token().secret().clone(),
            refresh_token: r.refresh_token().map(|t| t.secret().clone()),
            expires_at: r.expires_in().map(|d| unix_now() + d.as_secs()),
            scopes: r.scopes().map(|s| s.iter().map(|x| x.to_string()).collect()).unwrap_or_default(),
            id_token,
        }
    }

    /// Time left, or None when the server gave no expiry.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_at.map(|e| Duration::from_secs(e.saturating_sub(unix_now())))
    }

    /// Whether it expires within `margin` (or already has).
    pub fn expires_within(&self, margin: Duration) -> bool {
        self.expires_at.is_some_and(|e| e <= unix_now() + margin.as_secs())
    }
}

/// What `GET /oauth2/validate` says about a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    pub client_id: String,
    pub login: Option<String>,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_in: i64,
}

/// The server's endpoints (RFC 8414).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub revocation_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
}

/// One client's view of one Gatehouse.
#[derive(Clone)]
pub struct Gatehouse {
    pub metadata: Metadata,
    oauth: OAuthClient,
    http: reqwest::Client,
    client_id: String,
    client_secret: Option<String>,
}

fn url_err(what: &str) -> impl Fn(url::ParseError) -> ClientError + '_ {
    move |e| ClientError::Other(format!("bad {what} URL: {e}"))
}

impl Gatehouse {
    /// Reads `{server}/.well-known/oauth-authorization-server` and sets the client up.
    pub async fn discover(server: &str, client_id: &str, client_secret: Option<&str>) -> Result<Gatehouse, ClientError> {
        // Redirects are never followed: a token request must not be sent anywhere else.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let url = format!("{}/.well-known/oauth-authorization-server", server.trim_end_matches('/'));
        let res = http.get(&url).send().await.map_err(|e| ClientError::Network(e.without_url().to_string()))?;
        if !res.status().is_success() {
            return Err(ClientError::Network(format!("{url} answered {}", res.status())));
        }
        let metadata: Metadata = res.json().await.map_err(|e| ClientError::Network(format!("bad metadata: {e}")))?;
        Gatehouse::new(metadata, client_id, client_secret, http)
    }

    pub fn new(metadata: Metadata, client_id: &str, client_secret: Option<&str>, http: reqwest::Client) -> Result<Gatehouse, ClientError> {
        let token = TokenUrl::new(metadata.token_endpoint.clone()).map_err(url_err("token"))?;
        let revoke = metadata.revocation_endpoint.clone().unwrap_or_else(|| format!("{}/oauth2/revoke", metadata.issuer));
        let device = metadata
            .device_authorization_endpoint
            .clone()
            .unwrap_or_else(|| format!("{}/oauth2/device", metadata.issuer));
        let mut oauth = BasicClient::new(ClientId::new(client_id.to_string()))
            .set_auth_uri(AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(url_err("authorize"))?)
            .set_token_uri(token)
            .set_revocation_url(RevocationUrl::new(revoke).map_err(url_err("revocation"))?)
            .set_device_authorization_url(DeviceAuthorizationUrl::new(device).map_err(url_err("device"))?);
        if let Some(secret) = client_secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret.to_string()));
        }
        Ok(Gatehouse { metadata, oauth, http, client_id: client_id.to_string(), client_secret: client_secret.map(str::to_string) })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn scopes(scopes: &[&str]) -> Vec<Scope> {
        scopes.iter().filter(|s| !s.is_empty()).map(|s| Scope::new(s.to_string())).collect()
    }

    /// An app access token (client credentials): no user, no refresh token.
    pub async fn app_token(&self, scopes: &[&str]) -> Result<TokenSet, ClientError> {
        let r = self
            .oauth
            .exchange_client_credentials()
            .add_scopes(Self::scopes(scopes))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(TokenSet::from_response(&r, None))
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, ClientError> {
        let r = self
            .oauth
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        Ok(TokenSet::from_response(&r, None))
    }

    /// Starts the device flow: `show` is called with the code and where to type it;
    /// then polls at the server's interval (slowing down when told) until the user answers.
    pub async fn device_token(
        &self,
        scopes: &[&str],
        show: impl FnOnce(&StandardDeviceAuthorizationResponse),
    ) -> Result<TokenSet, ClientError> {
        let details: StandardDeviceAuthorizationResponse = self
            .oauth
            .exchange_device_code()
            .add_scopes(Self::scopes(scopes))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        show(&details);
        let r = self
            .oauth
            .exchange_device_access_token(&details)
            .request_async(&self.http, tokio::time::sleep, None)
            .await
            .map_err(token_error)?;
        Ok(TokenSet::from_response(&r, None))
    }

    /// Checks the client id (and secret, if any) with the token endpoint, without
    /// getting a token: a code request that names no code fails `invalid_client` when
    /// the credentials are wrong, and `invalid_request` (for the missing code) when not.
    pub async fn check_client(&self) -> Result<(), ClientError> {
        let mut form = vec![("grant_type", "authorization_code"), ("client_id", self.client_id.as_str())];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let res = self
            .http
            .post(&self.metadata.token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| ClientError::Network(e.without_url().to_string()))?;
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        match body["error"].as_str() {
            Some(e @ ("invalid_client" | "unauthorized_client")) => Err(ClientError::Server {
                error: e.to_string(),
                description: body["error_description"].as_str().unwrap_or_default().to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The authorization code flow with PKCE for a person at this machine: listens on
    /// the loopback address, hands `open` the URL to visit, and exchanges the code.
    pub async fn user_token(&self, scopes: &[&str], options: LoopbackOptions, open: impl FnOnce(&str)) -> Result<TokenSet, ClientError> {
        loopback::user_token(self, &self.oauth, &self.http, Self::scopes(scopes), options, open).await
    }

    /// Revokes a token (RFC 7009), as this client: with its secret when it has one,
    /// else in Twitch's `client_id` + `token` form. (The `oauth2` crate insists on an
    /// https revocation URL, which a local Gatehouse is not, so this is a plain form post.)
    pub async fn revoke(&self, token: &str) -> Result<(), ClientError> {
        let url = self.metadata.revocation_endpoint.clone().unwrap_or_else(|| format!("{}/oauth2/revoke", self.metadata.issuer));
        let mut form = vec![("client_id", self.client_id.as_str()), ("token", token)];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let res = self.http.post(url).form(&form).send().await.map_err(|e| ClientError::Network(e.without_url().to_string()))?;
        if res.status().is_success() {
            return Ok(());
        }
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        Err(ClientError::Server {
            error: body["error"].as_str().unwrap_or("invalid_request").to_string(),
            description: body["error_description"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Asks `GET /oauth2/validate` about a token.
    pub async fn validate(&self, token: &str) -> Result<Validation, ClientError> {
        let res = self
            .http
            .get(format!("{}/oauth2/validate", self.metadata.issuer))
            .header("Authorization", format!("OAuth {token}"))
            .send()
            .await
            .map_err(|e| ClientError::Network(e.without_url().to_string()))?;
        if res.status().is_success() {
            return res.json().await.map_err(|e| ClientError::Network(format!("unreadable answer: {e}")));
        }
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        Err(ClientError::Server {
            error: body["error"].as_str().unwrap_or("invalid_token").to_string(),
            description: body["error_description"].as_str().unwrap_or("invalid access token").to_string(),
        })
    }
}
