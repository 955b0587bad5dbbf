//! Two-factor sign-in: time-based one-time passwords (RFC 6238, HMAC-SHA1, 30-second
//! steps, six digits: what every authenticator app reads from an `otpauth://` URI) and
//! single-use recovery codes, kept only as SHA-256 digests.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::secret::{hash_secret, random_token};

/// Seconds per step (RFC 6238's default, and the only one most apps support).
pub const STEP: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps either side of now that are accepted: a phone's clock a little off, or a code
/// typed as it changed.
pub const SKEW: i64 = 1;
/// Recovery codes made when two-factor sign-in is turned on.
pub const RECOVERY_CODES: usize = 10;
/// Bytes of a new secret: 160 bits, the HMAC-SHA1 block RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// A new random secret, as the base32 text (no padding) the otpauth URI carries.
pub fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    data_encoding::BASE32_NOPAD.encode(&key)
}

/// The key bytes of a base32 secret (spaces and case ignored, as apps show them).
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    let clean: String = secret.chars().filter(|c| !c.is_whitespace() && *c != '=').collect::<String>().to_uppercase();
    data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).ok().filter(|k| !k.is_empty())
}

/// The step that `unix` seconds fall in.
pub fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP)
}

/// The code of `step` for key `key` (RFC 4226 §5.3: dynamic truncation).
pub fn code_for_step(key: &[u8], step: i64) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&(step as u64).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:0width$}", bin % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The code an app shows at `unix` seconds for the base32 `secret`.
pub fn code_at(secret: &str, unix: i64) -> Option<String> {
    secret_bytes(secret).map(|k| code_for_step(&k, step_at(unix)))
}

/// Whether `presented` looks like a TOTP code (six digits, spaces allowed) rather than a
/// recovery code.
pub fn looks_like_code(presented: &str) -> Option<String> {
    let digits: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The step whose code `presented` is, among those around `now`, newer than `last_step`
/// (a code is accepted once: RFC 6238 §5.2). Every candidate is compared, in constant
/// time, so timing tells nothing of which one matched.
pub fn matching_step(key: &[u8], presented: &str, now: i64, last_step: i64) -> Option<i64> {
    let presented = looks_like_code(presented)?;
    let current = step_at(now);
    let mut found = None;
    for step in (current - SKEW)..=(current + SKEW) {
        let same: bool = code_for_step(key, step).as_bytes().ct_eq(presented.as_bytes()).into();
        if same && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://totp/…` URI an authenticator app reads (Google's Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20");
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// Ten new recovery codes, as shown to the user (`xxxx-xxxx-xxxx`, 62 bits each), and
/// their digests, which are all that is stored.
pub fn new_recovery_codes() -> Vec<(String, String)> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = random_token(12);
            let shown = format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]);
            (shown, hash_secret(&raw))
        })
        .collect()
}

/// The digest of a presented recovery code, however it was typed (case, dashes, spaces);
/// None if it cannot be one.
pub fn recovery_code_digest(presented: &str) -> Option<String> {
    let raw: String =
        presented.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_ascii_lowercase();
    (raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| hash_secret(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (eight digits there; the last six here).
    #[test]
    fn rfc6238_test_vectors() {
        let key = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_for_step(key, step_at(t)), eight[2..], "t = {t}");
        }
        let b32 = data_encoding::BASE32_NOPAD.encode(key);
        assert_eq!(code_at(&b32.to_lowercase(), 59).as_deref(), Some("287082"));
    }

    #[test]
    fn a_code_is_accepted_once_and_only_near_now() {
        let secret = new_secret();
        let key = secret_bytes(&secret).unwrap();
        let now = 1_700_000_000;
        let code = code_at(&secret, now).unwrap();
        let step = matching_step(&key, &code, now, 0).expect("current code");
        assert_eq!(step, step_at(now));
        assert_eq!(matching_step(&key, &code, now, step), None, "used once");
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(matching_step(&key, &spaced, now, 0), Some(step));
        let previous = code_at(&secret, now - STEP).unwrap();
        assert_eq!(matching_step(&key, &previous, now, 0), Some(step - 1), "one step of skew");
        let stale = code_at(&secret, now - 3 * STEP).unwrap();
        assert_eq!(matching_step(&key, &stale, now, 0), None);
        assert_eq!(matching_step(&key, "abcdef", now, 0), None);
    }

    #[test]
    fn recovery_codes_are_kept_as_digests() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let (shown, digest) = &codes[0];
        assert_eq!(shown.len(), 14);
        assert_eq!(recovery_code_digest(shown).as_ref(), Some(digest));
        assert_eq!(recovery_code_digest(&shown.to_uppercase().replace('-', " ")).as_ref(), Some(digest));
        assert_eq!(recovery_code_digest("123456"), None);
        assert!(!digest.contains(&shown[..4]));
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        let uri = otpauth_uri("Gatehouse (id.example.com)", "alice", "JBSWY3DPEHPK3PXP");
        assert!(uri.starts_with("otpauth://totp/Gatehouse%20%28id.example.com%29:alice?secret=JBSWY3DPEHPK3PXP&issuer="));
        assert!(uri.contains("&digits=6&period=30"));
    }
}
