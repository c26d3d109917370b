//! The store going away: `pgsidecar_store_up` follows it, slow events and the alert
//! raised during the outage stay in `/api/slow` and `/api/alerts` and are written once
//! it is back, and a proxy started while the store is down connects (and migrates) when
//! it comes up. The store is a throwaway cluster that the test stops and starts.

use std::time::Duration;

use serde_json::Value;

use super::eventually;
use crate::common::cluster::Cluster;
use crate::common::http::{one, Http};
use crate::common::{connect, unique, Proxy};

const TRUST_HBA: &str = "local all all trust\nhost all all 127.0.0.1/32 trust\n";

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A proxy storing into `cluster`, every statement slow from 100 ms, an alert for
/// every 2 in a row.
async fn proxy_storing_into(cluster: &Cluster) -> Proxy {
    let url = cluster.url("postgres", None, "postgres");
    Proxy::with(|c| {
        c.store = true;
        c.store_url = Some(url);
        c.slow_warning_ms = 100;
        c.slow_critical_ms = 60_000;
        c.alert_consecutive = 2;
    })
    .await
}

async fn store_up(http: &Http) -> f64 {
    one(&http.metrics().await, "pgsidecar_store_up", &[])
}

/// Rows of `/api/<list>` whose query mentions `marker`.
async fn listed(http: &Http, list: &str, marker: &str) -> usize {
    let (status, page) = http.json(&format!("/api/{list}?limit=100")).await;
    assert_eq!(status, 200, "{page}");
    (page["data"].as_array().cloned().unwrap_or_default().iter())
        .filter(|row: &&Value| row["query"].as_str().unwrap_or_default().contains(marker))
        .count()
}

async fn stored(cluster: &Cluster, table: &str, marker: &str) -> i64 {
    let store = connect(&cluster.url("postgres", None, "postgres")).await;
    let sql = format!("SELECT count(*) FROM pgsidecar.{table} WHERE query LIKE '%' || $1 || '%'");
    store.query_one(&sql, &[&marker]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_alerts_of_a_store_outage_are_kept_and_written_later() {
    let cluster = blocking(|| Cluster::start(TRUST_HBA, &[], None));
    let proxy = proxy_storing_into(&cluster).await;
    let http = Http::new(&proxy);
    eventually("the store connected", 20, || async {
        store_up(&http).await == 1.0
    })
    .await;

    blocking(|| cluster.stop());
    eventually("pgsidecar_store_up = 0", 10, || async {
        store_up(&http).await == 0.0
    })
    .await;
    let marker = unique("outage");
    let client = proxy.client().await;
    for _ in 0..3 {
        let sql = format!("SELECT pg_sleep(0.15) AS {marker}");
        client.simple_query(&sql).await.unwrap();
    }
    // Meanwhile the lists answer from memory, with everything.
    eventually("3 slow events listed during the outage", 10, || async {
        listed(&http, "slow", &marker).await == 3
    })
    .await;
    assert_eq!(listed(&http, "alerts", &marker).await, 1);
    let metrics = http.metrics().await;
    assert_eq!(one(&metrics, "pgsidecar_store_backlog", &[]), 4.0);
    assert_eq!(
        one(&metrics, "pgsidecar_store_backlog_dropped_total", &[]),
        0.0
    );

    blocking(|| cluster.start_again());
    eventually("pgsidecar_store_up = 1 again", 20, || async {
        store_up(&http).await == 1.0
    })
    .await;
    eventually("the outage's events and alert in the store", 10, || async {
        stored(&cluster, "slow_events", &marker).await == 3
            && stored(&cluster, "alerts", &marker).await == 1
    })
    .await;
    // And the lists, now from the store, still show them.
    assert_eq!(listed(&http, "slow", &marker).await, 3);
    assert_eq!(listed(&http, "alerts", &marker).await, 1);
    assert_eq!(
        one(&http.metrics().await, "pgsidecar_store_backlog", &[]),
        0.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_started_while_the_store_is_down_connects_when_it_comes_up() {
    let cluster = blocking(|| Cluster::start(TRUST_HBA, &[], None));
    blocking(|| cluster.stop());
    let proxy = proxy_storing_into(&cluster).await;
    let http = Http::new(&proxy);
    let marker = unique("early");
    let client = proxy.client().await;
    for _ in 0..2 {
        let sql = format!("SELECT pg_sleep(0.15) AS {marker}");
        client.simple_query(&sql).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store_up(&http).await, 0.0);
    assert_eq!(listed(&http, "slow", &marker).await, 2);

    blocking(|| cluster.start_again());
    eventually("the store connected after it came up", 30, || async {
        store_up(&http).await == 1.0
    })
    .await;
    // Migrated on that first connection, and what waited was written.
    eventually(
        "events from before the store came up, stored",
        10,
        || async {
            stored(&cluster, "slow_events", &marker).await == 2
                && stored(&cluster, "alerts", &marker).await == 1
        },
    )
    .await;
    proxy.stop().await;
}
