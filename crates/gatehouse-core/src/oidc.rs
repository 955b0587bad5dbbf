//! OpenID Connect: RS256 signing keys kept encrypted in the store, and ID tokens
//! (OpenID Connect Core §2, §3.1.3.6).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Serialize;

use crate::error::{OAuthError, StoreError};
pub use crate::sealing::{KeyEncryptionKey, KeyError};
use crate::model::SigningKey;
use crate::secret::random_token;
use crate::store::Store;

pub const OPENID: &str = "openid";
pub const ID_TOKEN_TTL: i64 = 3600;
/// How long a rotated-out key stays in the JWKS: longer than anything it signed lives.
pub const RETIRED_KEY_GRACE: i64 = 2 * ID_TOKEN_TTL;
/// How long an instance signs with the key it loaded before looking for a newer one,
/// so a `gatehouse keys rotate` on any machine reaches every instance.
const ACTIVE_KEY_CACHE: Duration = Duration::from_secs(30);

struct ActiveKey {
    kid: String,
    pair: ring::signature::RsaKeyPair,
}

/// Signing keys: the newest unretired one signs; retired ones stay published for a while.
pub struct Keyring {
    kek: KeyEncryptionKey,
    /// Derived from the KEK for notes in cookies, so the key that guards the signing
    /// keys at rest is never used on data that visitors hold.
    note_key: KeyEncryptionKey,
    /// Derived from the KEK for other secrets kept in the store (two-factor secrets):
    /// one key per use, so no ciphertext of one use can be passed off as another's.
    stored_key: KeyEncryptionKey,
    active: Mutex<Option<(Instant, Arc<ActiveKey>)>>,
}

fn storage(e: StoreError) -> OAuthError {
    e.into()
}

impl Keyring {
    pub fn new(kek: KeyEncryptionKey) -> Self {
        let note_key = kek.derive(b"gatehouse cookie notes v1");
        let stored_key = kek.derive(b"gatehouse stored secrets v1");
        Keyring { kek, note_key, stored_key, active: Mutex::new(None) }
    }

    /// Seals a secret for the store (AES-256-GCM under a key derived from the KEK);
    /// `bound_to` (e.g. "totp:" and the user id) is bound in, so a sealed value moved to
    /// another row does not open.
    pub fn seal_stored(&self, secret: &str, bound_to: &str) -> String {
        self.stored_key.seal(secret.as_bytes(), bound_to)
    }

    /// Opens what [`Keyring::seal_stored`] sealed for `bound_to`.
    pub fn open_stored(&self, sealed: &str, bound_to: &str) -> Result<String, KeyError> {
        let plain = self.stored_key.open(sealed, bound_to)?;
        String::from_utf8(plain).map_err(|_| KeyError::Decrypt)
    }

    /// Seals a short note for a cookie: only this server can make or read one, and
    /// `purpose` binds it to its use. URL-safe text.
    pub fn seal_note(&self, note: &str, purpose: &str) -> String {
        let sealed = STANDARD.decode(self.note_key.seal(note.as_bytes(), purpose)).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Opens a note sealed by [`Keyring::seal_note`] for `purpose`; None if forged.
    pub fn open_note(&self, text: &str, purpose: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
        let plain = self.note_key.open(&STANDARD.encode(bytes), purpose).ok()?;
        String::from_utf8(plain).ok()
    }

    /// Generates an RSA-2048 key, stores it encrypted, and returns its id.
    pub async fn generate(&self, store: &dyn Store, now: i64) -> Result<String, KeyError> {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| KeyError::Generate(e.to_string()))?;
        let der = private.to_pkcs1_der().map_err(|e| KeyError::Generate(e.to_string()))?;
        let kid = random_token(16);
        let jwk = serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        });
        let key = SigningKey {
            kid: kid.clone(),
            alg: "RS256".into(),
            private_key: self.kek.seal(der.as_bytes(), &kid),
            public_jwk: jwk.to_string(),
            created_at: now,
            retired_at: None,
        };
        store.insert_signing_key(&key).await?;
        Ok(kid)
    }

    /// Makes a new key the signing key; the old ones stay in the JWKS for
    /// [`RETIRED_KEY_GRACE`] so tokens they signed still verify.
    pub async fn rotate(&self, store: &dyn Store, now: i64) -> Result<String, KeyError> {
        let kid = self.generate(store, now).await?;
        store.retire_signing_keys(&kid, now).await?;
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(kid)
    }

    async fn active_key(&self, store: &dyn Store, now: i64) -> Result<Arc<ActiveKey>, OAuthError> {
        if let Some((at, key)) = self.active.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if at.elapsed() < ACTIVE_KEY_CACHE {
                return Ok(key.clone());
            }
        }
        let mut keys = store.list_signing_keys().await.map_err(storage)?;
        keys.retain(|k| k.retired_at.is_none());
        let newest = match keys.into_iter().max_by_key(|k| (k.created_at, k.kid.clone())) {
            Some(k) => k,
            None => {
                // First use: make the first key.
                self.generate(store, now).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot create a signing key");
                    OAuthError::server_error()
                })?;
                return Box::pin(self.active_key(store, now)).await;
            }
        };
        let der = self.kek.open(&newest.private_key, &newest.kid).map_err(|e| {
            tracing::error!(error = %e, kid = %newest.kid, "cannot load the signing key");
            OAuthError::server_error()
        })?;
        let pair = ring::signature::RsaKeyPair::from_der(&der).map_err(|e| {
            tracing::error!(error = %e, kid = %newest.kid, "the signing key is not a usable RSA key");
            OAuthError::server_error()
        })?;
        let key = Arc::new(ActiveKey { kid: newest.kid, pair });
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), key.clone()));
        Ok(key)
    }

    /// Makes sure there is a signing key (the first start makes one).
    pub async fn ensure(&self, store: &dyn Store, now: i64) -> Result<(), OAuthError> {
        self.active_key(store, now).await.map(|_| ())
    }

    /// The JWKS (RFC 7517): every key that signs now or signed something still valid.
    /// A client fetching it before the first token must already see the key that will
    /// sign that token.
    pub async fn jwks(&self, store: &dyn Store, now: i64) -> Result<serde_json::Value, OAuthError> {
        self.ensure(store, now).await?;
        let keys = store.list_signing_keys().await.map_err(storage)?;
        let published: Vec<serde_json::Value> = keys
            .iter()
            .filter(|k| k.retired_at.is_none_or(|r| now < r + RETIRED_KEY_GRACE))
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(serde_json::json!({ "keys": published }))
    }

    /// A compact JWS (RFC 7515) of `claims`, signed RS256 with the active key.
    pub async fn sign<T: Serialize>(&self, store: &dyn Store, now: i64, claims: &T, typ: &str) -> Result<String, OAuthError> {
        let key = self.active_key(store, now).await?;
        sign_rs256(&key, claims, typ).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            OAuthError::server_error()
        })
    }
}

fn sign_rs256<T: Serialize>(key: &ActiveKey, claims: &T, typ: &str) -> Result<String, String> {
    let header = serde_json::json!({ "alg": "RS256", "typ": typ, "kid": key.kid });
    let claims = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    let mut jws = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims));
    let mut signature = vec![0; key.pair.public().modulus_len()];
    let rng = ring::rand::SystemRandom::new();
    key.pair
        .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, jws.as_bytes(), &mut signature)
        .map_err(|_| "RSA signing failed".to_string())?;
    jws.push('.');
    jws.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(jws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_rs256_that_their_public_key_verifies() {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let der = private.to_pkcs1_der().unwrap();
        let key = ActiveKey { kid: "k1".into(), pair: ring::signature::RsaKeyPair::from_der(der.as_bytes()).unwrap() };
        let jws = sign_rs256(&key, &serde_json::json!({ "sub": "alice" }), "JWT").unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" }));
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        let public = ring::signature::RsaPublicKeyComponents { n: private.n().to_bytes_be(), e: private.e().to_bytes_be() };
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature).expect("verifies");
        let tampered = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#));
        assert!(public.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, tampered.as_bytes(), &signature).is_err());
    }

    #[test]
    fn sealed_keys_open_only_with_their_key_and_id() {
        let (kek, text) = KeyEncryptionKey::generate();
        let again = KeyEncryptionKey::from_base64(&text).unwrap();
        let sealed = kek.seal(b"private key bytes", "kid1");
        assert!(!sealed.contains("private"));
        assert_eq!(again.open(&sealed, "kid1").unwrap(), b"private key bytes");
        assert!(again.open(&sealed, "kid2").is_err(), "bound to its key id");
        let ring = Keyring::new(again);
        let stored = ring.seal_stored("JBSWY3DPEHPK3PXP", "totp:user-1");
        assert!(!stored.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(ring.open_stored(&stored, "totp:user-1").unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(ring.open_stored(&stored, "totp:user-2").is_err(), "bound to its row");
        let note = ring.seal_note("user-1", "known-browser");
        assert_eq!(ring.open_note(&note, "known-browser").as_deref(), Some("user-1"));
        assert_eq!(ring.open_note(&note, "other"), None, "bound to its purpose");
        assert_eq!(ring.open_note(&format!("A{note}"), "known-browser"), None);
        let (other, _) = KeyEncryptionKey::generate();
        assert!(other.open(&sealed, "kid1").is_err());
        assert!(KeyEncryptionKey::from_base64("c2hvcnQ=").is_err());
    }
}
