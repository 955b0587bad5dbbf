//! Sessions as the security page sees them, and two-factor records (sealed secret, last
//! used step, recovery codes), in a file of their own to keep conformance.rs readable.

use std::sync::Arc;

use gatehouse_core::model::{Session, TwoFactor};
use gatehouse_core::store::Store;

use gatehouse_core::store::Redemption;

use super::cases::{client, code, issue, refresh_live, user};

const NOW: i64 = 1_800_000_000;

pub fn session(id_hash: String, user_id: &str, expires_at: i64) -> Session {
    Session {
        id_hash,
        user_id: user_id.into(),
        auth_time: NOW,
        expires_at,
        user_agent: "Mozilla/5.0 Firefox/121.0".into(),
        address: "192.0.2.1".into(),
        last_seen: NOW,
    }
}

pub async fn sessions_are_listed_touched_and_ended(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    for (id, who, expires) in [("a1", &alice, NOW + 100), ("a2", &alice, NOW + 100), ("old", &alice, NOW - 1), ("b1", &bob, NOW + 100)] {
        store.create_session(&session(id.into(), &who.id, expires)).await.unwrap();
    }
    let listed = store.list_sessions(&alice.id, NOW).await.unwrap();
    let mut ids: Vec<_> = listed.iter().map(|s| s.id_hash.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["a1", "a2"], "the user's unexpired sessions only");
    assert_eq!((listed[0].user_agent.as_str(), listed[0].address.as_str()), ("Mozilla/5.0 Firefox/121.0", "192.0.2.1"));

    // A touch moves last seen forward (and the address), never back; newest first.
    store.touch_session("a2", "198.51.100.7", NOW + 60).await.unwrap();
    store.touch_session("a2", "203.0.113.9", NOW + 30).await.unwrap();
    let listed = store.list_sessions(&alice.id, NOW).await.unwrap();
    assert_eq!((listed[0].id_hash.as_str(), listed[0].last_seen, listed[0].address.as_str()), ("a2", NOW + 60, "198.51.100.7"));

    // A user ends only their own sessions.
    assert!(!store.end_session(&alice.id, "b1").await.unwrap());
    assert!(store.find_session("b1", NOW).await.unwrap().is_some());
    assert!(store.end_session(&alice.id, "a1").await.unwrap());
    assert!(store.find_session("a1", NOW).await.unwrap().is_none());

    // Everywhere: all but the one kept, then all.
    store.create_session(&session("a3".into(), &alice.id, NOW + 100)).await.unwrap();
    assert_eq!(store.end_sessions(&alice.id, Some("a3")).await.unwrap(), 2, "a2 and the expired one");
    assert!(store.find_session("a3", NOW).await.unwrap().is_some());
    store.end_sessions(&alice.id, None).await.unwrap();
    assert!(store.list_sessions(&alice.id, NOW).await.unwrap().is_empty());
    assert!(store.find_session("b1", NOW).await.unwrap().is_some(), "another user's session stays");
}

fn record(user_id: &str, last_step: i64) -> TwoFactor {
    TwoFactor { user_id: user_id.into(), secret_sealed: "sealed".into(), last_step, enabled_at: NOW, recovery_codes_left: 0 }
}

pub async fn two_factor_steps_and_recovery_codes_are_used_once(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    assert!(store.find_two_factor(&alice.id).await.unwrap().is_none());
    let codes: Vec<String> = (0..3).map(|i| format!("digest{i}")).collect();
    assert!(store.enable_two_factor(&record(&alice.id, 100), &codes).await.unwrap());
    assert!(!store.enable_two_factor(&record(&alice.id, 5), &["other".into()]).await.unwrap(), "already on");
    let got = store.find_two_factor(&alice.id).await.unwrap().unwrap();
    assert_eq!((got.secret_sealed.as_str(), got.last_step, got.recovery_codes_left), ("sealed", 100, 3));

    // A step is claimed once, and only forward.
    assert!(!store.claim_totp_step(&alice.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(&alice.id, 99).await.unwrap());
    assert!(store.claim_totp_step(&alice.id, 101).await.unwrap());
    assert!(!store.claim_totp_step(&alice.id, 101).await.unwrap());
    assert!(!store.claim_totp_step(&bob.id, 500).await.unwrap(), "no two-factor, nothing to claim");

    // Concurrent claims of one step: one winner.
    let tries = (0..8).map(|_| {
        let (store, id) = (store.clone(), alice.id.clone());
        tokio::spawn(async move { store.claim_totp_step(&id, 102).await.unwrap() })
    });
    let wins = futures_count(tries).await;
    assert_eq!(wins, 1);

    // A recovery code works once, and only for its user.
    assert!(!store.use_recovery_code(&bob.id, "digest0", NOW).await.unwrap());
    assert!(store.use_recovery_code(&alice.id, "digest0", NOW).await.unwrap());
    assert!(!store.use_recovery_code(&alice.id, "digest0", NOW).await.unwrap());
    assert_eq!(store.find_two_factor(&alice.id).await.unwrap().unwrap().recovery_codes_left, 2);

    // Off: secret and codes are gone; on again, only the new codes work.
    assert!(store.disable_two_factor(&alice.id).await.unwrap());
    assert!(!store.disable_two_factor(&alice.id).await.unwrap());
    assert!(store.find_two_factor(&alice.id).await.unwrap().is_none());
    assert!(!store.use_recovery_code(&alice.id, "digest1", NOW).await.unwrap());
    assert!(store.enable_two_factor(&record(&alice.id, 7), &["fresh".into()]).await.unwrap());
    assert_eq!(store.find_two_factor(&alice.id).await.unwrap().unwrap().recovery_codes_left, 1);

    // Deleting the account takes its secret and codes with it.
    assert!(store.delete_user(&alice.id).await.unwrap().is_some());
    assert!(store.find_two_factor(&alice.id).await.unwrap().is_none());
    assert!(!store.use_recovery_code(&alice.id, "fresh", NOW).await.unwrap());
}

async fn futures_count(tasks: impl Iterator<Item = tokio::task::JoinHandle<bool>>) -> usize {
    let mut wins = 0;
    for t in tasks.collect::<Vec<_>>() {
        wins += usize::from(t.await.unwrap());
    }
    wins
}

pub async fn revoking_a_clients_tokens_spares_other_clients(store: Arc<dyn Store>) {
    let (alice, bob) = (user(&*store, "alice").await, user(&*store, "bob").await);
    let app = client(&*store, &alice, "App").await;
    let other = client(&*store, &alice, "Other").await;
    let caps = gatehouse_core::policy::RefreshCaps { per_client_user: 20, per_user: 200 };
    let (a1, a2, o1) = (issue(&app, &alice, None, NOW, None), issue(&app, &bob, None, NOW, None), issue(&other, &alice, None, NOW, None));
    for i in [&a1, &a2, &o1] {
        store.insert_tokens(i, caps, NOW).await.unwrap();
    }
    let pending = code(&app, &bob);
    store.insert_code(&pending).await.unwrap();

    assert_eq!(store.revoke_client_tokens(&app.id).await.unwrap(), 4, "two refresh and two access tokens");
    for i in [&a1, &a2] {
        assert!(store.find_access_token(&i.access.token_hash).await.unwrap().unwrap().token.revoked);
        assert!(!refresh_live(&*store, &i.refresh.as_ref().unwrap().token_hash).await);
    }
    assert!(!store.find_access_token(&o1.access.token_hash).await.unwrap().unwrap().token.revoked);
    assert!(refresh_live(&*store, &o1.refresh.as_ref().unwrap().token_hash).await);
    // The unredeemed code cannot bring a token back.
    let late = issue(&app, &bob, None, NOW, Some(&pending.code_hash));
    assert_ne!(store.redeem_code(&pending.code_hash, &late, caps, NOW).await.ok(), Some(Redemption::Issued));
    assert_eq!(store.revoke_client_tokens(&app.id).await.unwrap(), 0);
    assert_eq!(store.revoke_client_tokens("no-such-client").await.unwrap(), 0);
}
