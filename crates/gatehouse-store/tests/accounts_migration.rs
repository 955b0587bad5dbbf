//! Migration 0011 on a database that already holds two accounts with one email
//! (ignoring case): it must apply, keep both, and let only one verify the address.
//! SQLite always; PostgreSQL with GATEHOUSE_TEST_POSTGRES_URL and --include-ignored.

use gatehouse_core::error::StoreError;
use gatehouse_core::store::Store;
use gatehouse_store::{PgStore, SqliteStore};

const BEFORE: i64 = 11;

const USERS: &str = "INSERT INTO users (id, login, email, password_hash, created_at) VALUES \
    ('u1', 'alice', 'Shared@Example.com', 'x', 1), ('u2', 'bob', 'shared@example.COM', 'x', 2)";

async fn check(store: &dyn Store) {
    let (alice, bob) = (store.find_user("u1").await.unwrap().unwrap(), store.find_user("u2").await.unwrap().unwrap());
    assert!(!alice.email_verified && !bob.email_verified, "no address was ever proven");
    assert!(!alice.disabled && !alice.is_admin);
    let found: Vec<_> = store.find_users_by_email("SHARED@example.com").await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(found, ["u1", "u2"]);
    assert!(store.set_verified_email("u2", &bob.email).await.unwrap());
    let taken = store.set_verified_email("u1", &alice.email).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
}

#[tokio::test]
async fn sqlite_accounts_sharing_an_email_survive_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // The database as a Gatehouse before 0011 left it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .unwrap();
        for m in SqliteStore::migrator().iter().filter(|m| m.version < BEFORE) {
            conn.execute_batch(&m.sql).unwrap();
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, TRUE, ?3, 0)",
                rusqlite::params![m.version, &*m.description, &*m.checksum],
            )
            .unwrap();
        }
        conn.execute_batch(USERS).unwrap();
    }
    let store = SqliteStore::open(path.to_str().unwrap()).await.expect("0011 applies");
    check(&store).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GATEHOUSE_TEST_POSTGRES_URL and run with --include-ignored"]
async fn postgres_accounts_sharing_an_email_survive_the_migration() {
    use sqlx::{Connection, Executor};
    let Some(admin_url) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        if std::env::var("GATEHOUSE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is unset");
        }
        eprintln!("skipped: GATEHOUSE_TEST_POSTGRES_URL is unset");
        return;
    };
    let name = format!("gatehouse_mig_{}", gatehouse_core::secret::random_token(12).to_lowercase());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    {
        let mut conn = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
        conn.execute(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
        )
        .await
        .unwrap();
        for m in PgStore::migrator().iter().filter(|m| m.version < BEFORE) {
            conn.execute(&*m.sql).await.unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, 0)")
                .bind(m.version)
                .bind(&*m.description)
                .bind(&*m.checksum)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.execute(USERS).await.unwrap();
    }
    let store = PgStore::connect(url.as_str()).await.expect("0011 applies");
    check(&store).await;
    drop(store);
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.unwrap();
}
