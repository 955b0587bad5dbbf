//! Scopes: the catalog of what may be asked for, and sets of granted scopes.

use std::collections::BTreeSet;

use crate::error::OAuthError;

/// One scope a client may request, with the plain words the consent page shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScopeDef {
    pub name: String,
    pub description: String,
}

/// The scopes this server knows. Requests naming any other scope get `invalid_scope`.
/// Shared, not copied: the server's state (which holds it) is cloned for every request.
#[derive(Debug, Clone)]
pub struct ScopeCatalog {
    scopes: std::sync::Arc<[ScopeDef]>,
}

/// The twelve scopes of Twitch's kraken API (seed 001), the default catalog.
const DEFAULT_SCOPES: &[(&str, &str)] = &[
    ("user_read", "Read your non-public account information, such as your email address"),
    ("user_blocks_edit", "Ignore or unignore users on your behalf"),
    ("user_blocks_read", "Read your list of ignored users"),
    ("user_follows_edit", "Follow and unfollow channels on your behalf"),
    ("channel_read", "Read your channel's non-public information, including email address and stream key"),
    ("channel_editor", "Change your channel's title, game and other metadata"),
    ("channel_commercial", "Run commercials on your channel"),
    ("channel_stream", "Reset your channel's stream key"),
    ("channel_subscriptions", "Read the list of subscribers to your channel"),
    ("user_subscriptions", "Read the channels you are subscribed to"),
    ("channel_check_subscription", "Check whether a user is subscribed to your channel"),
    ("chat_login", "Log into chat and send messages as you"),
    // OpenID Connect: an ID token saying who signed in.
    ("openid", "Confirm your identity to the app: your user ID and username"),
];

impl Default for ScopeCatalog {
    fn default() -> Self {
        ScopeCatalog {
            scopes: DEFAULT_SCOPES
                .iter()
                .map(|(n, d)| ScopeDef { name: n.to_string(), description: d.to_string() })
                .collect(),
        }
    }
}

impl ScopeCatalog {
    pub fn new(scopes: Vec<ScopeDef>) -> Self {
        ScopeCatalog { scopes: scopes.into() }
    }

    pub fn all(&self) -> &[ScopeDef] {
        &self.scopes
    }

    pub fn get(&self, name: &str) -> Option<&ScopeDef> {
        self.scopes.iter().find(|s| s.name == name)
    }

    /// Parses a space-separated `scope` parameter (RFC 6749 §3.3). `+` arrives already
    /// decoded as a space. Unknown names are refused, naming the first one.
    pub fn parse(&self, raw: Option<&str>) -> Result<ScopeSet, OAuthError> {
        let mut set = ScopeSet::default();
        for name in raw.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
            if self.get(name).is_none() {
                return Err(OAuthError::invalid_scope(format!("unknown scope: {}", clip(name))));
            }
            set.0.insert(name.to_string());
        }
        Ok(set)
    }
}

/// Keeps attacker-chosen text short in error descriptions.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A set of scope names, ordered so that its string form is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Reads the stored form (space separated) without checking against a catalog:
    /// what was granted stays granted even if the catalog later changes.
    pub fn from_stored(s: &str) -> Self {
        ScopeSet(s.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect())
    }
    pub fn to_space_separated(&self) -> String {
        let mut out = String::with_capacity(self.0.iter().map(|s| s.len() + 1).sum());
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(name);
        }
        out
    }
    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
    pub fn into_vec(self) -> Vec<String> {
        self.0.into_iter().collect()
    }
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_space_separated_known_scopes() {
        let c = ScopeCatalog::default();
        let s = c.parse(Some("user_read  channel_read")).unwrap();
        assert_eq!(s.to_space_separated(), "channel_read user_read");
    }

    #[test]
    fn unknown_scope_is_invalid_scope() {
        let c = ScopeCatalog::default();
        let e = c.parse(Some("user_read admin")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        assert!(e.description.contains("admin"));
    }

    #[test]
    fn no_scope_is_the_empty_set() {
        assert!(ScopeCatalog::default().parse(None).unwrap().is_empty());
        assert!(ScopeCatalog::default().parse(Some("")).unwrap().is_empty());
    }

    #[test]
    fn default_catalog_has_the_twelve_seed_scopes_and_openid() {
        assert_eq!(ScopeCatalog::default().all().len(), 13);
    }
}
