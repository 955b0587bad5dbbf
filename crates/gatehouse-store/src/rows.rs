//! Each table's column list beside the function that reads a row of it: a SELECT names
//! the columns in the order its function reads them.

use std::sync::LazyLock;

use gatehouse_core::error::StoreError;
use gatehouse_core::model::*;
use gatehouse_core::pkce;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::store::StoreResult;

use crate::values::Row;

/// A SELECT of one table's columns with a WHERE clause or ORDER BY of its own, put
/// together once.
pub(crate) type Sql = LazyLock<String>;

pub(crate) static CLIENT_BY_ID: Sql = LazyLock::new(|| format!("SELECT {CLIENT_COLS} FROM clients c WHERE c.id = $1"));
pub(crate) static ACCESS_BY_HASH: Sql = LazyLock::new(|| format!("{ACCESS_SELECT} WHERE a.token_hash = $1"));
pub(crate) static REFRESH_BY_HASH: Sql = LazyLock::new(|| format!("{REFRESH_SELECT} WHERE token_hash = $1"));

pub(crate) const USER_SELECT: &str =
    "SELECT id, login, email, password_hash, created_at, email_verified, disabled, is_admin FROM users";

pub(crate) fn user(mut r: Row) -> StoreResult<User> {
    Ok(User {
        id: r.text(0)?,
        login: r.text(1)?,
        email: r.text(2)?,
        password_hash: r.text(3)?,
        created_at: r.int(4)?,
        email_verified: r.flag(5)?,
        disabled: r.flag(6)?,
        is_admin: r.flag(7)?,
    })
}

pub(crate) const LINK_COLS: &str = "token_hash, user_id, purpose, email, created_at, expires_at";

pub(crate) fn link(mut r: Row) -> StoreResult<LinkToken> {
    let purpose = r.text(2)?;
    Ok(LinkToken {
        token_hash: r.text(0)?,
        user_id: r.text(1)?,
        purpose: LinkPurpose::parse(&purpose).ok_or_else(|| StoreError::Backend(format!("bad link purpose {purpose:?}")))?,
        email: r.text(3)?,
        created_at: r.int(4)?,
        expires_at: r.int(5)?,
    })
}

pub(crate) const EVENT_SELECT: &str = "SELECT at, kind, actor_user_id, actor_login, subject_user_id, subject_login, \
    client_id, address, user_agent, detail FROM events";

pub(crate) fn event(mut r: Row) -> StoreResult<gatehouse_core::events::Event> {
    Ok(gatehouse_core::events::Event {
        at: r.int(0)?,
        kind: r.text(1)?,
        actor_user_id: r.opt_text(2)?,
        actor_login: r.opt_text(3)?,
        subject_user_id: r.opt_text(4)?,
        subject_login: r.opt_text(5)?,
        client_id: r.opt_text(6)?,
        address: r.opt_text(7)?,
        user_agent: r.opt_text(8)?,
        detail: r.opt_text(9)?,
    })
}

/// The client columns, for a SELECT that names clients `c`.
pub(crate) const CLIENT_COLS: &str = "c.id, c.name, c.owner_user_id, c.category, c.kind, c.allow_implicit, \
    c.redirect_uris, c.secret_hash, c.previous_secret_hash, c.previous_secret_expires_at, c.created_at, \
    c.jwt_access_tokens";

pub(crate) fn client(r: Row) -> StoreResult<Client> {
    client_at(r, 0).map(|(c, _)| c)
}

/// A client whose columns start at `at` (after those of a joined table); the row is
/// handed back for the caller's own columns.
pub(crate) fn client_at(mut r: Row, at: usize) -> StoreResult<(Client, Row)> {
    let kind = r.text(at + 4)?;
    let uris = r.text(at + 6)?;
    let client = Client {
        id: r.text(at)?,
        name: r.text(at + 1)?,
        owner_user_id: r.text(at + 2)?,
        category: r.text(at + 3)?,
        kind: ClientKind::parse(&kind).ok_or_else(|| StoreError::Backend(format!("bad client kind {kind:?}")))?,
        allow_implicit: r.flag(at + 5)?,
        redirect_uris: serde_json::from_str(&uris).map_err(|e| StoreError::Backend(format!("bad redirect URIs: {e}")))?,
        secret_hash: r.opt_text(at + 7)?,
        previous_secret_hash: r.opt_text(at + 8)?,
        previous_secret_expires_at: r.opt_int(at + 9)?,
        created_at: r.int(at + 10)?,
        jwt_access_tokens: r.flag(at + 11)?,
    };
    Ok((client, r))
}

pub(crate) const CODE_SELECT: &str = "SELECT code_hash, client_id, user_id, redirect_uri, redirect_uri_given, scopes, \
    code_challenge, code_challenge_method, nonce, auth_time, created_at, expires_at, used FROM authorization_codes";

pub(crate) fn code(mut r: Row) -> StoreResult<AuthorizationCode> {
    Ok(AuthorizationCode {
        code_hash: r.text(0)?,
        client_id: r.text(1)?,
        user_id: r.text(2)?,
        redirect_uri: r.text(3)?,
        redirect_uri_given: r.flag(4)?,
        scopes: ScopeSet::from_stored(&r.text(5)?),
        code_challenge: r.opt_text(6)?,
        code_challenge_method: r.opt_text(7)?.as_deref().and_then(pkce::Method::parse),
        nonce: r.opt_text(8)?,
        auth_time: r.int(9)?,
        created_at: r.int(10)?,
        expires_at: r.int(11)?,
        used: r.flag(12)?,
    })
}

/// An access token with its user's login; a WHERE clause follows.
pub(crate) const ACCESS_SELECT: &str = "SELECT a.token_hash, a.client_id, a.user_id, a.scopes, a.created_at, \
    a.expires_at, a.family_id, a.code_hash, a.revoked, u.login \
    FROM access_tokens a LEFT JOIN users u ON u.id = a.user_id";

pub(crate) fn access(mut r: Row) -> StoreResult<AccessTokenInfo> {
    Ok(AccessTokenInfo {
        token: AccessToken {
            token_hash: r.text(0)?,
            client_id: r.text(1)?,
            user_id: r.opt_text(2)?,
            scopes: ScopeSet::from_stored(&r.text(3)?),
            created_at: r.int(4)?,
            expires_at: r.int(5)?,
            family_id: r.opt_text(6)?,
            code_hash: r.opt_text(7)?,
            revoked: r.flag(8)?,
        },
        user_login: r.opt_text(9)?,
    })
}

pub(crate) const REFRESH_SELECT: &str = "SELECT token_hash, family_id, client_id, user_id, scopes, created_at, \
    expires_at, rotated_at, revoked, code_hash FROM refresh_tokens";

pub(crate) fn refresh(mut r: Row) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        token_hash: r.text(0)?,
        family_id: r.text(1)?,
        client_id: r.text(2)?,
        user_id: r.text(3)?,
        scopes: ScopeSet::from_stored(&r.text(4)?),
        created_at: r.int(5)?,
        expires_at: r.opt_int(6)?,
        rotated_at: r.opt_int(7)?,
        revoked: r.flag(8)?,
        code_hash: r.opt_text(9)?,
    })
}

pub(crate) const DEVICE_SELECT: &str = "SELECT device_code_hash, user_code_hash, client_id, scopes, status, user_id, \
    auth_time, created_at, expires_at, poll_interval, last_poll_at FROM device_authorizations";

pub(crate) fn device(mut r: Row) -> StoreResult<DeviceAuthorization> {
    let status = r.text(4)?;
    Ok(DeviceAuthorization {
        device_code_hash: r.text(0)?,
        user_code_hash: r.text(1)?,
        client_id: r.text(2)?,
        scopes: ScopeSet::from_stored(&r.text(3)?),
        status: DeviceStatus::parse(&status).ok_or_else(|| StoreError::Backend(format!("bad device status {status:?}")))?,
        user_id: r.opt_text(5)?,
        auth_time: r.opt_int(6)?,
        created_at: r.int(7)?,
        expires_at: r.int(8)?,
        interval: r.int(9)?,
        last_poll_at: r.opt_int(10)?,
    })
}

/// The consent columns, for a SELECT that joins consents as `co`.
pub(crate) const CONSENT_COLS: &str = "co.user_id, co.client_id, co.scopes, co.granted_at, co.updated_at";

pub(crate) fn consent(r: &mut Row) -> StoreResult<Consent> {
    Ok(Consent {
        user_id: r.text(0)?,
        client_id: r.text(1)?,
        scopes: ScopeSet::from_stored(&r.text(2)?),
        granted_at: r.int(3)?,
        updated_at: r.int(4)?,
    })
}

pub(crate) const SESSION_SELECT: &str = "SELECT id_hash, user_id, auth_time, expires_at FROM sessions";

pub(crate) fn session(mut r: Row) -> StoreResult<Session> {
    Ok(Session { id_hash: r.text(0)?, user_id: r.text(1)?, auth_time: r.int(2)?, expires_at: r.int(3)? })
}

pub(crate) const SIGNING_KEY_SELECT: &str =
    "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM signing_keys";

pub(crate) fn signing_key(mut r: Row) -> StoreResult<SigningKey> {
    Ok(SigningKey {
        kid: r.text(0)?,
        alg: r.text(1)?,
        private_key: r.text(2)?,
        public_jwk: r.text(3)?,
        created_at: r.int(4)?,
        retired_at: r.opt_int(5)?,
    })
}

/// Maps every row, stopping at the first that cannot be read.
pub(crate) fn all<T>(rows: Vec<Row>, map: fn(Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(map).collect()
}
