//! The durable store against the real PostgreSQL: each test gets its own throwaway
//! database, so tests run in parallel and never see each other's rows.

mod connect;
mod jobs;
mod migrate;
mod observations;
mod plans;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgsidecar::store::{Level, SlowEvent, Store};
use tokio_postgres::Client;

use crate::common::{connect, database_url, direct, init_logging};

/// A database created for one test and dropped (forcibly) when the value is dropped,
/// even when the test panics.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        init_logging();
        let name = format!(
            "pgsidecar_store_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        direct()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let url = with_dbname(&database_url(), &name);
        TestDb { name, url }
    }

    /// A store on this database, not migrated.
    pub async fn store(&self, sidecar: &str) -> Store {
        Store::connect(&self.url, sidecar)
            .await
            .expect("store connects")
    }

    /// A store on this database with the schema in place.
    pub async fn migrated(&self, sidecar: &str) -> Store {
        let store = self.store(sidecar).await;
        store.migrate().await.expect("migrations apply");
        store
    }

    /// A plain client on this database, to inspect or backdate rows.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await; a thread with its own runtime can, even inside the test's.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                direct()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// `url` with its database name replaced.
fn with_dbname(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("URL with a scheme");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{dbname}{query}")
}

/// A time on a whole millisecond, so it survives PostgreSQL's microsecond precision.
pub fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn slow_event(i: u64) -> SlowEvent {
    SlowEvent {
        at: at_ms(1_700_000_000_000 + i * 1000),
        database: "app".into(),
        username: "alice".into(),
        fingerprint: format!("fp{}", i % 3),
        query: format!("SELECT {i}"),
        duration_ms: 100.0 + i as f64,
        level: if i.is_multiple_of(2) {
            Level::Warning
        } else {
            Level::Critical
        },
        application_name: i.is_multiple_of(2).then(|| "web".to_string()),
    }
}

/// How many rows `sql` counts.
pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[test]
fn replaces_the_database_name() {
    assert_eq!(
        with_dbname("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_dbname("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_dbname("postgres://h:1", "x"), "postgres://h:1/x");
}
