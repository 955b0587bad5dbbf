//! The device authorization grant (RFC 8628), the part before polling: starting an
//! authorization, and the user's answer typed in at `/activate`.

use crate::authority::Authority;
use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, DeviceAuthorization, DeviceStatus};
use crate::secret::{hash_secret, new_secret};

/// Consonants only, no vowels (no words) and none that look alike (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
pub const DEVICE_CODE_TTL: i64 = 600;
pub const POLL_INTERVAL: i64 = 5;
/// How far `slow_down` may stretch the interval: a client that ignores it still gets
/// its tokens within this many seconds of the user's answer.
pub const MAX_POLL_INTERVAL: i64 = 30;

/// The interval after a `slow_down`: 5 seconds more (RFC 8628 §3.5), up to the cap.
pub fn slowed_interval(interval: i64) -> i64 {
    if interval >= MAX_POLL_INTERVAL { interval } else { (interval + 5).min(MAX_POLL_INTERVAL) }
}

/// The answer to `POST /oauth2/device` (RFC 8628 §3.2).
#[derive(Debug, Clone)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

fn new_user_code() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let letters: String =
        (0..USER_CODE_LEN).map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char).collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// What a person typed, as the stored form: letters of the alphabet only, upper case.
/// Dashes, spaces and case do not matter; anything else makes it no code of ours.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let letters: String =
        typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (letters.len() == USER_CODE_LEN && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(letters)
}

/// Starts a device authorization for `client`. `verification_uri` is the absolute URL of
/// the `/activate` page.
pub async fn start(
    auth: &Authority,
    client: &Client,
    scope: Option<&str>,
    verification_uri: &str,
) -> Result<DeviceAuthorizationResponse, OAuthError> {
    let scopes = auth.catalog.parse(scope)?;
    let now = auth.now();
    let device_code = new_secret();
    let user_code = new_user_code();
    let record = DeviceAuthorization {
        device_code_hash: hash_secret(&device_code),
        user_code_hash: hash_secret(&normalize_user_code(&user_code).unwrap_or_default()),
        client_id: client.id.clone(),
        scopes,
        status: DeviceStatus::Pending,
        user_id: None,
        auth_time: None,
        created_at: now,
        expires_at: now + DEVICE_CODE_TTL,
        interval: POLL_INTERVAL,
        last_poll_at: None,
    };
    // A new user code could collide with a live one (1 in 25 billion); try again then.
    let mut record = record;
    let mut user_code = user_code;
    for _ in 0..3 {
        match auth.store.insert_device(&record).await {
            Ok(()) => {
                let complete = format!(
                    "{verification_uri}?{}",
                    url::form_urlencoded::Serializer::new(String::new()).append_pair("user_code", &user_code).finish()
                );
                return Ok(DeviceAuthorizationResponse {
                    device_code,
                    user_code,
                    verification_uri: verification_uri.to_string(),
                    verification_uri_complete: complete,
                    expires_in: DEVICE_CODE_TTL,
                    interval: POLL_INTERVAL,
                });
            }
            Err(crate::error::StoreError::Conflict(_)) => {
                user_code = new_user_code();
                record.user_code_hash = hash_secret(&normalize_user_code(&user_code).unwrap_or_default());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::server_error())
}

/// The pending authorization a typed user code names, with its client.
pub async fn find_pending(auth: &Authority, typed: &str) -> Result<(DeviceAuthorization, Client), OAuthError> {
    let invalid = || OAuthError::new(ErrorCode::InvalidGrant, "that code is not valid or has expired");
    let code = normalize_user_code(typed).ok_or_else(invalid)?;
    let device = auth.store.find_device_by_user_code(&hash_secret(&code)).await?.ok_or_else(invalid)?;
    if device.status != DeviceStatus::Pending || auth.now() >= device.expires_at {
        return Err(invalid());
    }
    let client = auth.store.find_client(&device.client_id).await?.ok_or_else(invalid)?;
    Ok((device, client))
}

/// The user's answer. Allowing also remembers the consent, as the browser flow does.
pub async fn decide(
    auth: &Authority,
    device: &DeviceAuthorization,
    user_id: &str,
    auth_time: i64,
    allow: bool,
) -> Result<(), OAuthError> {
    let now = auth.now();
    let answer = allow.then_some((user_id, auth_time));
    if !auth.store.decide_device(&device.device_code_hash, answer, now).await? {
        return Err(OAuthError::new(ErrorCode::InvalidGrant, "that code is not valid or has expired"));
    }
    if allow {
        auth.store.grant_consent(user_id, &device.client_id, &device.scopes, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_adds_five_seconds_up_to_the_cap() {
        assert_eq!(slowed_interval(5), 10);
        assert_eq!(slowed_interval(28), MAX_POLL_INTERVAL);
        assert_eq!(slowed_interval(MAX_POLL_INTERVAL), MAX_POLL_INTERVAL);
    }

    #[test]
    fn user_codes_are_eight_unambiguous_letters() {
        for _ in 0..100 {
            let c = new_user_code();
            assert_eq!(c.len(), 9);
            assert_eq!(&c[4..5], "-");
            assert!(normalize_user_code(&c).is_some());
        }
    }

    #[test]
    fn typing_is_forgiving_about_case_spaces_and_dashes() {
        assert_eq!(normalize_user_code("bcdf-ghjk").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize_user_code(" BCDF GHJK ").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize_user_code("BCDF-GHJA"), None, "vowels are never in a code");
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
    }
}
