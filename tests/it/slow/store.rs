//! The durable store behind slow statements: a plan survives a proxy restart, two
//! proxies on one store capture one plan between them, jobs are listed, and a store
//! that cannot be reached leaves the proxy serving in memory-only mode.

use serde_json::Value;

use super::{eventually, plans_for, table};
use crate::common::http::{one, Http};
use crate::common::Proxy;
use crate::store::TestDb;

/// A proxy storing into `db`, with every statement critical.
async fn stored_proxy(db: &TestDb) -> Proxy {
    let url = db.url.clone();
    let proxy = Proxy::with(|c| {
        c.store = true;
        c.store_url = Some(url);
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 0;
    })
    .await;
    let http = Http::new(&proxy);
    eventually("the store connected", 20, || async {
        one(&http.metrics().await, "pgsidecar_store_up", &[]) == 1.0
    })
    .await;
    proxy
}

async fn stored_plans(db: &TestDb, table: &str) -> i64 {
    let sql = "SELECT count(*) FROM pgsidecar.plans WHERE query LIKE '%' || $1 || '%'";
    db.client()
        .await
        .query_one(sql, &[&table])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_capture_one_plan_and_it_survives_a_restart() {
    let db = TestDb::create().await;
    let t = table("slowstore", 100).await;
    let (a, b) = (stored_proxy(&db).await, stored_proxy(&db).await);
    let sql = format!("SELECT v FROM {t} WHERE id = $1");
    for proxy in [&a, &b] {
        proxy.client().await.query(&sql, &[&7i32]).await.unwrap();
    }
    eventually("a stored plan", 20, || async {
        stored_plans(&db, &t).await >= 1
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(stored_plans(&db, &t).await, 1, "one plan for the fleet");
    let http = Http::new(&a);
    let (status, jobs) = http.json("/api/jobs?limit=100").await;
    assert_eq!(status, 200, "{jobs}");
    let explains: Vec<&Value> = (jobs["data"].as_array().unwrap().iter())
        .filter(|j| j["kind"] == "explain")
        .collect();
    assert!(explains.iter().any(|j| j["status"] == "done"), "{jobs}");
    a.stop().await;
    b.stop().await;
    let restarted = stored_proxy(&db).await;
    let plans = plans_for(&Http::new(&restarted), &t).await;
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0]["analyzed"], true);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_leaves_the_proxy_serving() {
    let proxy = Proxy::with(|c| {
        c.store = true;
        c.store_url = Some("postgres://postgres@127.0.0.1:1/nowhere".into());
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 0;
    })
    .await;
    let client = proxy.client().await;
    let rows = client.simple_query("SELECT 41 + 1").await.unwrap();
    assert!(!rows.is_empty());
    let http = Http::new(&proxy);
    assert_eq!(one(&http.metrics().await, "pgsidecar_store_up", &[]), 0.0);
    // Slow events are kept in memory instead.
    eventually("a slow event in memory", 10, || async {
        let (_, page) = http.json("/api/slow").await;
        !page["data"].as_array().unwrap().is_empty()
    })
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_out_as_jobs_and_statistics_are_flushed() {
    let db = TestDb::create().await;
    let hook = super::Receiver::start().await;
    let (url, hook_url) = (db.url.clone(), hook.url.clone());
    let proxy = Proxy::with(|c| {
        c.store = true;
        c.store_url = Some(url);
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 1;
        c.alert_webhook_url = Some(hook_url);
        c.stats_flush_interval = std::time::Duration::from_secs(1);
    })
    .await;
    let http = Http::new(&proxy);
    eventually("the store connected", 20, || async {
        one(&http.metrics().await, "pgsidecar_store_up", &[]) == 1.0
    })
    .await;
    let t = table("slowstore", 100).await;
    let sql = format!("SELECT count(*) FROM {t}");
    proxy.client().await.simple_query(&sql).await.unwrap();
    eventually("one webhook POST", 20, || async { hook.count() == 1 }).await;
    // The job is marked done once the POST has returned: a moment after it arrived.
    eventually("the webhook job done", 10, || async {
        let (_, jobs) = http.json("/api/jobs?status=done").await;
        jobs.to_string().contains("\"webhook\"")
    })
    .await;
    let (_, jobs) = http.json("/api/jobs?status=done").await;
    let kinds: Vec<&str> = (jobs["data"].as_array().unwrap().iter())
        .filter_map(|j| j["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"webhook"), "{jobs}");
    assert!(
        jobs["data"][0].get("payload").is_none(),
        "payloads are not shown"
    );
    let client = db.client().await;
    let flushed = "SELECT calls FROM pgsidecar.stats_snapshots WHERE query LIKE '%' || $1 || '%'";
    // Only completed minutes are flushed: the first one ends a minute after start.
    eventually("a statistics snapshot", 90, || async {
        !client.query(flushed, &[&t]).await.unwrap().is_empty()
    })
    .await;
    // Each minute once, with its exact count, however often the flush runs.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let rows = client.query(flushed, &[&t]).await.unwrap();
    let calls: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(calls, vec![1]);
    let stored_alerts: i64 = client
        .query_one("SELECT count(*) FROM pgsidecar.alerts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored_alerts, 1);
    proxy.stop().await;
}
