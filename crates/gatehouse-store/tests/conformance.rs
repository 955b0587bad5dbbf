//! The storage conformance suite: every case runs against SQLite and, with
//! `--include-ignored` and GATEHOUSE_TEST_POSTGRES_URL naming a server, PostgreSQL, each in
//! a database of its own that is dropped afterwards. Where the engines differ (locking,
//! upsert), the concurrent cases prove they behave the same.

use std::sync::Arc;

use gatehouse_core::error::StoreError;
use gatehouse_core::model::*;
use gatehouse_core::policy::RefreshCaps;
use gatehouse_core::scope::ScopeSet;
use gatehouse_core::secret::random_token;
use gatehouse_core::store::{Decide, Presented, Redemption, Rotation, Store, StoreResult, TokenIssue};
use gatehouse_store::{PgStore, SqliteStore};

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, db: String },
}

fn postgres_url() -> Option<String> {
    match std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is unset");
            }
            eprintln!("skipping PostgreSQL: GATEHOUSE_TEST_POSTGRES_URL is unset (SQLite only)");
            None
        }
    }
}

/// Creates a fresh PostgreSQL database for one test and returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> (String, String) {
    use sqlx::Connection;
    let db = format!("gatehouse_test_{}", random_token(12));
    let mut admin = sqlx::PgConnection::connect(admin_url).await.expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.expect("create database");
    let mut url = url::Url::parse(admin_url).expect("postgres URL");
    url.set_path(&format!("/{db}"));
    (url.to_string(), db)
}

async fn sqlite_backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conformance.db");
    let sqlite = SqliteStore::open(path.to_str().unwrap()).await.expect("sqlite");
    let cached_dir = tempfile::tempdir().unwrap();
    let cached = SqliteStore::open(cached_dir.path().join("cached.db").to_str().unwrap()).await.expect("sqlite");
    // What `gatehouse_store::open` gives for SQLite: the same store behind the read cache.
    let cached = gatehouse_store::CachedStore::new(Arc::new(cached), std::time::Duration::from_secs(1));
    vec![
        Backend { name: "sqlite", store: Arc::new(sqlite), cleanup: Cleanup::Sqlite(dir) },
        Backend { name: "sqlite behind the read cache", store: Arc::new(cached), cleanup: Cleanup::Sqlite(cached_dir) },
    ]
}

async fn postgres_backends() -> Vec<Backend> {
    let Some(admin_url) = postgres_url() else { return Vec::new() };
    let (url, db) = fresh_postgres_database(&admin_url).await;
    let pg = PgStore::connect(&url).await.expect("postgres store");
    let plain = Backend { name: "postgres", store: Arc::new(pg), cleanup: Cleanup::Postgres { admin_url: admin_url.clone(), db } };
    // What `gatehouse_store::open` gives for PostgreSQL: the store behind the cache that
    // listens for other instances' writes.
    let (url, db) = fresh_postgres_database(&admin_url).await;
    let cached = gatehouse_store::open(&url).await.expect("postgres store behind the cache");
    vec![plain, Backend { name: "postgres behind the shared cache", store: cached, cleanup: Cleanup::Postgres { admin_url, db } }]
}

impl Backend {
    async fn finish(self) {
        drop(self.store);
        if let Cleanup::Postgres { admin_url, db } = self.cleanup {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&mut admin).await.expect("drop database");
        }
    }
}

/// Runs each named case on SQLite, and again on PostgreSQL in `on_postgres`: those are
/// ignored unless asked for (`--include-ignored`), so a run without PostgreSQL shows them
/// as not run rather than passed.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                for b in sqlite_backends().await {
                    eprintln!("{} on {}", stringify!($case), b.name);
                    cases::$case(b.store.clone()).await;
                    b.finish().await;
                }
            }
        )*
        mod on_postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
                async fn $case() {
                    for b in postgres_backends().await {
                        eprintln!("{} on {}", stringify!($case), b.name);
                        cases::$case(b.store.clone()).await;
                        b.finish().await;
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    users_are_unique_by_login_ignoring_case,
    clients_round_trip_and_names_are_unique_ignoring_case,
    secret_rotation_keeps_the_old_secret_only_with_grace,
    sessions_expire,
    a_code_is_redeemed_once,
    concurrent_redemptions_have_one_winner,
    access_tokens_join_their_user,
    concurrent_lookups_each_get_their_own_row,
    refresh_rotation_has_one_winner_under_concurrency,
    presented_rotation_reads_decides_and_has_one_winner,
    concurrent_rotations_store_their_tokens_and_a_bad_one_fails_alone,
    revoking_a_family_revokes_its_access_tokens,
    a_password_change_revokes_every_token_and_other_session_of_the_user,
    replayed_code_revokes_its_tokens,
    caps_evict_the_oldest_live_refresh_tokens,
    consent_grants_accumulate_even_concurrently,
    deleting_a_client_removes_its_grants,
    purge_removes_only_what_is_past_use,
    concurrent_token_inserts_are_all_stored_and_a_bad_one_fails_alone,
    platform_channels_and_relations_round_trip,
    rate_buckets_empty_refill_and_hold_under_concurrency,
    device_authorizations_poll_decide_and_redeem_once,
    refused_polls_do_not_restart_the_clock,
    sessions_are_listed_touched_and_ended,
    two_factor_steps_and_recovery_codes_are_used_once,
    revoking_a_clients_tokens_spares_other_clients,
    disabling_a_user_revokes_everything_at_once_and_enabling_restores_sign_in_only,
    deleting_a_user_removes_the_account_its_grants_and_its_applications,
    the_admin_flag_is_granted_and_revoked,
    verified_emails_are_unique_ignoring_case_and_found_by_address,
    links_are_single_use_expire_and_only_the_newest_works,
    a_password_change_drops_pending_reset_links,
    events_are_listed_newest_first_by_filter_and_purged_by_age,
    a_secret_note_is_taken_once_and_dies_with_its_session,
    a_migrated_store_is_ready_and_reports_its_pool,
);

#[path = "conformance/device_polling.rs"]
mod device_polling;
#[path = "conformance/two_factor.rs"]
mod two_factor;
#[path = "conformance/accounts.rs"]
mod accounts;

#[test]
fn both_backends_hold_the_same_migration_versions() {
    let versions = |m: &sqlx::migrate::Migrator| m.iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>();
    assert_eq!(versions(SqliteStore::migrator()), versions(PgStore::migrator()));
    assert!(!versions(SqliteStore::migrator()).is_empty());
}

mod cases {
    use super::*;
    pub use super::device_polling::refused_polls_do_not_restart_the_clock;
    pub use super::two_factor::{
        revoking_a_clients_tokens_spares_other_clients, session, sessions_are_listed_touched_and_ended,
        two_factor_steps_and_recovery_codes_are_used_once,
    };
    pub use super::accounts::{
        a_password_change_drops_pending_reset_links, deleting_a_user_removes_the_account_its_grants_and_its_applications,
        disabling_a_user_revokes_everything_at_once_and_enabling_restores_sign_in_only,
        links_are_single_use_expire_and_only_the_newest_works, the_admin_flag_is_granted_and_revoked,
        verified_emails_are_unique_ignoring_case_and_found_by_address,
    };

    const NOW: i64 = 1_800_000_000;

    pub async fn a_migrated_store_is_ready_and_reports_its_pool(store: Arc<dyn Store>) {
        store.check_ready().await.expect("a freshly migrated store is ready");
        let usage = store.pool_usage();
        assert!(usage.in_use + usage.idle >= 1, "no connection reported: {usage:?}");
    }
    const CAPS: RefreshCaps = RefreshCaps { per_client_user: 20, per_user: 200 };

    pub async fn user(store: &dyn Store, login: &str) -> User {
        let u = User {
            id: random_token(16),
            login: login.into(),
            email: format!("{login}@example.com"),
            password_hash: "$argon2id$stub".into(),
            created_at: NOW,
            ..User::default()
        };
        store.create_user(&u).await.unwrap();
        u
    }

    pub async fn client(store: &dyn Store, owner: &User, name: &str) -> Client {
        let c = Client {
            id: random_token(30),
            name: name.into(),
            owner_user_id: owner.id.clone(),
            category: "chat_bot".into(),
            kind: ClientKind::Confidential,
            allow_implicit: true,
            redirect_uris: vec!["http://localhost:3000/cb".into(), "https://a.example/cb?x=1".into()],
            secret_hash: Some("s1".into()),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            created_at: NOW,
            jwt_access_tokens: false,
        };
        store.create_client(&c).await.unwrap();
        c
    }

    pub fn scopes(s: &str) -> ScopeSet {
        ScopeSet::from_stored(s)
    }

    pub fn issue(c: &Client, u: &User, family: Option<&str>, created_at: i64, code_hash: Option<&str>) -> TokenIssue {
        // As the grants do: tokens from a code are of the code's family.
        let family_id = family.or(code_hash).map(str::to_string).unwrap_or_else(|| random_token(24));
        TokenIssue {
            access: AccessToken {
                token_hash: random_token(64),
                client_id: c.id.clone(),
                user_id: Some(u.id.clone()),
                scopes: scopes("user_read"),
                created_at,
                expires_at: created_at + 3600,
                family_id: Some(family_id.clone()),
                code_hash: code_hash.map(str::to_string),
                revoked: false,
            },
            refresh: Some(RefreshToken {
                token_hash: random_token(64),
                family_id,
                client_id: c.id.clone(),
                user_id: u.id.clone(),
                scopes: scopes("user_read"),
                created_at,
                expires_at: None,
                rotated_at: None,
                revoked: false,
                code_hash: code_hash.map(str::to_string),
            }),
        }
    }

    pub fn code(c: &Client, u: &User) -> AuthorizationCode {
        AuthorizationCode {
            code_hash: gatehouse_core::secret::token_key(&gatehouse_core::secret::new_token()),
            client_id: c.id.clone(),
            user_id: u.id.clone(),
            redirect_uri: "http://localhost:3000/cb".into(),
            redirect_uri_given: true,
            scopes: scopes("user_read chat_login"),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some(gatehouse_core::pkce::Method::S256),
            nonce: Some("n".into()),
            auth_time: NOW,
            created_at: NOW,
            expires_at: NOW + 60,
            used: false,
        }
    }

    /// A device authorization for `c` waiting for its user, polled every 5 s at most.
    pub fn pending_device(c: &Client, now: i64) -> DeviceAuthorization {
        DeviceAuthorization {
            device_code_hash: random_token(64),
            user_code_hash: random_token(64),
            client_id: c.id.clone(),
            scopes: scopes("chat_login"),
            status: DeviceStatus::Pending,
            user_id: None,
            auth_time: None,
            created_at: now,
            expires_at: now + 600,
            interval: 5,
            last_poll_at: None,
        }
    }

    pub async fn refresh_live(store: &dyn Store, hash: &str) -> bool {
        let r = store.find_refresh_token(hash).await.unwrap().unwrap();
        !r.revoked && r.rotated_at.is_none()
    }

    pub async fn users_are_unique_by_login_ignoring_case(store: Arc<dyn Store>) {
        let u = user(&*store, "Alice").await;
        let found = store.find_user_by_login("aLiCe").await.unwrap().unwrap();
        assert_eq!(found.id, u.id);
        assert_eq!(store.find_user(&u.id).await.unwrap().unwrap().login, "Alice");
        let dup = User { id: random_token(16), login: "ALICE".into(), ..u.clone() };
        assert!(matches!(store.create_user(&dup).await, Err(StoreError::Conflict(_))));
        assert!(store.find_user_by_login("bob").await.unwrap().is_none());
    }

    pub async fn clients_round_trip_and_names_are_unique_ignoring_case(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let other = user(&*store, "bob").await;
        let c = client(&*store, &u, "My Bot").await;
        let got = store.find_client(&c.id).await.unwrap().unwrap();
        assert_eq!(got.redirect_uris, c.redirect_uris);
        assert_eq!((got.kind, got.allow_implicit, got.category.as_str()), (ClientKind::Confidential, true, "chat_bot"));
        let dup = Client { id: random_token(30), name: "MY BOT".into(), ..c.clone() };
        assert!(matches!(store.create_client(&dup).await, Err(StoreError::Conflict(_))));
        client(&*store, &other, "Bob's App").await;
        assert_eq!(store.list_clients(Some(&u.id)).await.unwrap().len(), 1);
        assert_eq!(store.list_clients(None).await.unwrap().len(), 2);
    }

    pub async fn secret_rotation_keeps_the_old_secret_only_with_grace(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        assert!(store.rotate_client_secret(&c.id, "s2", Some(NOW + 300)).await.unwrap());
        let got = store.find_client(&c.id).await.unwrap().unwrap();
        assert_eq!((got.secret_hash.as_deref(), got.previous_secret_hash.as_deref()), (Some("s2"), Some("s1")));
        assert_eq!(got.previous_secret_expires_at, Some(NOW + 300));
        assert!(store.rotate_client_secret(&c.id, "s3", None).await.unwrap());
        let got = store.find_client(&c.id).await.unwrap().unwrap();
        assert_eq!((got.secret_hash.as_deref(), got.previous_secret_hash.as_deref()), (Some("s3"), None));
        assert!(!store.rotate_client_secret("nope", "x", None).await.unwrap());
    }

    pub async fn sessions_expire(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let s = session(random_token(64), &u.id, NOW + 10);
        store.create_session(&s).await.unwrap();
        assert!(store.find_session(&s.id_hash, NOW + 9).await.unwrap().is_some());
        assert!(store.find_session(&s.id_hash, NOW + 10).await.unwrap().is_none());
        store.delete_session(&s.id_hash).await.unwrap();
        assert!(store.find_session(&s.id_hash, NOW).await.unwrap().is_none());
    }

    pub async fn a_secret_note_is_taken_once_and_dies_with_its_session(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let s = super::two_factor::session(random_token(64), &u.id, NOW + 3600);
        store.create_session(&s).await.unwrap();
        store.put_secret_note(&s.id_hash, &c.id, "sealed-1", NOW + 600).await.unwrap();
        // A second note for the same session and client replaces the first.
        store.put_secret_note(&s.id_hash, &c.id, "sealed-2", NOW + 600).await.unwrap();
        assert_eq!(store.take_secret_note("another-session", &c.id, NOW).await.unwrap(), None, "only its own session");
        assert_eq!(store.take_secret_note(&s.id_hash, &c.id, NOW).await.unwrap().as_deref(), Some("sealed-2"));
        assert_eq!(store.take_secret_note(&s.id_hash, &c.id, NOW).await.unwrap(), None, "shown once");
        // Expired: never handed over.
        store.put_secret_note(&s.id_hash, &c.id, "sealed-3", NOW + 600).await.unwrap();
        assert_eq!(store.take_secret_note(&s.id_hash, &c.id, NOW + 600).await.unwrap(), None);
        // Purged when expired (a fresh note of the same session for another client
        // stays), and gone with its session.
        let other = client(&*store, &u, "Other App").await;
        store.put_secret_note(&s.id_hash, &c.id, "sealed-4", NOW + 600).await.unwrap();
        store.put_secret_note(&s.id_hash, &other.id, "fresh", NOW + 900).await.unwrap();
        assert!(store.purge_expired(NOW + 601).await.unwrap() >= 1);
        assert_eq!(store.take_secret_note(&s.id_hash, &c.id, NOW).await.unwrap(), None, "purged");
        assert_eq!(store.take_secret_note(&s.id_hash, &other.id, NOW + 601).await.unwrap().as_deref(), Some("fresh"));
        store.put_secret_note(&s.id_hash, &c.id, "sealed-5", NOW + 600).await.unwrap();
        store.delete_session(&s.id_hash).await.unwrap();
        assert_eq!(store.take_secret_note(&s.id_hash, &c.id, NOW).await.unwrap(), None, "signed out");
    }

    pub async fn a_code_is_redeemed_once(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let k = code(&c, &u);
        store.insert_code(&k).await.unwrap();
        let got = store.find_code(&k.code_hash).await.unwrap().unwrap();
        assert_eq!(got.scopes, k.scopes);
        assert_eq!(got.code_challenge_method, Some(gatehouse_core::pkce::Method::S256));
        assert!(got.redirect_uri_given);
        assert!(!got.used);
        let i1 = issue(&c, &u, None, NOW, Some(&k.code_hash));
        assert_eq!(store.redeem_code(&k.code_hash, &i1, CAPS, NOW).await.unwrap(), Redemption::Issued);
        let i2 = issue(&c, &u, None, NOW, Some(&k.code_hash));
        assert_eq!(store.redeem_code(&k.code_hash, &i2, CAPS, NOW).await.unwrap(), Redemption::AlreadyUsed);
        assert!(store.find_code(&k.code_hash).await.unwrap().unwrap().used);
        // The loser's tokens were not stored.
        assert!(store.find_access_token(&i2.access.token_hash).await.unwrap().is_none());
        assert!(store.find_access_token(&i1.access.token_hash).await.unwrap().is_some());
    }

    pub async fn concurrent_redemptions_have_one_winner(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let k = code(&c, &u);
        store.insert_code(&k).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (store, i) = (store.clone(), issue(&c, &u, None, NOW, Some(&k.code_hash)));
            let hash = k.code_hash.clone();
            tasks.push(tokio::spawn(async move { store.redeem_code(&hash, &i, CAPS, NOW).await.unwrap() }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap() == Redemption::Issued {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
    }

    pub async fn access_tokens_join_their_user(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let i = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&i, CAPS, NOW).await.unwrap();
        let info = store.find_access_token(&i.access.token_hash).await.unwrap().unwrap();
        assert_eq!(info.user_login.as_deref(), Some("alice"));
        assert_eq!(info.token.scopes, scopes("user_read"));
        let app = TokenIssue { access: AccessToken { token_hash: random_token(64), user_id: None, family_id: None, ..i.access.clone() }, refresh: None };
        store.insert_tokens(&app, CAPS, NOW).await.unwrap();
        let info = store.find_access_token(&app.access.token_hash).await.unwrap().unwrap();
        assert_eq!((info.user_login, info.token.user_id), (None, None));
        store.revoke_access_token(&app.access.token_hash).await.unwrap();
        assert!(store.find_access_token(&app.access.token_hash).await.unwrap().unwrap().token.revoked);
    }

    pub async fn refresh_rotation_has_one_winner_under_concurrency(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let first = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&first, CAPS, NOW).await.unwrap();
        let old = first.refresh.clone().unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            let next = issue(&c, &u, Some(&old.family_id), NOW + 1, None);
            let old_hash = old.token_hash.clone();
            tasks.push(tokio::spawn(async move {
                let r = store.rotate_refresh_token(&old_hash, next.clone(), NOW + 1).await.unwrap();
                (r, next.refresh.unwrap().token_hash)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (r, hash) = t.await.unwrap();
            if r == Rotation::Rotated {
                winners.push(hash);
            }
        }
        assert_eq!(winners.len(), 1);
        let rotated = store.find_refresh_token(&old.token_hash).await.unwrap().unwrap();
        assert_eq!(rotated.rotated_at, Some(NOW + 1));
        assert!(refresh_live(&*store, &winners[0]).await);
    }

    /// Rotations of many families at once, with app tokens and new grants among them
    /// (one batch on the group commit): each stores its tokens as given, half of them
    /// with an access token narrower than its refresh token, and one whose new access
    /// token repeats a stored one fails alone, leaving its old token live.
    pub async fn concurrent_rotations_store_their_tokens_and_a_bad_one_fails_alone(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let taken = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&taken, CAPS, NOW).await.unwrap();
        // New grants of another user, whose caps are checked in the same batches.
        let other = user(&*store, "bob").await;
        let mut tasks = Vec::new();
        for n in 0..60 {
            let first = issue(&c, &u, None, NOW, Some(&random_token(30)));
            // Caps high enough that no family's token is evicted.
            store.insert_tokens(&first, RefreshCaps { per_client_user: 100, per_user: 100 }, NOW).await.unwrap();
            let old = first.refresh.unwrap();
            let mut next = issue(&c, &u, Some(&old.family_id), NOW + 2, old.code_hash.as_deref());
            if n == 30 {
                next.access.token_hash = taken.access.token_hash.clone();
            }
            next.refresh.as_mut().unwrap().expires_at = Some(NOW + 90 + n);
            if n % 2 == 0 {
                next.refresh.as_mut().unwrap().scopes = scopes("user_read channel_read");
            }
            let (store, app) = (store.clone(), TokenIssue { refresh: None, ..issue(&c, &u, None, NOW, None) });
            let grant = issue(&c, &other, None, NOW, None);
            tasks.push(tokio::spawn(async move {
                let (rotated, granted) = tokio::join!(
                    store.rotate_refresh_token(&old.token_hash, next.clone(), NOW + 1),
                    store.insert_tokens(&grant, RefreshCaps { per_client_user: 100, per_user: 100 }, NOW)
                );
                granted.unwrap();
                assert!(refresh_live(&*store, &grant.refresh.unwrap().token_hash).await);
                store.insert_tokens(&app, CAPS, NOW).await.unwrap();
                (n == 30, rotated, old, next, app)
            }));
        }
        let mut failures = 0;
        for (n, t) in tasks.into_iter().enumerate() {
            let (bad, rotated, old, next, app) = t.await.unwrap();
            let refresh_scopes = scopes(if n % 2 == 0 { "user_read channel_read" } else { "user_read" });
            assert!(store.find_access_token(&app.access.token_hash).await.unwrap().is_some());
            let new_refresh = next.refresh.as_ref().unwrap();
            if bad {
                assert!(matches!(rotated, Err(StoreError::Conflict(_))), "{rotated:?}");
                assert!(refresh_live(&*store, &old.token_hash).await, "a failed rotation leaves the old token live");
                assert!(store.find_refresh_token(&new_refresh.token_hash).await.unwrap().is_none());
                failures += 1;
                continue;
            }
            assert_eq!(rotated.unwrap(), Rotation::Rotated);
            assert_eq!(store.find_refresh_token(&old.token_hash).await.unwrap().unwrap().rotated_at, Some(NOW + 1));
            let a = store.find_access_token(&next.access.token_hash).await.unwrap().unwrap().token;
            assert_eq!(
                (a.client_id, a.user_id, a.scopes, a.created_at, a.expires_at, a.family_id, a.code_hash, a.revoked),
                (c.id.clone(), Some(u.id.clone()), scopes("user_read"), NOW + 2, NOW + 2 + 3600, Some(old.family_id.clone()), old.code_hash.clone(), false)
            );
            let r = store.find_refresh_token(&new_refresh.token_hash).await.unwrap().unwrap();
            assert_eq!(
                (&r.family_id, &r.client_id, &r.user_id, &r.scopes, r.created_at, r.expires_at, r.rotated_at, r.revoked, &r.code_hash),
                (&old.family_id, &c.id, &u.id, &refresh_scopes, NOW + 2, new_refresh.expires_at, None, false, &old.code_hash)
            );
        }
        assert_eq!(failures, 1);
    }

    /// Lookups made at once (batched into one query on PostgreSQL) each get their own
    /// answer: found, missing, or asked for twice.
    pub async fn concurrent_lookups_each_get_their_own_row(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let mut issues = Vec::new();
        for _ in 0..8 {
            let i = issue(&c, &u, None, NOW, None);
            store.insert_tokens(&i, CAPS, NOW).await.unwrap();
            issues.push(i);
        }
        let mut tasks = Vec::new();
        for round in 0..3 {
            for i in &issues {
                let (store, access, refresh) = (store.clone(), i.access.token_hash.clone(), i.refresh.clone().unwrap().token_hash);
                let missing = format!("{access}-{round}");
                let client_id = c.id.clone();
                tasks.push(tokio::spawn(async move {
                    let a = store.find_access_token(&access).await.unwrap().expect("stored access token");
                    assert_eq!(a.token.token_hash, access);
                    assert_eq!(a.user_login.as_deref(), Some("alice"));
                    let r = store.find_refresh_token(&refresh).await.unwrap().expect("stored refresh token");
                    assert_eq!(r.token_hash, refresh);
                    assert!(store.find_access_token(&missing).await.unwrap().is_none());
                    assert!(store.find_refresh_token(&missing).await.unwrap().is_none());
                    assert_eq!(store.find_client(&client_id).await.unwrap().expect("client").id, client_id);
                    assert!(store.find_client(&missing).await.unwrap().is_none());
                    // A key no database can hold (PostgreSQL refuses NUL in text) is
                    // simply not found, and fails none of the lookups beside it.
                    assert!(store.find_client(&format!("{client_id}\0")).await.unwrap().is_none());
                    assert!(store.find_access_token(&format!("{access}\0")).await.unwrap().is_none());
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// `rotate_presented`: the store reads the token and asks the decision what replaces
    /// it; an unknown or refused token stores nothing, and of many at once one wins.
    pub async fn presented_rotation_reads_decides_and_has_one_winner(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let first = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&first, CAPS, NOW).await.unwrap();
        let old = first.refresh.clone().unwrap();

        let never: Decide = Arc::new(|_: &RefreshToken| None);
        let unknown = store.rotate_presented("no-such-key", NOW + 1, never.clone()).await.unwrap();
        assert!(matches!(unknown, Presented::Unknown), "{unknown:?}");
        match store.rotate_presented(&old.token_hash, NOW + 1, never).await.unwrap() {
            Presented::Refused(r) => assert_eq!((r.token_hash, r.rotated_at), (old.token_hash.clone(), None)),
            other => panic!("refused, not {other:?}"),
        }

        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            let next = issue(&c, &u, Some(&old.family_id), NOW + 2, None);
            let key = old.token_hash.clone();
            tasks.push(tokio::spawn(async move {
                let offered = next.clone();
                let decide: Decide = Arc::new(move |r: &RefreshToken| r.rotated_at.is_none().then(|| offered.clone()));
                (store.rotate_presented(&key, NOW + 2, decide).await.unwrap(), next)
            }));
        }
        let mut winners = 0;
        for t in tasks {
            let (found, next) = t.await.unwrap();
            let stored = store.find_access_token(&next.access.token_hash).await.unwrap().is_some();
            match found {
                // The token as it was before this rotation.
                Presented::Rotated(r) => {
                    winners += 1;
                    assert_eq!((r.rotated_at, stored), (None, true));
                }
                // Read after the winner's rotation, or read before it and claimed after.
                Presented::Refused(r) => assert_eq!((r.rotated_at, stored), (Some(NOW + 2), false)),
                Presented::NotLive => assert!(!stored),
                Presented::Unknown => panic!("the token is stored"),
            }
        }
        assert_eq!(winners, 1);
        let rotated = store.find_refresh_token(&old.token_hash).await.unwrap().unwrap();
        assert_eq!(rotated.rotated_at, Some(NOW + 2));
    }

    pub async fn revoking_a_family_revokes_its_access_tokens(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let a = issue(&c, &u, None, NOW, None);
        let b = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&a, CAPS, NOW).await.unwrap();
        store.insert_tokens(&b, CAPS, NOW).await.unwrap();
        // Rotated twice: the family's earlier access tokens are still live until revoked.
        let family = a.refresh.clone().unwrap();
        let mut issues = vec![a];
        for at in [NOW + 1, NOW + 2] {
            let next = issue(&c, &u, Some(&family.family_id), at, None);
            let old = issues.last().unwrap().refresh.as_ref().unwrap().token_hash.clone();
            assert_eq!(store.rotate_refresh_token(&old, next.clone(), at).await.unwrap(), Rotation::Rotated);
            issues.push(next);
        }
        store.revoke_family(family.family()).await.unwrap();
        for i in &issues {
            assert!(store.find_access_token(&i.access.token_hash).await.unwrap().unwrap().token.revoked);
            let refresh = &i.refresh.as_ref().unwrap().token_hash;
            assert!(!refresh_live(&*store, refresh).await);
            // None of them rotates any more, the rotated ones included.
            let next = issue(&c, &u, Some(&family.family_id), NOW + 3, None);
            assert_eq!(store.rotate_refresh_token(refresh, next, NOW + 3).await.unwrap(), Rotation::NotLive);
        }
        // A rotated token is left unrevoked by its family's revocation, and can be revoked alone.
        let first = &issues[0].refresh.as_ref().unwrap().token_hash;
        assert!(!store.find_refresh_token(first).await.unwrap().unwrap().revoked);
        store.revoke_refresh_token(first).await.unwrap();
        assert!(store.find_refresh_token(first).await.unwrap().unwrap().revoked);
        // Another grant of the same client and user is untouched.
        assert!(!store.find_access_token(&b.access.token_hash).await.unwrap().unwrap().token.revoked);
        assert!(refresh_live(&*store, &b.refresh.as_ref().unwrap().token_hash).await);
    }

    pub async fn a_password_change_revokes_every_token_and_other_session_of_the_user(store: Arc<dyn Store>) {
        let (alice, bob) = (user(&*store, "alice").await, user(&*store, "bob").await);
        let (app, other) = (client(&*store, &alice, "App").await, client(&*store, &alice, "Other").await);
        let mine = [issue(&app, &alice, None, NOW, None), issue(&other, &alice, None, NOW, None)];
        let bobs = issue(&app, &bob, None, NOW, None);
        for i in mine.iter().chain([&bobs]) {
            store.insert_tokens(i, CAPS, NOW).await.unwrap();
        }
        for (id, who) in [("here", &alice), ("there", &alice), ("bobs", &bob)] {
            let session = session(id.into(), &who.id, NOW + 60);
            store.create_session(&session).await.unwrap();
        }
        // Approved before the change, not yet exchanged: a code and a device.
        let pending_code = code(&app, &alice);
        store.insert_code(&pending_code).await.unwrap();
        let device = pending_device(&app, NOW);
        store.insert_device(&device).await.unwrap();
        assert!(store.decide_device(&device.device_code_hash, Some((&alice.id, NOW)), NOW).await.unwrap());
        store.change_password(&alice.id, "$argon2id$new", "here").await.unwrap();
        assert_eq!(store.find_user(&alice.id).await.unwrap().unwrap().password_hash, "$argon2id$new");
        let redeemed = store.redeem_code(&pending_code.code_hash, &issue(&app, &alice, None, NOW, Some(&pending_code.code_hash)), CAPS, NOW).await;
        assert!(!matches!(redeemed, Ok(Redemption::Issued)), "a code approved before the change gives nothing");
        let d = store.find_device_by_user_code(&device.user_code_hash).await.unwrap().unwrap();
        assert_eq!(d.status, DeviceStatus::Denied, "a device approved before the change is denied");
        for i in &mine {
            assert!(store.find_access_token(&i.access.token_hash).await.unwrap().unwrap().token.revoked);
            assert!(!refresh_live(&*store, &i.refresh.as_ref().unwrap().token_hash).await);
        }
        assert!(!store.find_access_token(&bobs.access.token_hash).await.unwrap().unwrap().token.revoked);
        assert!(refresh_live(&*store, &bobs.refresh.as_ref().unwrap().token_hash).await);
        assert!(store.find_session("here", NOW).await.unwrap().is_some(), "the session that changed it stays");
        assert!(store.find_session("there", NOW).await.unwrap().is_none());
        assert!(store.find_session("bobs", NOW).await.unwrap().is_some());
    }

    pub async fn replayed_code_revokes_its_tokens(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let k = code(&c, &u);
        store.insert_code(&k).await.unwrap();
        let i = issue(&c, &u, None, NOW, Some(&k.code_hash));
        store.redeem_code(&k.code_hash, &i, CAPS, NOW).await.unwrap();
        // Another grant of the same user and client, untouched by the replay.
        let other = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&other, CAPS, NOW).await.unwrap();
        store.revoke_tokens_from_code(k.family()).await.unwrap();
        assert!(store.find_access_token(&i.access.token_hash).await.unwrap().unwrap().token.revoked);
        assert!(!refresh_live(&*store, &i.refresh.as_ref().unwrap().token_hash).await);
        assert!(!store.find_access_token(&other.access.token_hash).await.unwrap().unwrap().token.revoked);
        assert!(refresh_live(&*store, &other.refresh.as_ref().unwrap().token_hash).await);

        // A code from before migration 0008 (its key a digest alone): its tokens have a
        // family of their own and name the code only in code_hash.
        let old = AuthorizationCode { code_hash: random_token(64), ..code(&c, &u) };
        store.insert_code(&old).await.unwrap();
        let j = issue(&c, &u, Some(&random_token(24)), NOW, Some(&old.code_hash));
        store.redeem_code(&old.code_hash, &j, CAPS, NOW).await.unwrap();
        store.revoke_tokens_from_code(old.family()).await.unwrap();
        assert!(store.find_access_token(&j.access.token_hash).await.unwrap().unwrap().token.revoked);
        assert!(!refresh_live(&*store, &j.refresh.as_ref().unwrap().token_hash).await);
    }

    pub async fn caps_evict_the_oldest_live_refresh_tokens(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c1 = client(&*store, &u, "One").await;
        let c2 = client(&*store, &u, "Two").await;
        let caps = RefreshCaps { per_client_user: 3, per_user: 4 };
        let mut c1_tokens = Vec::new();
        for n in 0..4 {
            let i = issue(&c1, &u, None, NOW + n, None);
            store.insert_tokens(&i, caps, NOW + n).await.unwrap();
            c1_tokens.push(i.refresh.unwrap().token_hash);
        }
        // Per (client, user): the oldest of four went.
        assert!(!refresh_live(&*store, &c1_tokens[0]).await);
        for h in &c1_tokens[1..] {
            assert!(refresh_live(&*store, h).await);
        }
        // Per user across clients: two more on the second client push out the next oldest.
        for n in 10..12 {
            store.insert_tokens(&issue(&c2, &u, None, NOW + n, None), caps, NOW + n).await.unwrap();
        }
        assert!(!refresh_live(&*store, &c1_tokens[1]).await);
        assert!(refresh_live(&*store, &c1_tokens[2]).await);
        assert!(refresh_live(&*store, &c1_tokens[3]).await);
    }

    pub async fn consent_grants_accumulate_even_concurrently(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        assert!(store.find_consent(&u.id, &c.id).await.unwrap().is_none());
        let names = ["user_read", "channel_read", "chat_login", "channel_editor", "channel_stream", "user_blocks_read"];
        let mut tasks = Vec::new();
        for name in names {
            let (store, uid, cid) = (store.clone(), u.id.clone(), c.id.clone());
            tasks.push(tokio::spawn(async move { store.grant_consent(&uid, &cid, &scopes(name), NOW).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let got = store.find_consent(&u.id, &c.id).await.unwrap().unwrap();
        assert_eq!(got.scopes, scopes(&names.join(" ")));
    }

    pub async fn deleting_a_client_removes_its_grants(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let i = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&i, CAPS, NOW).await.unwrap();
        store.grant_consent(&u.id, &c.id, &scopes("user_read"), NOW).await.unwrap();
        store.insert_code(&code(&c, &u)).await.unwrap();
        assert!(store.delete_client(&c.id).await.unwrap());
        assert!(store.find_client(&c.id).await.unwrap().is_none());
        assert!(store.find_access_token(&i.access.token_hash).await.unwrap().is_none());
        assert!(store.find_refresh_token(&i.refresh.unwrap().token_hash).await.unwrap().is_none());
        assert!(store.find_consent(&u.id, &c.id).await.unwrap().is_none());
        assert!(!store.delete_client(&c.id).await.unwrap());
    }

    pub async fn purge_removes_only_what_is_past_use(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let live = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&live, CAPS, NOW).await.unwrap();
        let old = issue(&c, &u, None, NOW - 7200, None);
        store.insert_tokens(&old, CAPS, NOW).await.unwrap();
        let k = code(&c, &u);
        store.insert_code(&k).await.unwrap();
        store.create_session(&session("s".into(), &u.id, NOW - 1)).await.unwrap();
        let n = store.purge_expired(NOW + 10).await.unwrap();
        assert_eq!(n, 2, "the expired access token and session");
        assert!(store.find_access_token(&old.access.token_hash).await.unwrap().is_none());
        assert!(store.find_access_token(&live.access.token_hash).await.unwrap().is_some());
        // Confidential refresh tokens never expire.
        assert!(store.find_refresh_token(&old.refresh.unwrap().token_hash).await.unwrap().is_some());
        // The code is kept an hour past its expiry for replay detection.
        assert!(store.find_code(&k.code_hash).await.unwrap().is_some());
        store.purge_expired(NOW + 60 + 3601).await.unwrap();
        assert!(store.find_code(&k.code_hash).await.unwrap().is_none());

        // Revoked tokens go at the next purge, whatever their expiry.
        let revoked = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&revoked, CAPS, NOW).await.unwrap();
        let revoked_refresh = revoked.refresh.clone().unwrap();
        store.revoke_family(revoked_refresh.family()).await.unwrap();
        // A rotated refresh token is kept 30 days after its rotation, for reuse detection.
        let rotated = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&rotated, CAPS, NOW).await.unwrap();
        let rotated_hash = rotated.refresh.clone().unwrap().token_hash;
        let next = issue(&c, &u, Some(&rotated.refresh.as_ref().unwrap().family_id), NOW, None);
        store.rotate_refresh_token(&rotated_hash, next.clone(), NOW).await.unwrap();
        let n = store.purge_expired(NOW + 60).await.unwrap();
        assert_eq!(n, 2, "the revoked access and refresh tokens");
        assert!(store.find_access_token(&revoked.access.token_hash).await.unwrap().is_none());
        assert!(store.find_refresh_token(&revoked_refresh.token_hash).await.unwrap().is_none());
        assert!(store.find_refresh_token(&rotated_hash).await.unwrap().is_some());
        store.purge_expired(NOW + 30 * 86_400 + 1).await.unwrap();
        assert!(store.find_refresh_token(&rotated_hash).await.unwrap().is_none());
        assert!(store.find_refresh_token(&next.refresh.unwrap().token_hash).await.unwrap().is_some());
    }

    pub async fn events_are_listed_newest_first_by_filter_and_purged_by_age(store: Arc<dyn Store>) {
        use gatehouse_core::events::{Event, EventFilter, EventKind};
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let c = client(&*store, &alice, "App").await;
        let events = [
            Event::new(EventKind::SignInFailed, NOW).subject_login("Alice").detail("wrong password"),
            Event::new(EventKind::SignInSucceeded, NOW + 1).actor(&alice).from(Some("192.0.2.1".into()), Some("Firefox")),
            Event::new(EventKind::ClientCreated, NOW + 2).actor(&alice).client(&c.id),
            Event::new(EventKind::AccountDisabled, NOW + 3).actor(&bob).subject(&alice),
            Event::new(EventKind::SignInSucceeded, NOW + 3).actor(&bob),
        ];
        for e in &events {
            store.record_event(e).await.unwrap();
        }
        let list = |f: EventFilter| {
            let store = store.clone();
            async move { store.list_events(&EventFilter { limit: 100, ..f }).await.unwrap() }
        };
        // Newest first; same second in the order recorded, the later first.
        let all = list(EventFilter::default()).await;
        assert_eq!(all, events.iter().rev().cloned().collect::<Vec<_>>());
        // By user: done by them or to them; by login also finds the failed sign-in.
        let by_id = list(EventFilter { user_id: Some(alice.id.clone()), ..Default::default() }).await;
        assert_eq!(by_id.iter().map(|e| e.at).collect::<Vec<_>>(), [NOW + 3, NOW + 2, NOW + 1]);
        let by_login = list(EventFilter { login: Some("ALICE".into()), ..Default::default() }).await;
        assert_eq!(by_login.len(), 4);
        let by_client = list(EventFilter { client_id: Some(c.id.clone()), ..Default::default() }).await;
        assert_eq!(by_client, [events[2].clone()]);
        let since = list(EventFilter { user_id: Some(bob.id.clone()), since: Some(NOW + 3), ..Default::default() }).await;
        assert_eq!(since.len(), 2);
        let limited = store.list_events(&EventFilter { limit: 2, ..Default::default() }).await.unwrap();
        assert_eq!(limited.len(), 2);

        assert_eq!(store.purge_events(NOW + 2).await.unwrap(), 2);
        assert_eq!(list(EventFilter::default()).await.len(), 3);
        assert_eq!(store.purge_events(NOW + 2).await.unwrap(), 0);
    }

    pub async fn concurrent_token_inserts_are_all_stored_and_a_bad_one_fails_alone(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "App").await;
        let dup = issue(&c, &u, None, NOW, None);
        store.insert_tokens(&dup, CAPS, NOW).await.unwrap();
        let mut tasks = Vec::new();
        for n in 0..200 {
            // One of them repeats a stored token's digest: only it may fail.
            let i = if n == 100 { dup.clone() } else { issue(&c, &u, None, NOW, None) };
            let store = store.clone();
            tasks.push(tokio::spawn(async move { (store.insert_tokens(&i, CAPS, NOW).await, i) }));
        }
        let mut failures = 0;
        for t in tasks {
            let (result, i) = t.await.unwrap();
            match result {
                Ok(()) => assert!(store.find_access_token(&i.access.token_hash).await.unwrap().is_some()),
                Err(StoreError::Conflict(_)) => {
                    assert_eq!(i.access.token_hash, dup.access.token_hash);
                    failures += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(failures, 1);
    }

    pub async fn platform_channels_and_relations_round_trip(store: Arc<dyn Store>) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let ch = store.channel(&alice.id, "key1", NOW).await.unwrap();
        assert_eq!((ch.stream_key.as_str(), ch.status.as_str()), ("key1", ""));
        // A second call finds the channel; it does not make a new one.
        assert_eq!(store.channel(&alice.id, "key2", NOW).await.unwrap().stream_key, "key1");
        store.update_channel(&alice.id, Some("Speedrunning"), None, NOW + 1).await.unwrap();
        store.update_channel(&alice.id, None, Some("Celeste"), NOW + 2).await.unwrap();
        store.set_stream_key(&alice.id, "key3", NOW + 3).await.unwrap();
        store.record_commercial(&alice.id, NOW + 4).await.unwrap();
        let ch = store.channel(&alice.id, "unused", NOW).await.unwrap();
        assert_eq!((ch.status.as_str(), ch.game.as_str(), ch.stream_key.as_str()), ("Speedrunning", "Celeste", "key3"));
        assert_eq!(ch.last_commercial_at, Some(NOW + 4));

        assert!(store.relate(Relation::Follow, &bob.id, &alice.id, NOW).await.unwrap());
        assert!(!store.relate(Relation::Follow, &bob.id, &alice.id, NOW).await.unwrap());
        assert!(store.relate(Relation::Subscription, &bob.id, &alice.id, NOW).await.unwrap());
        let follows = store.related_to(Relation::Follow, &bob.id).await.unwrap();
        assert_eq!(follows.iter().map(|r| r.login.as_str()).collect::<Vec<_>>(), vec!["alice"]);
        let subs = store.related_from(Relation::Subscription, &alice.id).await.unwrap();
        assert_eq!(subs.iter().map(|r| r.login.as_str()).collect::<Vec<_>>(), vec!["bob"]);
        assert!(store.related_to(Relation::Block, &bob.id).await.unwrap().is_empty());
        assert!(store.unrelate(Relation::Follow, &bob.id, &alice.id).await.unwrap());
        assert!(!store.unrelate(Relation::Follow, &bob.id, &alice.id).await.unwrap());
    }

    async fn take_one(store: &dyn Store, bucket: &str, budget: RateBudget, now: i64) -> StoreResult<RateDecision> {
        Ok(store.take_rate_tokens(bucket, budget, now, 1).await?.decision(&budget, 0))
    }

    pub async fn rate_buckets_empty_refill_and_hold_under_concurrency(store: Arc<dyn Store>) {
        let budget = RateBudget { capacity: 3, window: 60 };
        for left in [2, 1, 0] {
            let d = take_one(&*store, "client:a", budget, NOW).await.unwrap();
            assert_eq!((d.allowed, d.remaining), (true, left));
        }
        let d = take_one(&*store, "client:a", budget, NOW).await.unwrap();
        assert_eq!((d.allowed, d.retry_after), (false, 20));
        assert!(take_one(&*store, "client:b", budget, NOW).await.unwrap().allowed, "buckets are separate");
        assert!(take_one(&*store, "client:a", budget, NOW + 20).await.unwrap().allowed);
        // An earlier clock (another instance's) adds nothing; the empty bucket stays empty.
        assert!(!take_one(&*store, "client:a", budget, NOW).await.unwrap().allowed);
        // Years later a huge bucket is full again, without overflowing the arithmetic.
        let huge = RateBudget { capacity: 1_000_000_000, window: 86_400 };
        take_one(&*store, "huge", huge, NOW).await.unwrap();
        let d = take_one(&*store, "huge", huge, NOW + 10 * 365 * 86_400).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 999_999_999));

        let budget = RateBudget { capacity: 10, window: 60 };
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { take_one(&*store, "burst", budget, NOW).await.unwrap().allowed }));
        }
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap());
        }
        assert_eq!(allowed, 10);

        // Several requests taken at once: as many as the bucket holds, in order.
        let budget = RateBudget { capacity: 3, window: 60 };
        let take = store.take_rate_tokens("together", budget, NOW, 5).await.unwrap();
        assert_eq!(take, RateTake { level: 0, allowed: 3 });
        let told: Vec<_> = (0..5).map(|i| (take.decision(&budget, i).allowed, take.decision(&budget, i).remaining)).collect();
        assert_eq!(told, [(true, 2), (true, 1), (true, 0), (false, 0), (false, 0)]);
        // Twenty seconds refill one request: of two asked for together, one goes through.
        let take = store.take_rate_tokens("together", budget, NOW + 20, 2).await.unwrap();
        assert_eq!(take, RateTake { level: 0, allowed: 1 });
        let take = store.take_rate_tokens("fresh", budget, NOW, 2).await.unwrap();
        assert_eq!(take, RateTake { level: 1000, allowed: 2 });
    }

    pub async fn device_authorizations_poll_decide_and_redeem_once(store: Arc<dyn Store>) {
        let u = user(&*store, "alice").await;
        let c = client(&*store, &u, "TV").await;
        let d = pending_device(&c, NOW);
        store.insert_device(&d).await.unwrap();
        let dup = DeviceAuthorization { device_code_hash: random_token(64), ..d.clone() };
        assert!(matches!(store.insert_device(&dup).await, Err(StoreError::Conflict(_))), "user codes are unique");
        let found = store.find_device_by_user_code(&d.user_code_hash).await.unwrap().unwrap();
        assert_eq!((found.status, found.scopes.clone()), (DeviceStatus::Pending, scopes("chat_login")));

        let (_, fast) = store.poll_device(&d.device_code_hash, NOW).await.unwrap().unwrap();
        assert!(!fast, "the first poll is never too fast");
        let (_, fast) = store.poll_device(&d.device_code_hash, NOW + 2).await.unwrap().unwrap();
        assert!(fast);
        let (seen, fast) = store.poll_device(&d.device_code_hash, NOW + 9).await.unwrap().unwrap();
        assert_eq!((seen.interval, fast), (10, true), "slow_down added 5 seconds");
        assert!(store.poll_device("nope", NOW).await.unwrap().is_none());

        assert!(store.decide_device(&d.device_code_hash, Some((&u.id, NOW)), NOW).await.unwrap());
        assert!(!store.decide_device(&d.device_code_hash, None, NOW).await.unwrap(), "decided once");
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, i, h) = (store.clone(), issue(&c, &u, None, NOW, None), d.device_code_hash.clone());
            tasks.push(tokio::spawn(async move { store.redeem_device(&h, &i, CAPS, NOW).await.unwrap() }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap() == Redemption::Issued);
        }
        assert_eq!(wins, 1);
        let (after, _) = store.poll_device(&d.device_code_hash, NOW + 100).await.unwrap().unwrap();
        assert_eq!((after.status, after.user_id.as_deref()), (DeviceStatus::Used, Some(u.id.as_str())));
    }
}
