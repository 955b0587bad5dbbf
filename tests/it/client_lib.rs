//! gatehouse-client against a real Gatehouse: discovery, app tokens, refresh, validate,
//! revoke, and the TokenManager's single-flight refresh.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gatehouse_client::{Gatehouse, TokenManager, TokenSet};

use crate::common::*;

#[tokio::test]
async fn discovers_and_runs_app_token_validate_revoke_and_refresh() {
    let f = Fixture::new().await;
    let gh = Gatehouse::discover(&f.server.base, &f.client.id, f.client.secret.as_deref()).await.unwrap();
    assert_eq!(gh.metadata.issuer, f.server.base);
    let app = gh.app_token(&["user_read"]).await.unwrap();
    assert!(app.refresh_token.is_none());
    assert!(app.expires_in().unwrap().as_secs() > 3500);
    let v = gh.validate(&app.access_token).await.unwrap();
    assert_eq!((v.client_id.as_str(), v.login.as_deref()), (f.client.id.as_str(), None));
    gh.revoke(&app.access_token).await.unwrap();
    let e = gh.validate(&app.access_token).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_token"));

    let user = f.tokens("user_read").await;
    let fresh = gh.refresh(&s(&user, "refresh_token")).await.unwrap();
    assert_eq!(fresh.scopes, vec!["user_read"]);
    let e = gh.refresh(&s(&user, "refresh_token")).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_grant"), "the rotated token is spent");

    let wrong = Gatehouse::discover(&f.server.base, &f.client.id, Some("wrong")).await.unwrap();
    assert_eq!(wrong.app_token(&[]).await.unwrap_err().code(), Some("invalid_client"));
}

#[tokio::test]
async fn token_manager_refreshes_once_for_fifty_concurrent_callers() {
    let f = Fixture::new().await;
    let t = f.tokens("chat_login").await;
    let gh = Gatehouse::discover(&f.server.base, &f.client.id, f.client.secret.as_deref()).await.unwrap();
    let stale = TokenSet {
        access_token: s(&t, "access_token"),
        refresh_token: Some(s(&t, "refresh_token")),
        // Expired a minute ago, as far as the client knows.
        expires_at: Some(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 60),
        scopes: vec!["chat_login".into()],
        id_token: None,
    };
    let saved = Arc::new(AtomicUsize::new(0));
    let counter = saved.clone();
    let manager = Arc::new(TokenManager::new(gh, stale).on_refresh(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    })));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let m = manager.clone();
        tasks.push(tokio::spawn(async move { m.access_token().await.unwrap() }));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(saved.load(Ordering::SeqCst), 1, "exactly one refresh");
    assert_eq!(seen.len(), 1, "everyone got the same new token");
    let token = seen.into_iter().next().unwrap();
    assert_ne!(token, s(&t, "access_token"));
    assert_eq!(f.server.validate(&token).await, reqwest::StatusCode::OK);

    // After a 401 with the current token: one refresh; a second caller with the same
    // stale token does not refresh again.
    let again = manager.after_unauthorized(&token).await.unwrap();
    assert_ne!(again, token);
    assert_eq!(manager.after_unauthorized(&token).await.unwrap(), again);
    assert_eq!(saved.load(Ordering::SeqCst), 2);
}
