//! Random credentials and how they are kept: only a SHA-256 digest is ever stored.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A random lowercase alphanumeric string from the OS-seeded CSPRNG.
/// 50 characters carry log2(36) * 50 ≈ 258 bits, above the 256 the policy asks for.
pub fn random_token(len: usize) -> String {
    // Random bytes, a block at a time, each kept only below 252 (seven times 36) so
    // that every character is equally likely; a call of `gen_range` per character
    // cost a twentieth of a refresh request's time.
    const UNBIASED: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(len);
    let mut block = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut block[..]);
        for &b in block.iter().filter(|&&b| b < UNBIASED).take(len - out.len()) {
            out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
        }
    }
    out
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
    let mut key = String::with_capacity(64);
    push_hex_digest(&mut key, secret);
    key
}

/// Appends the hex SHA-256 of `secret` to `out`.
fn push_hex_digest(out: &mut String, secret: &str) {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut hex).expect("64 hex digits");
    out.push_str(std::str::from_utf8(&hex).expect("hex is ascii"));
}

/// Characters of the issue-order prefix of tokens and codes.
const ORDER_LEN: usize = 10;

/// Length of access tokens, refresh tokens and authorization codes: the issue-order
/// prefix, then `SECRET_LEN` random characters (all of the token's entropy).
pub const TOKEN_LEN: usize = ORDER_LEN + SECRET_LEN;

/// A base-36 clock in microseconds, strictly increasing in this process (10 digits last
/// until 2085). It is no secret: it tells when a token was issued, as its `expires_in` does.
fn order_prefix() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    const SPAN: u64 = 36u64.pow(ORDER_LEN as u32);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let next = |last: u64| now.max(last + 1);
    let prev = LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(next(last))).unwrap_or(0);
    let mut n = next(prev) % SPAN;
    let mut out = [b'0'; ORDER_LEN];
    for d in out.iter_mut().rev() {
        let digit = (n % 36) as usize;
        *d = DIGITS[digit];
        n /= 36;
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

/// Base-36 digits in ASCII order, so that prefixes sort as the numbers they encode.
const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new access token, refresh token or authorization code.
///
/// Tokens are looked up by a digest, and digests of random strings land on a random page
/// of the index: each issued token cost the single SQLite writer a page to read and a
/// page to write to the WAL. Keys that begin with the issue order (see `token_key`)
/// arrive at the right edge of the index instead, a page or two for a whole batch.
pub fn new_token() -> String {
    let mut token = order_prefix();
    token.push_str(&random_token(SECRET_LEN));
    token
}

/// An id that sorts by creation, for refresh-token families: a family's rows are then
/// indexed next to those of families begun at about the same time.
pub fn new_ordered_id() -> String {
    let mut id = order_prefix();
    id.push_str(&random_token(14));
    id
}

/// The stored key of a token or code: for tokens of `new_token`'s shape, the issue-order
/// prefix and the hex SHA-256 of the whole token; for anything else (tokens issued before
/// the prefix existed, JWT access tokens) the digest alone. Either way only the digest
/// stands for the secret part.
pub fn token_key(presented: &str) -> String {
    let b = presented.as_bytes();
    if b.len() == TOKEN_LEN && b[..ORDER_LEN].iter().all(|c| DIGITS.contains(c)) {
        let mut key = String::with_capacity(ORDER_LEN + 64);
        key.push_str(&presented[..ORDER_LEN]);
        push_hex_digest(&mut key, presented);
        key
    } else {
        hash_secret(presented)
    }
}

/// Whether a stored key is of a token or code of `new_token`'s shape (its issue-order
/// prefix and a hex digest), not a digest alone.
pub fn has_order_prefix(key: &str) -> bool {
    key.len() == ORDER_LEN + 64
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
    fn tokens_sort_by_issue_and_key_by_digest() {
        let tokens: Vec<String> = (0..1000).map(|_| new_token()).collect();
        assert!(tokens.iter().all(|t| t.len() == TOKEN_LEN && t.bytes().all(|c| DIGITS.contains(&c))));
        let keys: Vec<String> = tokens.iter().map(|t| token_key(t)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys of later tokens sort later");
        assert_eq!(keys[0], format!("{}{}", &tokens[0][..ORDER_LEN], hash_secret(&tokens[0])));
        assert!(has_order_prefix(&keys[0]) && !has_order_prefix(&hash_secret(&tokens[0])));
        assert!(!keys[0].contains(&tokens[0][ORDER_LEN..]), "the secret part is stored only as a digest");
        // Old-shape tokens, JWTs, and odd input (even non-ASCII at the cut) key by digest alone.
        let old = new_secret();
        assert_eq!(token_key(&old), hash_secret(&old));
        let odd = format!("{}é{}", "a".repeat(9), "b".repeat(TOKEN_LEN - 11));
        assert_eq!(odd.len(), TOKEN_LEN);
        assert_eq!(token_key(&odd), hash_secret(&odd));
        let ids: Vec<String> = (0..100).map(|_| new_ordered_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn random_tokens_draw_every_character_evenly() {
        assert_eq!(random_token(0), "");
        // Ten thousand of each expected (a standard deviation of about 99); a draw of
        // `byte % 36` over every byte value would give the first four 11,250 each.
        let long = random_token(360_000);
        assert_eq!(long.len(), 360_000);
        for &c in ALPHABET {
            let n = long.bytes().filter(|&b| b == c).count();
            assert!((9_500..10_500).contains(&n), "{} drawn {n} times", c as char);
        }
    }

    #[test]
    fn digests_are_hex_sha256() {
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
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
