//! Device polling cases of the conformance suite (RFC 8628 §3.5), in a file of their own
//! to keep conformance.rs readable.

use std::sync::Arc;

use gatehouse_core::device::MAX_POLL_INTERVAL;
use gatehouse_core::store::Store;

use super::cases::{client, pending_device, user};

const NOW: i64 = 1_800_000_000;

/// A client polling every second: refused polls grow the interval up to the cap and do
/// not move the clock, so one poll per cap interval is accepted.
pub async fn refused_polls_do_not_restart_the_clock(store: Arc<dyn Store>) {
    let u = user(&*store, "bob").await;
    let c = client(&*store, &u, "Console").await;
    let d = pending_device(&c, NOW);
    store.insert_device(&d).await.unwrap();
    let mut accepted = Vec::new();
    for t in 0..=70 {
        let (seen, fast) = store.poll_device(&d.device_code_hash, NOW + t).await.unwrap().unwrap();
        assert!(seen.interval <= MAX_POLL_INTERVAL, "interval {} at {t}", seen.interval);
        if !fast {
            accepted.push(t);
        }
    }
    // 0 accepted; 1..4 refused (10, 15, 20, 25, then 30); accepted at 30 and 60.
    assert_eq!(accepted, vec![0, 30, 60]);
}
