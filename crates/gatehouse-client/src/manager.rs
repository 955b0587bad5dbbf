//! Keeping a token fresh for a long-running program: refresh shortly before expiry, or
//! once after the API said 401; many tasks share one refresh; a hook persists the
//! rotated refresh token (Gatehouse rotates it on every use).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::{ClientError, Gatehouse, TokenSet};

/// Called with every new token set, to save the new refresh token.
pub type PersistHook = Arc<dyn Fn(&TokenSet) + Send + Sync>;

pub struct TokenManager {
    gatehouse: Gatehouse,
    tokens: Mutex<TokenSet>,
    margin: Duration,
    persist: Option<PersistHook>,
}

impl TokenManager {
    /// Refreshes when fewer than 60 seconds remain.
    pub fn new(gatehouse: Gatehouse, tokens: TokenSet) -> Self {
        TokenManager { gatehouse, tokens: Mutex::new(tokens), margin: Duration::from_secs(60), persist: None }
    }

    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    pub fn on_refresh(mut self, hook: PersistHook) -> Self {
        self.persist = Some(hook);
        self
    }

    /// A token good for at least the margin. Callers that arrive during a refresh wait
    /// for it (the lock is the single flight) and get its result.
    pub async fn access_token(&self) -> Result<String, ClientError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.expires_within(self.margin) {
            self.refresh_locked(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    /// The API refused `rejected` with 401: refresh once, unless another caller already
    /// replaced that token, and return the token to retry with.
    pub async fn after_unauthorized(&self, rejected: &str) -> Result<String, ClientError> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access_token == rejected {
            self.refresh_locked(&mut tokens).await?;
        }
        Ok(tokens.access_token.clone())
    }

    pub async fn current(&self) -> TokenSet {
        self.tokens.lock().await.clone()
    }

    async fn refresh_locked(&self, tokens: &mut TokenSet) -> Result<(), ClientError> {
        let rt = tokens
            .refresh_token
            .clone()
            .ok_or_else(|| ClientError::Other("the token expired and there is no refresh token".into()))?;
        let mut fresh = self.gatehouse.refresh(&rt).await?;
        // A server that does not rotate leaves the old refresh token in force.
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = Some(rt);
        }
        if let Some(hook) = &self.persist {
            hook(&fresh);
        }
        *tokens = fresh;
        Ok(())
    }
}
