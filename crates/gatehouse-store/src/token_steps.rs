//! The steps of the token writes, inside a transaction: storing new tokens, the refresh
//! caps, the single-use claims, rotations and revocations. Both backends' batch writers
//! and the store's own transactions are made of these.

use gatehouse_core::model::{AccessToken, Family, RefreshToken};
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::store::{Presented, Redemption, Rotation, StoreResult, TokenIssue};

use crate::db::{Arg, Tx};
use crate::group_commit::{Job, Outcome};
use crate::rows;

/// A new access token's INSERT, one row; `insert_access_rows` makes the multi-row one.
pub(crate) const INSERT_ACCESS: &str = "INSERT INTO access_tokens (token_hash, client_id, user_id, scopes, \
    created_at, expires_at, family_id, code_hash, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)";
/// A new (live, unrotated) refresh token's INSERT.
pub(crate) const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, \
    scopes, created_at, expires_at, rotated_at, revoked, code_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 0, $8)";
/// A refresh rotation's claim: `$1` the old token's key, `$2` the time.
pub(crate) const ROTATE: &str =
    "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 AND rotated_at IS NULL AND revoked = 0";

/// The values of `INSERT_ACCESS`, in order.
pub(crate) fn access_args(a: &AccessToken) -> [Arg<'_>; 8] {
    [
        (&a.token_hash).into(),
        (&a.client_id).into(),
        (&a.user_id).into(),
        Arg::from(a.scopes.to_space_separated()),
        a.created_at.into(),
        a.expires_at.into(),
        (&a.family_id).into(),
        (&a.code_hash).into(),
    ]
}

/// The values of `INSERT_REFRESH`, in order.
pub(crate) fn refresh_args(r: &RefreshToken) -> [Arg<'_>; 8] {
    [
        (&r.token_hash).into(),
        (&r.family_id).into(),
        (&r.client_id).into(),
        (&r.user_id).into(),
        Arg::from(r.scopes.to_space_separated()),
        r.created_at.into(),
        r.expires_at.into(),
        (&r.code_hash).into(),
    ]
}

/// Stores the access token and any refresh token of `issue`.
pub(crate) async fn insert_issue(tx: &mut dyn Tx, issue: &TokenIssue) -> StoreResult<()> {
    tx.exec(INSERT_ACCESS, &access_args(&issue.access)).await?;
    if let Some(r) = &issue.refresh {
        tx.exec(INSERT_REFRESH, &refresh_args(r)).await?;
    }
    Ok(())
}

/// Stores a new grant's tokens; with a refresh token, enforces the caps.
pub(crate) async fn store_new_grant(tx: &mut dyn Tx, issue: &TokenIssue, caps: RefreshCaps, now: i64) -> StoreResult<()> {
    if let Some(r) = &issue.refresh {
        // Serialise grants to one user so two at once cannot both slip under a cap.
        // Taken before the inserts, whose foreign keys share-lock the same row: the
        // other order deadlocks on PostgreSQL.
        let lock = format!("SELECT id FROM users WHERE id = $1{}", tx.row_lock());
        tx.rows(&lock, &[(&r.user_id).into()]).await?;
    }
    insert_issue(tx, issue).await?;
    if let Some(r) = &issue.refresh {
        enforce_caps(tx, r, caps, now).await?;
    }
    Ok(())
}

/// Seed 000: over either cap, the oldest live refresh tokens stop working. The token
/// just issued is never the one evicted. Within one second, keys with the issue-order
/// prefix say which came later (older keys, digests alone, fall in no particular order).
async fn enforce_caps(tx: &mut dyn Tx, new: &RefreshToken, caps: RefreshCaps, now: i64) -> StoreResult<()> {
    tx.exec(
        "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash IN ( \
           SELECT token_hash FROM refresh_tokens \
           WHERE user_id = $1 AND client_id = $2 AND rotated_at IS NULL AND revoked = 0 \
             AND (expires_at IS NULL OR expires_at > $3) AND token_hash <> $4 \
           ORDER BY created_at DESC, token_hash DESC LIMIT 1000000000 OFFSET $5)",
        &[
            (&new.user_id).into(),
            (&new.client_id).into(),
            now.into(),
            (&new.token_hash).into(),
            (caps.per_client_user - 1).max(0).into(),
        ],
    )
    .await?;
    tx.exec(
        "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash IN ( \
           SELECT token_hash FROM refresh_tokens \
           WHERE user_id = $1 AND rotated_at IS NULL AND revoked = 0 \
             AND (expires_at IS NULL OR expires_at > $2) AND token_hash <> $3 \
           ORDER BY created_at DESC, token_hash DESC LIMIT 1000000000 OFFSET $4)",
        &[(&new.user_id).into(), now.into(), (&new.token_hash).into(), (caps.per_user - 1).max(0).into()],
    )
    .await?;
    Ok(())
}

/// Marks the refresh token `key` rotated at `now` and stores `issue`, if it is still
/// live; whether it was. The conditional UPDATE is where concurrent rotations are
/// decided: only one of them sees the row change.
pub(crate) async fn rotate(tx: &mut dyn Tx, key: &str, now: i64, issue: &TokenIssue) -> StoreResult<Rotation> {
    if tx.exec(ROTATE, &[key.into(), now.into()]).await? != 1 {
        return Ok(Rotation::NotLive);
    }
    // One live token replaces another: the caps are unchanged.
    insert_issue(tx, issue).await?;
    Ok(Rotation::Rotated)
}

/// Reads the refresh token `key`, and rotates it if `decide` gives its successors.
pub(crate) async fn present(tx: &mut dyn Tx, key: &str, now: i64, decide: &gatehouse_core::store::Decide) -> StoreResult<Presented> {
    let Some(row) = tx.row(&rows::REFRESH_BY_HASH, &[key.into()]).await? else {
        return Ok(Presented::Unknown);
    };
    let record = rows::refresh(row)?;
    let Some(issue) = decide(&record) else {
        return Ok(Presented::Refused(record));
    };
    Ok(match rotate(tx, key, now, &issue).await? {
        Rotation::Rotated => Presented::Rotated(record),
        Rotation::NotLive => Presented::NotLive,
    })
}

/// Carries out one job of the token writer in `tx`.
pub(crate) async fn run_job(tx: &mut dyn Tx, job: &Job) -> StoreResult<Outcome> {
    Ok(match job {
        Job::Issue { issue, caps, now } => {
            store_new_grant(tx, issue, *caps, *now).await?;
            Outcome::Issued
        }
        Job::Redeem { what, key, issue, caps, now } => {
            if tx.exec(what.claim_sql(), &[key.into()]).await? == 1 {
                store_new_grant(tx, issue, *caps, *now).await?;
                Outcome::Redeemed(Redemption::Issued)
            } else {
                Outcome::Redeemed(Redemption::AlreadyUsed)
            }
        }
        Job::Rotate { key, issue, now } => Outcome::Rotated(rotate(tx, key, *now, issue).await?),
        Job::Present { key, decide, now } => Outcome::Presented(present(tx, key, *now, decide).await?),
    })
}

/// Revokes the live refresh tokens `filter` selects (`$1`, `$2`… are `values`).
/// Rotated ones are left as they are (the indexes that find a user's, a client's or a
/// family's tokens hold live ones only): none can be used again, and a reuse of one
/// revokes its family.
/// A rotation in flight may insert a new token the UPDATE's snapshot cannot see
/// (PostgreSQL, READ COMMITTED): the UPDATE waits on the row the rotation locked, finds
/// it rotated and skips it. So an UPDATE that revokes nothing proves little; only a
/// fresh statement that finds no live token ends the loop (a rotation not yet committed
/// still shows its old token live to it). Access tokens are revoked after this, once
/// every rotation that could add one has committed.
pub(crate) async fn revoke_live_refresh(tx: &mut dyn Tx, filter: &str, values: &[Arg<'_>]) -> StoreResult<()> {
    let live = format!("{filter} AND rotated_at IS NULL AND revoked = 0");
    let revoke = format!("UPDATE refresh_tokens SET revoked = 1 WHERE {live}");
    let any_left = format!("SELECT 1 FROM refresh_tokens WHERE {live} LIMIT 1");
    loop {
        if tx.exec(&revoke, values).await? > 0 {
            continue;
        }
        if tx.row(&any_left, values).await?.is_none() {
            return Ok(());
        }
    }
}

/// Revokes `family`'s live refresh tokens, then its access tokens; `column` says which
/// tokens are the family's: `family_id`, or `code_hash` for tokens issued from a code
/// whose key has no issue-order prefix. Neither column has an index of its own (every
/// rotation would pay for it): the tokens are found among those of the family's client
/// and user.
pub(crate) async fn revoke_family_in(tx: &mut dyn Tx, family: Family<'_>, column: &str) -> StoreResult<()> {
    let filter = format!("user_id = $1 AND client_id = $2 AND {column} = $3");
    let values = [family.user_id.into(), family.client_id.into(), family.id.into()];
    revoke_live_refresh(tx, &filter, &values).await?;
    let access = format!("UPDATE access_tokens SET revoked = 1 WHERE {filter} AND revoked = 0");
    tx.exec(&access, &values).await?;
    Ok(())
}
