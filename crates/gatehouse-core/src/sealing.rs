//! Sealing with AES-256-GCM: the key encryption key that keeps signing keys and
//! two-factor secrets unreadable in the database, and notes sealed for one browser under
//! a key only its cookie gives.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Why a key could not be read, made or stored. The text is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key encryption key is not base64")]
    KekNotBase64,
    #[error("the key encryption key must be 32 bytes")]
    KekLength,
    #[error("stored signing key is not base64")]
    SealedNotBase64,
    #[error("stored signing key is truncated")]
    SealedTruncated,
    #[error("cannot decrypt a signing key: wrong key encryption key?")]
    Decrypt,
    /// RSA key generation or encoding failed.
    #[error("{0}")]
    Generate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The 256-bit key that encrypts signing keys at rest (AES-256-GCM).
#[derive(Clone)]
pub struct KeyEncryptionKey([u8; 32]);

impl KeyEncryptionKey {
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::KekNotBase64)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::KekLength)?;
        Ok(KeyEncryptionKey(key))
    }

    pub(crate) fn from_bytes(key: [u8; 32]) -> Self {
        KeyEncryptionKey(key)
    }

    /// Another key for another use, SHA-256(`label` ‖ this key): the key that guards
    /// signing keys at rest is then never used on anything else.
    pub(crate) fn derive(&self, label: &[u8]) -> Self {
        KeyEncryptionKey(Sha256::new().chain_update(label).chain_update(self.0).finalize().into())
    }

    /// A new random key and its base64 text, for a key file.
    pub fn generate() -> (Self, String) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        (KeyEncryptionKey(key), STANDARD.encode(key))
    }

    /// nonce ‖ ciphertext, base64. The key id is bound in as associated data, so a
    /// ciphertext cannot be moved to another key's row.
    pub(crate) fn seal(&self, plaintext: &[u8], kid: &str) -> String {
        let cipher = Aes256Gcm::new(&self.0.into());
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: kid.as_bytes() })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        STANDARD.encode(out)
    }

    pub(crate) fn open(&self, sealed: &str, kid: &str) -> Result<Vec<u8>, KeyError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| KeyError::SealedNotBase64)?;
        if bytes.len() < 12 {
            return Err(KeyError::SealedTruncated);
        }
        let (nonce, ct) = bytes.split_at(12);
        Aes256Gcm::new(&self.0.into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: kid.as_bytes() })
            .map_err(|_| KeyError::Decrypt)
    }
}

/// Seals `note` under a key derived from `holder_secret`, a secret the database never
/// holds (a session cookie, of which only the SHA-256 is stored): a dump of the sealed
/// text yields nothing. `purpose` is bound in, so a note opens only where it was meant.
pub fn seal_for_holder(holder_secret: &str, purpose: &str, note: &str) -> String {
    holder_key(holder_secret).seal(note.as_bytes(), purpose)
}

/// Opens a note of [`seal_for_holder`]; None with another secret or purpose.
pub fn open_for_holder(holder_secret: &str, purpose: &str, sealed: &str) -> Option<String> {
    String::from_utf8(holder_key(holder_secret).open(sealed, purpose).ok()?).ok()
}

fn holder_key(holder_secret: &str) -> KeyEncryptionKey {
    // A distinct label: the stored digest of a session id (`hash_secret`) is no key.
    let key: [u8; 32] = Sha256::new().chain_update(b"gatehouse holder notes v1\0").chain_update(holder_secret.as_bytes()).finalize().into();
    KeyEncryptionKey::from_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_notes_open_only_with_their_secret_and_purpose() {
        let sealed = seal_for_holder("cookie-value", "secret:app1", "the secret");
        assert!(!sealed.contains("the secret"));
        assert_eq!(open_for_holder("cookie-value", "secret:app1", &sealed).as_deref(), Some("the secret"));
        assert_eq!(open_for_holder("other-cookie", "secret:app1", &sealed), None);
        assert_eq!(open_for_holder("cookie-value", "secret:app2", &sealed), None);
        assert_eq!(open_for_holder(&crate::secret::hash_secret("cookie-value"), "secret:app1", &sealed), None, "the stored digest is no key");
    }
}
