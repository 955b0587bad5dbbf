//! The instances' caches kept coherent through PostgreSQL itself: every write that makes
//! a cached answer stale is announced with NOTIFY, and each instance LISTENs and drops
//! what was announced. NOTIFY reaches only listeners connected when it is sent, so an
//! instance whose listener is lost empties its caches and reads through until a new
//! listener is in place.

use std::sync::Weak;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::store::StoreResult;
use sqlx::postgres::PgListener;
use sqlx::{Pool, Postgres};

use super::tx::pg_err;
use crate::cache::{CacheChannel, Caches, Invalidation};

const CHANNEL: &str = "gatehouse_cache";

pub(crate) struct PgChannel(pub Pool<Postgres>);

#[async_trait]
impl CacheChannel for PgChannel {
    async fn announce(&self, drops: &[Invalidation]) -> StoreResult<()> {
        let payload = drops.iter().map(Invalidation::encode).collect::<Vec<_>>().join("\n");
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.0).await.map_err(pg_err)?;
        Ok(())
    }
}

/// Listens for the other instances' announcements for as long as `caches` lives.
pub(crate) fn follow(pool: Pool<Postgres>, caches: Weak<Caches>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let listener = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            match listener.await {
                Ok(mut listener) => {
                    let Some(c) = caches.upgrade() else { return };
                    // Whatever was announced while nobody listened is lost: start empty.
                    c.set_coherent(true);
                    drop(c);
                    if failing {
                        tracing::info!("listening for cache invalidations again");
                    }
                    loop {
                        // A lost connection (Ok(None)) or an error: the next listener is
                        // a new one, after the caches are emptied and switched off.
                        let notification = match listener.try_recv().await {
                            Ok(Some(n)) => n,
                            Ok(None) | Err(_) => break,
                        };
                        let Some(c) = caches.upgrade() else { return };
                        for line in notification.payload().lines() {
                            match Invalidation::decode(line) {
                                Some(what) => c.apply(&what),
                                // From a newer instance, say: drop everything to be safe.
                                None => c.set_coherent(true),
                            }
                        }
                    }
                    let Some(c) = caches.upgrade() else { return };
                    c.set_coherent(false);
                    if !failing {
                        tracing::warn!("the cache invalidation listener was lost; reading through until it is back");
                    }
                    failing = true;
                    // Not a tight loop if listeners keep being cut at once.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot listen for cache invalidations; reading through");
                        failing = true;
                    }
                    if caches.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
}
