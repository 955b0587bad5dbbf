//! Checking a token: in-process against Gatehouse's store, or remotely by RFC 7662
//! introspection with a short, bounded cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gatehouse_core::{inspect, Authority, ErrorCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::GuardError;
use crate::TokenInfo;

#[async_trait]
pub trait Verifier: Send + Sync + 'static {
    async fn verify(&self, token: &str) -> Result<TokenInfo, GuardError>;
}

/// For APIs served by the Gatehouse process itself: one indexed read per request.
pub struct LocalVerifier {
    auth: Authority,
}

impl LocalVerifier {
    pub fn new(auth: Authority) -> Self {
        LocalVerifier { auth }
    }
}

#[async_trait]
impl Verifier for LocalVerifier {
    async fn verify(&self, token: &str) -> Result<TokenInfo, GuardError> {
        match inspect::live_access_token(&self.auth, token).await {
            Ok(info) => Ok(TokenInfo {
                client_id: info.token.client_id,
                user_id: info.token.user_id,
                login: info.user_login,
                scopes: info.token.scopes.into_vec(),
                expires_at: info.token.expires_at,
            }),
            Err(e) if e.code == ErrorCode::InvalidToken => Err(GuardError::InvalidToken("invalid access token".into())),
            Err(_) => Err(GuardError::Unavailable),
        }
    }
}

#[derive(Deserialize)]
struct Introspection {
    active: bool,
    scope: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    token_use: Option<String>,
}

/// Asks a Gatehouse (or any RFC 7662 server) about each token, authenticating as a
/// confidential client. Active answers are kept for at most `ttl` and never past the
/// token's expiry, so a revocation takes effect within `ttl`; inactive answers are not
/// kept, so a new token works at once. At most `capacity` answers are held.
pub struct IntrospectionVerifier {
    url: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<String, (TokenInfo, Instant)>>,
}

impl IntrospectionVerifier {
    pub fn new(url: &str, client_id: &str, client_secret: &str, ttl: Duration, capacity: usize) -> Self {
        IntrospectionVerifier {
            url: url.to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            ttl,
            capacity: capacity.max(1),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Cache keys are digests: the cache never holds a usable token.
    fn key(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }

    fn cached(&self, key: &str) -> Option<TokenInfo> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).filter(|(_, until)| Instant::now() < *until).map(|(info, _)| info.clone())
    }

    fn remember(&self, key: String, info: &TokenInfo) {
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let left = Duration::from_secs((info.expires_at - now_unix).max(0) as u64);
        let until = Instant::now() + self.ttl.min(left);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.capacity {
            let now = Instant::now();
            cache.retain(|_, (_, until)| now < *until);
            if cache.len() >= self.capacity {
                // Still full of live answers: start again rather than grow.
                cache.clear();
            }
        }
        cache.insert(key, (info.clone(), until));
    }
}

#[async_trait]
impl Verifier for IntrospectionVerifier {
    async fn verify(&self, token: &str) -> Result<TokenInfo, GuardError> {
        let key = Self::key(token);
        if let Some(info) = self.cached(&key) {
            return Ok(info);
        }
        let res = self
            .http
            .post(&self.url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "introspection request failed");
                GuardError::Unavailable
            })?;
        if !res.status().is_success() {
            tracing::warn!(status = %res.status(), "introspection endpoint refused the request");
            return Err(GuardError::Unavailable);
        }
        let body: Introspection = res.json().await.map_err(|_| GuardError::Unavailable)?;
        // A refresh token is active too, but it is not an access token.
        if !body.active || body.token_use.as_deref().is_some_and(|u| u != "access_token") {
            return Err(GuardError::InvalidToken("invalid access token".into()));
        }
        let info = TokenInfo {
            client_id: body.client_id.unwrap_or_default(),
            user_id: body.sub,
            login: body.username,
            scopes: body.scope.unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            expires_at: body.exp.unwrap_or(0),
        };
        self.remember(key, &info);
        Ok(info)
    }
}

#[derive(Deserialize)]
struct JwtAccessClaims {
    sub: String,
    client_id: String,
    exp: i64,
    #[serde(default)]
    scope: String,
}

/// Checks RFC 9068 JWT access tokens locally against the issuer's JWKS, with no call to
/// Gatehouse per request. The JWKS is fetched once and again when a token names a key
/// it does not hold (at most every 10 seconds). A revoked JWT stays acceptable here
/// until it expires: keep access token lifetimes short, or use introspection where
/// revocation must take effect at once.
pub struct JwtVerifier {
    jwks_url: String,
    issuer: String,
    audience: String,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<(Option<Instant>, HashMap<String, jsonwebtoken::DecodingKey>)>,
}

impl JwtVerifier {
    /// `issuer` is Gatehouse's public base URL; its tokens carry it as both `iss` and `aud`.
    pub fn new(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_string();
        JwtVerifier {
            jwks_url: format!("{issuer}/oauth2/keys"),
            audience: issuer.clone(),
            issuer,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default(),
            keys: tokio::sync::Mutex::new((None, HashMap::new())),
        }
    }

    async fn key(&self, kid: &str) -> Result<jsonwebtoken::DecodingKey, GuardError> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.1.get(kid) {
            return Ok(k.clone());
        }
        if keys.0.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
            return Err(GuardError::InvalidToken("signed by an unknown key".into()));
        }
        let jwks: serde_json::Value = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|_| GuardError::Unavailable)?
            .json()
            .await
            .map_err(|_| GuardError::Unavailable)?;
        let mut fresh = HashMap::new();
        for k in jwks["keys"].as_array().into_iter().flatten() {
            if let (Some(id), Some(n), Some(e)) = (k["kid"].as_str(), k["n"].as_str(), k["e"].as_str()) {
                if let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_components(n, e) {
                    fresh.insert(id.to_string(), key);
                }
            }
        }
        *keys = (Some(Instant::now()), fresh);
        keys.1.get(kid).cloned().ok_or_else(|| GuardError::InvalidToken("signed by an unknown key".into()))
    }
}

#[async_trait]
impl Verifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<TokenInfo, GuardError> {
        let kid = jwt_key_id(token)?;
        let key = self.key(&kid).await?;
        jwt_claims(token, &key, &self.issuer, &self.audience)
    }
}

fn invalid_jwt() -> GuardError {
    GuardError::InvalidToken("invalid access token".into())
}

/// The key id of an RFC 9068 access token, after checking its header: RS256 and
/// `typ: at+jwt` (RFC 9068 §4, so an ID token is not taken for an access token).
pub fn jwt_key_id(token: &str) -> Result<String, GuardError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid_jwt())?;
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.typ.as_deref().map(str::to_ascii_lowercase).as_deref() != Some("at+jwt") {
        return Err(invalid_jwt());
    }
    header.kid.ok_or_else(invalid_jwt)
}

/// Checks the signature, issuer, audience and expiry of a JWT access token with `key`.
pub fn jwt_claims(token: &str, key: &jsonwebtoken::DecodingKey, issuer: &str, audience: &str) -> Result<TokenInfo, GuardError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = 5;
    let data = jsonwebtoken::decode::<JwtAccessClaims>(token, key, &validation).map_err(|_| invalid_jwt())?;
    let c = data.claims;
    let user_id = (c.sub != c.client_id).then_some(c.sub);
    Ok(TokenInfo {
        client_id: c.client_id,
        user_id,
        login: None,
        scopes: c.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        expires_at: c.exp,
    })
}
