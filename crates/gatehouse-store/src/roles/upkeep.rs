//! Signing keys, shared rate buckets, and the purge of what is past use.

use std::sync::LazyLock;

use async_trait::async_trait;
use gatehouse_core::model::{RateBudget, RateTake, SigningKey};
use gatehouse_core::store::{RateBuckets, SigningKeys, StoreResult, Upkeep};

use crate::db::Db;
use crate::retry::retrying;
use crate::rows::{self, Sql, SIGNING_KEY_SELECT};
use crate::SqlStore;

#[async_trait]
impl<D: Db> SigningKeys for SqlStore<D> {
    async fn insert_signing_key(&self, k: &SigningKey) -> StoreResult<()> {
        self.db
            .write(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, retired_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    (&k.kid).into(),
                    (&k.alg).into(),
                    (&k.private_key).into(),
                    (&k.public_jwk).into(),
                    k.created_at.into(),
                    k.retired_at.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        static ALL: Sql = LazyLock::new(|| format!("{SIGNING_KEY_SELECT} ORDER BY created_at, kid"));
        rows::all(self.db.read(&ALL, &[]).await?, rows::signing_key)
    }

    async fn retire_signing_keys(&self, keep_kid: &str, now: i64) -> StoreResult<()> {
        self.db
            .write(
                "UPDATE signing_keys SET retired_at = $2 WHERE kid <> $1 AND retired_at IS NULL",
                &[keep_kid.into(), now.into()],
            )
            .await?;
        Ok(())
    }
}

/// `count` requests taken from a bucket in one statement, so the row is locked only while
/// it runs: the token-bucket arithmetic of `RateBudget::take`, in SQL, for as many
/// requests as the bucket holds whole ones for. Elapsed time is capped at the window (a
/// bucket is full by then), which also keeps elapsed × full well inside 64 bits. SQL has
/// no local names, so the text is put together once from its parts.
/// `$1` bucket, `$2` full level, `$3` now, `$4` window, `$5` count.
static TAKE_RATE: Sql = LazyLock::new(|| {
    let elapsed = "(CASE WHEN $3 - b.updated_at > $4 THEN $4 \
                   WHEN $3 > b.updated_at THEN $3 - b.updated_at ELSE 0 END)";
    let gained = format!("b.level + {elapsed} * $2 / $4");
    let r = format!("(CASE WHEN {gained} >= $2 THEN $2 ELSE {gained} END)");
    let taken = |level: &str| format!("(CASE WHEN {level} / 1000 >= $5 THEN $5 ELSE {level} / 1000 END)");
    format!(
        "INSERT INTO rate_buckets AS b (bucket, level, updated_at, allowed) \
         VALUES ($1, $2 - 1000 * {new_taken}, $3, {new_taken}) \
         ON CONFLICT (bucket) DO UPDATE SET \
         level = {r} - 1000 * {taken}, \
         allowed = {taken}, \
         updated_at = CASE WHEN $3 > b.updated_at THEN $3 ELSE b.updated_at END \
         RETURNING level, allowed",
        new_taken = taken("$2"),
        taken = taken(&r),
    )
});

#[async_trait]
impl<D: Db> RateBuckets for SqlStore<D> {
    async fn take_rate_tokens(&self, bucket: &str, budget: RateBudget, now: i64, count: i64) -> StoreResult<RateTake> {
        let (full, window) = (budget.full_level(), budget.window.max(1));
        let args = [bucket.into(), full.into(), now.into(), window.into(), count.into()];
        retrying(|| async {
            let mut row = self.db.count_rate(&TAKE_RATE, &args).await?.into_iter().next().ok_or_else(|| {
                gatehouse_core::error::StoreError::Backend("the rate bucket statement returned no row".into())
            })?;
            Ok(RateTake { level: row.int(0)?, allowed: row.int(1)? })
        })
        .await
    }
}

/// What the purge deletes: one rule per condition, each token condition with an index
/// of its own (an OR of them would scan the whole table for every batch). Rate buckets
/// are the exception: an index on `updated_at` would cost every rate-limited request an
/// index update. `$1` is the cutoff, where the rule has one, as seconds before now.
const PURGE_RULES: [(&str, &str, &str, Option<i64>); 11] = [
    // Used codes are kept an hour past expiry, so that a late replay is still recognised.
    ("authorization_codes", "code_hash", "expires_at <= $1", Some(3600)),
    ("device_authorizations", "device_code_hash", "expires_at <= $1", Some(3600)),
    ("sessions", "id_hash", "expires_at <= $1", Some(0)),
    // Keyed by both columns: a session's other, fresh notes stay.
    ("secret_notes", "session_hash, client_id", "expires_at <= $1", Some(0)),
    ("links", "token_hash", "expires_at <= $1", Some(0)),
    ("access_tokens", "token_hash", "expires_at <= $1", Some(0)),
    ("access_tokens", "token_hash", "revoked = 1", None),
    ("refresh_tokens", "token_hash", "expires_at <= $1", Some(0)),
    // Rotated refresh tokens are kept 30 days, for reuse detection.
    ("refresh_tokens", "token_hash", "rotated_at <= $1", Some(2_592_000)),
    ("refresh_tokens", "token_hash", "revoked = 1", None),
    // Untouched for a day, a bucket is full again (no window is longer).
    ("rate_buckets", "bucket", "updated_at <= $1", Some(86400)),
];

/// Rows one DELETE of the purge takes, so it never holds the database for long.
const PURGE_BATCH: u64 = 500;

#[async_trait]
impl<D: Db> Upkeep for SqlStore<D> {
    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut total = 0;
        for (table, key, cond, before) in PURGE_RULES {
            let sql =
                format!("DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE {cond} LIMIT {PURGE_BATCH})");
            let args: Vec<_> = before.map(|b| (now - b).into()).into_iter().collect();
            loop {
                let started = std::time::Instant::now();
                let n = self.db.write(&sql, &args).await?;
                total += n;
                if n < PURGE_BATCH {
                    break;
                }
                // A backlog purged flat out takes a core of the database (and SQLite's
                // writer) from the requests: rest as long as each batch took, so that the
                // purge keeps to half of one connection's time.
                tokio::time::sleep(started.elapsed()).await;
            }
        }
        Ok(total)
    }

    async fn check_ready(&self) -> StoreResult<()> {
        let rows = self.db.read("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE", &[]).await?;
        let applied = match rows.into_iter().next() {
            Some(mut row) => row.opt_int(0)?,
            None => None,
        };
        // A newer schema is fine: during a rolling upgrade, instances still running the
        // older build keep serving after the first new one migrated.
        let latest = D::migrator().iter().map(|m| m.version).max();
        if applied < latest {
            return Err(gatehouse_core::error::StoreError::Unavailable(format!(
                "the database is at migration {}, this Gatehouse needs {}",
                applied.map_or("none".into(), |v| v.to_string()),
                latest.unwrap_or(0)
            )));
        }
        self.db.check_file()
    }

    fn pool_usage(&self) -> gatehouse_core::store::PoolUsage {
        self.db.pool_usage()
    }
}
