//! Nothing private is shown or stored with the defaults: a literal the client planted in
//! its statements (as text and as a bound value), and every configured secret (upstream
//! and store passwords, the admin token, the webhook URL's token) appear in no admin
//! endpoint, no console answer, no log line and no row of the store.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use tokio_postgres::SimpleQueryMessage;

use crate::common::http::Http;
use crate::common::{connect, database_url, direct, unique, Proxy};
use crate::slow::eventually;
use crate::store::TestDb;

const PLANTED: &str = "hunter2_planted_4711";
const UPSTREAM_PASSWORD: &str = "upstreampass_secret_4711";
const STORE_PASSWORD: &str = "storepass_secret_4711";
const ADMIN_TOKEN: &str = "admintoken_secret_4711";
const WEBHOOK_TOKEN: &str = "webhooktoken_secret_4711";

/// Log lines written by the proxy's tasks (they run on this test's thread).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A webhook receiver whose path holds the token; counts deliveries.
async fn webhook() -> (String, Arc<Mutex<usize>>) {
    let count = Arc::new(Mutex::new(0usize));
    let seen = count.clone();
    let path = format!("/hook/{WEBHOOK_TOKEN}");
    let app = axum::Router::new().route(
        &path,
        post(move || async move {
            *seen.lock().unwrap() += 1;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

fn with_password(url: &str, password: &str) -> String {
    url.replacen("postgres@", &format!("postgres:{password}@"), 1)
}

fn leaks(what: &str, text: &str) -> Vec<String> {
    [
        PLANTED,
        UPSTREAM_PASSWORD,
        STORE_PASSWORD,
        ADMIN_TOKEN,
        WEBHOOK_TOKEN,
    ]
    .iter()
    .filter(|secret| text.contains(*secret))
    .map(|secret| format!("{what} shows {secret}"))
    .collect()
}

#[tokio::test]
async fn no_literal_or_secret_is_shown_or_stored_by_default() {
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = TestDb::create().await;
    let (hook_url, delivered) = webhook().await;
    let store_url = with_password(&db.url, STORE_PASSWORD);
    let proxy = Proxy::with(|c| {
        c.upstream = with_password(&database_url(), UPSTREAM_PASSWORD);
        c.store = true;
        c.store_url = Some(store_url);
        c.admin_token = Some(ADMIN_TOKEN.into());
        c.admin_users = vec!["postgres".into()];
        c.alert_webhook_url = Some(hook_url);
        c.alert_consecutive = 1;
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 0;
    })
    .await;
    let http = Http::with_token(&proxy, ADMIN_TOKEN);
    let t = unique("secrets");
    direct()
        .await
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, s text);
             INSERT INTO {t} SELECT g, 'row' || g FROM generate_series(1, 200) g; ANALYZE {t}"
        ))
        .await
        .unwrap();

    // The planted literal: in the text, as a bound value, and in a statement that pins.
    let client = proxy.client().await;
    let text_sql =
        format!("SELECT * FROM {t} WHERE s = '{PLANTED}' AND pg_sleep(0.002) IS NOT NULL");
    client.simple_query(&text_sql).await.unwrap();
    let bound_sql = format!("SELECT id FROM {t} WHERE s = $1 OR id = $2");
    client.query(&bound_sql, &[&PLANTED, &-1i32]).await.unwrap();
    let pinned = proxy.client().await;
    let lock = format!("SELECT pg_advisory_lock(4711), '{PLANTED}' AS planted");
    pinned.simple_query(&lock).await.unwrap();
    pinned
        .simple_query("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    drop(pinned);

    // Wait for the plans, the alert's webhook, finished jobs and stored events.
    eventually("captured plans", 30, || async {
        let (_, plans) = http.json("/api/plans?limit=100").await;
        plans["data"].as_array().map_or(0, Vec::len) >= 2
    })
    .await;
    eventually("a webhook delivery", 30, || async {
        *delivered.lock().unwrap() > 0
    })
    .await;
    let store = db.client().await;
    eventually("stored slow events and finished jobs", 30, || async {
        let events: i64 = (store.query_one("SELECT count(*) FROM pgsidecar.slow_events", &[]))
            .await
            .map_or(0, |r| r.get(0));
        let open: i64 = (store.query_one(
            "SELECT count(*) FROM pgsidecar.jobs WHERE payload IS NOT NULL",
            &[],
        ))
        .await
        .map_or(1, |r| r.get(0));
        events > 0 && open == 0
    })
    .await;

    let mut found = Vec::new();
    let (_, queries) = http.json("/api/queries?limit=100").await;
    let mut paths: Vec<String> = [
        "/metrics",
        "/api/pools",
        "/api/queries?limit=100",
        "/api/slow?limit=100",
        "/api/alerts?limit=100",
        "/api/plans?limit=100",
        "/api/jobs?limit=100",
    ]
    .map(String::from)
    .to_vec();
    for q in queries["data"].as_array().cloned().unwrap_or_default() {
        if let Some(fp) = q["fingerprint"].as_str() {
            paths.push(format!("/api/queries/{fp}"));
        }
    }
    for path in &paths {
        let (status, body) = http.text(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        found.extend(leaks(path, &body));
    }

    let console = connect(&proxy.url("postgres", "pgsidecar")).await;
    for show in [
        "CONFIG",
        "JOBS",
        "SLOW",
        "ALERTS",
        "QUERIES",
        "POOLS",
        "CLIENTS",
        "SERVERS",
        "DATABASES",
        "STATS",
        "LISTS",
    ] {
        let sql = format!("SHOW {show}");
        let rows = console.simple_query(&sql).await.unwrap();
        let mut text = String::new();
        for row in rows {
            if let SimpleQueryMessage::Row(row) = row {
                for i in 0..row.len() {
                    text.push_str(row.get(i).unwrap_or(""));
                    text.push('|');
                }
            }
        }
        found.extend(leaks(&sql, &text));
    }

    let tables = store
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'pgsidecar'",
            &[],
        )
        .await
        .unwrap();
    assert!(tables.len() >= 4, "the store has its tables");
    for row in tables {
        let table: String = row.get(0);
        let sql =
            format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM pgsidecar.{table} t");
        let dump: String = store.query_one(&sql, &[]).await.unwrap().get(0);
        found.extend(leaks(&format!("store table {table}"), &dump));
    }

    proxy.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let logged = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("client pinned"),
        "the log was captured: {logged}"
    );
    found.extend(leaks("the log", &logged));
    assert!(found.is_empty(), "{found:#?}");
}
