//! Random credentials and how they are kept: only a SHA-256 digest is ever stored.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random lowercase alphanumeric string from the OS-seeded CSPRNG.
/// 50 characters carry log2(36) * 50 ≈ 258 bits, above the 256 the policy asks for.
pub fn random_token(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// Length of access tokens, refresh tokens, codes, client secrets and session ids.
pub const SECRET_LEN: usize = 50;

/// Client ids are public: 30 characters, as Twitch's are.
pub fn new_client_id() -> String {
    random_token(30)
}

pub fn new_secret() -> String {
    random_token(SECRET_LEN)
}

/// Hex SHA-256 of a high-entropy secret. Such secrets need no salt or slow hash:
/// guessing 256 random bits is not made easier by a fast digest.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored digest in constant time.
pub fn verify_secret(presented: &str, stored_hash: &str) -> bool {
    let computed = hash_secret(presented);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_distinct_and_lowercase() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), 50);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn verify_accepts_only_the_hashed_secret() {
        let s = new_secret();
        let h = hash_secret(&s);
        assert_ne!(h, s);
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret(&new_secret(), &h));
        assert!(!verify_secret("", &h));
    }
}
