//! Device authorization grant, polling step (RFC 8628 §3.4, §3.5).

use crate::authority::Authority;
use crate::device::slowed_interval;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::{mint, with_id_token, Refresh, TokenResponse};
use crate::model::{Client, DeviceStatus};
use crate::secret::hash_secret;
use crate::store::Redemption;

pub async fn poll(auth: &Authority, client: &Client, device_code: Option<&str>) -> Result<TokenResponse, OAuthError> {
    let code = device_code.ok_or_else(|| OAuthError::invalid_request("device_code is required"))?;
    let hash = hash_secret(code);
    let now = auth.now();
    let invalid = || OAuthError::invalid_grant("the device code is invalid");
    let (device, too_fast) = auth.store.poll_device(&hash, now).await?.ok_or_else(invalid)?;
    if device.client_id != client.id {
        return Err(invalid());
    }
    if now >= device.expires_at {
        return Err(OAuthError::new(ErrorCode::ExpiredToken, "the device code has expired; start again"));
    }
    match device.status {
        // slow_down is a kind of authorization_pending (RFC 8628 §3.5): once the user has
        // answered, even a client polling too fast gets the answer, so one that polls
        // each second has its tokens a second after approval.
        DeviceStatus::Pending if too_fast => Err(OAuthError::new(
            ErrorCode::SlowDown,
            format!("polling too fast; wait {} seconds between polls", slowed_interval(device.interval)),
        )),
        DeviceStatus::Pending => Err(OAuthError::new(ErrorCode::AuthorizationPending, "the user has not answered yet")),
        DeviceStatus::Denied => Err(OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")),
        DeviceStatus::Used => Err(OAuthError::invalid_grant("the device code was already used")),
        DeviceStatus::Approved => {
            let user_id = device.user_id.as_deref().ok_or_else(invalid)?;
            let minted = mint(auth, client, Some(user_id), &device.scopes, Refresh::NewFamily, None).await?;
            match auth.store.redeem_device(&hash, &minted.issue, auth.policy.refresh_caps(), now).await? {
                Redemption::Issued => with_id_token(auth, minted.response, client, user_id, None, device.auth_time).await,
                Redemption::AlreadyUsed => Err(OAuthError::invalid_grant("the device code was already used")),
            }
        }
    }
}
