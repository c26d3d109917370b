//! What the web console reads: the page itself (public, with its security headers),
//! `/api/status`, the compact `/api/queries/table` (server-side sort, order, filters,
//! search, slices over a frozen snapshot, bad parameters), one fingerprint's latency
//! histogram, the SHOW lists and the minute history.

use serde_json::Value as Json;

use super::{drop_table, proxy_with, settle, table};
use crate::common::http::Http;

const TOKEN: &str = "console-api-token";

fn column(page: &Json, name: &str) -> usize {
    let columns = page["columns"].as_array().expect("columns");
    columns.iter().position(|c| c == name).expect(name)
}

/// The `name` cell of every row.
fn cells(page: &Json, name: &str) -> Vec<Json> {
    let i = column(page, name);
    let rows = page["rows"].as_array().expect("rows");
    rows.iter().map(|r| r[i].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_public_and_its_data_needs_the_token() {
    let proxy = proxy_with(|c| c.admin_token = Some(TOKEN.into())).await;
    let open = Http::new(&proxy);
    let response = (open.client.get(format!("{}/ui", open.base)).send().await).expect("ui");
    assert_eq!(response.status(), 200);
    assert!(response.url().path() == "/ui/", "{}", response.url());
    let headers = response.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let body = response.text().await.unwrap();
    assert!(body.contains("app.js") && body.contains("login"), "{body}");
    let (status, js) = open.text("/ui/table.js").await;
    assert!(
        status == 200 && js.contains("class VirtualTable"),
        "{status}"
    );
    let (status, missing) = open.json("/ui/nope.js").await;
    assert_eq!(status, 404, "{missing}");
    let (status, _) = open.json("/api/status").await;
    assert_eq!(status, 401);
    let (status, st) = Http::with_token(&proxy, TOKEN).json("/api/status").await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(
        (st["store"].as_str(), st["stats"].as_bool()),
        (Some("off"), Some(true))
    );
    assert_eq!(st["memory_keeps"], 1000);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_table_histogram_lists_and_history() {
    let proxy = proxy_with(|_| {}).await;
    let http = Http::new(&proxy);
    let t = table().await;
    let client = proxy.client().await;
    let statements = [
        (format!("SELECT a FROM {t} WHERE a = 1"), 5),
        (format!("SELECT count(*) FROM {t}"), 3),
        (format!("UPDATE {t} SET a = a WHERE a = 0"), 1),
    ];
    for (sql, n) in &statements {
        for _ in 0..*n {
            client.simple_query(sql).await.expect(sql);
        }
    }
    for _ in 0..2 {
        assert!(client
            .simple_query(&format!("SELECT 1/0 FROM {t}"))
            .await
            .is_err());
    }
    settle().await;

    let base = format!("/api/queries/table?table={t}");
    let (status, page) = http.json(&format!("{base}&sort=calls")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 4, "{page}");
    let calls: Vec<u64> = cells(&page, "calls")
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(calls, vec![5, 3, 2, 1]);
    assert_eq!(cells(&page, "errors")[2], 2);
    assert!(page["facets"]["table"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == &t));
    let (_, asc) = http.json(&format!("{base}&sort=calls&order=asc")).await;
    assert_eq!(cells(&asc, "calls")[0], 1);
    let (_, found) = http.json(&format!("{base}&q=COUNT(*)")).await;
    assert_eq!(
        (found["total"].as_u64(), cells(&found, "calls")[0].as_u64()),
        (Some(1), Some(3))
    );
    let (_, updates) = http.json(&format!("{base}&command=update")).await;
    assert_eq!(updates["total"], 1, "{updates}");
    // A slice through the same snapshot is the same row as in the whole listing.
    let token = page["snapshot"].as_str().unwrap();
    let path = format!("{base}&sort=calls&offset=2&limit=1&snapshot={token}");
    let (_, slice) = http.json(&path).await;
    assert_eq!(
        (slice["offset"].as_u64(), slice["snapshot"].as_str()),
        (Some(2), Some(token))
    );
    assert_eq!(slice["rows"][0], page["rows"][2]);
    http.rejects(
        &format!("{base}&sort=calls&snapshot={token}x"),
        "invalid cursor",
    )
    .await;
    http.rejects(
        &format!("{base}&sort=p95_ms&snapshot={token}"),
        "invalid cursor",
    )
    .await;
    http.rejects("/api/queries/table?sort=fingerprint", "unknown sort")
        .await;
    http.rejects("/api/queries/table?order=up", "invalid order")
        .await;
    http.rejects("/api/queries/table?limit=1001", "invalid limit")
        .await;
    http.rejects("/api/queries/table?colour=red", "unknown parameter")
        .await;

    // The histogram of the 5-call statement holds its 5 calls.
    let fp = cells(&page, "fingerprint")[0].as_str().unwrap().to_string();
    let (status, hist) = http
        .json(&format!("/api/queries/{fp}/histogram?window=5m"))
        .await;
    assert_eq!(status, 200, "{hist}");
    let buckets = hist["buckets"].as_array().unwrap();
    let sum: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!((hist["total"].as_u64(), sum), (Some(5), 5));
    assert_eq!(buckets.last().unwrap()["le_ms"], "+Inf");
    http.rejects(
        &format!("/api/queries/{fp}/histogram?window=2h"),
        "invalid window",
    )
    .await;
    let (status, _) = http.json("/api/queries/00000000000000ff/histogram").await;
    assert_eq!(status, 404);

    // SHOW lists: the pool and this client.
    let (_, pools) = http.json("/api/show/pools").await;
    assert_eq!(pools["columns"][0], "database");
    assert!(
        pools["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == "postgres"),
        "{pools}"
    );
    let (_, clients) = http.json("/api/show/clients").await;
    assert!(clients["total"].as_u64() >= Some(1), "{clients}");
    let (status, _) = http.json("/api/show/nothing").await;
    assert_eq!(status, 404);
    http.rejects("/api/show/clients?limit=0", "invalid limit")
        .await;

    // History: no minute has completed yet; the shapes are there.
    let (_, history) = http.json("/api/minutes").await;
    assert!(
        history["points"].is_array() && history["cache_hit_ratio"].is_null(),
        "{history}"
    );
    assert_eq!(history["interval_s"], 60);
    let (_, series) = http.json(&format!("/api/minutes/{fp}")).await;
    assert_eq!(series["fingerprint"], fp.as_str());
    assert!(series["series"].is_array(), "{series}");
    drop_table(&t).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_when_the_store_is_down() {
    let proxy = proxy_with(|c| {
        c.store = true;
        c.store_url = Some("postgres://postgres@127.0.0.1:1/nowhere".into());
    })
    .await;
    let (status, st) = Http::new(&proxy).json("/api/status").await;
    assert_eq!(status, 200, "{st}");
    // The page then says it shows the last `memory_keeps` events from memory.
    assert_eq!(
        (st["store"].as_str(), st["memory_keeps"].as_u64()),
        (Some("down"), Some(1000))
    );
    proxy.stop().await;
}
