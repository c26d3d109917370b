//! The JSON API: `/api/queries` shapes, sorting, filters and windows; one fingerprint
//! in every window; cursor paging that stays stable while statements run; tampered
//! cursors; `/api/pools`; the bearer token.

use std::collections::HashSet;

use serde_json::Value as Json;
use tokio_postgres::Client;

use super::{drop_table, find, proxy_with, settle, table};
use crate::common::http::Http;

fn rows(page: &Json) -> &Vec<Json> {
    page["data"].as_array().expect("data array")
}

fn calls(row: &Json) -> u64 {
    row["calls"].as_u64().expect("calls")
}

/// Runs `sql` `n` times over the simple protocol.
async fn run(client: &Client, sql: &str, n: usize) {
    for _ in 0..n {
        client.simple_query(sql).await.expect(sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_shapes_sort_filters_and_windows() {
    let proxy = proxy_with(|_| {}).await;
    let client = proxy.client().await;
    let t = table().await;
    run(&client, &format!("SELECT a FROM {t} WHERE a = 2"), 5).await;
    run(&client, &format!("SELECT count(*) FROM {t}"), 2).await;
    for i in 0..3 {
        let insert = format!("INSERT INTO {t} VALUES ($1)");
        client.execute(&insert, &[&i]).await.expect("insert");
    }
    settle().await;
    let http = Http::new(&proxy);
    let (status, page) = http
        .json(&format!("/api/queries?table={t}&window=all&sort=calls"))
        .await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<u64> = rows(&page).iter().map(calls).collect();
    assert_eq!(listed, vec![5, 3, 2], "{page:#}");
    assert_eq!(
        (page["has_more"].as_bool(), page["next_cursor"].is_null()),
        (Some(false), true)
    );
    let select = find(&page, "WHERE a = $1")[0];
    for field in [
        "fingerprint",
        "query",
        "command",
        "database",
        "user",
        "tables",
    ] {
        assert!(!select[field].is_null(), "{field} in {select}");
    }
    for field in [
        "calls", "errors", "rows", "total_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms",
    ] {
        assert!(select[field].is_number(), "{field} in {select}");
    }
    assert_eq!(select["command"], "SELECT");
    assert_eq!(select["database"], "postgres");
    assert_eq!(select["rows"], 5);
    assert!(select["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .any(|x| x == t.as_str()));
    assert!(select["p50_ms"].as_f64() <= select["p99_ms"].as_f64());
    for (filter, n) in [
        ("command=insert", 1),
        ("command=SELECT", 2),
        ("database=nope", 0),
        ("window=1m&user=postgres", 3),
        ("user=nobody", 0),
    ] {
        let (_, page) = http.json(&format!("/api/queries?table={t}&{filter}")).await;
        assert_eq!(rows(&page).len(), n, "{filter}: {page:#}");
    }
    let (_, page) = http.json(&format!("/api/queries?table=public.{t}")).await;
    assert!(rows(&page).is_empty(), "written unqualified: {page:#}");
    let (_, by_total) = http.json(&format!("/api/queries?table={t}")).await;
    let totals: Vec<f64> = rows(&by_total)
        .iter()
        .map(|r| r["total_ms"].as_f64().unwrap_or(-1.0))
        .collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    http.rejects("/api/queries?window=2h", "invalid window")
        .await;
    http.rejects("/api/queries?sort=slowest", "unknown sort")
        .await;
    http.rejects("/api/queries?limit=0", "invalid limit").await;
    http.rejects("/api/queries?limit=101", "invalid limit")
        .await;
    http.rejects("/api/queries?colour=red", "unknown parameter")
        .await;
    drop_table(&t).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fingerprint_in_every_window() {
    let proxy = proxy_with(|_| {}).await;
    let client = proxy.client().await;
    let t = table().await;
    run(&client, &format!("SELECT a FROM {t} WHERE a < 3"), 4).await;
    settle().await;
    let http = Http::new(&proxy);
    let (_, page) = http
        .json(&format!("/api/queries?table={t}&window=all"))
        .await;
    let fingerprint = find(&page, "WHERE a < $1")[0]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    let (status, detail) = http.json(&format!("/api/queries/{fingerprint}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["fingerprint"], fingerprint.as_str());
    assert!(detail["query"].as_str().unwrap_or_default().contains(&t));
    assert!(detail["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .any(|x| x == t.as_str()));
    assert!(
        detail["first_seen"].is_string() && detail["last_seen"].is_string(),
        "{detail}"
    );
    let entry = &detail["entries"][0];
    assert_eq!(
        (entry["database"].as_str(), entry["user"].as_str()),
        (Some("postgres"), Some("postgres"))
    );
    for window in ["1m", "5m", "1h", "24h", "all"] {
        assert_eq!(entry["windows"][window]["calls"], 4, "{window}: {detail:#}");
        assert!(entry["windows"][window]["p99_ms"].is_number());
    }
    let upper = fingerprint.to_uppercase();
    assert_eq!(http.json(&format!("/api/queries/{upper}")).await.0, 200);
    let (status, body) = http
        .json(&format!("/api/queries/{fingerprint}?database=nope"))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = http.json("/api/queries/0000000000000000").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("0000000000000000"));
    http.rejects("/api/queries/not-a-fingerprint", "malformed fingerprint")
        .await;
    http.rejects("/api/queries/123", "malformed fingerprint")
        .await;
    drop_table(&t).await;
    proxy.stop().await;
}

/// Shape `i`: a sum of `i` terms (a longer select list would not do: fingerprints
/// ignore repeated target list entries).
fn shape(t: &str, i: usize) -> String {
    format!("SELECT {} FROM {t}", vec!["a"; i].join(" + "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_while_statements_run() {
    let proxy = proxy_with(|_| {}).await;
    let client = proxy.client().await;
    let t = table().await;
    for i in 1..=30 {
        run(&client, &shape(&t, i), i % 4 + 1).await;
    }
    settle().await;
    let http = Http::new(&proxy);
    let first = format!("/api/queries?table={t}&window=all&sort=calls&limit=10");
    let mut path = first.clone();
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut next = 31;
    let mut cursors = Vec::new();
    loop {
        let (status, page) = http.json(&path).await;
        assert_eq!(status, 200, "{page}");
        assert!(rows(&page).len() <= 10);
        for row in rows(&page) {
            seen.push((
                row["fingerprint"].as_str().expect("fp").to_string(),
                calls(row),
            ));
        }
        if page["has_more"] != true {
            assert!(page["next_cursor"].is_null());
            break;
        }
        // New shapes, and more calls to shapes already listed, between pages.
        run(&client, &shape(&t, next), 9).await;
        run(&client, &shape(&t, 1), 9).await;
        next += 1;
        let cursor = page["next_cursor"].as_str().expect("cursor").to_string();
        path = format!("{first}&cursor={cursor}");
        cursors.push(cursor);
    }
    let unique: HashSet<&String> = seen.iter().map(|(fp, _)| fp).collect();
    assert_eq!(unique.len(), seen.len(), "no row twice: {seen:?}");
    assert_eq!(
        seen.len(),
        30,
        "every shape of the first page's listing, no later one"
    );
    assert!(
        seen.windows(2).all(|w| w[0].1 >= w[1].1),
        "sorted by calls: {seen:?}"
    );
    assert!(cursors.len() >= 2);
    // A fresh listing shows what arrived meanwhile.
    let (_, fresh) = http
        .json(&format!("/api/queries?table={t}&window=all&limit=100"))
        .await;
    assert_eq!(rows(&fresh).len(), 30 + cursors.len());
    // Tampered, garbage, and borrowed by other parameters.
    let cursor = &cursors[0];
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    http.rejects(&format!("{first}&cursor={tampered}"), "invalid cursor")
        .await;
    http.rejects(&format!("{first}&cursor=garbage"), "invalid cursor")
        .await;
    let other = format!("/api/queries?table={t}&window=all&sort=p99&cursor={cursor}");
    http.rejects(&other, "invalid cursor").await;
    http.rejects(&format!("/api/pools?cursor={cursor}"), "invalid cursor")
        .await;
    drop_table(&t).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_listed_and_paged() {
    let proxy = proxy_with(|_| {}).await;
    let client = proxy.client().await;
    client.simple_query("SELECT 1").await.expect("select");
    let other = crate::common::connect(&proxy.url("postgres", "template1")).await;
    other.simple_query("SELECT 1").await.expect("select");
    settle().await;
    let http = Http::new(&proxy);
    let (status, page) = http.json("/api/pools").await;
    assert_eq!(status, 200, "{page}");
    let pool = rows(&page)
        .iter()
        .find(|p| p["database"] == "postgres")
        .expect("pool");
    assert_eq!(
        (pool["user"].as_str(), pool["mode"].as_str()),
        (Some("postgres"), Some("transaction"))
    );
    assert_eq!(pool["pool_size"], 4);
    assert_eq!(pool["paused"], false);
    let clients: u64 = ["clients_active", "clients_waiting", "clients_idle"]
        .iter()
        .map(|f| pool[f].as_u64().expect("client count"))
        .sum();
    assert_eq!(clients, 1, "{pool}");
    assert!(pool["checkouts"].as_u64() >= Some(1), "{pool}");
    for field in [
        "servers_active",
        "servers_idle",
        "servers_login",
        "servers_testing",
        "clients_active",
        "clients_waiting",
        "checkout_timeouts",
        "avg_wait_ms",
        "max_wait_ms",
    ] {
        assert!(pool[field].is_number(), "{field} in {pool}");
    }
    let (_, first) = http.json("/api/pools?limit=1").await;
    assert_eq!(
        (rows(&first).len(), first["has_more"].as_bool()),
        (1, Some(true))
    );
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let (_, second) = http
        .json(&format!("/api/pools?limit=1&cursor={cursor}"))
        .await;
    assert_ne!(rows(&first)[0]["database"], rows(&second)[0]["database"]);
    let (_, only) = http.json("/api/pools?database=template1").await;
    assert_eq!(rows(&only).len(), 1);
    http.rejects(
        &format!("/api/pools?database=postgres&cursor={cursor}"),
        "invalid cursor",
    )
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_the_api_and_optionally_metrics() {
    let proxy = proxy_with(|c| c.admin_token = Some("s3cret".into())).await;
    let open = Http::new(&proxy);
    for path in [
        "/api/queries",
        "/api/pools",
        "/api/queries/0000000000000000",
        "/api",
    ] {
        let (status, body) = open.json(path).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("Bearer"),
            "{body}"
        );
    }
    assert_eq!(
        Http::with_token(&proxy, "wrong").json("/api/pools").await.0,
        401
    );
    let with = Http::with_token(&proxy, "s3cret");
    assert_eq!(with.json("/api/queries").await.0, 200);
    assert_eq!(with.json("/api/pools").await.0, 200);
    assert_eq!(open.text("/metrics").await.0, 200);
    assert_eq!(open.json("/healthz").await.0, 200);
    proxy.stop().await;

    let proxy = proxy_with(|c| {
        c.admin_token = Some("s3cret".into());
        c.protect_metrics = true;
    })
    .await;
    let (status, _) = Http::new(&proxy).text("/metrics").await;
    assert_eq!(status, 401);
    assert_eq!(
        Http::with_token(&proxy, "s3cret").text("/metrics").await.0,
        200
    );
    assert_eq!(Http::new(&proxy).json("/readyz").await.0, 200);
    proxy.stop().await;
}
