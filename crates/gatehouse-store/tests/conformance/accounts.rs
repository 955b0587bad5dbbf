//! Account lifecycle cases of the conformance suite: disabling, deleting, the admin
//! flag, verified emails and mailed links.

use std::sync::Arc;

use gatehouse_core::error::StoreError;
use gatehouse_core::model::*;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::secret::random_token;
use gatehouse_core::store::{Redemption, Store};

use super::cases::{client, code, issue, pending_device, refresh_live, scopes, user};

const NOW: i64 = 1_800_000_000;
const CAPS: RefreshCaps = RefreshCaps { per_client_user: 20, per_user: 200 };

async fn access_revoked(store: &dyn Store, hash: &str) -> bool {
    store.find_access_token(hash).await.unwrap().is_none_or(|t| t.token.revoked)
}

pub async fn disabling_a_user_revokes_everything_at_once_and_enabling_restores_sign_in_only(store: Arc<dyn Store>) {
    let (alice, bob) = (user(&*store, "alice").await, user(&*store, "bob").await);
    let app = client(&*store, &bob, "App").await;
    let mine = issue(&app, &alice, None, NOW, None);
    let bobs = issue(&app, &bob, None, NOW, None);
    for i in [&mine, &bobs] {
        store.insert_tokens(i, CAPS, NOW).await.unwrap();
        // Read once so that a cache in front holds the token as live.
        assert!(!store.find_access_token(&i.access.token_hash).await.unwrap().unwrap().token.revoked);
    }
    let session = super::cases::session("alices".into(), &alice.id, NOW + 60);
    store.create_session(&session).await.unwrap();
    let pending_code = code(&app, &alice);
    store.insert_code(&pending_code).await.unwrap();
    let device = pending_device(&app, NOW);
    store.insert_device(&device).await.unwrap();
    assert!(store.decide_device(&device.device_code_hash, Some((&alice.id, NOW)), NOW).await.unwrap());
    let link = LinkToken {
        token_hash: random_token(64),
        user_id: alice.id.clone(),
        purpose: LinkPurpose::ResetPassword,
        email: alice.email.clone(),
        created_at: NOW,
        expires_at: NOW + 1800,
    };
    store.create_link(&link).await.unwrap();

    assert!(store.set_user_disabled(&alice.id, true).await.unwrap());
    assert!(store.find_user(&alice.id).await.unwrap().unwrap().disabled);
    assert!(access_revoked(&*store, &mine.access.token_hash).await, "a cached access token stops at once");
    assert!(!refresh_live(&*store, &mine.refresh.as_ref().unwrap().token_hash).await);
    assert!(store.find_session("alices", NOW).await.unwrap().is_none());
    let redeemed = store.redeem_code(&pending_code.code_hash, &issue(&app, &alice, None, NOW, Some(&pending_code.code_hash)), CAPS, NOW).await;
    assert!(!matches!(redeemed, Ok(Redemption::Issued)), "an unredeemed code of a disabled user gives nothing");
    let d = store.find_device_by_user_code(&device.user_code_hash).await.unwrap().unwrap();
    assert_eq!(d.status, DeviceStatus::Denied);
    assert!(store.take_link(&link.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_none());
    // Bob, another user of the same application, is untouched.
    assert!(!access_revoked(&*store, &bobs.access.token_hash).await);
    assert!(refresh_live(&*store, &bobs.refresh.as_ref().unwrap().token_hash).await);

    assert!(store.set_user_disabled(&alice.id, false).await.unwrap());
    assert!(!store.find_user(&alice.id).await.unwrap().unwrap().disabled);
    assert!(access_revoked(&*store, &mine.access.token_hash).await, "enabling gives no token back");
    assert!(!store.set_user_disabled("nobody", true).await.unwrap());
    assert!(!store.set_user_disabled("nobody", false).await.unwrap());
}

pub async fn deleting_a_user_removes_the_account_its_grants_and_its_applications(store: Arc<dyn Store>) {
    let (alice, bob) = (user(&*store, "alice").await, user(&*store, "bob").await);
    let alices_app = client(&*store, &alice, "Alice's App").await;
    let bobs_app = client(&*store, &bob, "Bob's App").await;
    // Alice uses Bob's app; Bob uses Alice's.
    let alice_at_bobs = issue(&bobs_app, &alice, None, NOW, None);
    let bob_at_alices = issue(&alices_app, &bob, None, NOW, None);
    let bob_at_own = issue(&bobs_app, &bob, None, NOW, None);
    for i in [&alice_at_bobs, &bob_at_alices, &bob_at_own] {
        store.insert_tokens(i, CAPS, NOW).await.unwrap();
        store.find_access_token(&i.access.token_hash).await.unwrap().unwrap();
    }
    store.grant_consent(&alice.id, &bobs_app.id, &scopes("user_read"), NOW).await.unwrap();
    store.grant_consent(&bob.id, &alices_app.id, &scopes("user_read"), NOW).await.unwrap();
    let session = super::cases::session("alices".into(), &alice.id, NOW + 60);
    store.create_session(&session).await.unwrap();
    store.channel(&alice.id, "key", NOW).await.unwrap();
    store.relate(Relation::Follow, &bob.id, &alice.id, NOW).await.unwrap();

    let deleted = store.delete_user(&alice.id).await.unwrap().expect("alice existed");
    assert_eq!(deleted, vec![alices_app.id.clone()]);
    assert!(store.find_user(&alice.id).await.unwrap().is_none());
    assert!(store.find_user_by_login("alice").await.unwrap().is_none());
    assert!(store.find_client(&alices_app.id).await.unwrap().is_none());
    for i in [&alice_at_bobs, &bob_at_alices] {
        assert!(access_revoked(&*store, &i.access.token_hash).await);
        assert!(store.find_refresh_token(&i.refresh.as_ref().unwrap().token_hash).await.unwrap().is_none());
    }
    assert!(store.find_consent(&alice.id, &bobs_app.id).await.unwrap().is_none());
    assert!(store.find_consent(&bob.id, &alices_app.id).await.unwrap().is_none());
    assert!(store.find_session("alices", NOW).await.unwrap().is_none());
    assert!(store.related_to(Relation::Follow, &bob.id).await.unwrap().is_empty());
    // Bob and his own application carry on.
    assert!(!access_revoked(&*store, &bob_at_own.access.token_hash).await);
    assert!(store.find_client(&bobs_app.id).await.unwrap().is_some());
    assert!(store.delete_user(&alice.id).await.unwrap().is_none());
    // The login is free again.
    user(&*store, "alice").await;
}

pub async fn the_admin_flag_is_granted_and_revoked(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    assert!(!store.find_user(&alice.id).await.unwrap().unwrap().is_admin);
    assert!(store.set_user_admin(&alice.id, true).await.unwrap());
    assert!(store.find_user(&alice.id).await.unwrap().unwrap().is_admin);
    assert!(store.find_user_by_login("ALICE").await.unwrap().unwrap().is_admin);
    assert!(store.set_user_admin(&alice.id, false).await.unwrap());
    assert!(!store.find_user(&alice.id).await.unwrap().unwrap().is_admin);
    assert!(!store.set_user_admin("nobody", true).await.unwrap());
    let listed: Vec<_> = store.list_users().await.unwrap().into_iter().map(|u| u.login).collect();
    assert_eq!(listed, ["alice"]);
}

pub async fn verified_emails_are_unique_ignoring_case_and_found_by_address(store: Arc<dyn Store>) {
    let (alice, bob, carol) = (user(&*store, "alice").await, user(&*store, "bob").await, user(&*store, "carol").await);
    assert!(!alice.email_verified);
    // Unverified, two accounts may claim one address: sign-up cannot refuse it without
    // telling a stranger that the address has an account.
    assert!(store.set_verified_email(&alice.id, "Shared@Example.com").await.unwrap());
    let got = store.find_user(&alice.id).await.unwrap().unwrap();
    assert_eq!((got.email.as_str(), got.email_verified), ("Shared@Example.com", true));
    let taken = store.set_verified_email(&bob.id, "shared@EXAMPLE.com").await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(!store.find_user(&bob.id).await.unwrap().unwrap().email_verified);
    // An unverified claim on the address is no conflict for the holder.
    let claim = User { id: random_token(16), login: "dave".into(), email: "SHARED@example.com".into(), ..carol.clone() };
    store.create_user(&claim).await.unwrap();
    let found: Vec<_> = store.find_users_by_email("shared@example.COM").await.unwrap().into_iter().map(|u| u.login).collect();
    assert_eq!(found, ["alice", "dave"], "the verified holder first");
    assert!(store.find_users_by_email("nobody@example.com").await.unwrap().is_empty());
    assert!(!store.set_verified_email("nobody", "x@example.com").await.unwrap());
}

pub async fn links_are_single_use_expire_and_only_the_newest_works(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let link = |purpose, expires_at| LinkToken {
        token_hash: random_token(64),
        user_id: alice.id.clone(),
        purpose,
        email: alice.email.clone(),
        created_at: NOW,
        expires_at,
    };
    let first = link(LinkPurpose::ResetPassword, NOW + 1800);
    store.create_link(&first).await.unwrap();
    let found = store.find_link(&first.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().unwrap();
    assert_eq!((found.user_id.as_str(), found.email.as_str()), (alice.id.as_str(), alice.email.as_str()));
    assert!(store.find_link(&first.token_hash, LinkPurpose::VerifyEmail, NOW).await.unwrap().is_none(), "purpose must match");
    assert!(store.find_link(&first.token_hash, LinkPurpose::ResetPassword, NOW + 1800).await.unwrap().is_none(), "expired");

    let newer = link(LinkPurpose::ResetPassword, NOW + 1800);
    store.create_link(&newer).await.unwrap();
    assert!(store.take_link(&first.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_none(), "superseded");
    let verify = link(LinkPurpose::VerifyEmail, NOW + 86_400);
    store.create_link(&verify).await.unwrap();
    assert!(store.find_link(&newer.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_some(), "another purpose supersedes nothing");
    assert!(store.take_link(&newer.token_hash, LinkPurpose::ResetPassword, NOW + 1800).await.unwrap().is_none(), "expired");
    assert_eq!(store.take_link(&newer.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().unwrap().token_hash, newer.token_hash);
    assert!(store.take_link(&newer.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_none(), "used once");

    // Two new links at once: one of them works, never both.
    let racing: Vec<LinkToken> = (0..8).map(|_| link(LinkPurpose::ResetPassword, NOW + 1800)).collect();
    let creates = racing.iter().cloned().map(|l| {
        let store = store.clone();
        tokio::spawn(async move { store.create_link(&l).await.unwrap() })
    });
    for c in creates.collect::<Vec<_>>() {
        c.await.unwrap();
    }
    let mut live = 0;
    for l in &racing {
        live += usize::from(store.find_link(&l.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_some());
    }
    assert_eq!(live, 1, "only the newest link works, even when made at once");
    // A new verified address ends reset links mailed to the old one.
    assert!(store.set_verified_email(&alice.id, "alice.new@example.com").await.unwrap());
    for l in &racing {
        assert!(store.find_link(&l.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_none());
    }

    // Two uses at once: one wins.
    let racy = link(LinkPurpose::VerifyEmail, NOW + 60);
    store.create_link(&racy).await.unwrap();
    let takes = (0..8).map(|_| {
        let (store, hash) = (store.clone(), racy.token_hash.clone());
        tokio::spawn(async move { store.take_link(&hash, LinkPurpose::VerifyEmail, NOW).await.unwrap().is_some() })
    });
    let mut won = 0;
    for t in takes {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    // Past expiry, the purge removes links.
    store.create_link(&link(LinkPurpose::ResetPassword, NOW + 5)).await.unwrap();
    assert!(store.purge_expired(NOW + 10).await.unwrap() >= 1);
}

pub async fn a_password_change_drops_pending_reset_links(store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let reset = LinkToken {
        token_hash: random_token(64),
        user_id: alice.id.clone(),
        purpose: LinkPurpose::ResetPassword,
        email: alice.email.clone(),
        created_at: NOW,
        expires_at: NOW + 1800,
    };
    store.create_link(&reset).await.unwrap();
    let verify = LinkToken { token_hash: random_token(64), purpose: LinkPurpose::VerifyEmail, ..reset.clone() };
    store.create_link(&verify).await.unwrap();
    store.change_password(&alice.id, "$argon2id$new", "").await.unwrap();
    assert!(store.find_link(&reset.token_hash, LinkPurpose::ResetPassword, NOW).await.unwrap().is_none());
    assert!(store.find_link(&verify.token_hash, LinkPurpose::VerifyEmail, NOW).await.unwrap().is_some());
}
