//! Slow statements end to end: alerts to a webhook with the streak and the cooldown,
//! EXPLAIN captures with the client's real values and no second side effect, and the
//! durable store (across a restart, shared by two proxies, unreachable).

mod capture;
mod outage;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Json;
use serde_json::Value;

use crate::common::http::{one, Http};
use crate::common::Proxy;

/// A local HTTP endpoint that keeps every JSON body POSTed to it.
pub struct Receiver {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |Json(body): Json<Value>| async move {
                kept.lock().unwrap().push(body);
                "ok"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, bodies }
    }

    pub fn count(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

/// A table `id` 1..=`rows` with `v = id`, analyzed, made without the proxy.
pub async fn table(prefix: &str, rows: u32) -> String {
    let name = crate::common::unique(prefix);
    let sql = format!(
        "CREATE TABLE {name} (id int PRIMARY KEY, v int);
         INSERT INTO {name} SELECT g, g FROM generate_series(1, {rows}) g; ANALYZE {name}"
    );
    crate::common::direct()
        .await
        .batch_execute(&sql)
        .await
        .unwrap();
    name
}

/// The captured plans (`/api/plans`) whose query mentions `table`.
pub async fn plans_for(http: &Http, table: &str) -> Vec<Value> {
    let (status, page) = http.json("/api/plans?limit=100").await;
    assert_eq!(status, 200, "{page}");
    let rows = page["data"].as_array().cloned().unwrap_or_default();
    rows.into_iter()
        .filter(|p| p["query"].as_str().unwrap_or_default().contains(table))
        .collect()
}

/// Polls `check` every 50 ms until it holds, failing after `secs` seconds.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_slow_in_a_row_fire_one_alert_and_the_cooldown_suppresses_the_next() {
    let hook = Receiver::start().await;
    let url = hook.url.clone();
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 500;
        c.slow_critical_ms = 60_000;
        c.alert_webhook_url = Some(url);
    })
    .await;
    let client = proxy.client().await;
    let http = Http::new(&proxy);
    // A fast execution of the same shape breaks the streak: 2 slow, 1 fast, 2 slow.
    for secs in ["0.6", "0.6", "0.01", "0.6", "0.6"] {
        client
            .simple_query(&format!("SELECT pg_sleep({secs})"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.count(), 0, "no alert without 3 slow in a row");
    client.simple_query("SELECT pg_sleep(0.6)").await.unwrap();
    eventually("one webhook POST", 10, || async { hook.count() == 1 }).await;
    let body = hook.bodies.lock().unwrap()[0].clone();
    assert!(
        body["text"].as_str().unwrap().contains("pg_sleep"),
        "{body}"
    );
    assert_eq!(body["labels"]["severity"], "warning", "{body}");
    assert_eq!(body["annotations"]["consecutive"], 3, "{body}");
    assert_eq!(body["labels"]["fingerprint"].as_str().unwrap().len(), 16);
    // A fourth within the cooldown: suppressed and counted, not posted.
    client.simple_query("SELECT pg_sleep(0.6)").await.unwrap();
    eventually("the suppressed alert counted", 10, || async {
        one(
            &http.metrics().await,
            "pgsidecar_alerts_suppressed_total",
            &[],
        ) == 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.count(), 1);
    let m = http.metrics().await;
    assert_eq!(one(&m, "pgsidecar_alerts_total", &[]), 1.0);
    let warnings = [("level", "warning")];
    assert_eq!(one(&m, "pgsidecar_slow_queries_total", &warnings), 6.0);
    let (status, alerts) = http.json("/api/alerts").await;
    assert_eq!(status, 200, "{alerts}");
    assert_eq!(alerts["data"].as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(alerts["data"][0]["consecutive"], 3);
    // Six slow events, newest first, paged two at a time with signed cursors.
    let mut seen = Vec::new();
    let mut path = "/api/slow?limit=2".to_string();
    loop {
        let (status, page) = http.json(&path).await;
        assert_eq!(status, 200, "{page}");
        for event in page["data"].as_array().unwrap() {
            assert!(event["duration_ms"].as_f64().unwrap() >= 500.0, "{event}");
            seen.push(event["id"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/slow?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    http.rejects("/api/slow?cursor=forged.cursor", "invalid cursor")
        .await;
    proxy.stop().await;
}
