//! Slow and idle clients cannot hold connections open forever, nor take them all
//! (issue 24, finding 3).

use std::time::{Duration, Instant};

use gatehouse_core::policy::Policy;
use gatehouse_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

fn config(header_read_timeout: u64, max_connections: usize) -> ServerConfig {
    ServerConfig { header_read_timeout: Duration::from_secs(header_read_timeout), max_connections, ..Default::default() }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the server closes the connection; how long that took, or None if it
/// stayed open for `patience`.
async fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(patience.saturating_sub(start.elapsed()), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = TestServer::start_with(Policy::default(), config(1, 100)).await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    for _ in 0..3 {
        // A byte now and then does not keep it alive: the headers have a deadline.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = slow.write_all(b"a").await;
    }
    let took = closed_within(&mut slow, Duration::from_secs(5)).await.expect("the slow client was never disconnected");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::start_with(Policy::default(), config(1, 100)).await;
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await.is_some(), "the idle connection stayed open");
}

#[tokio::test]
async fn open_connections_are_capped() {
    let server = TestServer::start_with(Policy::default(), config(30, 2)).await;
    let held = [connect(&server).await, connect(&server).await];
    let http = reqwest::Client::builder().timeout(Duration::from_millis(800)).build().unwrap();
    assert!(http.get(server.url("/healthz")).send().await.is_err(), "a third connection was served");
    drop(held);
    let res = http.get(server.url("/healthz")).send().await.expect("served once the others left");
    assert!(res.status().is_success());
}
