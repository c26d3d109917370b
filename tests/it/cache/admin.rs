//! Operating the cache: `/metrics` families, `GET /api/cache`, `POST
//! /api/cache/invalidate` (admin token required), and the console's `SHOW CACHE` and
//! `CACHE CLEAR`.

use std::time::Duration;

use bytes::Bytes;
use pgsidecar::cache::config::CacheMode;
use pgsidecar::cache::Outcome;

use super::{eventually, CacheDb};
use crate::common::http::Http;

#[tokio::test]
async fn metrics_api_and_console_show_and_clear_the_cache() {
    let db = CacheDb::create("CREATE TABLE t (id int)").await;
    db.install().await;
    let token = "cache-token";
    let name = db.name.clone();
    let proxy = {
        let url = db.url.clone();
        crate::common::Proxy::with(move |c| {
            c.upstream = url;
            c.cache.mode = CacheMode::Auto;
            c.admin_token = Some(token.into());
            c.admin_users = vec!["postgres".into()];
        })
        .await
    };
    let cache = proxy.app.shared().cache.clone();
    let req = pgsidecar::cache::Request {
        database: &name,
        session_user: "postgres",
        current_role: "postgres",
        search_path: "public",
        settings: [0; 32],
        text: "SELECT * FROM t",
        fingerprint: 0xabc,
        param_types: &[],
        param_formats: &[],
        params: &[],
        result_formats: &[],
    };
    let mut ticket = None;
    assert!(
        eventually(Duration::from_secs(10), || match cache.lookup(&req) {
            Outcome::Miss(t) => {
                ticket = Some(t);
                true
            }
            _ => false,
        })
        .await
    );
    cache.fill(
        ticket.unwrap(),
        Some(Bytes::from_static(b"rows")),
        Duration::from_millis(2),
    );
    assert!(matches!(cache.lookup(&req), Outcome::Hit(_)));

    let http = Http::with_token(&proxy, token);
    let scrape = http.metrics().await;
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "pgsidecar_cache_hits_total",
        "pgsidecar_cache_misses_total",
        "pgsidecar_cache_bypass_total",
        "pgsidecar_cache_evictions_total",
        "pgsidecar_cache_invalidations_total",
        "pgsidecar_cache_bytes",
        "pgsidecar_cache_entries",
        "pgsidecar_cache_invalidation_lag_seconds_count",
        "pgsidecar_cache_hit_ratio",
    ] {
        assert!(names.contains(&family), "{family} missing");
    }
    let (status, body) = http.json("/api/cache").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["entries"], 1, "{body}");
    assert_eq!(
        body["data"]["fingerprints"][0]["fingerprint"],
        "0000000000000abc"
    );
    assert_eq!(body["data"]["fingerprints"][0]["hits"], 1);
    assert_eq!(body["data"]["listening"][&name], true);

    // Without the token: 401; with it, a table is invalidated by name.
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut r = http
            .client
            .post(format!("{}/api/cache/invalidate", http.base))
            .json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let body = serde_json::json!({"table": "t", "database": name});
    assert_eq!(post(None, body.clone()).await.unwrap().status(), 401);
    assert_eq!(post(Some(token), body).await.unwrap().status(), 200);
    assert!(!matches!(cache.lookup(&req), Outcome::Hit(_)));
    let bad = post(Some(token), serde_json::json!({"all": true, "table": "t"}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let all = post(Some(token), serde_json::json!({"all": true}))
        .await
        .unwrap();
    assert_eq!(all.status(), 200);

    let console = crate::common::connect(&proxy.url("postgres", "pgsidecar")).await;
    let rows = console.simple_query("SHOW CACHE").await.unwrap();
    let rows: Vec<_> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_owned()),
            _ => None,
        })
        .collect();
    assert!(rows[0].starts_with("(all:"), "{rows:?}");
    assert!(rows.contains(&"0000000000000abc".to_string()), "{rows:?}");
    console.simple_query("CACHE CLEAR").await.unwrap();
    let err = console
        .simple_query(&format!("CACHE CLEAR nope {name}"))
        .await
        .unwrap_err();
    assert_eq!(crate::common::sqlstate(&err), "42P01");
    proxy.stop().await;
}

#[tokio::test]
async fn invalidating_over_http_needs_a_configured_token() {
    let db = CacheDb::create("").await;
    let proxy = db.proxy(CacheMode::Auto, None).await;
    let http = Http::new(&proxy);
    let r = http
        .client
        .post(format!("{}/api/cache/invalidate", http.base))
        .json(&serde_json::json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    proxy.stop().await;
}
