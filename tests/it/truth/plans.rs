//! A plan for every alert and warning-level shape, a capture on request (HTTP and
//! console) with the last sampled values, and a fresh plan after a fix.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_postgres::SimpleQueryMessage;

use crate::common::http::Http;
use crate::common::{connect, Proxy};
use crate::slow::{eventually, plans_for, table};

/// POSTs `body` to `path`, returning the status and the JSON answer.
pub async fn post(http: &Http, path: &str, body: Value) -> (u16, Value) {
    let response = http
        .client
        .post(format!("{}{path}", http.base))
        .json(&body)
        .send()
        .await
        .expect("admin answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

/// The fingerprint `/api/queries` lists for the statement mentioning `table`.
pub async fn fingerprint_of(http: &Http, table: &str) -> String {
    let (_, page) = http.json("/api/queries?window=all&limit=100").await;
    let rows = page["data"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r["query"].as_str().unwrap_or_default().contains(table))
        .unwrap_or_else(|| panic!("no row for {table}: {page}"));
    row["fingerprint"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warning_level_shapes_get_a_plan_at_their_own_rate() {
    let t = table("truthwarn", 100).await;
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 1000;
        c.explain_warning_interval = Duration::from_secs(3600);
    })
    .await;
    let client = proxy.client().await;
    let sql = format!("SELECT v FROM {t} WHERE id = $1");
    for id in 1..=5 {
        client.query(&sql, &[&id]).await.unwrap();
    }
    let http = Http::new(&proxy);
    eventually("a warning plan", 20, || async {
        !plans_for(&http, &t).await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let plans = plans_for(&http, &t).await;
    assert_eq!(plans.len(), 1, "one per interval: {plans:?}");
    assert_eq!(plans[0]["reason"], "warning", "{:?}", plans[0]);
    assert!(plans[0]["age_s"].as_u64().is_some(), "{:?}", plans[0]);
    assert!(plans[0]["p50_ms"].as_f64().is_some(), "{:?}", plans[0]);
    assert!(plans[0]["p50_ms_now"].as_f64().is_some(), "{:?}", plans[0]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_captures_a_plan_when_warnings_alone_would_not() {
    let t = table("truthalert", 100).await;
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 3;
        c.explain_warning_interval = Duration::ZERO;
    })
    .await;
    let client = proxy.client().await;
    let http = Http::new(&proxy);
    let sql = format!("SELECT v FROM {t} WHERE id = $1");
    for id in 1..=2 {
        client.query(&sql, &[&id]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        plans_for(&http, &t).await.is_empty(),
        "no capture before the alert"
    );
    client.query(&sql, &[&3]).await.unwrap();
    eventually("the alert's plan", 20, || async {
        !plans_for(&http, &t).await.is_empty()
    })
    .await;
    let plans = plans_for(&http, &t).await;
    assert_eq!(plans[0]["reason"], "alert", "{:?}", plans[0]);
    assert_eq!(plans[0]["analyzed"], true, "{:?}", plans[0]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_on_request_uses_the_last_sampled_values() {
    let t = table("truthmanual", 100).await;
    let proxy = Proxy::with(|c| {
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 1000;
        c.explain_warning_interval = Duration::ZERO;
        c.explain_store_params = true;
        c.admin_users = vec!["postgres".into()];
    })
    .await;
    let client = proxy.client().await;
    let http = Http::new(&proxy);
    client
        .query(&format!("SELECT v FROM {t} WHERE id = $1"), &[&42i32])
        .await
        .unwrap();
    let fp = fingerprint_of(&http, &t).await;
    // The worker has the sample once the slow event is listed.
    eventually("the slow event", 10, || async {
        let (_, page) = http.json("/api/slow").await;
        page["data"].to_string().contains(&t)
    })
    .await;
    let (status, body) = post(&http, "/api/plans/capture", json!({ "fingerprint": fp })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["reason"], "manual", "{body}");
    // tokio-postgres binds an int4 in binary: 42 is 0x0000002a.
    assert_eq!(
        body["data"]["params"],
        json!(["\\x0000002a"]),
        "the last sampled value: {body}"
    );
    assert!(
        body["data"]["plan"].to_string().contains("(id = 42)"),
        "{body}"
    );
    assert_eq!(body["data"]["fingerprint"], fp.as_str());
    // Unknown shapes and bad bodies are told apart.
    let (status, body) = post(
        &http,
        "/api/plans/capture",
        json!({ "fingerprint": "00000000000000aa" }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no sampled execution"),
        "{body}"
    );
    let (status, _) = post(&http, "/api/plans/capture", json!({ "fingerprint": "xyz" })).await;
    assert_eq!(status, 400);
    // The console: EXPLAIN FINGERPRINT, then SHOW PLANS <fp> lists both captures.
    let console = connect(&proxy.url("postgres", "pgsidecar")).await;
    let rows = rows(&console, &format!("EXPLAIN FINGERPRINT {fp}")).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["plan"].contains("Scan"), "{rows:?}");
    assert_eq!(rows[0]["fingerprint"], fp);
    let plans = rows_of(&console, &format!("SHOW PLANS {fp}")).await;
    assert_eq!(plans.len(), 2, "{plans:?}");
    assert!(plans.iter().all(|p| p["reason"] == "manual"), "{plans:?}");
    let err = console
        .simple_query("EXPLAIN FINGERPRINT 00000000000000aa")
        .await
        .unwrap_err();
    assert_eq!(crate::common::sqlstate(&err), "55000");
    proxy.stop().await;
}

type Row = std::collections::HashMap<String, String>;

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Row> {
    rows_of(client, sql).await
}

/// The rows of a console command as column → text.
pub async fn rows_of(client: &tokio_postgres::Client, sql: &str) -> Vec<Row> {
    let messages = client.simple_query(sql).await.expect(sql);
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (r.columns().iter().enumerate())
                    .map(|(i, c)| (c.name().to_string(), r.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_that_moves_the_p50_gets_a_fresh_plan_and_a_plan_change() {
    let t = crate::common::unique("truthfix");
    let setup = format!(
        "CREATE TABLE {t} (id int, v int);
         INSERT INTO {t} SELECT g, g % 1000 FROM generate_series(1, 300000) g; ANALYZE {t}"
    );
    crate::common::direct()
        .await
        .batch_execute(&setup)
        .await
        .unwrap();
    let proxy = Proxy::with(|c| {
        // Every execution is a warning (sampled), none captures by itself: the first
        // plan is asked for, the second can only come from the latency shift.
        c.slow_warning_ms = 0;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 1000;
        c.explain_warning_interval = Duration::ZERO;
        c.explain_interval = Duration::from_secs(1);
    })
    .await;
    let client = proxy.client().await;
    let http = Http::new(&proxy);
    let sql = format!("SELECT count(*) FROM {t} WHERE id = $1");
    for id in 1..=3 {
        client.query(&sql, &[&id]).await.unwrap();
    }
    eventually("the slow events", 10, || async {
        let (_, page) = http.json("/api/slow").await;
        page["data"].to_string().contains(&t)
    })
    .await;
    let fp = fingerprint_of(&http, &t).await;
    let (status, body) = post(&http, "/api/plans/capture", json!({ "fingerprint": fp })).await;
    assert_eq!(status, 200, "{body}");
    let first = plans_for(&http, &t).await[0].clone();
    assert!(first["plan"].to_string().contains("Seq Scan"), "{first}");
    assert_eq!(first["reason"], "manual", "{first}");
    // The fix: an index. Fast executions move the 5-minute p50 far below the first
    // plan's; the worker captures again and records the change.
    crate::common::direct()
        .await
        .batch_execute(&format!("CREATE INDEX ON {t} (id); ANALYZE {t}"))
        .await
        .unwrap();
    for id in 1..=200 {
        client.query(&sql, &[&id]).await.unwrap();
    }
    eventually("a plan change after the fix", 30, || async {
        let (_, page) = http.json("/api/plan_changes?limit=100").await;
        let rows = page["data"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .any(|c| c["fingerprint"] == first["fingerprint"])
    })
    .await;
    let (_, page) = http
        .json(&format!(
            "/api/plan_changes?fingerprint={}",
            first["fingerprint"].as_str().unwrap()
        ))
        .await;
    let change = &page["data"][0];
    assert_eq!(change["old_hash"], first["plan_hash"], "{change}");
    assert_eq!(change["reason"], "latency", "{change}");
    let old = change["old_p50_ms"].as_f64().unwrap();
    let new = change["new_p50_ms"].as_f64().unwrap();
    assert!(new * 2.0 < old, "the p50 moved: {change}");
    let latest = plans_for(&http, &t).await[0].clone();
    assert!(latest["plan"].to_string().contains("Index"), "{latest}");
    proxy.stop().await;
}
