//! The cached entries, and what makes them stale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gatehouse_core::model::{AccessTokenInfo, Client, User};

/// Entries before a cache starts over: bounds memory under a flood of distinct keys.
const CAPACITY: usize = 50_000;

pub(crate) struct Entries<T> {
    map: Mutex<HashMap<String, (Instant, T)>>,
    ttl: Duration,
}

impl<T: Clone> Entries<T> {
    fn new(ttl: Duration) -> Self {
        Entries { map: Mutex::new(HashMap::new()), ttl }
    }

    pub fn get(&self, key: &str) -> Option<T> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    fn put(&self, key: &str, value: T) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key.to_string(), (Instant::now(), value));
    }

    fn forget(&self, key: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// What a write makes stale, here and in every instance that shares the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Any access token may have been revoked.
    AllTokens,
    Client(String),
    User(String),
}

impl Invalidation {
    /// One line of an announcement.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::AllTokens => "T".into(),
            Invalidation::Client(id) => format!("c:{id}"),
            Invalidation::User(id) => format!("u:{id}"),
        }
    }

    pub fn decode(line: &str) -> Option<Invalidation> {
        match line.split_once(':') {
            None if line == "T" => Some(Invalidation::AllTokens),
            Some(("c", id)) => Some(Invalidation::Client(id.into())),
            Some(("u", id)) => Some(Invalidation::User(id.into())),
            _ => None,
        }
    }
}

/// The caches of one store, and whether they may be served from.
pub struct Caches {
    pub(crate) clients: Entries<Option<Client>>,
    pub(crate) users: Entries<Option<User>>,
    pub(crate) tokens: Entries<Option<AccessTokenInfo>>,
    /// False while invalidations from other instances could be missed (no listener).
    coherent: AtomicBool,
    /// Bumped by every invalidation: a value read before one is not kept after it.
    generation: AtomicU64,
}

impl Caches {
    pub(crate) fn new(ttl: Duration, coherent: bool) -> Caches {
        Caches {
            clients: Entries::new(ttl),
            users: Entries::new(ttl),
            tokens: Entries::new(ttl),
            coherent: AtomicBool::new(coherent),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation to read under, or None when the caches may not be used.
    pub(crate) fn reading(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::SeqCst);
        self.coherent.load(Ordering::SeqCst).then_some(generation)
    }

    /// Keeps a value read under `read`, unless something was invalidated meanwhile.
    pub(crate) fn keep<T: Clone>(&self, entries: &Entries<T>, key: &str, value: T, read: Option<u64>) {
        if read.is_some() && self.reading() == read {
            entries.put(key, value);
            // An invalidation that began between the check and the put (its generation
            // bumped, its entries perhaps already cleared) must not be outlived.
            if self.reading() != read {
                entries.forget(key);
            }
        }
    }

    pub fn apply(&self, what: &Invalidation) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        match what {
            Invalidation::AllTokens => self.tokens.clear(),
            Invalidation::Client(id) => self.clients.forget(id),
            Invalidation::User(id) => self.users.forget(id),
        }
    }

    /// Empties every cache, and serves from them again only when `coherent`: after a
    /// listener is lost, until a new one listens.
    pub fn set_coherent(&self, coherent: bool) {
        self.coherent.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.clients.clear();
        self.users.clear();
        self.tokens.clear();
        self.coherent.store(coherent, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip() {
        for what in [Invalidation::AllTokens, Invalidation::Client("abc".into()), Invalidation::User("u1".into())] {
            assert_eq!(Invalidation::decode(&what.encode()), Some(what));
        }
        assert_eq!(Invalidation::decode("x:1"), None);
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_not_kept() {
        let caches = Caches::new(Duration::from_secs(60), true);
        let read = caches.reading();
        caches.apply(&Invalidation::AllTokens);
        caches.keep(&caches.users, "u", None, read);
        assert!(caches.users.get("u").is_none());
        let read = caches.reading();
        caches.keep(&caches.users, "u", None, read);
        assert!(caches.users.get("u").is_some());
        caches.set_coherent(false);
        assert!(caches.users.get("u").is_none() && caches.reading().is_none());
    }
}
