//! Storage faults: a request the database cannot serve in time is answered
//! `503 temporarily_unavailable` with `Retry-After` within the configured wait, never 500
//! and never late, and service resumes by itself when the fault clears.

use std::time::{Duration, Instant};

use gatehouse_core::model::ClientKind;
use gatehouse_store::StoreOptions;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(1);

fn options() -> StoreOptions {
    StoreOptions { wait: WAIT, ..Default::default() }
}

/// Asks for an app token; the status, the error code, the Retry-After header and how
/// long the answer took.
async fn app_token(server: &TestServer, client: &TestClient) -> (StatusCode, Option<String>, Option<String>, Duration) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client.id.as_str()),
        ("client_secret", client.secret.as_deref().unwrap()),
    ];
    let started = Instant::now();
    let res = server.http().post(server.url("/oauth2/token")).form(&form).send().await.expect("token request");
    let took = started.elapsed();
    let status = res.status();
    let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    (status, body["error"].as_str().map(str::to_string), retry_after, took)
}

fn assert_unavailable((status, error, retry_after, took): (StatusCode, Option<String>, Option<String>, Duration)) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error.as_deref(), Some("temporarily_unavailable"));
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok()), "no Retry-After");
    assert!(took < WAIT * 3, "answered after {took:?}, beyond the wait of {WAIT:?}");
}

/// Another process holds SQLite's write lock (a backup, an admin command gone wrong).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_is_answered_503_in_time_then_recovers() {
    let server = TestServer::start_on_with(None, Default::default(), Default::default(), options()).await;
    let owner = server.add_user("alice").await;
    let client = server.add_client("Bot", &owner, ClientKind::Confidential, false).await;
    assert_eq!(app_token(&server, &client).await.0, StatusCode::OK);

    let holder = rusqlite::Connection::open(&server.db_path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for _ in 0..3 {
        assert_unavailable(app_token(&server, &client).await);
    }
    holder.execute_batch("COMMIT").unwrap();
    assert_eq!(app_token(&server, &client).await.0, StatusCode::OK, "service resumes by itself");
}

/// A TCP relay to PostgreSQL that the test can cut and restore, as a network fault or a
/// database restart would.
struct Relay {
    port: u16,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(port: u16, target: String) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind relay");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            // Dropped with this task when the relay is cut, which ends every link.
            let mut links = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    let _ = inbound.shutdown().await;
                });
            }
        });
        Relay { port, task: Some(task) }
    }

    /// Stops listening and drops every open link.
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn an_unreachable_postgres_is_answered_503_in_time_then_recovers() {
    let Some(db) = PgDatabase::create().await else { return };
    let mut target = url::Url::parse(&db.url).unwrap();
    let address = format!("{}:{}", target.host_str().unwrap(), target.port().unwrap_or(5432));
    let mut relay = Relay::start(0, address.clone()).await;
    target.set_port(Some(relay.port)).unwrap();
    let server = TestServer::start_on_with(Some(target.as_str()), Default::default(), Default::default(), options()).await;
    let owner = server.add_user("alice").await;
    let client = server.add_client("Bot", &owner, ClientKind::Confidential, false).await;
    assert_eq!(app_token(&server, &client).await.0, StatusCode::OK);

    relay.cut();
    // The links the pool held are gone with the relay: the first requests see them fail,
    // the later ones find no database to connect to.
    for _ in 0..3 {
        assert_unavailable(app_token(&server, &client).await);
    }
    let port = relay.port;
    let _restored = Relay::start(port, address).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, ..) = app_token(&server, &client).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "service did not resume once the database was back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
