//! The instances' read caches on PostgreSQL stay coherent: a revocation through one
//! instance is refused by another well within the staleness, because it is announced,
//! not because the cached answer expired; and an instance that loses its listener reads
//! through until it listens again. The staleness is set to a minute here, so that only
//! the announcements can explain what is seen.

use std::time::{Duration, Instant};

use gatehouse_core::model::ClientKind;
use gatehouse_core::policy::Policy;
use gatehouse_store::StoreOptions;
use reqwest::StatusCode;

use crate::common::*;

const STALENESS: Duration = Duration::from_secs(60);
/// Far below the staleness: what is seen sooner was announced.
const SEEN_WITHIN: Duration = Duration::from_secs(5);

async fn instance(db: &PgDatabase) -> TestServer {
    let options = StoreOptions { staleness: STALENESS, ..Default::default() };
    TestServer::start_on_with(Some(&db.url), Policy::default(), Default::default(), options).await
}

async fn app_token(server: &TestServer, client: &TestClient) -> String {
    let (status, body) = server.token(client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s(&body, "access_token")
}

async fn revoke(server: &TestServer, client: &TestClient, token: &str) {
    let form = [("client_id", client.id.as_str()), ("token", token)];
    let res = server.http().post(server.url("/oauth2/revoke")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Revokes a token validated (so cached) on `a` through `b`; how long until `a` refuses it.
async fn revocation_seen_after(a: &TestServer, b: &TestServer, client: &TestClient) -> Duration {
    let token = app_token(b, client).await;
    assert_eq!(a.validate(&token).await, StatusCode::OK);
    assert_eq!(a.validate(&token).await, StatusCode::OK, "served from A's cache");
    revoke(b, client, &token).await;
    let revoked = Instant::now();
    while a.validate(&token).await != StatusCode::UNAUTHORIZED {
        assert!(revoked.elapsed() < SEEN_WITHIN, "a revocation through B was not announced to A");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    revoked.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn revocations_through_one_instance_are_seen_by_another_and_measured() {
    let Some(db) = PgDatabase::create().await else { return };
    let (a, b) = (instance(&db).await, instance(&db).await);
    let owner = a.add_user("alice").await;
    let client = a.add_client("Bot", &owner, ClientKind::Confidential, false).await;
    let mut delays = Vec::new();
    for _ in 0..1000 {
        delays.push(revocation_seen_after(&a, &b, &client).await);
    }
    delays.sort();
    let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    eprintln!(
        "revocation seen by the other instance, over {} revocations: p50 {:?}, p99 {:?}, max {:?} (staleness {STALENESS:?})",
        delays.len(),
        at(0.5),
        at(0.99),
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn an_instance_that_loses_its_listener_reads_through_until_it_listens_again() {
    use sqlx::Connection;
    let Some(db) = PgDatabase::create().await else { return };
    let (a, b) = (instance(&db).await, instance(&db).await);
    let owner = a.add_user("alice").await;
    let client = a.add_client("Bot", &owner, ClientKind::Confidential, false).await;
    revocation_seen_after(&a, &b, &client).await;

    // A token A has cached; then every listener on this database is cut, so that B's
    // announcement of the revocation below may reach nobody.
    let token = app_token(&b, &client).await;
    assert_eq!(a.validate(&token).await, StatusCode::OK);
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(cut.len() >= 2 && cut.iter().all(|(ok,)| *ok), "listeners cut: {cut:?}");
    revoke(&b, &client, &token).await;
    let revoked = Instant::now();
    while a.validate(&token).await != StatusCode::UNAUTHORIZED {
        assert!(revoked.elapsed() < SEEN_WITHIN, "A served a revoked token from its cache after losing its listener");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Listening again, A caches and hears announcements as before.
    revocation_seen_after(&a, &b, &client).await;
}
