//! The smaller gaps: the EXPLAIN fallback reason stored and shown, `/api/queries` rows
//! pointing to their latest plan, `SHOW QUERIES … BY … LIMIT`, the side pool's error
//! naming its database and cause, pool wait per shape, and float CPU seconds.

use std::time::Duration;

use serde_json::json;

use super::plans::{fingerprint_of, post, rows_of};
use crate::common::http::{one, Http};
use crate::common::{connect, direct, unique, Proxy};
use crate::slow::{eventually, plans_for, table};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_reason_and_latest_plan_are_shown() {
    let t = table("truthfallback", 100).await;
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 1000;
        c.admin_users = vec!["postgres".into()];
    })
    .await;
    let client = proxy.client().await;
    let http = Http::new(&proxy);
    let update = format!("UPDATE {t} SET v = v + 1 WHERE id = $1");
    client.execute(&update, &[&1i32]).await.unwrap();
    eventually("the update's plan", 20, || async {
        !plans_for(&http, &t).await.is_empty()
    })
    .await;
    let plan = plans_for(&http, &t).await[0].clone();
    assert_eq!(plan["analyzed"], false, "{plan}");
    let reason = plan["fallback_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!reason.is_empty(), "the fallback reason is kept: {plan}");
    // The console shows it too.
    let console = connect(&proxy.url("postgres", "pgsidecar")).await;
    let fp = plan["fingerprint"].as_str().unwrap();
    let shown = rows_of(&console, &format!("SHOW PLANS {fp}")).await;
    assert_eq!(shown[0]["fallback_reason"], reason, "{shown:?}");
    // /api/queries rows point to their latest plan; shapes without one say null.
    let (_, page) = http.json("/api/queries?window=all&limit=100").await;
    let rows = page["data"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["fingerprint"] == plan["fingerprint"])
        .expect("row");
    assert_eq!(row["latest_plan"]["id"], plan["id"], "{row}");
    assert_eq!(row["latest_plan"]["plan_hash"], plan["plan_hash"], "{row}");
    assert!(
        rows.iter().all(|r| r.get("latest_plan").is_some()),
        "{page}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_queries_sorts_and_limits() {
    let proxy = Proxy::with(|c| c.admin_users = vec!["postgres".into()]).await;
    let client = proxy.client().await;
    let (busy, slow) = (unique("truth_busy"), unique("truth_slow"));
    for _ in 0..5 {
        client
            .simple_query(&format!("SELECT 1 AS {busy}"))
            .await
            .unwrap();
    }
    client
        .simple_query(&format!("SELECT pg_sleep(0.05) AS {slow}"))
        .await
        .unwrap();
    let console = connect(&proxy.url("postgres", "pgsidecar")).await;
    let by_calls = rows_of(&console, "SHOW QUERIES 5m BY calls LIMIT 1").await;
    assert_eq!(by_calls.len(), 1, "{by_calls:?}");
    assert!(by_calls[0]["query"].contains(&busy), "{by_calls:?}");
    let by_p95 = rows_of(&console, "show queries 5m by p95 limit 1").await;
    assert!(by_p95[0]["query"].contains(&slow), "{by_p95:?}");
    let err = console
        .simple_query("SHOW QUERIES 5m BY slowest")
        .await
        .unwrap_err();
    assert_eq!(crate::common::sqlstate(&err), "42601");
    // Without a store there is no history to show, and it says so.
    let (status, body) = Http::new(&proxy).json("/api/history").await;
    assert_eq!(status, 503, "{body}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_side_pool_error_names_the_database_and_the_cause() {
    let db = unique("truth_gone");
    direct()
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 1000;
        c.explain_warning_interval = Duration::ZERO;
    })
    .await;
    let http = Http::new(&proxy);
    let client = connect(&proxy.url("postgres", &db)).await;
    let tag = unique("truth_gone_q");
    client
        .simple_query(&format!("SELECT 1 AS {tag}"))
        .await
        .unwrap();
    eventually("the slow event", 10, || async {
        http.json("/api/slow").await.1["data"]
            .to_string()
            .contains(&tag)
    })
    .await;
    let fp = fingerprint_of(&http, &tag).await;
    drop(client);
    direct()
        .await
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    let (status, body) = post(&http, "/api/plans/capture", json!({ "fingerprint": fp })).await;
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&db), "names the database: {error}");
    assert!(error.contains("does not exist"), "says why: {error}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_wait_is_told_apart_from_statement_time() {
    let proxy = Proxy::with(|c| c.pool_size = 1).await;
    let http = Http::new(&proxy);
    let holder = proxy.client().await;
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let waiter = proxy.client().await;
    // A shape of its own (column aliases do not make one).
    let tag = "pg_backend_pid()";
    let sql = format!("SELECT {tag}, 2");
    let waiting = tokio::spawn(async move { waiter.simple_query(&sql).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(400)).await;
    holder.batch_execute("COMMIT").await.unwrap();
    waiting.await.unwrap().unwrap();
    let (_, page) = http.json("/api/queries?window=all&limit=100").await;
    let rows = page["data"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["query"].as_str().unwrap_or_default().contains(tag))
        .unwrap_or_else(|| panic!("the waiter's row: {page}"));
    let wait = row["pool_wait_ms"].as_f64().unwrap();
    let total = row["total_ms"].as_f64().unwrap();
    assert!(wait >= 300.0 && wait <= total, "{row}");
    assert!(row["pool_wait_share"].as_f64().unwrap() > 0.9, "{row}");
    // The holder's own statements did not wait.
    let scrape = http.metrics().await;
    let pool = [("database", "postgres"), ("user", "postgres")];
    assert!(one(&scrape, "pgsidecar_pool_wait_seconds_count", &pool) >= 2.0);
    proxy.stop().await;
}

/// User plus system CPU seconds of this process, from /proc.
fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_cpu_seconds_are_not_whole_seconds() {
    let proxy = Proxy::with(|_| {}).await;
    let http = Http::new(&proxy);
    let before = own_cpu_seconds();
    let scrape = http.metrics().await;
    let after = own_cpu_seconds();
    let cpu = one(&scrape, "process_cpu_seconds_total", &[]);
    // The proxy runs in this process: the exported value lies between two readings
    // (a whole-second value would be up to 0.99 s below the first).
    assert!(
        cpu >= before - 0.011 && cpu <= after + 0.011,
        "{before} <= {cpu} <= {after}"
    );
    proxy.stop().await;
}
