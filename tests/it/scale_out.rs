//! Several stateless instances on one PostgreSQL: a session, a code, a token or a
//! secret rotation made on one instance holds on every other at once, or for what the
//! instances cache, within its staleness (see coherence.rs).

use gatehouse_core::policy::Policy;
use gatehouse_core::registration::rotate_secret;
use gatehouse_server::ServerConfig;
use reqwest::StatusCode;

use crate::common::*;

async fn two_instances(db: &PgDatabase) -> (TestServer, TestServer) {
    two_instances_with(db, ServerConfig::default).await
}

async fn two_instances_with(db: &PgDatabase, config: impl Fn() -> ServerConfig) -> (TestServer, TestServer) {
    let a = TestServer::start_on(Some(&db.url), Policy::default(), config()).await;
    let b = TestServer::start_on(Some(&db.url), Policy::default(), config()).await;
    (a, b)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn two_instances_share_sessions_codes_tokens_and_secrets() {
    let Some(db) = PgDatabase::create().await else { return };
    let (a, b) = two_instances(&db).await;
    let user = a.add_user("alice").await;
    let client = a.add_client("My Bot", &user, gatehouse_core::model::ClientKind::Confidential, false).await;

    // Sign in on A; the authorize page is served by B with A's session; the consent
    // form goes back to A, whose CSRF check accepts B's form.
    let browser = a.browser();
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let q = code_query(&client.id, "user_read", "");
    let page = browser.http.get(b.url(&format!("/oauth2/authorize?{q}"))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "B sees A's session");
    let fields = consent_form_fields(&page.text().await.unwrap());
    let mut form = fields.clone();
    form.push(("decision".into(), "allow".into()));
    let res = browser.http.post(a.url("/oauth2/authorize")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = query_param(&location(&res), "code").expect("code");

    // The code is redeemed on B; the token validates on A.
    let (status, tokens) = b.token(&client, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let at = s(&tokens, "access_token");
    assert_eq!(a.validate(&at).await, StatusCode::OK);

    // A revoke on B is seen by A within the caches' staleness (announced at once; the
    // staleness bounds a lost announcement).
    let res = b.http().post(b.url("/oauth2/revoke")).form(&[("client_id", client.id.as_str()), ("token", &at)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    within_staleness(|| async { a.validate(&at).await == StatusCode::UNAUTHORIZED }).await;

    // A secret rotated through A is refused on B.
    let new_secret = rotate_secret(&a.auth, &client.id, None).await.unwrap();
    within_staleness(|| async {
        let (status, body) = b.token(&client, &[("grant_type", "client_credentials")]).await;
        (status, body["error"].as_str()) == (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    })
    .await;
    let rotated = TestClient { id: client.id.clone(), secret: Some(new_secret) };
    assert_eq!(b.token(&rotated, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn a_new_secret_made_on_one_instance_is_shown_once_by_another() {
    let Some(db) = PgDatabase::create().await else { return };
    let (a, b) = two_instances(&db).await;
    let user = a.add_user("alice").await;
    let client = a.add_client("My Bot", &user, gatehouse_core::model::ClientKind::Confidential, false).await;
    let browser = a.browser();
    assert_eq!(browser.sign_in("alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    // New Secret posted to A (with a grace period: no confirmation step)...
    let page = browser.http.get(a.url(&format!("/console/apps/{}", client.id))).send().await.unwrap().text().await.unwrap();
    let csrf = hidden_inputs(&page).into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let form = [("csrf", csrf.as_str()), ("grace", "3600")];
    let res = browser.http.post(a.url(&format!("/console/apps/{}/secret", client.id))).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let shown_at = location(&res);
    // ...and the page it redirects to served by B: the note is in the database.
    let html = browser.http.get(b.url(&shown_at)).send().await.unwrap().text().await.unwrap();
    let start = html.find("id=\"client-secret\">").expect("B shows the secret") + "id=\"client-secret\">".len();
    let secret = html[start..start + 50].to_string();
    let again = browser.http.get(a.url(&shown_at)).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains(&secret) && again.contains("shown once"), "once, across instances");
    let rotated = TestClient { id: client.id.clone(), secret: Some(secret) };
    assert_eq!(b.token(&rotated, &[("grant_type", "client_credentials")]).await.0, StatusCode::OK);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn concurrent_refreshes_on_postgres_yield_exactly_one_success() {
    let Some(db) = PgDatabase::create().await else { return };
    let server = TestServer::start_on(Some(&db.url), Policy::default(), ServerConfig::default()).await;
    crate::refresh::concurrent_refreshes(Fixture::with(server).await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn concurrent_redemptions_on_postgres_yield_exactly_one_success() {
    let Some(db) = PgDatabase::create().await else { return };
    let server = TestServer::start_on(Some(&db.url), Policy::default(), ServerConfig::default()).await;
    crate::code_flow::concurrent_redemptions(Fixture::with(server).await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn concurrent_refreshes_across_two_instances_yield_exactly_one_success() {
    let Some(db) = PgDatabase::create().await else { return };
    let (a, b) = two_instances(&db).await;
    let f = Fixture::with(a).await;
    let rt = s(&f.tokens("user_read").await, "refresh_token");
    let mut tasks = Vec::new();
    for i in 0..100 {
        let base = if i % 2 == 0 { f.server.base.clone() } else { b.base.clone() };
        let http = f.server.http();
        let form = vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), rt.clone()),
            ("client_id".to_string(), f.client.id.clone()),
            ("client_secret".to_string(), f.client.secret.clone().unwrap()),
        ];
        tasks.push(tokio::spawn(async move { http.post(format!("{base}/oauth2/token")).form(&form).send().await.unwrap().status() }));
    }
    let mut ok = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(status.as_u16() < 500, "server error {status}");
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn malformed_requests_on_postgres_get_4xx_never_5xx() {
    let Some(db) = PgDatabase::create().await else { return };
    let server = TestServer::start_on(Some(&db.url), Policy::default(), ServerConfig::default()).await;
    crate::hardening::malformed_requests(Fixture::with(server).await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn instances_starting_at_once_migrate_one_database_safely() {
    let Some(db) = PgDatabase::create().await else { return };
    // Each opens the store, which applies migrations under PostgreSQL's advisory lock.
    let starts = (0..4).map(|_| {
        let url = db.url.clone();
        tokio::spawn(async move { gatehouse_store::PgStore::connect(&url).await.map(|_| ()) })
    });
    for s in starts.collect::<Vec<_>>() {
        s.await.unwrap().expect("instance start");
    }
    let store = gatehouse_store::PgStore::connect(&db.url).await.unwrap();
    let applied = store.migration_versions().await.unwrap();
    let known: Vec<i64> = gatehouse_store::PgStore::migrator().iter().map(|m| m.version).collect();
    assert_eq!(applied, known);
}

/// Two instances on `db` sharing an API budget of `capacity` requests per `window`
/// seconds: the first (with a registered app) as a fixture, the second, and a user token
/// of the app.
async fn two_instances_with_api_budget(db: &PgDatabase, capacity: i64, window: i64) -> (Fixture, TestServer, String) {
    let budget = gatehouse_core::model::RateBudget { capacity, window };
    let limits = gatehouse_server::RateLimits { api: budget, shared: true, ..Default::default() };
    let (a, b) = two_instances_with(db, || ServerConfig { rate_limits: limits.clone(), ..Default::default() }).await;
    let f = Fixture::with(a).await;
    let t = s(&f.tokens("").await, "access_token");
    (f, b, t)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn the_api_budget_holds_across_instances() {
    let Some(db) = PgDatabase::create().await else { return };
    let (f, b, t) = two_instances_with_api_budget(&db, 6, 60).await;
    let http = f.server.http();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 { &f.server.base } else { &b.base };
        let res = http.get(format!("{base}/api/user")).bearer_auth(&t).send().await.unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 200, 429, 429], "six requests in all, whichever instance serves them");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn concurrent_requests_share_the_budget_exactly() {
    // Requests arriving together at one instance are taken from the bucket together;
    // each must still be told as if it had been taken alone.
    let Some(db) = PgDatabase::create().await else { return };
    let (f, b, t) = two_instances_with_api_budget(&db, 6, 3600).await;
    let http = f.server.http();
    let calls = (0..24).map(|i| {
        let base = if i % 3 == 0 { b.base.clone() } else { f.server.base.clone() };
        let (http, t) = (http.clone(), t.clone());
        tokio::spawn(async move {
            let res = http.get(format!("{base}/api/user")).bearer_auth(&t).send().await.unwrap();
            let remaining = res.headers().get("ratelimit-remaining").map(|v| v.to_str().unwrap().parse::<i64>().unwrap());
            (res.status().as_u16(), remaining)
        })
    });
    let mut allowed_remaining = Vec::new();
    let mut refused = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            (200, Some(remaining)) => allowed_remaining.push(remaining),
            (429, Some(0)) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    allowed_remaining.sort();
    assert_eq!(allowed_remaining, vec![0, 1, 2, 3, 4, 5], "each request let through saw its own place in the bucket");
    assert_eq!(refused, 18);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn requests_taken_ahead_still_hold_the_budget_across_instances() {
    // A budget of 300 lets an instance take up to 3 requests ahead when several wait
    // together: however the bursts alternate between instances, exactly 300 are let
    // through in all.
    let Some(db) = PgDatabase::create().await else { return };
    let (f, b, t) = two_instances_with_api_budget(&db, 300, 86_400).await;
    let http = f.server.http();
    let mut allowed = 0;
    for burst in 0..50 {
        let base = if burst % 2 == 0 { b.base.clone() } else { f.server.base.clone() };
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (http, t, base) = (http.clone(), t.clone(), base.clone());
                tokio::spawn(async move {
                    let res = http.get(format!("{base}/api/user")).bearer_auth(&t).send().await.unwrap();
                    let remaining: i64 = res.headers()["ratelimit-remaining"].to_str().unwrap().parse().unwrap();
                    (res.status().as_u16(), remaining)
                })
            })
            .collect();
        for call in calls {
            match call.await.unwrap() {
                (200, remaining) => {
                    assert!((0..300).contains(&remaining), "burst {burst}: {remaining} remaining");
                    allowed += 1;
                }
                (status, remaining) => assert_eq!((status, remaining), (429, 0), "burst {burst}"),
            }
        }
    }
    assert_eq!(allowed, 300, "taken ahead or not, the budget is 300");
}

/// Waits until `seen` holds, failing if that takes longer than the default staleness of
/// the instances' caches (one second) and the time to ask.
pub async fn within_staleness<F, Fut>(seen: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while !seen().await {
        assert!(std::time::Instant::now() < deadline, "not seen within the staleness");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
