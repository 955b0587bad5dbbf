//! The security event log: what the pages, the token endpoint and the command line
//! record, from where, and that no secret is ever in it.

use gatehouse_core::events::{Event, EventFilter};
use reqwest::StatusCode;

use crate::binary::gatehouse;
use crate::common::*;
use crate::refresh::refresh;

async fn events(server: &TestServer, filter: EventFilter) -> Vec<Event> {
    server.auth.store.list_events(&EventFilter { limit: 100, ..filter }).await.unwrap()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().rev().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn sign_ins_consent_and_refresh_reuse_are_recorded_without_secrets() {
    let f = Fixture::new().await;
    let agent = "EventTest/1.0 (like a browser)";
    let browser = Browser::with_agent(&f.server.base, agent);
    assert_eq!(browser.sign_in("alice", "not-the-password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(browser.sign_in("nobody", "not-the-password").await.status(), StatusCode::UNAUTHORIZED);
    let url = browser.authorize_and_allow(&code_query(&f.client.id, "user_read", ""), "alice").await;
    let code = query_param(&url, "code").unwrap();
    let (status, tokens) =
        f.server.token(&f.client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK);
    let rt1 = s(&tokens, "refresh_token");
    let (status, rotated) = refresh(&f, &f.client, &rt1).await;
    assert_eq!(status, StatusCode::OK);
    // The old token again, past the grace period: reuse, and the family is revoked.
    f.server.clock.advance(60);
    assert_eq!(refresh(&f, &f.client, &rt1).await.0, StatusCode::BAD_REQUEST);

    let all = events(&f.server, EventFilter::default()).await;
    assert_eq!(
        kinds(&all),
        ["sign_in.failed", "sign_in.failed", "sign_in.succeeded", "consent.granted", "refresh_token.reused"]
    );
    let (wrong, unknown, signed_in, granted, reused) = (&all[4], &all[3], &all[2], &all[1], &all[0]);
    assert_eq!(wrong.subject_user_id.as_deref(), Some(f.user.id.as_str()));
    assert_eq!(wrong.detail.as_deref(), Some("wrong password"));
    assert_eq!((unknown.subject_login.as_deref(), unknown.subject_user_id.as_deref()), (Some("nobody"), None));
    assert_eq!(unknown.detail.as_deref(), Some("unknown login"));
    for e in [wrong, unknown, signed_in, granted] {
        assert_eq!(e.address.as_deref(), Some("127.0.0.1"), "{e:?}");
        assert_eq!(e.user_agent.as_deref(), Some(agent), "{e:?}");
    }
    assert_eq!(signed_in.actor_login.as_deref(), Some("alice"));
    assert_eq!((granted.client_id.as_deref(), granted.detail.as_deref()), (Some(f.client.id.as_str()), Some("user_read")));
    assert_eq!(reused.client_id.as_deref(), Some(f.client.id.as_str()));
    assert_eq!(reused.subject_user_id.as_deref(), Some(f.user.id.as_str()));

    // Alice's own events are found by her id; the unknown login's are not.
    let mine = events(&f.server, EventFilter { user_id: Some(f.user.id.clone()), ..Default::default() }).await;
    assert_eq!(mine.len(), 4);

    let written = serde_json::to_string(&all).unwrap();
    for secret in [PASSWORD, "not-the-password", &code, &rt1, &s(&rotated, "refresh_token"), &s(&tokens, "access_token")] {
        assert!(!written.contains(secret), "a secret is in the event log");
    }
}

#[tokio::test]
async fn operators_read_the_log_as_json_lines_filtered_by_user_client_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok, _, err) = gatehouse(d, &["user", "add", "--login", "alice", "--email", "a@example.com", "--password-stdin"], Some("s3cret-passw0rd\n"));
    assert!(ok, "{err}");
    let (ok, out, err) =
        gatehouse(d, &["client", "create", "--name", "Bot", "--owner", "alice", "--redirect-uri", "http://localhost/cb", "--json"], None);
    assert!(ok, "{err}");
    let id = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["client_id"].as_str().unwrap().to_string();
    let (ok, _, err) = gatehouse(d, &["client", "rotate-secret", &id], None);
    assert!(ok, "{err}");

    let (ok, out, err) = gatehouse(d, &["events", "--client", &id, "--since", "1h", "--json"], None);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON object per line")).collect();
    let kinds: Vec<_> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["client.secret_rotated", "client.created"]);
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[0]["detail"], "by the command line");
    assert!(!out.contains("client_secret"));

    let (ok, out, _) = gatehouse(d, &["events", "--client", "no-such-client", "--json"], None);
    assert!(ok && out.is_empty(), "{out}");
    let (ok, out, _) = gatehouse(d, &["events"], None);
    assert!(ok && out.lines().count() == 2 && out.contains("client.created"), "{out}");
    let (ok, _, err) = gatehouse(d, &["events", "--since", "yesterday"], None);
    assert!(!ok && err.contains("24h"), "{err}");
}
