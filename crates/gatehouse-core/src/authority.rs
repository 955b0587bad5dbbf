//! The authority: the store, the policy, the scope catalog and the clock, wired once
//! and handed to every grant handler.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::oidc::Keyring;
use crate::policy::Policy;
use crate::scope::ScopeCatalog;
use crate::store::Store;

#[derive(Clone)]
pub struct Authority {
    pub store: Arc<dyn Store>,
    pub policy: Policy,
    pub catalog: ScopeCatalog,
    pub clock: Arc<dyn Clock>,
    /// The public base URL: `iss` of ID tokens.
    pub issuer: Arc<str>,
    /// Signing keys for ID tokens; without them `openid` is refused.
    pub keyring: Option<Arc<Keyring>>,
}

impl Authority {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Authority {
            store,
            policy: Policy::default(),
            catalog: ScopeCatalog::default(),
            clock: Arc::new(SystemClock),
            issuer: "http://127.0.0.1:8080".into(),
            keyring: None,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
