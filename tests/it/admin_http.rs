//! The admin HTTP server: probes, `/metrics` in Prometheus text format, the JSON API
//! over pools and statement statistics (shapes, sorting, filters, windows, stable
//! cursor paging, tampered cursors) and the bearer token. The JSON API tests are in
//! `admin_http/api.rs`.

use std::collections::HashSet;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde_json::Value as Json;

use crate::common::http::{one, samples, scrape, value, Http};
use crate::common::{direct, unique, Proxy};

/// A proxy with its admin server on a free port, adjusted by `f`.
async fn proxy_with(f: impl FnOnce(&mut pgsidecar::Config)) -> Proxy {
    Proxy::with(|c| {
        c.admin_listen = "127.0.0.1:0".into();
        f(c);
    })
    .await
}

/// A table with three rows, named uniquely, made without the proxy (so that the
/// statements listed for it are only the test's).
async fn table() -> String {
    let name = unique("adm");
    let sql = format!("CREATE TABLE {name} (a int); INSERT INTO {name} VALUES (1), (2), (3)");
    direct()
        .await
        .batch_execute(&sql)
        .await
        .expect("create table");
    name
}

async fn drop_table(name: &str) {
    let _ = direct()
        .await
        .batch_execute(&format!("DROP TABLE {name}"))
        .await;
}

/// Statistics are recorded as responses pass; give the relay a moment.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The listing rows of a `/api/queries` answer, by normalized text fragment.
fn find<'a>(page: &'a Json, needle: &str) -> Vec<&'a Json> {
    let rows = page["data"].as_array().expect("data array");
    rows.iter()
        .filter(|r| r["query"].as_str().unwrap_or_default().contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_unknown_paths() {
    let proxy = proxy_with(|_| {}).await;
    let http = Http::new(&proxy);
    assert_eq!(
        http.json("/healthz").await,
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, body) = http.json("/readyz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ready")),
        "{body}"
    );
    let (status, body) = http.json("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("/nowhere"));
    let url = format!("{}/healthz", http.base);
    let response = http.client.post(url).send().await.expect("answer");
    assert_eq!(response.status().as_u16(), 405);
    let body: Json = response.json().await.expect("json error");
    assert!(body["error"].is_string(), "{body}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_upstream_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let proxy =
        proxy_with(|c| c.upstream = format!("postgres://postgres@127.0.0.1:{port}/postgres")).await;
    let http = Http::new(&proxy);
    let (status, body) = http.json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not ready") && error.contains(&port.to_string()),
        "{error}"
    );
    assert_eq!(http.json("/healthz").await.0, 200);
    proxy.stop().await;
}

const FAMILIES: [&str; 19] = [
    "pgsidecar_query_duration_seconds",
    "pgsidecar_query_info",
    "pgsidecar_queries_total",
    "pgsidecar_query_rows_total",
    "pgsidecar_fingerprints_tracked",
    "pgsidecar_fingerprints_evicted_total",
    "pgsidecar_pool_connections",
    "pgsidecar_pool_clients",
    "pgsidecar_pool_wait_seconds",
    "pgsidecar_pool_checkouts_total",
    "pgsidecar_pool_checkout_timeouts_total",
    "pgsidecar_client_connections_total",
    "pgsidecar_pinned_clients_total",
    "pgsidecar_server_connect_errors_total",
    "pgsidecar_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "pgsidecar_pool_size",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_carry_every_family() {
    let proxy = proxy_with(|_| {}).await;
    let client = proxy.client().await;
    let t = table().await;
    let count = format!("SELECT count(*) FROM {t} WHERE a > $1");
    for i in 0..7 {
        client.query_one(&count, &[&i]).await.expect("count");
    }
    let fails = client.simple_query(&format!("SELECT a / 0 FROM {t}")).await;
    assert!(fails.is_err());
    settle().await;
    let http = Http::new(&proxy);
    let (_, page) = http
        .json(&format!("/api/queries?table={t}&window=all"))
        .await;
    let fingerprint = find(&page, "count(*)")[0]["fingerprint"].clone();
    let (status, text) = http.text("/metrics").await;
    assert_eq!(status, 200);
    let m = scrape(&text);
    for family in FAMILIES {
        let found = m.samples.iter().any(|s| s.metric == family);
        assert!(found, "{family} missing:\n{text}");
    }
    statement_families(&m, fingerprint.as_str().expect("fingerprint"), &t);
    pool_and_process_families(&m);
    drop_table(&t).await;
    proxy.stop().await;
}

/// Seven counts of one shape on `t`, and one failed SELECT.
fn statement_families(m: &Scrape, fingerprint: &str, t: &str) {
    let [ok, error] = ["ok", "error"].map(|outcome| {
        let labels = [
            ("database", "postgres"),
            ("command", "SELECT"),
            ("outcome", outcome),
        ];
        one(m, "pgsidecar_queries_total", &labels)
    });
    assert!(ok >= 7.0 && error >= 1.0, "ok {ok}, error {error}");
    let select = [("database", "postgres"), ("command", "SELECT")];
    assert!(one(m, "pgsidecar_query_rows_total", &select) >= 7.0);
    let fp = [("fingerprint", fingerprint)];
    assert_eq!(one(m, "pgsidecar_query_duration_seconds_count", &fp), 7.0);
    assert!(one(m, "pgsidecar_query_duration_seconds_sum", &fp) > 0.0);
    let hist = samples(m, "pgsidecar_query_duration_seconds", &fp);
    let Value::Histogram(buckets) = &hist[0].value else {
        panic!("{hist:?}")
    };
    let ascending = buckets.windows(2).all(|w| w[0].count <= w[1].count);
    assert!(ascending, "{buckets:?}");
    let last = buckets.last().map(|b| (b.less_than, b.count));
    assert_eq!(last, Some((f64::INFINITY, 7.0)));
    let info = samples(m, "pgsidecar_query_info", &fp);
    let text = info[0].labels.get("query").unwrap_or_default();
    assert!(text.contains(t), "{info:?}");
    assert!(one(m, "pgsidecar_fingerprints_tracked", &[]) >= 2.0);
}

fn pool_and_process_families(m: &Scrape) {
    let pool = [("database", "postgres"), ("user", "postgres")];
    let state = |state| [pool[0], pool[1], ("state", state)];
    for s in ["active", "idle", "testing", "login"] {
        one(m, "pgsidecar_pool_connections", &state(s));
    }
    for s in ["active", "waiting"] {
        one(m, "pgsidecar_pool_clients", &state(s));
    }
    assert!(one(m, "pgsidecar_pool_clients", &state("idle")) >= 1.0);
    assert!(one(m, "pgsidecar_pool_checkouts_total", &pool) >= 8.0);
    assert!(one(m, "pgsidecar_pool_wait_seconds_count", &pool) >= 8.0);
    let timeouts = one(m, "pgsidecar_pool_checkout_timeouts_total", &pool);
    assert_eq!(timeouts, 0.0);
    assert_eq!(one(m, "pgsidecar_server_connect_errors_total", &pool), 0.0);
    // Plain servers here: no TLS logins, no channel binding.
    assert_eq!(one(m, "pgsidecar_server_tls_logins_total", &pool), 0.0);
    assert_eq!(
        one(m, "pgsidecar_server_channel_bound_logins_total", &pool),
        0.0
    );
    assert!(one(m, "pgsidecar_client_connections_total", &[]) >= 1.0);
    let pinned = samples(m, "pgsidecar_pinned_clients_total", &[]);
    assert_eq!(pinned.len(), pgsidecar::admin::PIN_REASONS.len());
    assert!(pinned.iter().all(|s| value(s) == 0.0));
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(one(m, "pgsidecar_build_info", &version), 1.0);
    assert!(one(m, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(one(m, "process_open_fds", &[]) >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_fingerprints_and_the_rest_under_other() {
    let proxy = proxy_with(|c| c.metrics_top_queries = 1).await;
    let client = proxy.client().await;
    let t = table().await;
    for i in 1..=3 {
        let columns = vec!["a"; i].join(" + ");
        client
            .simple_query(&format!("SELECT {columns} FROM {t}"))
            .await
            .expect("select");
    }
    settle().await;
    let m = scrape(&Http::new(&proxy).text("/metrics").await.1);
    let select = [("database", "postgres"), ("command", "SELECT")];
    let series = samples(&m, "pgsidecar_query_duration_seconds", &select);
    let own: HashSet<&str> = (series.iter())
        .filter_map(|s| s.labels.get("fingerprint"))
        .filter(|f| *f != "other")
        .collect();
    assert!(own.len() <= 1, "{own:?}");
    let other = [select[0], select[1], ("fingerprint", "other")];
    assert!(one(&m, "pgsidecar_query_duration_seconds_count", &other) >= 2.0);
    let counted: f64 = samples(&m, "pgsidecar_query_duration_seconds_count", &select)
        .into_iter()
        .map(value)
        .sum();
    let total = one(
        &m,
        "pgsidecar_queries_total",
        &[select[0], select[1], ("outcome", "ok")],
    ) + one(
        &m,
        "pgsidecar_queries_total",
        &[select[0], select[1], ("outcome", "error")],
    );
    assert_eq!(counted, total, "every SELECT is in exactly one series");
    assert_eq!(samples(&m, "pgsidecar_query_info", &[]).len(), own.len());
    drop_table(&t).await;
    proxy.stop().await;
}

mod api;
mod console_api;
